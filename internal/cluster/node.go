package cluster

// node.go: the Node object — registration and status
// (kubelet: pkg/kubelet/kubelet_node_status.go, pkg/kubelet/nodestatus/setters.go).

import (
	"context"
	"encoding/json"
	"fmt"
	goruntime "runtime"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	nodeutil "k8s.io/component-helpers/node/util"
)

// Well-known labels the kubelet sets on its Node
// (kubelet: pkg/kubelet/kubelet_node_status.go initialNode).
const (
	labelHostname   = "kubernetes.io/hostname"
	labelOS         = "kubernetes.io/os"
	labelArch       = "kubernetes.io/arch"
	labelOSBeta     = "beta.kubernetes.io/os"
	labelArchBeta   = "beta.kubernetes.io/arch"
	registerBackoff = 7 * time.Second // kubelet: registerWithAPIServer caps its back-off at 7s
)

// defaultLabels are the labels the kubelet owns on its Node.
func (a *Agent) defaultLabels() map[string]string {
	return map[string]string{
		labelHostname: a.o.Hostname,
		labelOS:       goruntime.GOOS, labelArch: goruntime.GOARCH,
		labelOSBeta: goruntime.GOOS, labelArchBeta: goruntime.GOARCH,
	}
}

// initialNode is the Node registered at start (kubelet:
// pkg/kubelet/kubelet_node_status.go initialNode): labels, taints, podCIDR,
// then the status every sync fills.
func (a *Agent) initialNode() *v1.Node {
	n := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: a.o.NodeName, Labels: map[string]string{}}}
	for k, v := range a.o.Labels {
		n.Labels[k] = v
	}
	for k, v := range a.defaultLabels() {
		n.Labels[k] = v
	}
	n.Spec.Taints = append(n.Spec.Taints, a.o.Taints...)
	if a.o.PodCIDR != "" {
		n.Spec.PodCIDR = a.o.PodCIDR
		n.Spec.PodCIDRs = []string{a.o.PodCIDR}
	}
	a.setStatus(n, time.Now())
	return n
}

// setStatus fills n.Status as of now (kubelet: pkg/kubelet/nodestatus/setters.go):
// addresses, daemon endpoint, capacity = allocatable (no reservations),
// nodeInfo and the four conditions with heartbeat times. A condition's
// lastTransitionTime moves only when its status changes.
func (a *Agent) setStatus(n *v1.Node, now time.Time) {
	n.Status.Addresses = nil
	if a.o.NodeIP != "" {
		n.Status.Addresses = append(n.Status.Addresses, v1.NodeAddress{Type: v1.NodeInternalIP, Address: a.o.NodeIP})
	}
	n.Status.Addresses = append(n.Status.Addresses, v1.NodeAddress{Type: v1.NodeHostName, Address: a.o.Hostname})
	n.Status.DaemonEndpoints.KubeletEndpoint.Port = a.o.KubeletPort
	capacity := machineCapacity(a.o.RootDir, a.o.MaxPods)
	n.Status.Capacity = capacity
	n.Status.Allocatable = capacity.DeepCopy()
	n.Status.NodeInfo = nodeInfo()
	n.Status.Phase = "" // deprecated; the kubelet leaves it unset

	ts := metav1.NewTime(now)
	ready, readyReason, readyMsg := v1.ConditionTrue, "KubeletReady", "kubelet is posting ready status"
	if err := a.o.Ready(); err != nil {
		ready, readyReason, readyMsg = v1.ConditionFalse, "KubeletNotReady", err.Error()
	}
	want := []v1.NodeCondition{
		{Type: v1.NodeMemoryPressure, Status: v1.ConditionFalse, Reason: "KubeletHasSufficientMemory", Message: "kubelet has sufficient memory available"},
		{Type: v1.NodeDiskPressure, Status: v1.ConditionFalse, Reason: "KubeletHasNoDiskPressure", Message: "kubelet has no disk pressure"},
		{Type: v1.NodePIDPressure, Status: v1.ConditionFalse, Reason: "KubeletHasSufficientPID", Message: "kubelet has sufficient PID available"},
		{Type: v1.NodeReady, Status: ready, Reason: readyReason, Message: readyMsg},
	}
	for _, c := range want {
		c.LastHeartbeatTime = ts
		c.LastTransitionTime = ts
		replaced := false
		for i := range n.Status.Conditions {
			old := &n.Status.Conditions[i]
			if old.Type != c.Type {
				continue
			}
			if old.Status == c.Status {
				c.LastTransitionTime = old.LastTransitionTime
			} else if c.Type == v1.NodeReady {
				a.recordNodeStatus(c)
			}
			*old = c
			replaced = true
		}
		if !replaced {
			n.Status.Conditions = append(n.Status.Conditions, c)
		}
	}
}

// recordNodeStatus posts NodeReady/NodeNotReady as the kubelet does
// (kubelet: pkg/kubelet/nodestatus/setters.go ReadyCondition).
func (a *Agent) recordNodeStatus(c v1.NodeCondition) {
	if a.recorder == nil {
		return
	}
	reason := "NodeReady"
	if c.Status != v1.ConditionTrue {
		reason = "NodeNotReady"
	}
	a.recorder.Eventf(a.nodeRef(), v1.EventTypeNormal, reason, "Node %s status is now: %s", a.o.NodeName, reason)
}

// runNode registers the Node (retrying with back-off until the API server
// answers), then keeps its status.
func (a *Agent) runNode(ctx context.Context) {
	if a.o.RegisterNode {
		a.register(ctx)
	}
	var lastReport time.Time
	t := time.NewTicker(a.o.NodeStatusUpdateFrequency)
	defer t.Stop()
	for {
		if reported, err := a.syncNodeStatus(ctx, lastReport); err != nil {
			if ctx.Err() == nil {
				a.apiError("node status not updated; retrying", err, "node", a.o.NodeName)
			}
		} else {
			a.apiOK()
			if reported {
				lastReport = time.Now()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// register creates the Node, or adopts the existing one (kubelet:
// pkg/kubelet/kubelet_node_status.go registerWithAPIServer and
// tryRegisterWithAPIServer: back-off 100ms doubling to 7s; an existing
// Node gets the kubelet's default labels reconciled).
func (a *Agent) register(ctx context.Context) {
	step := 100 * time.Millisecond
	for ctx.Err() == nil {
		node := a.initialNode()
		created, err := a.o.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
		if err == nil {
			a.setNodeUID(created.UID)
			a.log.Info("node registered", "node", a.o.NodeName, "uid", created.UID)
			a.recorder.Eventf(a.nodeRef(), v1.EventTypeNormal, "RegisteredNode", "Node %s registered", a.o.NodeName)
			return
		}
		if apierrors.IsAlreadyExists(err) {
			if err = a.adoptNode(ctx, node); err == nil {
				return
			}
		}
		if ctx.Err() != nil {
			return
		}
		a.log.Info("node not registered yet; retrying", "node", a.o.NodeName, "in", step, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(step):
		}
		if step *= 2; step > registerBackoff {
			step = registerBackoff
		}
	}
}

// adoptNode reconciles an existing Node's labels (kubelet:
// kubelet_node_status.go updateDefaultLabels: the kubelet's own labels are
// kept current; --node-labels are added on registration only).
func (a *Agent) adoptNode(ctx context.Context, want *v1.Node) error {
	existing, err := a.o.Client.CoreV1().Nodes().Get(ctx, a.o.NodeName, metav1.GetOptions{})
	if err != nil {
		return err
	}
	a.setNodeUID(existing.UID)
	updated := existing.DeepCopy()
	if updated.Labels == nil {
		updated.Labels = map[string]string{}
	}
	for k, v := range a.defaultLabels() {
		updated.Labels[k] = v
	}
	if !equality.Semantic.DeepEqual(existing.Labels, updated.Labels) {
		patch, err := twoWayPatch(existing, updated, v1.Node{})
		if err != nil {
			return err
		}
		if _, err := a.o.Client.CoreV1().Nodes().Patch(ctx, a.o.NodeName, types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
			return err
		}
	}
	a.log.Info("node exists; adopted", "node", a.o.NodeName, "uid", existing.UID)
	return nil
}

// syncNodeStatus PATCHes the Node's status when it changed (heartbeat
// times aside) or when reportAfter has passed since the last report
// (kubelet: kubelet_node_status.go tryUpdateNodeStatus, nodeStatusHasChanged).
func (a *Agent) syncNodeStatus(ctx context.Context, lastReport time.Time) (bool, error) {
	old, err := a.o.Client.CoreV1().Nodes().Get(ctx, a.o.NodeName, metav1.GetOptions{})
	if err != nil {
		return false, err
	}
	a.setNodeUID(old.UID)
	n := old.DeepCopy()
	a.setStatus(n, time.Now())
	if !nodeStatusChanged(&old.Status, &n.Status) && time.Since(lastReport) < a.o.NodeStatusReportFrequency {
		return false, nil
	}
	if _, _, err := nodeutil.PatchNodeStatus(a.o.Client.CoreV1(), types.NodeName(a.o.NodeName), old, n); err != nil {
		return false, err
	}
	return true, nil
}

// nodeStatusChanged compares two statuses with the conditions' heartbeat
// times ignored (kubelet: kubelet_node_status.go nodeStatusHasChanged).
func nodeStatusChanged(a, b *v1.NodeStatus) bool {
	a, b = a.DeepCopy(), b.DeepCopy()
	for _, s := range []*v1.NodeStatus{a, b} {
		for i := range s.Conditions {
			s.Conditions[i].LastHeartbeatTime = metav1.Time{}
		}
	}
	return !equality.Semantic.DeepEqual(a, b)
}

func twoWayPatch(old, new, dataStruct any) ([]byte, error) {
	ob, err := json.Marshal(old)
	if err != nil {
		return nil, err
	}
	nb, err := json.Marshal(new)
	if err != nil {
		return nil, err
	}
	p, err := strategicpatch.CreateTwoWayMergePatch(ob, nb, dataStruct)
	if err != nil {
		return nil, fmt.Errorf("patch: %w", err)
	}
	return p, nil
}
