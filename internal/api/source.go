// Package api is minikubelet's local API: an HTTP server on a unix socket
// (mode 0600, root) that serves what the daemon knows in the shapes the
// Kubernetes API server uses (v1 Pod, PodList, EventList, Status, watch
// events), the Prometheus metrics of the node, and a client the
// kubectl-shaped commands (get, describe, logs, wait) use.
//
// The server never computes pod state itself: it reads a Source the daemon
// implements. Store is a ready Source for the daemon to feed (pods, events,
// per-pod extras) with watch fan-out built in.
package api

import (
	"context"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
)

// Source is what the server reads. The daemon implements it (or feeds a Store).
// Every method must be safe for concurrent use and return copies the caller
// may keep.
type Source interface {
	// Pods returns every pod the node knows, including Terminating ones.
	Pods() []v1.Pod
	// Pod returns one pod by namespace and exact metadata.name.
	Pod(namespace, name string) (v1.Pod, bool)
	// Events returns the recorded events, oldest first.
	Events() []v1.Event
	// Subscribe streams pod and event changes until ctx ends; the channel is
	// closed then, or earlier when the subscriber falls too far behind (the
	// client re-lists, as with the API server's watch).
	Subscribe(ctx context.Context) <-chan WatchEvent
	// Extra returns node-local facts about a pod that v1.Pod has no field for.
	Extra(uid types.UID) (PodExtra, bool)
}

// WatchEvent is one change: exactly one of Pod and Event is set.
type WatchEvent struct {
	Type  watch.EventType // ADDED, MODIFIED, DELETED
	Pod   *v1.Pod
	Event *v1.Event

	// line is the change as a watch stream writes it, encoded by the first
	// watcher that sends it and reused by the others: with a thousand
	// watches open, encoding each change once per watcher was most of the
	// daemon's CPU. Nil for events not made by Store.publish.
	line *sharedLine
}

// sharedLine is one watch event's encoded line, made once.
type sharedLine struct {
	once sync.Once
	b    []byte
	err  error
}

// encoded returns the event's line, encoding it with enc the first time.
func (ev WatchEvent) encoded(enc func() ([]byte, error)) ([]byte, error) {
	if ev.line == nil {
		return enc()
	}
	ev.line.once.Do(func() { ev.line.b, ev.line.err = enc() })
	return ev.line.b, ev.line.err
}

// PodExtra is what `describe` shows beyond the v1 Pod: the cgroup the pod
// lives in, its limits as applied, what it uses now and how long until
// crash-looping containers are started again.
type PodExtra struct {
	// CgroupDriver is "systemd" or "cgroupfs".
	CgroupDriver string `json:"cgroupDriver,omitempty"`
	// Slice is the pod's slice unit (kubepods-burstable-pod<uid>.slice);
	// empty with cgroupfs, which has no units.
	Slice string `json:"slice,omitempty"`
	// CgroupPath is the pod's cgroup path below the hierarchy roots.
	CgroupPath string `json:"cgroupPath,omitempty"`
	// Scopes are the pod's scopes: the sandbox first (Container ""), then one per container.
	Scopes []ScopeInfo `json:"scopes,omitempty"`
	// Limits are the pod slice's cgroup values as applied.
	Limits *CgroupLimits `json:"limits,omitempty"`
	// Usage is the pod slice's usage at SampledAt.
	Usage *Usage `json:"usage,omitempty"`
	// ContainerUsage is per container name.
	ContainerUsage map[string]Usage `json:"containerUsage,omitempty"`
	// BackoffUntil is, per container name, when a container waiting in
	// CrashLoopBackOff (or ImagePullBackOff) is tried again.
	BackoffUntil map[string]time.Time `json:"backoffUntil,omitempty"`
	// ManifestPath is the file the pod came from.
	ManifestPath string `json:"manifestPath,omitempty"`
}

// ScopeInfo is one scope of a pod.
type ScopeInfo struct {
	Unit        string        `json:"unit"`                // minikubelet-<id>.scope; with cgroupfs the cgroup path
	Container   string        `json:"container,omitempty"` // "" for the pause sandbox
	ID          string        `json:"id,omitempty"`        // sandbox or container ID
	ActiveState string        `json:"activeState,omitempty"`
	MainPID     int           `json:"mainPID,omitempty"`
	Limits      *CgroupLimits `json:"limits,omitempty"`
}

// CgroupLimits are cgroup values in the kubelet's units; nil means unlimited.
type CgroupLimits struct {
	CPUShares       *uint64 `json:"cpuShares,omitempty"`
	CPUQuotaMicros  *int64  `json:"cpuQuotaMicros,omitempty"`
	CPUPeriodMicros uint64  `json:"cpuPeriodMicros,omitempty"`
	MemoryLimit     *int64  `json:"memoryLimitBytes,omitempty"`
	PidsLimit       *int64  `json:"pidsLimit,omitempty"`
}

// Usage mirrors the kubelet's stats summary fields.
type Usage struct {
	SampledAt time.Time `json:"time"`
	// UsageNanoCores is the CPU rate over the last sampling interval; nil
	// until two samples exist.
	UsageNanoCores       *uint64 `json:"usageNanoCores,omitempty"`
	UsageCoreNanoSeconds uint64  `json:"usageCoreNanoSeconds"`
	WorkingSetBytes      uint64  `json:"workingSetBytes"`
	PIDs                 uint64  `json:"pids,omitempty"`
	OOMKills             uint64  `json:"oomKills,omitempty"`
}
