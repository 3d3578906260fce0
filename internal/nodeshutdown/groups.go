// Package nodeshutdown is minikubelet's graceful node shutdown, as the
// kubelet's GracefulNodeShutdown (pkg/kubelet/nodeshutdown): a logind
// "delay" inhibitor lock is held while the daemon runs; when logind
// announces PrepareForShutdown(true), pods are stopped in priority groups
// (regular pods first, critical pods last), each pod with its grace bounded
// by its group's, and the lock is then released so the shutdown proceeds.
//
// The decisions (groups, grace budgets, which pods are critical) are pure
// (this file); the sequence runs against two interfaces, Logind (logind.go
// is the D-Bus one) and Pods (Gate is the daemon's, over the reconciler),
// so unit tests drive it with fakes.
package nodeshutdown

import (
	"fmt"
	"sort"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
)

// Priorities of the scheduling API (k8s.io/kubernetes/pkg/apis/scheduling):
// the two built-in PriorityClasses and the floor of system-critical pods.
const (
	SystemCriticalPriority = 2000000000
	systemNodeCriticalPrio = SystemCriticalPriority + 1000

	SystemNodeCritical    = "system-node-critical"
	SystemClusterCritical = "system-cluster-critical"
)

// Config is --shutdown-grace-period and --shutdown-grace-period-critical-pods
// (the KubeletConfiguration's shutdownGracePeriod and
// shutdownGracePeriodCriticalPods).
type Config struct {
	// GracePeriod is the whole time the node's shutdown is delayed by; 0
	// turns graceful node shutdown off (no inhibitor lock).
	GracePeriod time.Duration
	// CriticalPodsGracePeriod is the part of GracePeriod reserved for
	// critical pods, which are stopped last; regular pods get the rest.
	CriticalPodsGracePeriod time.Duration
}

// Validate rejects what the kubelet's configuration validation rejects,
// except that a GracePeriod of 0 turns the feature off whatever the
// critical part says (minikubelet's default for that part is not 0).
func (c Config) Validate() error {
	if c.GracePeriod < 0 || c.CriticalPodsGracePeriod < 0 {
		return fmt.Errorf("--shutdown-grace-period (%s) and --shutdown-grace-period-critical-pods (%s) must not be negative", c.GracePeriod, c.CriticalPodsGracePeriod)
	}
	if c.GracePeriod > 0 && c.CriticalPodsGracePeriod > c.GracePeriod {
		return fmt.Errorf("--shutdown-grace-period-critical-pods (%s) must be <= --shutdown-grace-period (%s)", c.CriticalPodsGracePeriod, c.GracePeriod)
	}
	return nil
}

// Enabled: a shutdown grace period is set.
func (c Config) Enabled() bool { return c.GracePeriod > 0 && c.Validate() == nil }

// Group is one priority group: the pods whose priority is at least
// Priority (and below the next group's) are stopped together, each with
// min(its terminationGracePeriodSeconds, Grace), and the group is waited
// for at most Grace before the next one starts.
type Group struct {
	Priority int32
	Grace    time.Duration
	Pods     []*v1.Pod
}

// Groups are the kubelet's two groups from the two durations (its
// migrateConfig): priority 0 gets GracePeriod-CriticalPodsGracePeriod,
// SystemCriticalPriority gets CriticalPodsGracePeriod. Nil when disabled.
func (c Config) Groups() []Group {
	if !c.Enabled() {
		return nil
	}
	return []Group{
		{Priority: 0, Grace: c.GracePeriod - c.CriticalPodsGracePeriod},
		{Priority: SystemCriticalPriority, Grace: c.CriticalPodsGracePeriod},
	}
}

// InhibitDelay is how long logind must let the lock delay the shutdown:
// the sum of the groups' graces (kubelet periodRequested).
func (c Config) InhibitDelay() time.Duration {
	var d time.Duration
	for _, g := range c.Groups() {
		d += g.Grace
	}
	return d
}

// Priority is the pod's priority: spec.priority when set, else what the
// API server's Priority admission would give its priorityClassName (static
// pods skip admission, so a manifest often has only the class name).
func Priority(pod *v1.Pod) int32 {
	if pod.Spec.Priority != nil {
		return *pod.Spec.Priority
	}
	switch pod.Spec.PriorityClassName {
	case SystemNodeCritical:
		return systemNodeCriticalPrio
	case SystemClusterCritical:
		return SystemCriticalPriority
	}
	return 0
}

// IsCritical: priority >= 2000000000 (or a system-*-critical class).
func IsCritical(pod *v1.Pod) bool { return Priority(pod) >= SystemCriticalPriority }

// Assign sorts pods into groups (kubelet groupByPriority): a pod goes to
// the highest group whose Priority is at most its own; pods below every
// group go to the lowest one. The groups come back sorted by priority,
// lowest (stopped first) first; pods keep their input order within one.
func Assign(groups []Group, pods []*v1.Pod) []Group {
	out := make([]Group, len(groups))
	copy(out, groups)
	for i := range out {
		out[i].Pods = nil
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Priority < out[j].Priority })
	if len(out) == 0 {
		return out
	}
	for _, pod := range pods {
		prio := Priority(pod)
		idx := 0
		for i := range out {
			if out[i].Priority <= prio {
				idx = i
			}
		}
		out[idx].Pods = append(out[idx].Pods, pod)
	}
	return out
}

// PodGrace is the grace a pod gets in a group (kubelet's
// gracePeriodOverride): its own terminationGracePeriodSeconds when that is
// set and not longer than the group's, else the group's.
func PodGrace(pod *v1.Pod, groupGrace time.Duration) time.Duration {
	if s := pod.Spec.TerminationGracePeriodSeconds; s != nil {
		if own := time.Duration(*s) * time.Second; own <= groupGrace {
			if own < 0 {
				return 0
			}
			return own
		}
	}
	return groupGrace
}

func podNames(pods []*v1.Pod) string {
	names := make([]string, len(pods))
	for i, p := range pods {
		names[i] = p.Namespace + "/" + p.Name
	}
	return strings.Join(names, ",")
}
