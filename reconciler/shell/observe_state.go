package shell

// observe_state.go: the reconciler's own records in a pod's state dir
// (internal/layout names the folder and its parts), beside the runtime's
// (sandbox/, containers/, shm, volumes):
//
//	<root-dir>/pods/<uid>/status.json              last v1.PodStatus (PrevStatus)
//	<root-dir>/pods/<uid>/mkl/pod.json             the spec the pod was created with
//	<root-dir>/pods/<uid>/mkl/termination.json     grace deadline once terminating
//	<root-dir>/pods/<uid>/mkl/sandbox.json         sandbox ID, attempt, IPs
//	<root-dir>/pods/<uid>/mkl/containers/<id>.json container -> sandbox, image, rootfs
//	<root-dir>/pods/<uid>/mkl/containers/<id>.oom  an OOM kill was counted in its scope
//	<root-dir>/pods/<uid>/rootfs/<name>-<attempt>/ overlay upper/work and mount point
//
// pod.json is written before anything else of a pod is created, so every
// slice, scope and process the daemon makes is preceded by a record naming
// it; what has no record was not made by this daemon for a known pod and is
// collected as an orphan. Every file is written atomically (temp + rename).

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/minikubelet/minikubelet/internal/layout"
	"github.com/minikubelet/minikubelet/runtime/shim"

	"github.com/minikubelet/minikubelet/reconciler"
)

type podRecord struct {
	Pod       *v1.Pod   `json:"pod"`
	CreatedAt time.Time `json:"createdAt"`
}

type sandboxRecord struct {
	ID      string    `json:"id"`
	Attempt uint32    `json:"attempt"`
	Stopped bool      `json:"stopped,omitempty"` // StopSandbox done: resources released
	IPs     []string  `json:"ips,omitempty"`
	Created time.Time `json:"created"`
}

type containerRecord struct {
	ID        string               `json:"id"`
	Name      string               `json:"name"`
	Attempt   uint32               `json:"attempt"`
	SandboxID string               `json:"sandboxID"`
	Image     string               `json:"image"`
	ImageRef  string               `json:"imageRef,omitempty"`
	ImageID   string               `json:"imageID,omitempty"`
	RootfsID  string               `json:"rootfsID,omitempty"`
	RootfsDir string               `json:"rootfsDir,omitempty"`
	PreStop   reconciler.HookState `json:"preStop,omitempty"`
	// StopSignal is the image's StopSignal ("" = SIGTERM).
	StopSignal string `json:"stopSignal,omitempty"`
	// Hash is containerHash of the spec it was created from.
	Hash string `json:"hash,omitempty"`
}

// stateDir names the shell's records and the container roots inside each
// pod's folder; internal/layout owns the folder and its parts.
type stateDir struct{ root layout.Root }

func (s stateDir) podsDir() string                 { return s.root.Pods() }
func (s stateDir) pod(uid types.UID) string        { return s.root.Pod(uid).Dir() }
func (s stateDir) mkl(uid types.UID) string        { return s.root.Pod(uid).Records() }
func (s stateDir) statusFile(uid types.UID) string { return s.root.Pod(uid).Status() }
func (s stateDir) podFile(uid types.UID) string    { return filepath.Join(s.mkl(uid), "pod.json") }
func (s stateDir) termFile(uid types.UID) string {
	return filepath.Join(s.mkl(uid), "termination.json")
}
func (s stateDir) sandboxFile(uid types.UID) string {
	return filepath.Join(s.mkl(uid), "sandbox.json")
}
func (s stateDir) containersDir(uid types.UID) string { return filepath.Join(s.mkl(uid), "containers") }
func (s stateDir) containerFile(uid types.UID, id string) string {
	return filepath.Join(s.containersDir(uid), id+".json")
}
func (s stateDir) oomFile(uid types.UID, id string) string {
	return filepath.Join(s.containersDir(uid), id+".oom")
}
func (s stateDir) rootfsDir(uid types.UID, name string, attempt uint32) string {
	return s.root.Pod(uid).ContainerRoot(name, attempt)
}

// recordCaches hold the records observePod reads every round, decoded once
// and served while their file's identity is unchanged (shim.RecordCache;
// issue 17: an idle pod's records never change). Callers get copies, so
// the pod spec is deep-copied: still far cheaper than decoding it.
type recordCaches struct {
	pod       *shim.RecordCache[podRecord]
	term      *shim.RecordCache[reconciler.Termination]
	sandbox   *shim.RecordCache[sandboxRecord]
	container *shim.RecordCache[containerRecord]
}

func newRecordCaches() recordCaches {
	return recordCaches{
		pod:  shim.NewRecordCache(func(r podRecord) podRecord { r.Pod = r.Pod.DeepCopy(); return r }),
		term: shim.NewRecordCache[reconciler.Termination](nil),
		sandbox: shim.NewRecordCache(func(r sandboxRecord) sandboxRecord {
			r.IPs = slices.Clone(r.IPs)
			return r
		}),
		container: shim.NewRecordCache[containerRecord](nil),
	}
}

// readJSON returns false when the file does not exist or is unreadable (a
// torn write cannot happen: writes are atomic).
func readJSON(path string, v any) bool {
	return shim.ReadJSON(path, v) == nil
}

func writeJSON(path string, v any) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	return shim.WriteJSONAtomic(path, v)
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil || !errors.Is(err, os.ErrNotExist)
}
