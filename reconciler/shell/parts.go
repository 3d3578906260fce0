package shell

// parts.go: what Node asks of the node's components, as small interfaces
// holding only the methods it calls (containerd's style). The daemon passes
// the real ones (*runtime.Runtime, *images.Store, *network.Manager, a
// systemd.Driver); the unit tests pass fakes, so the crash-safety rules of
// observe and execute are tested without a systemd, a supervisor or a
// mount.

import (
	"context"
	"syscall"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	mklrt "github.com/minikubelet/minikubelet/runtime"
	"github.com/minikubelet/minikubelet/runtime/images"
	"github.com/minikubelet/minikubelet/runtime/network"
	"github.com/minikubelet/minikubelet/systemd"
)

// Runtime is the part of runtime.Runtime Node uses: sandboxes, containers
// and their records (runtime/doc.go's CRI-shaped API).
type Runtime interface {
	RunSandbox(ctx context.Context, cfg mklrt.SandboxConfig) (mklrt.SandboxStatus, error)
	SandboxStatus(ctx context.Context, uid types.UID) (mklrt.SandboxStatus, error)
	StopSandbox(ctx context.Context, uid types.UID) error
	RemoveSandbox(ctx context.Context, uid types.UID) error
	SetPodIP(pod *v1.Pod, ip string) error
	// PodDir is <root-dir>/pods/<uid>, the folder the runtime and Node share.
	PodDir(uid types.UID) string

	CreateContainer(ctx context.Context, cfg mklrt.ContainerConfig) (mklrt.CreatedContainer, error)
	StartContainer(ctx context.Context, uid types.UID, id string) error
	StopContainer(ctx context.Context, uid types.UID, id string, grace time.Duration) error
	StopContainerSignal(ctx context.Context, uid types.UID, id string, sig syscall.Signal, grace time.Duration) error
	WaitContainer(ctx context.Context, uid types.UID, id string) (mklrt.ContainerStatus, error)
	RemoveContainer(ctx context.Context, uid types.UID, id string) error
	ContainerStatus(ctx context.Context, uid types.UID, id string) (mklrt.ContainerStatus, error)
	ListContainers(ctx context.Context, uid types.UID) ([]mklrt.ContainerStatus, error)
	Exec(ctx context.Context, uid types.UID, id string, cfg mklrt.ExecConfig) (int, error)
}

// Images is the part of images.Store Node uses: pulls and container roots.
type Images interface {
	EnsureImage(ctx context.Context, ref string, policy v1.PullPolicy, progress images.ProgressFunc) (images.Record, error)
	Lookup(ref string) (images.Record, bool, error)
	MountRootfs(ctx context.Context, id string, img images.Record, containerDir string, readOnly bool, target string) error
	ReleaseRootfs(id string) error
	RootfsRecords() ([]images.RootfsRecord, error)
}

// Network is the part of network.Manager Node uses (CNI ADD, DEL, CHECK).
type Network interface {
	Setup(ctx context.Context, pod network.PodNetwork) (network.Result, error)
	Teardown(ctx context.Context, pod network.PodNetwork) error
	Check(ctx context.Context, pod network.PodNetwork) (network.Result, error)
}

// Cgroups is the part of systemd.Driver Node uses: the pod's slice and its
// containers' scopes.
type Cgroups interface {
	EnsurePod(ctx context.Context, pod systemd.PodCgroup) error
	StartScope(ctx context.Context, spec systemd.ScopeSpec) error
	StopScope(ctx context.Context, id string, kill bool) error
	RemovePod(ctx context.Context, uid types.UID) error
	List(ctx context.Context) ([]systemd.UnitState, error)
	WatchOOM(ctx context.Context, uid types.UID, id string) (<-chan struct{}, error)
}

// The real parts satisfy these.
var (
	_ Runtime = (*mklrt.Runtime)(nil)
	_ Images  = (*images.Store)(nil)
	_ Network = (*network.Manager)(nil)
	_ Cgroups = systemd.Driver(nil)
)
