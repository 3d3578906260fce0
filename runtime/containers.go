package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/minikubelet/minikubelet/runtime/shim"
)

// Rootfs is a container's prepared root filesystem (a plain directory or the
// overlay mounted by runtime/images).
type Rootfs struct {
	Path     string
	ReadOnly bool // mount it read-only (also forced by readOnlyRootFilesystem)
}

// ImageConfig is the part of the image config that shapes the process.
type ImageConfig struct {
	Entrypoint []string
	Cmd        []string
	Env        []string
	WorkingDir string
	User       string
}

// ContainerConfig asks for one container of a running sandbox.
type ContainerConfig struct {
	// ID is optional: callers that prepare the root filesystem inside the
	// container's directory first (ContainerDir(uid, NewContainerID()))
	// pass the ID they used.
	ID        string
	Pod       *v1.Pod
	Container *v1.Container
	Attempt   int // restart count: the log file is <attempt>.log
	Rootfs    Rootfs
	Image     ImageConfig
	PodIP     string
	HostIP    string
}

// CreatedContainer is a container held before its workload runs: place PID
// in the container's scope, then StartContainer.
type CreatedContainer struct {
	ID      string
	PID     int // in the daemon's PID namespace
	LogPath string
}

// ContainerState is the CRI state of a container.
type ContainerState string

const (
	ContainerCreated ContainerState = "Created"
	ContainerRunning ContainerState = "Running"
	ContainerExited  ContainerState = "Exited"
	ContainerUnknown ContainerState = "Unknown" // the supervisor died before recording an exit
)

// ContainerStatus is read back from the records the supervisor persisted.
type ContainerStatus struct {
	ID         string
	PodUID     types.UID
	Name       string
	Attempt    int
	State      ContainerState
	PID        int // supervisor's PID namespace
	CreatedAt  time.Time
	StartedAt  time.Time
	FinishedAt time.Time
	ExitCode   int
	Signal     int
	Reason     string // Completed, Error, StartError (OOMKilled is the daemon's call)
	Message    string
	LogPath    string
	LogDropped uint64
}

// containerMeta is the daemon's record of a container, written before create.
type containerMeta struct {
	ID      string    `json:"id"`
	PodUID  types.UID `json:"podUID"`
	Name    string    `json:"name"`
	Attempt int       `json:"attempt"`
	LogPath string    `json:"logPath"`
	// FallbackToLogs is terminationMessagePolicy FallbackToLogsOnError.
	FallbackToLogs bool `json:"fallbackToLogs,omitempty"`
}

const containerMetaFile = "daemon.json"

// LogPath is <log-dir>/<ns>_<pod>_<uid>/<container>/<attempt>.log.
func (r *Runtime) LogPath(pod *v1.Pod, container string, attempt int) string {
	return filepath.Join(r.PodLogDir(pod), container, strconv.Itoa(attempt)+".log")
}

// CreateContainer builds the container's root and process inside a clone
// of the supervisor and returns it held: nothing of the workload runs until
// StartContainer.
func (r *Runtime) CreateContainer(ctx context.Context, cfg ContainerConfig) (CreatedContainer, error) {
	if cfg.Pod == nil || cfg.Container == nil {
		return CreatedContainer{}, errors.New("create container: pod and container required")
	}
	sbDir := r.sandboxDir(cfg.Pod.UID)
	var meta sandboxMeta
	if err := shim.ReadJSON(filepath.Join(sbDir, sandboxMetaFile), &meta); err != nil {
		return CreatedContainer{}, fmt.Errorf("create container %s: no sandbox: %w", cfg.Container.Name, err)
	}
	id := cfg.ID
	if id == "" {
		id = NewContainerID()
	} else if !validID(id) {
		return CreatedContainer{}, fmt.Errorf("create container %s: bad id %q", cfg.Container.Name, id)
	}
	dir := r.containerDir(cfg.Pod.UID, id)
	if _, err := os.Stat(filepath.Join(dir, containerMetaFile)); err == nil {
		return CreatedContainer{}, fmt.Errorf("create container %s: id %s is taken", cfg.Container.Name, id)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return CreatedContainer{}, err
	}
	// On failure remove only what we wrote: the caller's root filesystem
	// may be mounted in this directory.
	cleanup := func() {
		for _, f := range []string{containerMetaFile, shim.ContainerSpecFile, "termination-log"} {
			os.Remove(filepath.Join(dir, f))
		}
		os.Remove(dir) // only if empty
	}
	spec, err := r.buildSpec(&cfg, &meta, id, dir)
	if err != nil {
		cleanup()
		return CreatedContainer{}, &ConfigError{Err: err}
	}
	cm := containerMeta{ID: id, PodUID: cfg.Pod.UID, Name: cfg.Container.Name, Attempt: cfg.Attempt, LogPath: spec.LogPath,
		FallbackToLogs: cfg.Container.TerminationMessagePolicy == v1.TerminationMessageFallbackToLogsOnError}
	if err := shim.WriteJSONAtomic(filepath.Join(dir, containerMetaFile), cm); err != nil {
		return CreatedContainer{}, err
	}
	if err := shim.WriteJSONAtomic(filepath.Join(dir, shim.ContainerSpecFile), spec); err != nil {
		return CreatedContainer{}, err
	}
	resp, err := call(ctx, sbDir, shim.Request{Op: "create", Spec: spec, Dir: dir})
	if err != nil {
		cleanup()
		return CreatedContainer{}, err
	}
	pid := resp.PID
	if meta.PIDInit {
		// The supervisor sees PIDs of the pod's namespace; placement needs ours.
		if pid, err = outerPID(meta.PID, resp.PID); err != nil {
			return CreatedContainer{}, fmt.Errorf("container %s: %w", cfg.Container.Name, err)
		}
	}
	return CreatedContainer{ID: id, PID: pid, LogPath: spec.LogPath}, nil
}

// outerPID maps a PID of the supervisor's PID namespace to the daemon's by
// the NSpid line of the supervisor's children.
func outerPID(supervisor, inner int) (int, error) {
	// Each thread lists the children it forked: look at all of them.
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", supervisor))
	var kids []string
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", supervisor, t.Name()))
		if err == nil {
			kids = append(kids, strings.Fields(string(b))...)
		}
	}
	for _, f := range kids {
		st, err := os.ReadFile("/proc/" + f + "/status")
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(st), "\n") {
			if rest, ok := strings.CutPrefix(line, "NSpid:"); ok {
				ns := strings.Fields(rest)
				if len(ns) > 1 && ns[len(ns)-1] == strconv.Itoa(inner) {
					return strconv.Atoi(f)
				}
			}
		}
	}
	return 0, fmt.Errorf("PID %d of the pod's namespace not found among the supervisor's children", inner)
}

// StartContainer releases a held container; it returns after the exec (or
// with the reason it failed: the container is then Exited with StartError).
func (r *Runtime) StartContainer(ctx context.Context, uid types.UID, id string) error {
	_, err := call(ctx, r.sandboxDir(uid), shim.Request{Op: "start", ID: id})
	return err
}

// StopContainer sends SIGTERM, waits up to grace, then SIGKILL; it returns
// once the exit is recorded.
func (r *Runtime) StopContainer(ctx context.Context, uid types.UID, id string, grace time.Duration) error {
	return r.StopContainerSignal(ctx, uid, id, syscall.SIGTERM, grace)
}

// StopContainerSignal is StopContainer with the image's StopSignal.
func (r *Runtime) StopContainerSignal(ctx context.Context, uid types.UID, id string, sig syscall.Signal, grace time.Duration) error {
	sb := r.sandboxDir(uid)
	if st, err := r.ContainerStatus(ctx, uid, id); err == nil && (st.State == ContainerExited || st.State == ContainerUnknown) {
		return nil
	}
	if _, err := call(ctx, sb, shim.Request{Op: "signal", ID: id, Signal: int(sig)}); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, grace)
	_, err := call(wctx, sb, shim.Request{Op: "wait", ID: id})
	cancel()
	if err == nil {
		return nil
	}
	if _, err := call(ctx, sb, shim.Request{Op: "signal", ID: id, Signal: int(syscall.SIGKILL)}); err != nil {
		return err
	}
	_, err = call(ctx, sb, shim.Request{Op: "wait", ID: id})
	return err
}

// WaitContainer blocks until the container has exited and returns its status.
func (r *Runtime) WaitContainer(ctx context.Context, uid types.UID, id string) (ContainerStatus, error) {
	if _, err := call(ctx, r.sandboxDir(uid), shim.Request{Op: "wait", ID: id}); err != nil {
		if st, serr := r.ContainerStatus(ctx, uid, id); serr == nil && st.State == ContainerExited {
			return st, nil
		}
		return ContainerStatus{}, err
	}
	return r.ContainerStatus(ctx, uid, id)
}

// RemoveContainer forgets an exited container and removes its directory
// (its log file stays).
func (r *Runtime) RemoveContainer(ctx context.Context, uid types.UID, id string) error {
	st, err := r.ContainerStatus(ctx, uid, id)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if st.State == ContainerRunning || st.State == ContainerCreated {
		if st.State == ContainerCreated {
			if err := r.StopContainer(ctx, uid, id, 0); err != nil {
				return err
			}
		} else {
			return fmt.Errorf("remove container %s (%s): still running", st.Name, id)
		}
	}
	call(ctx, r.sandboxDir(uid), shim.Request{Op: "forget", ID: id})
	dir := r.containerDir(uid, id)
	// Never delete through a mount (the root filesystem may still be mounted).
	if err := unmountUnder(dir); err != nil {
		return err
	}
	return os.RemoveAll(dir)
}

const oomMarkerFile = "oom-killed"

// RecordOOMKill persists the daemon's finding (from the cgroup's OOM
// counter) that the memory controller killed this container, so its status
// says OOMKilled, across daemon restarts too. It may come before or after
// the supervisor records the exit.
func (r *Runtime) RecordOOMKill(uid types.UID, id string) error {
	dir := r.containerDir(uid, id)
	if _, err := os.Stat(filepath.Join(dir, containerMetaFile)); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, oomMarkerFile), nil, 0o640)
}

// PodLogDir is <log-dir>/<ns>_<pod>_<uid>, removed by the reconciler when
// its policy says so (RemoveSandbox keeps logs).
func (r *Runtime) PodLogDir(pod *v1.Pod) string {
	return filepath.Join(r.opt.LogDir, fmt.Sprintf("%s_%s_%s", pod.Namespace, pod.Name, pod.UID))
}

// ContainerDir is <root-dir>/pods/<uid>/containers/<id>: the place for a
// container's writable layer and root filesystem mount point.
func (r *Runtime) ContainerDir(uid types.UID, id string) string { return r.containerDir(uid, id) }

// NewContainerID returns a fresh random container ID (32 hex digits).
func NewContainerID() string { return newID() }

func validID(id string) bool {
	if len(id) < 8 || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c == '-') {
			return false
		}
	}
	return true
}

// ContainerStatus reads a container's records (no call to the supervisor
// unless it must know whether a recorded PID still runs).
func (r *Runtime) ContainerStatus(ctx context.Context, uid types.UID, id string) (ContainerStatus, error) {
	return r.containerStatus(ctx, uid, id, r.supervisorList(ctx, uid))
}

// supervisorList returns a function asking a pod's supervisor, at most
// once, which containers it runs: a pod's containers listed together cost
// one round trip, not one each.
func (r *Runtime) supervisorList(ctx context.Context, uid types.UID) func() ([]string, error) {
	var ids []string
	var err error
	asked := false
	return func() ([]string, error) {
		if !asked {
			asked = true
			var resp *shim.Response
			if resp, err = call(ctx, r.sandboxDir(uid), shim.Request{Op: "list"}); err == nil {
				ids = resp.Containers
			}
		}
		return ids, err
	}
}

func (r *Runtime) containerStatus(ctx context.Context, uid types.UID, id string, supervised func() ([]string, error)) (ContainerStatus, error) {
	dir := r.containerDir(uid, id)
	cm, err := records.container.Read(filepath.Join(dir, containerMetaFile))
	if err != nil {
		return ContainerStatus{}, err
	}
	st := ContainerStatus{ID: id, PodUID: uid, Name: cm.Name, Attempt: cm.Attempt, LogPath: cm.LogPath, State: ContainerUnknown}
	cs, err := records.containerState.Read(filepath.Join(dir, shim.ContainerStateFile))
	if err != nil {
		return st, nil // create never completed
	}
	st.PID, st.CreatedAt, st.StartedAt = cs.PID, cs.CreatedAt, cs.StartedAt
	if ex, err := records.exit.Read(filepath.Join(dir, shim.ExitFile)); err == nil {
		st.State = ContainerExited
		st.FinishedAt, st.ExitCode, st.Signal, st.Reason, st.Message, st.LogDropped = ex.FinishedAt, ex.ExitCode, ex.Signal, ex.Reason, ex.Message, ex.LogDropped
		if !ex.StartedAt.IsZero() {
			st.StartedAt = ex.StartedAt
		}
		if msg := terminationMessage(dir, &cm, st.ExitCode); msg != "" {
			st.Message = msg
		}
		if _, err := os.Stat(filepath.Join(dir, oomMarkerFile)); err == nil && st.Reason != "StartError" {
			st.Reason = "OOMKilled"
		}
		return st, nil
	}
	// No exit record: running if the supervisor still knows it.
	running, err := supervised()
	if err != nil {
		return st, nil // supervisor gone: Unknown
	}
	for _, c := range running {
		if c == id {
			if cs.StartedAt.IsZero() {
				st.State = ContainerCreated
			} else {
				st.State = ContainerRunning
			}
		}
	}
	return st, nil
}

// ListContainers returns the status of every container of a pod.
func (r *Runtime) ListContainers(ctx context.Context, uid types.UID) ([]ContainerStatus, error) {
	ents, err := os.ReadDir(r.pod(uid).Containers())
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var out []ContainerStatus
	supervised := r.supervisorList(ctx, uid)
	for _, e := range ents {
		if st, err := r.containerStatus(ctx, uid, e.Name(), supervised); err == nil {
			out = append(out, st)
		}
	}
	return out, nil
}

// Limits of a termination message, as kubelet's.
const (
	maxTerminationMessage = 4096
	fallbackLogLines      = 80
	fallbackLogBytes      = 2048
)

// terminationMessage is what the container wrote to its
// terminationMessagePath, or with FallbackToLogsOnError and a failure, the
// tail of its log.
func terminationMessage(dir string, cm *containerMeta, exitCode int) string {
	if f, err := os.Open(filepath.Join(dir, "termination-log")); err == nil {
		b := make([]byte, maxTerminationMessage)
		n, _ := f.Read(b)
		f.Close()
		if n > 0 {
			return string(b[:n])
		}
	}
	if !cm.FallbackToLogs || exitCode == 0 {
		return ""
	}
	return logTail(cm.LogPath, fallbackLogLines, fallbackLogBytes)
}

// logTail returns the last lines of a CRI log's payload (partial records
// joined), at most maxBytes.
func logTail(path string, lines, maxBytes int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var out []string
	var cur strings.Builder
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.SplitN(l, " ", 4)
		if len(f) < 4 {
			continue
		}
		cur.WriteString(f[3])
		if f[2] == "F" {
			out = append(out, cur.String())
			cur.Reset()
		}
	}
	if len(out) > lines {
		out = out[len(out)-lines:]
	}
	s := strings.Join(out, "\n")
	if len(s) > maxBytes {
		s = s[len(s)-maxBytes:]
	}
	return s
}

// ConfigError is a container configuration CreateContainer refused before
// creating anything (runAsNonRoot with a root user, a bad subPath or
// volume mount, an environment reference that cannot be resolved, a
// seccomp profile): the kubelet's CreateContainerConfigError class, as
// opposed to a failure while creating.
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string { return e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }
