// Package systemd gives every pod the kubelet's cgroup tree:
//
//	kubepods.slice                                  (root, from --cgroup-root)
//	└── kubepods-burstable.slice                    (QoS; Guaranteed pods sit under the root)
//	    └── kubepods-burstable-pod<uid>.slice       (one per pod, its summed limits)
//	        ├── minikubelet-<sandbox id>.scope      (the pause process)
//	        └── minikubelet-<container id>.scope    (one per container, its own limits)
//
// Two drivers implement Driver: the systemd driver creates slices and scopes
// over D-Bus (transient units, every limit a unit property), the cgroupfs
// driver writes the kubelet's cgroupfs tree (/kubepods/burstable/pod<uid>/<id>)
// where systemd is not running. The reconciler never knows which one it drives.
//
// Where a pod gets its limits: PlanPod in plan.go (pure, kubelet's formulas).
package systemd

import (
	"context"
	"fmt"
	"os"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// QOSClass is the pod's Kubernetes QoS class (Guaranteed, Burstable, BestEffort).
type QOSClass = v1.PodQOSClass

// Resources are the cgroup values of one slice or scope, in the kubelet's
// units. nil means "not set" (unlimited / inherited).
type Resources struct {
	CPUShares       *uint64 // v1 cpu.shares; v2 weight is derived from it (kubelet's conversion)
	CPUQuotaMicros  *int64  // cfs quota in µs per CPUPeriodMicros; nil = no limit
	CPUPeriodMicros uint64  // 100000 unless set
	MemoryLimit     *int64  // bytes
	PidsLimit       *int64
}

// PodCgroup is the desired cgroup of one pod.
type PodCgroup struct {
	UID       types.UID
	QOS       QOSClass
	Resources Resources
}

// ScopeSpec asks for one scope inside a pod's slice holding an already
// running (but not yet working) process.
type ScopeSpec struct {
	Pod         PodCgroup
	ID          string        // sandbox or container ID; unit is ScopeUnitName(ID)
	Description string        // e.g. "minikubelet container default/etcd-node1/etcd"
	PIDs        []int         // live processes to move in (held stopped by the caller)
	Resources   Resources     // the container's own limits
	StopTimeout time.Duration // how long a stop waits before SIGKILL (grace period)
	// Privileged lifts the device cgroup restriction (a privileged
	// container gets the host's devices). Otherwise the scope allows only
	// runc's default devices (ScopeDeviceRules): the sandbox and every
	// unprivileged container.
	Privileged bool
}

// UnitState is what the driver observed of one slice or scope.
type UnitState struct {
	Unit        string // kubepods-burstable-pod<uid>.slice or minikubelet-<id>.scope
	PodUID      types.UID
	ID          string // scope's sandbox/container ID, "" for slices
	ActiveState string // active, inactive, failed, ... (systemd vocabulary; cgroupfs: active/inactive)
	SubState    string
	Result      string // systemd's Result property when the unit failed
	CgroupPath  string // path relative to the hierarchy roots (the ControlGroup property)
	PIDs        []int  // processes in the cgroup (cgroupfs; systemd fills it where cheap)
}

// Event reports a change of a unit's state; the reconciler re-reads state on it.
type Event struct {
	Unit  string
	State UnitState
	Gone  bool // the unit no longer exists
}

// Usage is what a container or pod used, read from its cgroup files.
type Usage struct {
	MemoryBytes   uint64 // working set as the kubelet computes it
	CPUUsageNanos uint64 // cumulative
	PIDs          uint64
	OOMKills      uint64 // kills counted by the memory controller of this cgroup
}

// Driver is the cgroup tree behind the reconciler. All methods are safe for
// concurrent use and idempotent: ensuring what exists succeeds, removing
// what is gone succeeds.
type Driver interface {
	// Name is "systemd" or "cgroupfs".
	Name() string
	// Init creates the root and QoS slices. It refuses, naming the cause,
	// when another agent (a running kubelet, or pod slices this program did
	// not create) owns the root.
	Init(ctx context.Context) error
	// EnsurePod creates the pod's slice or updates its limits.
	EnsurePod(ctx context.Context, pod PodCgroup) error
	// StartScope creates a scope holding spec.PIDs with spec.Resources. When
	// it returns nil the processes are inside with their limits applied.
	StartScope(ctx context.Context, spec ScopeSpec) error
	// StopScope kills what remains in a scope (SIGTERM, then SIGKILL after
	// its stop timeout; immediately with kill) and removes it.
	StopScope(ctx context.Context, id string, kill bool) error
	// RemovePod removes a pod's slice; its scopes must be stopped first.
	RemovePod(ctx context.Context, uid types.UID) error
	// List returns every pod slice and scope under the root that this
	// program created, so a restarted daemon can adopt or collect them.
	List(ctx context.Context) ([]UnitState, error)
	// Events streams unit state changes (no polling by the caller).
	Events() <-chan Event
	// Usage reads a scope's (id) or, with id "", a pod slice's usage.
	Usage(ctx context.Context, uid types.UID, id string) (Usage, error)
	// WatchOOM starts counting OOM kills of a scope before its workload runs;
	// the returned channel receives one value per kill and closes when the
	// scope is gone or ctx ends (pass a context that lives as long as the
	// container, not a request's).
	WatchOOM(ctx context.Context, uid types.UID, id string) (<-chan struct{}, error)
	Close() error
}

// QOSUpdater is implemented by both drivers: it sets a QoS slice's values,
// computed with QOSResources over the active pods as the kubelet's QoS
// manager does. Until it is called, a driver keeps the Burstable slice at
// its own estimate (the sum of its Burstable pods' cpu shares).
type QOSUpdater interface {
	UpdateQOS(ctx context.Context, qos QOSClass, r Resources) error
}

// systemdRunDir exists when systemd is the init system (sd_booted()).
var systemdRunDir = "/run/systemd/system"

// DetectDriver resolves --cgroup-driver: "auto" picks "systemd" when
// systemd runs (/run/systemd/system exists), else "cgroupfs".
func DetectDriver(flag string) (string, error) {
	switch flag {
	case "systemd", "cgroupfs":
		return flag, nil
	case "auto", "":
		if _, err := os.Stat(systemdRunDir); err == nil {
			return "systemd", nil
		}
		return "cgroupfs", nil
	}
	return "", fmt.Errorf("invalid --cgroup-driver %q: want auto, systemd or cgroupfs", flag)
}
