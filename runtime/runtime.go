package runtime

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/minikubelet/minikubelet/internal/layout"
	"github.com/minikubelet/minikubelet/internal/procfs"
	"github.com/minikubelet/minikubelet/runtime/crilog"
	"github.com/minikubelet/minikubelet/runtime/shim"
)

// PlaceFunc moves live, held processes into their cgroup (the reconciler
// wires it to systemd.Driver.StartScope). It must return only once they are
// inside with their limits.
type PlaceFunc func(ctx context.Context, pids []int) error

// Options configure a Runtime.
type Options struct {
	RootDir string // <root-dir>; pods live in <root-dir>/pods/<uid>
	LogDir  string // <log-dir>; container logs in <log-dir>/<ns>_<pod>_<uid>/<container>/<n>.log
	// Exe is the binary re-executed as `<Exe> __pod-supervisor <dir>`
	// (default: this executable). The supervisor re-executes itself for
	// each container init.
	Exe            string
	NodeName       string
	HostResolvConf string // --resolv-conf; default /etc/resolv.conf (systemd-resolved's stub: its upstream file, see dns.go)
	// NoHostResolvConf is the kubelet's --resolv-conf="": no node file,
	// pods that would use it get 127.0.0.1 and search "." (lookups disabled).
	NoHostResolvConf bool
	ClusterDNS       []string // --cluster-dns: nameservers for dnsPolicy ClusterFirst (empty: fall back to Default)
	ClusterDomain    string   // --cluster-domain; default cluster.local
	// Log gets the runtime's own messages (default: slog.Default()).
	Log *slog.Logger
	// Event records a Warning of a pod (the DNS warnings of the kubelet:
	// MissingClusterDNS, DNSConfigForming). Optional.
	Event       func(pod *v1.Pod, typ, reason, message string)
	LogMaxSize  int64 // default 10 MiB
	LogMaxFiles int   // default 5
	// AllowedUnsafeSysctls are sysctl names or prefixes ending in "*"
	// allowed beyond the safe set (kubelet's --allowed-unsafe-sysctls).
	AllowedUnsafeSysctls []string
}

// ShimBinary is the name of runtime/shimbin when installed beside minikubelet.
const ShimBinary = "minikubelet-shim"

func fileIsExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

// Runtime is the daemon side of the pod runtime: CRI-shaped calls that talk
// to each pod's supervisor and read the records it persists.
type Runtime struct {
	opt      Options
	exe      sealedExe // what supervisors and exec helpers run (helperexe.go)
	apparmor appArmorState
}

func (r *Runtime) log() *slog.Logger {
	if r.opt.Log != nil {
		return r.opt.Log
	}
	return slog.Default()
}

// New returns a Runtime; it creates <root-dir>/pods.
func New(opt Options) (*Runtime, error) {
	if opt.RootDir == "" || opt.LogDir == "" {
		return nil, errors.New("runtime: RootDir and LogDir are required")
	}
	if opt.Exe == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		opt.Exe = exe
		// The small helper binary, when installed beside us, costs a pod
		// about half the memory of this binary re-executed (see doc.go).
		if shim := filepath.Join(filepath.Dir(exe), ShimBinary); fileIsExecutable(shim) {
			opt.Exe = shim
		}
	}
	if opt.HostResolvConf == "" {
		opt.HostResolvConf = "/etc/resolv.conf"
	}
	if opt.ClusterDomain == "" {
		opt.ClusterDomain = "cluster.local"
	}
	if opt.LogMaxSize == 0 {
		opt.LogMaxSize = crilog.DefaultMaxSize
	}
	if opt.LogMaxFiles == 0 {
		opt.LogMaxFiles = crilog.DefaultMaxFiles
	}
	if err := os.MkdirAll(layout.Root(opt.RootDir).Pods(), 0o750); err != nil {
		return nil, err
	}
	r := &Runtime{opt: opt}
	r.apparmor.hostEnabled(r.log()) // says once, at start, when AppArmor is off
	return r, nil
}

// pod is the pod's folder and what is in it (internal/layout names it all;
// layout.PodDirName keeps every UID inside <root-dir>/pods).
func (r *Runtime) pod(uid types.UID) layout.Pod { return layout.Root(r.opt.RootDir).Pod(uid) }

// PodDir is <root-dir>/pods/<uid>.
func (r *Runtime) PodDir(uid types.UID) string { return r.pod(uid).Dir() }

func (r *Runtime) sandboxDir(uid types.UID) string { return r.pod(uid).Sandbox() }
func (r *Runtime) containerDir(uid types.UID, id string) string {
	return r.pod(uid).Container(id)
}

// SandboxConfig asks for one pod sandbox.
type SandboxConfig struct {
	Pod   *v1.Pod   // the static pod (metadata.name with the -<node> suffix, UID set)
	Place PlaceFunc // optional: puts the pause (supervisor) into the sandbox scope
}

// SandboxStatus is what is known of a pod's sandbox.
type SandboxStatus struct {
	PodUID    types.UID
	Namespace string
	Name      string
	PID       int // the supervisor (pause) in the daemon's PID namespace; 0 when gone
	StartedAt time.Time
	Dir       string // <root-dir>/pods/<uid>
	NetNSPath string // <pod>/sandbox/netns, a bind of the pod's netns for CNI ("" with hostNetwork); lives until RemoveSandbox
}

// sandboxMeta is the daemon's own record of a sandbox (the supervisor's
// state.json holds only what it can see from inside its namespaces).
type sandboxMeta struct {
	PodUID      types.UID `json:"podUID"`
	Namespace   string    `json:"namespace"`
	Name        string    `json:"name"`
	PID         int       `json:"pid"`
	StartTicks  uint64    `json:"startTicks"` // /proc/<pid>/stat field 22: detects PID reuse
	HostNetwork bool      `json:"hostNetwork"`
	PIDInit     bool      `json:"pidInit"`
	Hostname    string    `json:"hostname"`
	ShmHost     bool      `json:"shmHost"`
}

const (
	sandboxMetaFile = "daemon.json"
)

// records caches the state files every observation round reads again
// (shim.RecordCache: a record is decoded once, then served while its
// file's identity stays the same). One set per process, not per Runtime:
// entries are keyed by path, so runtimes over different root dirs never
// share one, and a Runtime built as a literal (tests) needs no setup.
var records = struct {
	sandbox        *shim.RecordCache[sandboxMeta]
	sandboxState   *shim.RecordCache[shim.SandboxState]
	container      *shim.RecordCache[containerMeta]
	containerState *shim.RecordCache[shim.ContainerState]
	exit           *shim.RecordCache[shim.ExitRecord]
}{
	shim.NewRecordCache[sandboxMeta](nil),
	shim.NewRecordCache[shim.SandboxState](nil),
	shim.NewRecordCache[containerMeta](nil),
	shim.NewRecordCache[shim.ContainerState](nil),
	shim.NewRecordCache[shim.ExitRecord](nil),
}

// RunSandbox creates the pod's directory, its /etc files and /dev/shm, and
// starts the pod supervisor in new net/ipc/uts (and pid) namespaces. The
// supervisor is detached (own session, stdio to a log file): the daemon's
// death does not touch it.
func (r *Runtime) RunSandbox(ctx context.Context, cfg SandboxConfig) (SandboxStatus, error) {
	pod := cfg.Pod
	if pod == nil || pod.UID == "" {
		return SandboxStatus{}, errors.New("run sandbox: pod with metadata.uid required")
	}
	if st, err := r.SandboxStatus(ctx, pod.UID); err == nil && st.PID != 0 {
		return st, nil // idempotent: already running
	}
	sbDir := r.sandboxDir(pod.UID)
	// A sandbox that fails half-way leaves no mount or folder of its own
	// behind, and nothing else: when it replaces a dead sandbox, the pod
	// dir holds earlier state (exit records, the reconciler's records,
	// status.json) that restart counts are made of.
	undo := r.noteSandboxState(pod)
	started := false
	defer func() {
		if !started {
			undo.rollback()
		}
	}()
	if err := os.MkdirAll(sbDir, 0o750); err != nil {
		return SandboxStatus{}, err
	}
	os.MkdirAll(r.pod(pod.UID).Containers(), 0o750)
	hostname, err := podHostname(pod)
	if err != nil {
		return SandboxStatus{}, err
	}
	if err := r.writePodFiles(pod, hostname); err != nil {
		return SandboxStatus{}, err
	}
	if !pod.Spec.HostIPC {
		if err := mountPodShm(r.pod(pod.UID).Shm()); err != nil {
			return SandboxStatus{}, err
		}
	}
	if err := r.setupVolumes(pod); err != nil {
		return SandboxStatus{}, err
	}
	meta := sandboxMeta{PodUID: pod.UID, Namespace: pod.Namespace, Name: pod.Name,
		HostNetwork: pod.Spec.HostNetwork, PIDInit: shareProcessNamespace(pod) && !pod.Spec.HostPID,
		ShmHost: pod.Spec.HostIPC}
	spec := shim.SandboxSpec{PodUID: string(pod.UID), OwnNetwork: !pod.Spec.HostNetwork, PIDInit: meta.PIDInit, OOMScoreAdj: -998}
	var flags uintptr
	if !pod.Spec.HostNetwork {
		// hostNetwork implies the host's UTS namespace too (kubelet does the same).
		flags |= unix.CLONE_NEWNET | unix.CLONE_NEWUTS
		uts, err := utsHostname(pod, hostname, r.opt.ClusterDomain)
		if err != nil {
			return SandboxStatus{}, err
		}
		spec.Hostname = uts
		meta.Hostname = uts
	}
	if !pod.Spec.HostIPC {
		flags |= unix.CLONE_NEWIPC
	}
	if meta.PIDInit {
		flags |= unix.CLONE_NEWPID
	}
	if spec.Sysctls, err = r.podSysctls(pod); err != nil {
		return SandboxStatus{}, err
	}
	if err := shim.WriteJSONAtomic(filepath.Join(sbDir, shim.SandboxSpecFile), spec); err != nil {
		return SandboxStatus{}, err
	}
	logf, err := os.OpenFile(filepath.Join(sbDir, shim.SupervisorLog), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return SandboxStatus{}, err
	}
	defer logf.Close()
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return SandboxStatus{}, err
	}
	defer readyR.Close()
	cmd, err := r.command(context.Background(), shim.SupervisorCommand, sbDir)
	if err != nil {
		readyW.Close()
		return SandboxStatus{}, fmt.Errorf("start pod supervisor for %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	cmd.Dir = "/"
	cmd.Env = []string{"GOMAXPROCS=1", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{readyW} // fd 3 (shim.ReadyFD)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Cloneflags: flags}
	if err := cmd.Start(); err != nil {
		readyW.Close()
		return SandboxStatus{}, fmt.Errorf("start pod supervisor for %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	readyW.Close()
	// Reap it if it exits while we live; after a daemon restart init does.
	reapWhenExits(cmd)
	// Bounded wait: a supervisor that neither reports nor dies is killed.
	dl := time.Now().Add(30 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	readyR.SetReadDeadline(dl)
	buf := make([]byte, 4096)
	n, _ := readyR.Read(buf)
	msg := strings.TrimSpace(string(buf[:n]))
	if msg != "ok" {
		cmd.Process.Kill()
		if msg == "" {
			b, _ := os.ReadFile(filepath.Join(sbDir, shim.SupervisorLog))
			msg = "supervisor exited: " + lastLine(string(b))
		}
		return SandboxStatus{}, fmt.Errorf("pod supervisor for %s/%s: %s", pod.Namespace, pod.Name, strings.TrimPrefix(msg, "error: "))
	}
	meta.PID = cmd.Process.Pid
	meta.StartTicks = procStartTicks(meta.PID)
	if !pod.Spec.HostNetwork {
		// A bind of the pod's netns outlives the pause, so that CNI DEL can
		// still enter it after a crash; RemoveSandbox unmounts it.
		nsFile := r.pod(pod.UID).NetnsPin()
		// A previous sandbox of this pod left its pin (StopSandbox keeps
		// it for CNI DEL); its pause is dead, so it is replaced. Writing
		// over the nsfs bind would fail with EPERM.
		if mounted(nsFile) {
			if err := unix.Unmount(nsFile, unix.MNT_DETACH); err != nil {
				cmd.Process.Kill()
				return SandboxStatus{}, fmt.Errorf("unpin the previous network namespace %s: %w", nsFile, err)
			}
		}
		if err := os.WriteFile(nsFile, nil, 0o444); err != nil {
			cmd.Process.Kill()
			return SandboxStatus{}, err
		}
		if err := unix.Mount(fmt.Sprintf("/proc/%d/ns/net", meta.PID), nsFile, "", unix.MS_BIND, ""); err != nil {
			cmd.Process.Kill()
			return SandboxStatus{}, fmt.Errorf("pin network namespace of %s/%s: %w", pod.Namespace, pod.Name, err)
		}
		if undo.mountsBefore[nsFile] {
			undo.bound = append(undo.bound, nsFile) // same path as the stale pin: the diff cannot see it
		}
	}
	if err := shim.WriteJSONAtomic(filepath.Join(sbDir, sandboxMetaFile), meta); err != nil {
		cmd.Process.Kill()
		return SandboxStatus{}, err
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/oom_score_adj", meta.PID)); err == nil && strings.TrimSpace(string(b)) != "-998" {
		oomWarnOnce.Do(func() {
			slog.Warn("the kernel refused oom_score_adj -998 for the pause (no CAP_SYS_RESOURCE?); pods keep the nearest allowed value", "kept", strings.TrimSpace(string(b)))
		})
	}
	if cfg.Place != nil {
		if err := cfg.Place(ctx, []int{meta.PID}); err != nil {
			// A pause outside its scope is no pod: take it down again.
			cmd.Process.Kill()
			for procAlive(meta.PID) {
				time.Sleep(10 * time.Millisecond)
			}
			return SandboxStatus{}, fmt.Errorf("place pause of %s/%s: %w", pod.Namespace, pod.Name, err)
		}
	}
	started = true
	return r.SandboxStatus(ctx, pod.UID)
}

var oomWarnOnce sync.Once

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// SandboxStatus reads the sandbox records and checks the supervisor is
// alive: its PID runs and started when the record says (/proc, not a call
// to it). The observation asks for this every round; a call per pod just to
// hear "ok" was a third of the runtime's part of an idle round (issue 17),
// and a supervisor that runs but does not answer shows in ListContainers
// anyway (its containers are Unknown).
func (r *Runtime) SandboxStatus(ctx context.Context, uid types.UID) (SandboxStatus, error) {
	sbDir := r.sandboxDir(uid)
	meta, err := records.sandbox.Read(filepath.Join(sbDir, sandboxMetaFile))
	if err != nil {
		return SandboxStatus{}, err
	}
	st := SandboxStatus{PodUID: meta.PodUID, Namespace: meta.Namespace, Name: meta.Name, Dir: r.PodDir(uid)}
	if nsFile := r.pod(uid).NetnsPin(); !meta.HostNetwork && mounted(nsFile) {
		st.NetNSPath = nsFile
	}
	if meta.PID != 0 && procStartTicks(meta.PID) == meta.StartTicks {
		st.PID = meta.PID
		if s, err := records.sandboxState.Read(filepath.Join(sbDir, shim.SandboxStateFile)); err == nil {
			st.StartedAt = s.StartedAt
		}
	}
	return st, nil
}

// ListSandboxes returns every pod directory; one without a readable
// sandbox record (a create cut short by a crash) is listed with PID 0 so
// that the reconciler can remove it.
func (r *Runtime) ListSandboxes(ctx context.Context) ([]SandboxStatus, error) {
	ents, err := os.ReadDir(layout.Root(r.opt.RootDir).Pods())
	if err != nil {
		return nil, err
	}
	var out []SandboxStatus
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		uid := types.UID(e.Name())
		st, err := r.SandboxStatus(ctx, uid)
		if err != nil {
			st = SandboxStatus{PodUID: uid, Dir: r.PodDir(uid)}
		}
		out = append(out, st)
	}
	return out, nil
}

// StopSandbox stops the supervisor, which SIGKILLs what still runs in the
// pod and records the exits. Stop containers with their grace period first.
func (r *Runtime) StopSandbox(ctx context.Context, uid types.UID) error {
	st, err := r.SandboxStatus(ctx, uid)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	if st.PID == 0 {
		return nil
	}
	syscall.Kill(st.PID, syscall.SIGTERM)
	deadline := time.Now().Add(15 * time.Second)
	for procAlive(st.PID) {
		if time.Now().After(deadline) {
			syscall.Kill(st.PID, syscall.SIGKILL)
			deadline = time.Now().Add(5 * time.Second)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// RemoveSandbox unmounts the pod's /dev/shm and memory volumes and removes
// its directory. Logs stay (the reconciler removes them by policy).
func (r *Runtime) RemoveSandbox(ctx context.Context, uid types.UID) error {
	if err := r.StopSandbox(ctx, uid); err != nil {
		return err
	}
	dir := r.PodDir(uid)
	if err := unmountUnder(dir); err != nil {
		return err
	}
	return os.RemoveAll(dir)
}

// procAlive: the PID exists and is not a zombie.
func procAlive(pid int) bool { return procfs.Alive(pid) }

// procStartTicks is the process's start time (0: gone or a zombie).
func procStartTicks(pid int) uint64 {
	st, err := procfs.ReadStat(pid)
	if err != nil || st.State == 'Z' {
		return 0
	}
	return st.StartTicks
}

func newID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func shareProcessNamespace(pod *v1.Pod) bool {
	return pod.Spec.ShareProcessNamespace != nil && *pod.Spec.ShareProcessNamespace
}
