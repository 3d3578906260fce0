package shim

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Exec into a running container, in two stages, because Go cannot setns
// into a mount namespace from a multithreaded process unless the thread
// has its own fs_struct:
//
//	stage 1 (__container-exec, started by the daemon in the node's namespaces)
//	  joins the container's cgroups, then on one locked thread
//	  setns(cgroup, ipc, uts, net, pid) and forks stage 2 from that thread;
//	stage 2 (__container-exec-2) is born in those namespaces (the container's
//	  PID namespace included), enters the mount namespace on its locked
//	  thread after unshare(CLONE_FS), applies the container's process
//	  security exactly as the container init did, and execs from that thread.
//
// The mount namespace is entered last, by stage 2, so that the binary
// started is found on the node's filesystem and never through a path the
// container controls.
//
// Stage 1 waits and exits with stage 2's status.
const (
	ExecCommand       = "__container-exec"
	execStage2Command = "__container-exec-2"
	execSpecFD        = 3
	execMntFD         = 4
)

// ExecSpec is stage 1's input (fd 3): the container's process settings and
// the command to run.
type ExecSpec struct {
	PID  int            `json:"pid"` // the container's process, in the caller's PID namespace
	Spec *ContainerSpec `json:"spec"`
	Args []string       `json:"args"`
	Env  []string       `json:"env,omitempty"` // added to the container's
	TTY  bool           `json:"tty,omitempty"` // stdio is a terminal: make it stage 2's controlling tty
}

// ExecStatusNotFound is the exit status when the command cannot be run (as
// containerd reports for kubectl exec).
const ExecStatusNotFound = 126

// ContainerExecMain is stage 1.
func ContainerExecMain() int {
	unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "exec: %v\n", err)
		return ExecStatusNotFound
	}
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
	specR, specW, err := os.Pipe()
	if err != nil {
		return fail(err)
	}
	runtime.LockOSThread() // never unlocked: this thread is in the container now
	for _, f := range nsFiles {
		if err := unix.Setns(int(f.Fd()), 0); err != nil {
			return fail(fmt.Errorf("setns %s: %w", f.Name(), err))
		}
		f.Close()
	}
	attr := &syscall.ProcAttr{
		Dir:   "/",
		Env:   []string{"GOMAXPROCS=1"},
		Files: []uintptr{0, 1, 2, specR.Fd(), mnt.Fd()},
		// No Pdeathsig here: Go's child checks getppid() against our PID,
		// which reads 0 across the PID namespace boundary, and kills
		// itself. Stage 2 sets it first thing instead.
		Sys: &syscall.SysProcAttr{Setsid: es.TTY, Setctty: es.TTY, Ctty: 0},
	}
	pid, err := syscall.ForkExec("/proc/self/exe", []string{"exec", execStage2Command}, attr)
	specR.Close()
	mnt.Close()
	if err != nil {
		return fail(fmt.Errorf("start in the container: %w", err))
	}
	specW.Write(raw)
	specW.Close()
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

// containerExecStage2 runs inside the container's namespaces.
func containerExecStage2() int {
	runtime.LockOSThread()
	unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0)
	unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	// Enter the container's mount namespace on this thread only (it needs
	// an fs_struct of its own); this thread execs.
	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		fmt.Fprintf(os.Stderr, "exec: unshare CLONE_FS: %v\n", err)
		return ExecStatusNotFound
	}
	if err := unix.Setns(execMntFD, unix.CLONE_NEWNS); err != nil {
		fmt.Fprintf(os.Stderr, "exec: enter the container's mount namespace: %v\n", err)
		return ExecStatusNotFound
	}
	unix.Close(execMntFD)
	if err := unix.Chdir("/"); err != nil {
		return ExecStatusNotFound
	}
	raw, err := readAll(os.NewFile(execSpecFD, "exec-spec"))
	if err != nil {
		fmt.Fprintf(os.Stderr, "exec: %v\n", err)
		return ExecStatusNotFound
	}
	var es ExecSpec
	if err := json.Unmarshal(raw, &es); err != nil {
		fmt.Fprintf(os.Stderr, "exec: %v\n", err)
		return ExecStatusNotFound
	}
	p := *es.Spec
	p.Args = es.Args
	p.Env = append(append([]string{}, p.Env...), es.Env...)
	p.CgroupNS = false  // joined by setns in stage 1
	p.OOMScoreAdj = nil // inherited from nothing of ours: keep the node's default
	err = finishAndExec(&p, nil)
	fmt.Fprintf(os.Stderr, "exec: %v\n", err)
	return ExecStatusNotFound
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
	mounts, err := cgroupMountPoints()
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
		key := strings.TrimPrefix(parts[1], "name=")
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

// cgroupMountPoints maps "memory", "cpu,cpuacct", "systemd", "cgroup2" ... to
// the mount point of the hierarchy's root.
func cgroupMountPoints() (map[string]string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		fields := strings.Fields(line)
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || len(fields) < sep+4 || fields[3] != "/" {
			continue
		}
		switch fields[sep+1] {
		case "cgroup2":
			out["cgroup2"] = fields[4]
		case "cgroup":
			var keys []string
			for _, o := range strings.Split(fields[sep+3], ",") {
				if o == "rw" || o == "ro" || strings.Contains(o, "=") && !strings.HasPrefix(o, "name=") || o == "xattr" || o == "clone_children" || o == "noprefix" {
					continue
				}
				keys = append(keys, strings.TrimPrefix(o, "name="))
			}
			out[strings.Join(keys, ",")] = fields[4]
		}
	}
	return out, nil
}
