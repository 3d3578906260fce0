// Package shim holds the two helper programs of a pod that outlive the
// daemon: the pod supervisor (which is also the pod's pause process) and the
// container init that turns a held clone into the workload. It imports
// nothing from Kubernetes so that it can be built into a small binary of its
// own; the daemon side (package runtime) translates v1.Pod into the plain
// specs below. See runtime/doc.go for the process tree.
package shim

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Hidden subcommand names used when the minikubelet binary re-executes itself.
const (
	SupervisorCommand    = "__pod-supervisor"
	ContainerInitCommand = "__container-init"
)

// Main runs the helper named by args[1] (args is os.Args) and returns its
// exit status; ok is false when args name no helper.
func Main(args []string) (status int, ok bool) {
	if len(args) < 2 {
		return 0, false
	}
	switch args[1] {
	case SupervisorCommand:
		if len(args) != 3 {
			fmt.Fprintln(os.Stderr, "usage: "+SupervisorCommand+" SANDBOX-DIR")
			return 2, true
		}
		return SupervisorMain(args[2]), true
	case ContainerInitCommand:
		return ContainerInitMain(), true
	case ExecCommand:
		return ContainerExecMain(), true
	}
	return 0, false
}

// Files inside a pod's sandbox directory (<root-dir>/pods/<uid>/sandbox).
const (
	SandboxSpecFile  = "spec.json"
	SandboxStateFile = "state.json"
	SocketFile       = "sup.sock"
	SupervisorLog    = "supervisor.log"
)

// Files inside a container's directory (<root-dir>/pods/<uid>/containers/<id>).
const (
	ContainerSpecFile  = "spec.json"
	ContainerStateFile = "state.json"
	ExitFile           = "exit.json"
)

// SandboxSpec is what the supervisor needs to become the pod's pause.
// Namespaces are already decided by the clone flags it was started with.
type SandboxSpec struct {
	PodUID      string
	Hostname    string // set when the pod has its own UTS namespace
	OwnNetwork  bool   // bring lo up
	PIDInit     bool   // PID 1 of the pod's shared PID namespace
	OOMScoreAdj int    // -998 like kubelet's pause
	// Sysctls are namespaced kernel settings written in the pod's
	// namespaces before it is reported ready (key in dotted form).
	Sysctls map[string]string `json:",omitempty"`
}

// SandboxState is persisted by the supervisor once it is ready.
type SandboxState struct {
	PID       int       `json:"pid"` // as seen in the supervisor's own PID namespace (1 when PIDInit)
	StartedAt time.Time `json:"startedAt"`
}

// Mount is one mount inside the container's root, applied in order.
type Mount struct {
	Source      string  `json:"source"`
	Destination string  `json:"destination"` // absolute, inside the root
	Type        string  `json:"type"`        // "bind", "tmpfs", "proc", ...
	Flags       uintptr `json:"flags"`       // MS_* flags (MS_BIND, MS_REC, MS_RDONLY ...)
	Data        string  `json:"data,omitempty"`
	File        bool    `json:"file,omitempty"` // bind target is a file (create an empty file, not a dir)
	Propagation uintptr `json:"propagation,omitempty"`
	// SubPath, when set, makes Source a volume's root and the bind source
	// SubPath inside it, resolved and opened by the init where it mounts
	// (see openSubPath); File is then decided there.
	SubPath string   `json:"subPath,omitempty"`
	Extra   []string `json:"extra,omitempty"`
}

// ContainerSpec is everything the container init needs; the supervisor
// passes it through a pipe and keeps the log and stop settings for itself.
type ContainerSpec struct {
	ID   string `json:"id"`
	Name string `json:"name"`

	Rootfs         string `json:"rootfs"`
	RootfsReadOnly bool   `json:"rootfsReadOnly"`
	NewPIDNS       bool   `json:"newPIDNS"` // false when the pod shares its PID namespace or uses the host's
	CgroupNS       bool   `json:"cgroupNS"` // private cgroup namespace (entered after placement)

	Args []string `json:"args"` // Args[0] exactly as written; resolved via PATH only to find the file
	Env  []string `json:"env"`
	Cwd  string   `json:"cwd"`

	UID            uint32   `json:"uid"`
	GID            uint32   `json:"gid"`
	AdditionalGIDs []uint32 `json:"additionalGids,omitempty"`

	Capabilities    []string `json:"capabilities"` // bounding = permitted = effective; inheritable and ambient stay empty. Names like CAP_CHOWN
	NoNewPrivileges bool     `json:"noNewPrivileges"`
	Privileged      bool     `json:"privileged"`
	Seccomp         string   `json:"seccomp,omitempty"` // profile name, for the record: unconfined, runtime/default, localhost/<name>
	// SeccompFilter is the compiled BPF program (nil: unconfined); the init
	// loads it on the thread that execs.
	SeccompFilter []unix.SockFilter `json:"seccompFilter,omitempty"`
	OOMScoreAdj   *int              `json:"oomScoreAdj,omitempty"`

	// AppArmorProfile is entered on exec ("" = unconfined).
	AppArmorProfile string `json:"appArmorProfile,omitempty"`

	Mounts        []Mount  `json:"mounts"`
	MaskedPaths   []string `json:"maskedPaths,omitempty"`
	ReadonlyPaths []string `json:"readonlyPaths,omitempty"`

	Stdin     bool `json:"stdin,omitempty"`     // keep stdin open (a pipe the supervisor holds)
	StdinOnce bool `json:"stdinOnce,omitempty"` // close it after the first attach ends
	TTY       bool `json:"tty,omitempty"`       // a terminal for stdin/stdout/stderr

	LogPath     string `json:"logPath"`
	LogMaxSize  int64  `json:"logMaxSize"`
	LogMaxFiles int    `json:"logMaxFiles"`

	// forkExec, set by the exec helper, forks the command from the
	// prepared thread instead of exec'ing over the caller.
	forkExec func(path string) error
	// appArmorAttr, set by the exec helper, is its thread's AppArmor attr
	// file, opened before it joined the container's mount namespace (where
	// /proc has no entry for the helper's thread); see apparmor.go.
	appArmorAttr *os.File
}

// ContainerState is written by the supervisor at create and at start.
type ContainerState struct {
	ID        string    `json:"id"`
	PID       int       `json:"pid"` // in the supervisor's PID namespace
	CreatedAt time.Time `json:"createdAt"`
	StartedAt time.Time `json:"startedAt,omitzero"`
}

// ExitRecord is written atomically by the supervisor when a container's
// process has been reaped. The daemon may decide OOMKilled from the cgroup's
// OOM counters; the supervisor cannot see them.
type ExitRecord struct {
	ID         string    `json:"id"`
	ExitCode   int       `json:"exitCode"`
	Signal     int       `json:"signal,omitempty"` // terminating signal; ExitCode is then 128+Signal
	Reason     string    `json:"reason"`           // Completed, Error, StartError
	Message    string    `json:"message,omitempty"`
	StartedAt  time.Time `json:"startedAt,omitzero"`
	FinishedAt time.Time `json:"finishedAt"`
	LogDropped uint64    `json:"logDropped,omitempty"` // log lines dropped because the disk was slow or full
}

// Request is one call over the supervisor socket (one request per connection).
type Request struct {
	Op     string         `json:"op"` // ping, create, start, signal, wait, forget, list, attach, resize
	ID     string         `json:"id,omitempty"`
	Spec   *ContainerSpec `json:"spec,omitempty"`
	Dir    string         `json:"dir,omitempty"` // container directory for create
	Signal int            `json:"signal,omitempty"`
	Rows   uint16         `json:"rows,omitempty"` // resize
	Cols   uint16         `json:"cols,omitempty"`
}

// Response answers a Request.
type Response struct {
	Error      string       `json:"error,omitempty"`
	PID        int          `json:"pid,omitempty"`
	Exit       *ExitRecord  `json:"exit,omitempty"`
	Containers []string     `json:"containers,omitempty"`
	Sandbox    SandboxState `json:"sandbox,omitzero"`
}

// WriteJSONAtomic writes v to path through a temp file and rename, so a
// reader sees the old or the new content, never half of it, and fsyncs the
// file and then its folder, so after a crash the rename has happened or not.
func WriteJSONAtomic(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("sync %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("rename into %s: %w", path, err)
	}
	// The rename is only durable once the folder's entry is: without this a
	// power loss can bring back the old record (or none) although the new
	// one's data reached the disk.
	if err := syncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("sync folder of %s: %w", path, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// ReadJSON reads a JSON file into v.
func ReadJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return decodeJSON(path, b, v)
}

// decodeJSON decodes b, the content of path, into v; damage is reported
// once and returned as ErrDamaged.
func decodeJSON(path string, b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		reportDamaged(path, len(b), err)
		return fmt.Errorf("parse %s: %w: %w", path, ErrDamaged, err)
	}
	return nil
}

// ErrDamaged marks a state file that exists but does not parse (truncated,
// garbage: a disk error, a crash on a filesystem that broke the rename's
// promise). Its readers treat what it describes as lost, so the reconciler
// recreates that object and nothing else.
var ErrDamaged = errors.New("state file is damaged")

// damagedSeen: each damaged file is reported once per content size, not on
// every reconcile round that reads it again.
var damagedSeen sync.Map

func reportDamaged(path string, size int, err error) {
	if _, dup := damagedSeen.LoadOrStore(fmt.Sprintf("%s\x00%d", path, size), true); dup {
		return
	}
	slog.Default().Warn("state file is damaged; what it describes is treated as lost and recreated",
		"file", path, "bytes", size, "err", err)
}
