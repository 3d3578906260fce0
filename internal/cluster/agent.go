// Package cluster is minikubelet's cluster side: with --kubeconfig it
// reports into a Kubernetes API server as a node, the way the kubelet does —
// the Node object and its status, the node Lease, one mirror pod per static
// pod with that pod's status, and the node's events.
//
// It is decoupled from the reconcile loop: the Agent only reads the
// daemon's api.Source (the same pod and event store the local API serves)
// and never blocks it. An API server that is down, slow or refusing changes
// nothing for the pods; the Agent retries with back-off and catches up when
// it answers again. Memory stays bounded while it is down: pod state is read
// level-triggered from the store (nothing queues per change), events go
// through client-go's broadcaster, whose queue drops when full.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/component-helpers/apimachinery/lease"
	"k8s.io/utils/clock"

	"github.com/minikubelet/minikubelet/internal/api"
)

// Defaults, the kubelet's.
const (
	// DefaultNodeStatusUpdateFrequency: how often status is computed and
	// PATCHed when it changed (kubelet: nodeStatusUpdateFrequency 10s).
	DefaultNodeStatusUpdateFrequency = 10 * time.Second
	// DefaultNodeStatusReportFrequency: status is PATCHed at least this
	// often even unchanged (kubelet: nodeStatusReportFrequency 5m).
	DefaultNodeStatusReportFrequency = 5 * time.Minute
	// LeaseDurationSeconds and the renew interval (kubelet:
	// nodeLeaseDurationSeconds 40, renewed every 1/4 of it: 10s;
	// pkg/kubelet/kubelet.go NewMainKubelet).
	LeaseDurationSeconds = 40
	// LeaseNamespace holds one Lease per node.
	LeaseNamespace = "kube-node-lease"
	// DefaultMaxPods is the kubelet's maxPods.
	DefaultMaxPods = 110
	// podStatusResync: mirror pod status is compared and re-sent this often
	// (kubelet: pkg/kubelet/status/status_manager.go syncPeriod 10s).
	podStatusResync = 10 * time.Second
)

// Options configure an Agent.
type Options struct {
	Client   kubernetes.Interface
	NodeName string
	// NodeIP is the InternalIP address ("" = none known).
	NodeIP string
	// Hostname is the Hostname address and kubernetes.io/hostname label
	// (default: NodeName).
	Hostname string
	// Labels are --node-labels, Taints --register-with-taints.
	Labels map[string]string
	Taints []v1.Taint
	// RegisterNode creates the Node when it does not exist (--register-node).
	RegisterNode bool
	// KubeletPort is status.daemonEndpoints.kubeletEndpoint.Port (0: none).
	KubeletPort int32
	// RootDir's filesystem is the ephemeral-storage capacity.
	RootDir string
	MaxPods int
	PodCIDR string
	// Source is the daemon's pod and event store.
	Source api.Source
	// SourceReady says whether Source holds every static pod (the
	// manifest folder read and a first round reported). Until then no
	// mirror pod is created or deleted: a restarted daemon's store is empty
	// for a moment, and every mirror pod would look orphaned (kubelet:
	// HandlePodCleanups waits for sourcesReady.AllReady). Nil: ready.
	SourceReady func() bool
	// Ready says whether the node can run pods (nil error) or why not.
	Ready func() error

	NodeStatusUpdateFrequency time.Duration
	NodeStatusReportFrequency time.Duration

	Log *slog.Logger
}

// Agent is the cluster side of one node.
type Agent struct {
	o   Options
	log *slog.Logger

	mu      sync.Mutex
	nodeUID types.UID // known once registered or read

	recorder record.EventRecorder
	dirty    chan struct{} // a pod of the store changed
	// down is set while requests fail for want of an API server, so an
	// outage is logged once, not once per pod and retry.
	down atomic.Bool
}

// isUnreachable: the request got no answer from an API server (as opposed
// to an answer refusing it).
func isUnreachable(err error) bool {
	var st apierrors.APIStatus
	return err != nil && !errors.As(err, &st)
}

// apiError logs a failed request: refusals each time, an unreachable API
// server once until it answers again.
func (a *Agent) apiError(msg string, err error, kv ...any) {
	if isUnreachable(err) {
		if a.down.Swap(true) {
			return
		}
		a.log.Warn("API server unreachable; the pods are not affected, reports resume when it answers", "err", err)
		return
	}
	a.log.Warn(msg, append(kv, "err", err)...)
}

// apiOK notes a request that succeeded.
func (a *Agent) apiOK() {
	if a.down.Swap(false) {
		a.log.Info("API server reachable again; catching up")
	}
}

// New checks o and returns an Agent; Run starts it.
func New(o Options) (*Agent, error) {
	if o.Client == nil || o.Source == nil || o.NodeName == "" {
		return nil, fmt.Errorf("cluster agent: client, source and node name are required")
	}
	if o.Hostname == "" {
		o.Hostname = o.NodeName
	}
	if o.MaxPods <= 0 {
		o.MaxPods = DefaultMaxPods
	}
	if o.NodeStatusUpdateFrequency <= 0 {
		o.NodeStatusUpdateFrequency = DefaultNodeStatusUpdateFrequency
	}
	if o.NodeStatusReportFrequency <= 0 {
		o.NodeStatusReportFrequency = DefaultNodeStatusReportFrequency
	}
	if o.Ready == nil {
		o.Ready = func() error { return nil }
	}
	if o.SourceReady == nil {
		o.SourceReady = func() bool { return true }
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Agent{o: o, log: o.Log, dirty: make(chan struct{}, 1)}, nil
}

func (a *Agent) setNodeUID(uid types.UID) {
	a.mu.Lock()
	a.nodeUID = uid
	a.mu.Unlock()
}

// NodeUID is the Node's UID, "" until the Agent has seen the Node.
func (a *Agent) NodeUID() types.UID {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.nodeUID
}

func (a *Agent) nodeRef() *v1.ObjectReference {
	// kubelet: pkg/kubelet/kubelet.go: node events reference the node by
	// name with its name as UID (the kubelet does not know the UID yet).
	return &v1.ObjectReference{Kind: "Node", Name: a.o.NodeName, UID: types.UID(a.o.NodeName)}
}

// Run reports until ctx ends. It returns only then: every failure to reach
// the API server is retried.
func (a *Agent) Run(ctx context.Context) error {
	// Events, with the node as source (kubelet: pkg/kubelet/kubelet.go
	// makeEventRecorder: component "kubelet", host <node>). The
	// broadcaster's queue is bounded and drops when full.
	bc := record.NewBroadcaster(record.WithContext(ctx))
	bc.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: a.o.Client.CoreV1().Events("")})
	defer bc.Shutdown()
	a.recorder = bc.NewRecorder(scheme.Scheme, v1.EventSource{Component: "kubelet", Host: a.o.NodeName})
	a.recorder.Eventf(a.nodeRef(), v1.EventTypeNormal, "Starting", "Starting kubelet (minikubelet %s).", Version)

	var wg sync.WaitGroup
	run := func(f func(context.Context)) {
		wg.Add(1)
		go func() { defer wg.Done(); f(ctx) }()
	}
	run(a.watchSource)
	run(a.runNode)
	// kubelet: pkg/kubelet/kubelet.go NewMainKubelet: the node lease,
	// renewed every nodeLeaseDurationSeconds/4, owned by the Node
	// (pkg/kubelet/util/nodelease.go setNodeOwnerFunc).
	lc := lease.NewController(clock.RealClock{}, a.o.Client, a.o.NodeName, LeaseDurationSeconds, nil,
		LeaseDurationSeconds*time.Second/4, a.o.NodeName, LeaseNamespace, a.setLeaseOwner)
	run(lc.Run)
	run(a.runMirrors)
	wg.Wait()
	return nil
}

// setLeaseOwner makes the Node the Lease's owner once its UID is known, so
// the Lease goes with the Node (kubelet: pkg/kubelet/util/nodelease.go).
func (a *Agent) setLeaseOwner(l *coordinationv1.Lease) error {
	if len(l.OwnerReferences) > 0 {
		return nil
	}
	uid := a.NodeUID()
	if uid == "" {
		return nil // the next renewal sets it
	}
	l.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: a.o.NodeName, UID: uid}}
	return nil
}

// watchSource turns store changes into a wake-up of the mirror sync and
// forwards the daemon's events. A subscription closed for falling behind is
// opened again (the sync is level-triggered: nothing is lost but events).
func (a *Agent) watchSource(ctx context.Context) {
	for ctx.Err() == nil {
		sub := a.o.Source.Subscribe(ctx)
		a.wake()
		for ev := range sub {
			switch {
			case ev.Pod != nil:
				a.wake()
			case ev.Event != nil && ev.Type != "DELETED":
				e := ev.Event
				ref := e.InvolvedObject
				// client-go's correlator aggregates repeats (count, lastTimestamp).
				a.recorder.Event(&ref, e.Type, e.Reason, e.Message)
			}
		}
	}
}

func (a *Agent) wake() {
	select {
	case a.dirty <- struct{}{}:
	default:
	}
}
