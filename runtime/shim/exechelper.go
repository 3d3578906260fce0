package shim

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/minikubelet/minikubelet/internal/procfs"
)

// Exec into a running container is one short-lived helper
// (__container-exec), started by the daemon in the node's namespaces from
// its sealed in-memory copy of the binary. It joins the container's cgroups,
// then on its one locked thread — after unshare(CLONE_FS), so that no other
// thread's root moves — setns()es into the container's cgroup, ipc, uts,
// net, pid and mount namespaces, applies the container's process security
// there exactly as the container init does (user, groups, capabilities,
// no_new_privs, seccomp), and forks the command from that thread.
//
// Why from that thread. setns(CLONE_NEWPID) only places children, so what
// a container can see in its PID namespace is the forked command alone: the
// helper itself stays in the node's PID namespace, where no container can
// name it, and the command is born from a thread that is already in the
// container's mount namespace, under the container's root, with the
// container's credentials. No process visible to the container ever has a
// thread rooted on the node (/proc/<pid>/task/<tid>/root) or runs the node's
// binary (/proc/<pid>/exe: between fork and exec the child shares the
// helper's image, the sealed copy). The command's path is found inside the
// container (its PATH) and exec'd there.
//
// The helper waits and exits with the command's status. SIGTERM, SIGINT or
// SIGHUP to the helper (the daemon cancelling) kills the command.
const (
	ExecCommand = "__container-exec"
	execSpecFD  = 3
	// ExecPTYFD carries, with TTY, a unix socket on which the helper sends
	// the master of the terminal it opened on the container's devpts.
	ExecPTYFD = 4
)

// ExecSpec is the helper's input (fd 3): the container's process settings
// and the command to run.
type ExecSpec struct {
	PID  int            `json:"pid"` // the container's process, in the caller's PID namespace
	Spec *ContainerSpec `json:"spec"`
	Args []string       `json:"args"`
	Env  []string       `json:"env,omitempty"` // added to the container's
	// TTY: open a terminal on the container's devpts, send its master on
	// ExecPTYFD and make it the command's stdio and controlling terminal.
	TTY  bool   `json:"tty,omitempty"`
	Rows uint16 `json:"rows,omitempty"` // the terminal's initial size
	Cols uint16 `json:"cols,omitempty"`
}

// ExecStatusNotFound is the exit status when the command cannot be run (as
// containerd reports for kubectl exec).
const ExecStatusNotFound = 126

// ContainerExecMain is the exec helper.
func ContainerExecMain() int {
	// The main goroutine keeps the main thread: it is the one that enters
	// the container, and it is never given back.
	runtime.LockOSThread()
	unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "exec: %v\n", err)
		return ExecStatusNotFound
	}
	// Before anything is forked: a cancel must reach the command.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, unix.SIGTERM, unix.SIGINT, unix.SIGHUP)
	raw, err := readAll(os.NewFile(execSpecFD, "exec-spec"))
	if err != nil {
		return fail(err)
	}
	var es ExecSpec
	if err := json.Unmarshal(raw, &es); err != nil || es.Spec == nil || es.PID <= 0 {
		return fail(fmt.Errorf("bad exec spec: %v", err))
	}
	if err := joinCgroups(es.PID); err != nil {
		return fail(err)
	}
	// Namespace handles first, all from the node's /proc.
	var nsFiles []*os.File
	var mnt *os.File
	for _, ns := range []string{"cgroup", "ipc", "uts", "net", "pid", "mnt"} {
		f, err := os.Open(fmt.Sprintf("/proc/%d/ns/%s", es.PID, ns))
		if err != nil {
			if ns == "cgroup" && errors.Is(err, os.ErrNotExist) {
				continue
			}
			return fail(fmt.Errorf("container namespace %s: %w", ns, err))
		}
		if ns == "mnt" {
			mnt = f
			continue
		}
		if same, _ := sameNS(f, "/proc/self/ns/"+ns); same {
			f.Close()
			continue
		}
		nsFiles = append(nsFiles, f)
	}
	// This thread only gets an fs_struct of its own, so that entering the
	// mount namespace (which moves the caller's root and cwd) moves no
	// other thread; the Go runtime starts new threads from a clean one.
	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		return fail(fmt.Errorf("unshare CLONE_FS: %w", err))
	}
	for _, f := range nsFiles {
		if err := unix.Setns(int(f.Fd()), 0); err != nil {
			return fail(fmt.Errorf("setns %s: %w", f.Name(), err))
		}
		f.Close()
	}
	var aaAttr *os.File
	if es.Spec.AppArmorProfile != "" {
		// Written by finishAndExec on this thread (openAppArmorProfile);
		// /proc after the setns below is the container's and has no entry
		// for this thread.
		if aaAttr, err = openAppArmorAttr(); err != nil {
			return fail(fmt.Errorf("AppArmor profile %s: %w", es.Spec.AppArmorProfile, err))
		}
	}
	if err := unix.Setns(int(mnt.Fd()), unix.CLONE_NEWNS); err != nil {
		return fail(fmt.Errorf("enter the container's mount namespace: %w", err))
	}
	mnt.Close()
	if err := unix.Chdir("/"); err != nil {
		return fail(err)
	}
	stdio := []uintptr{0, 1, 2}
	var slave *os.File
	if es.TTY {
		master, s, err := openContainerPTY(es.Rows, es.Cols)
		if err != nil {
			return fail(err)
		}
		err = sendFD(os.NewFile(ExecPTYFD, "pty-socket"), master)
		master.Close()
		unix.Close(ExecPTYFD)
		if err != nil {
			return fail(fmt.Errorf("hand the terminal over: %w", err))
		}
		slave = s
		stdio = []uintptr{s.Fd(), s.Fd(), s.Fd()}
	}
	p := *es.Spec
	p.appArmorAttr = aaAttr
	p.Args = es.Args
	p.Env = append(append([]string{}, p.Env...), es.Env...)
	p.CgroupNS = false  // joined by setns above
	p.OOMScoreAdj = nil // inherited from nothing of ours: keep the node's default
	pid := 0
	p.forkExec = func(path string) error {
		attr := &syscall.ProcAttr{Env: p.Env, Files: stdio,
			// No Pdeathsig: Go's child compares getppid() with our PID,
			// which reads 0 across the PID namespace boundary, and would
			// kill itself. A cancel reaches it through our signal handler.
			Sys: &syscall.SysProcAttr{Setsid: es.TTY, Setctty: es.TTY, Ctty: 0}}
		var err error
		pid, err = syscall.ForkExec(path, p.Args, attr)
		if err != nil {
			return fmt.Errorf("exec %q: %w", p.Args[0], err)
		}
		return nil
	}
	if err := finishAndExec(&p, nil); err != nil {
		return fail(err)
	}
	if slave != nil {
		slave.Close()
	}
	go func() {
		<-sigs
		unix.Kill(pid, unix.SIGKILL)
	}()
	for {
		var ws unix.WaitStatus
		_, err := unix.Wait4(pid, &ws, 0, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fail(err)
		}
		if ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ws.ExitStatus()
	}
}

func readAll(f *os.File) ([]byte, error) {
	defer f.Close()
	return io.ReadAll(f)
}

func sameNS(f *os.File, other string) (bool, error) {
	var a, b unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &a); err != nil {
		return false, err
	}
	if err := unix.Stat(other, &b); err != nil {
		return false, err
	}
	return a.Ino == b.Ino && a.Dev == b.Dev, nil
}

// joinCgroups moves this process into every cgroup of pid (its children
// inherit them), reading the hierarchies from our own mount table.
func joinCgroups(pid int) error {
	mounts, err := procfs.CgroupMountPoints()
	if err != nil {
		return err
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return err
	}
	defer f.Close()
	me := []byte(strconv.Itoa(os.Getpid()))
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		key := parts[1]
		if parts[0] == "0" && parts[1] == "" {
			key = "cgroup2"
		}
		mnt, ok := mounts[key]
		if !ok || strings.HasPrefix(parts[2], "/..") {
			// Not mounted here, or the container's cgroup lies outside our
			// cgroup namespace (a hierarchy its scope does not use, still
			// the daemon's own): nothing we can or need to join.
			continue
		}
		procs := filepath.Join(mnt, parts[2], "cgroup.procs")
		if err := os.WriteFile(procs, me, 0); err != nil {
			return fmt.Errorf("join cgroup %s: %w", procs, err)
		}
	}
	return sc.Err()
}
