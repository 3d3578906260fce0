// Package testnode boots a real systemd (PID 1 of fresh pid, mount, uts, ipc,
// net and cgroup namespaces) for integration tests, runs the package's test
// binary inside it, and tears everything down afterwards.
//
// Why a whole test binary inside: systemd reads the PIDs given to
// StartTransientUnit in its own PID namespace, and the cgroup files it writes
// are only visible at /sys/fs/cgroup/<h>/... in its mount namespace. So the
// code under test must live there. TestMain calls Main; on the host it boots
// the node and re-executes the same test binary with the same flags through
// nsenter; inside, it simply runs the tests.
//
// Leave-no-trace: the node owns one cgroup per mounted hierarchy
// (<own cgroup>/mkl-test-<rand>), the systemd process (killed by PID) and
// nothing else. Everything systemd creates lives in those cgroups and in
// namespaces that die with it; teardown removes the cgroups depth-first.
//
// As non-root (or with MKL_SKIP_INTEGRATION=1) no node is booted and Require
// skips the test with a reason; unit tests in the same package still run.
//
// Host mode (MKL_TESTNODE_HOST=1): on a machine that is itself an ordinary
// systemd host — PID 1 is systemd, /sys/fs/cgroup is pure cgroup v2 — such as
// the Debian 12 guest of `make test-vm` (hack/vm), no node is booted: the
// tests run directly against the host's systemd and hierarchy, and Inside
// reports true. It refuses (exit 1) on a host that is not such a machine, so a
// mistaken opt-in fails loudly instead of testing the wrong thing.
package testnode

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minikubelet/minikubelet/internal/procfs"
	"github.com/minikubelet/minikubelet/internal/syncbuf"
)

const (
	envInside = "MKL_TESTNODE_INSIDE" // set in the re-executed test binary
	envSkip   = "MKL_SKIP_INTEGRATION"
	envWhy    = "MKL_TESTNODE_SKIPPED" // why the node could not be booted
	envHost   = "MKL_TESTNODE_HOST"    // run against this host's own systemd (see package doc)
)

// hostMarker is envInside's value in host mode.
const hostMarker = "host"

// Inside reports whether this process runs inside a booted test node, or on
// a real systemd host in host mode.
func Inside() bool { return os.Getenv(envInside) != "" }

// Host reports whether the tests run against the host's own systemd (host
// mode): PID 1 of the machine, pure cgroup v2, units shared with the host.
func Host() bool { return os.Getenv(envInside) == hostMarker }

// hostProblem says why this machine cannot serve host mode, or "".
func hostProblem() string {
	if os.Geteuid() != 0 {
		return "not running as root"
	}
	comm, err := os.ReadFile("/proc/1/comm")
	if err != nil || strings.TrimSpace(string(comm)) != "systemd" {
		return fmt.Sprintf("PID 1 is %q, not systemd", strings.TrimSpace(string(comm)))
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs("/sys/fs/cgroup", &st); err != nil {
		return fmt.Sprintf("statfs /sys/fs/cgroup: %v", err)
	}
	const cgroup2Magic = 0x63677270
	if st.Type != cgroup2Magic {
		return "/sys/fs/cgroup is not a pure cgroup v2 mount"
	}
	if !fileExists("/run/systemd/private") {
		return "systemd's private socket /run/systemd/private is missing"
	}
	return ""
}

// Require skips t unless it runs inside a test node with a real systemd.
func Require(t testing.TB) {
	t.Helper()
	if Inside() {
		return
	}
	why := os.Getenv(envWhy)
	if why == "" {
		why = "no test node (TestMain must call testnode.Main)"
	}
	t.Skipf("integration test skipped: %s", why)
}

// RequireRoot skips t unless the process is root (for tests that need real
// mounts or namespaces but no systemd).
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("root integration test skipped: not running as root")
	}
	if os.Getenv(envSkip) != "" {
		t.Skipf("root integration test skipped: %s is set", envSkip)
	}
}

// Main is the TestMain of a package with integration tests.
func Main(m *testing.M) {
	if Inside() {
		os.Exit(m.Run())
	}
	if os.Getenv(envHost) != "" {
		if why := hostProblem(); why != "" {
			fmt.Fprintf(os.Stderr, "testnode: %s=1 but this is no systemd host with cgroup v2: %s\n", envHost, why)
			os.Exit(1)
		}
		os.Setenv(envInside, hostMarker)
		os.Exit(m.Run())
	}
	why := ""
	switch {
	case os.Geteuid() != 0:
		why = "not running as root"
	case os.Getenv(envSkip) != "":
		why = envSkip + " is set"
	case !fileExists(systemdBinary):
		why = systemdBinary + " is not installed"
	}
	if why != "" {
		os.Setenv(envWhy, why)
		os.Exit(m.Run())
	}
	node, err := Boot()
	if err != nil {
		fmt.Fprintf(os.Stderr, "testnode: cannot boot systemd: %v\n", err)
		os.Exit(1)
	}
	code := node.RunSelf()
	if err := node.Shutdown(); err != nil {
		fmt.Fprintf(os.Stderr, "testnode: teardown: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

const systemdBinary = "/lib/systemd/systemd"

// Node is a booted systemd in its own namespaces.
type Node struct {
	Name    string            // mkl-test-<rand>, the cgroup folder name
	PID     int               // systemd's PID as seen from the host
	cgroups []string          // host paths of the node's cgroups, one per hierarchy
	unitDir string            // SYSTEMD_UNIT_PATH folder with default.target
	cmd     *exec.Cmd         // the unshare process (its child is systemd)
	logBuf  *syncbuf.Buffer   // systemd's console output, for failures
	Env     map[string]string // extra env for commands run inside
}

// hierarchy is one mounted cgroup hierarchy of the host.
type hierarchy struct {
	name  string // "memory", "name=systemd", "" for cgroup2
	mount string // /sys/fs/cgroup/memory
	own   string // this process's cgroup path in it
}

// Boot starts systemd in new namespaces and waits until its private D-Bus
// socket answers.
func Boot() (*Node, error) {
	hs, err := hostHierarchies()
	if err != nil {
		return nil, err
	}
	sweepStaleNodes(hs)
	n := &Node{Name: "mkl-test-" + randHex(4), logBuf: &syncbuf.Buffer{}}
	ok := false
	defer func() {
		if !ok {
			n.Shutdown()
		}
	}()
	var procsFiles []string
	for _, h := range hs {
		dir := filepath.Join(h.mount, h.own, n.Name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			return nil, fmt.Errorf("create test cgroup: %w", err)
		}
		n.cgroups = append(n.cgroups, dir)
		if h.name == "cpuset" {
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				b, err := os.ReadFile(filepath.Join(filepath.Dir(dir), f))
				if err != nil {
					return nil, err
				}
				if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
					return nil, fmt.Errorf("seed %s/%s: %w", dir, f, err)
				}
			}
		}
		procsFiles = append(procsFiles, filepath.Join(dir, "cgroup.procs"))
	}
	n.unitDir, err = os.MkdirTemp("", n.Name+"-units-")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(n.unitDir, "default.target"), []byte("[Unit]\nDescription=minikubelet test node\n"), 0o644); err != nil {
		return nil, err
	}
	// The launcher joins the test cgroups, then becomes unshare, whose child
	// (PID 1 of the new pid namespace) mounts private /proc, /run and
	// /sys/fs/cgroup and execs systemd.
	// --kill-child: unshare dies with the test process (Pdeathsig below) and
	// takes systemd with it, so a test binary killed before Shutdown (a
	// SIGPIPE from `go test | head`, a timeout) leaves no orphaned node.
	launcher := `for f in "$@"; do echo $$ > "$f" || exit 1; done; exec unshare --pid --fork --kill-child --mount --uts --ipc --net --cgroup --propagation private /bin/sh -c "$INNER"`
	cmd := exec.Command("/bin/sh", append([]string{"-c", launcher, "sh"}, procsFiles...)...)
	cmd.Env = append(os.Environ(), "INNER="+innerScript, "MKL_UNIT_PATH="+n.unitDir)
	cmd.Stdout = n.logBuf
	cmd.Stderr = n.logBuf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start unshare: %w", err)
	}
	n.cmd = cmd
	deadline := time.Now().Add(20 * time.Second)
	for {
		if n.PID == 0 {
			n.PID = childOf(cmd.Process.Pid)
		}
		if n.PID != 0 && fileExists(fmt.Sprintf("/proc/%d/root/run/systemd/private", n.PID)) {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("systemd did not create /run/systemd/private within 20s; its output:\n%s", n.logBuf.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Wait for the manager to finish starting (default.target reached), so
	// tests do not race its start-up jobs.
	for time.Now().Before(deadline) {
		out, _ := n.Command("systemctl", "is-system-running").Output()
		s := strings.TrimSpace(string(out))
		if s == "running" || s == "degraded" {
			ok = true
			return n, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil, fmt.Errorf("systemd did not reach running state; its output:\n%s", n.logBuf.String())
}

const innerScript = `set -e
ip link set lo up
mount -t proc proc /proc
mount -t tmpfs tmpfs /run
mount -t tmpfs -o mode=755 tmpfs /sys/fs/cgroup
if [ "$(cut -d: -f1 /proc/self/cgroup | sort -u)" = "0" ]; then
  mount -t cgroup2 cgroup2 /sys/fs/cgroup
else
  for h in $(cut -d: -f2 /proc/self/cgroup | grep -v '^$'); do
    n=${h#name=}; mkdir -p /sys/fs/cgroup/$n
    case $h in name=*) mount -t cgroup -o none,$h cgroup /sys/fs/cgroup/$n ;;
               *)      mount -t cgroup -o $h cgroup /sys/fs/cgroup/$n ;; esac
  done
  mkdir -p /sys/fs/cgroup/unified; mount -t cgroup2 cgroup2 /sys/fs/cgroup/unified
fi
# /run/systemd/transient must stay in the unit path: a daemon-reload or
# daemon-reexec reloads transient units from their files there, and without
# it they come back as bare stand-ins that lost their Description and limits.
export container=other SYSTEMD_UNIT_PATH="$MKL_UNIT_PATH:/run/systemd/transient"
exec /lib/systemd/systemd --system --log-target=console --log-level=warning --unit=default.target
`

// Command returns a command that runs inside the node's namespaces.
func (n *Node) Command(name string, args ...string) *exec.Cmd {
	full := append([]string{"-t", strconv.Itoa(n.PID), "-m", "-p", "-n", "-u", "-i", "-C", "--", name}, args...)
	cmd := exec.Command("nsenter", full...)
	cmd.Env = os.Environ()
	return cmd
}

// RunSelf re-executes this test binary inside the node and returns its exit code.
func (n *Node) RunSelf() int {
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "testnode:", err)
		return 1
	}
	cmd := n.Command(self, os.Args[1:]...)
	cwd, _ := os.Getwd()
	cmd.Dir = cwd
	cmd.Env = append(os.Environ(), envInside+"="+n.Name)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() > 0 {
			return ee.ExitCode()
		}
		fmt.Fprintln(os.Stderr, "testnode: test binary inside node:", err)
		return 1
	}
	return 0
}

// Shutdown kills systemd (its pid namespace and everything in it dies with
// it) and removes the node's cgroups depth-first.
func (n *Node) Shutdown() error {
	if n.cmd != nil && n.cmd.Process != nil {
		if n.PID != 0 {
			syscall.Kill(n.PID, syscall.SIGKILL)
		}
		n.cmd.Process.Kill()
		n.cmd.Wait()
		// PID 1 of a namespace lingers until every process in it is gone.
		for deadline := time.Now().Add(10 * time.Second); n.PID != 0 && fileExists(fmt.Sprintf("/proc/%d", n.PID)) && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
	}
	var errs []error
	for _, dir := range n.cgroups {
		if err := removeCgroupTree(dir); err != nil {
			errs = append(errs, err)
		}
	}
	if n.unitDir != "" {
		os.RemoveAll(n.unitDir)
	}
	return errors.Join(errs...)
}

// removeCgroupTree rmdirs dir and its children, deepest first, retrying while
// the killed processes are still leaving.
func removeCgroupTree(dir string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		var dirs []string
		filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
		var last error
		for _, d := range dirs {
			if err := syscall.Rmdir(d); err != nil && !errors.Is(err, syscall.ENOENT) {
				last = fmt.Errorf("rmdir %s: %w", d, err)
			}
		}
		if last == nil || time.Now().After(deadline) {
			return last
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// staleAfter is how old an empty node cgroup must be before Boot removes it:
// far longer than the gap between a concurrent Boot's mkdir and its launcher
// joining the cgroup.
const staleAfter = 10 * time.Minute

// sweepStaleNodes removes node cgroups left by a test binary that was killed
// before its Shutdown ran (its systemd died with it, the empty cgroups stay).
// Only mkl-test-* folders beside ours, old and without any process, are touched.
func sweepStaleNodes(hs []hierarchy) {
	for _, h := range hs {
		dirs, _ := filepath.Glob(filepath.Join(h.mount, h.own, "mkl-test-*"))
		for _, dir := range dirs {
			st, err := os.Stat(dir)
			if err != nil || time.Since(st.ModTime()) < staleAfter || cgroupTreeHasProcs(dir) {
				continue
			}
			removeCgroupTree(dir)
		}
	}
}

func cgroupTreeHasProcs(dir string) bool {
	busy := false
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || busy || !d.IsDir() {
			return nil
		}
		if b, err := os.ReadFile(filepath.Join(p, "cgroup.procs")); err != nil || len(bytes.TrimSpace(b)) > 0 {
			busy = true // unreadable counts as busy: never remove what we cannot see
		}
		return nil
	})
	return busy
}

// hostHierarchies lists the mounted cgroup hierarchies and this process's
// cgroup in each, from /proc/self/cgroup and /proc/self/mountinfo.
func hostHierarchies() ([]hierarchy, error) {
	mounts, err := procfs.CgroupMountPoints()
	if err != nil {
		return nil, err
	}
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var hs []hierarchy
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		name := parts[1]
		key := name
		if name == "" {
			key = "cgroup2"
		}
		mnt, ok := mounts[key]
		if !ok {
			continue // listed but not mounted: skip, never mount it
		}
		hs = append(hs, hierarchy{name: name, mount: mnt, own: parts[2]})
	}
	if len(hs) == 0 {
		return nil, errors.New("no mounted cgroup hierarchy found")
	}
	return hs, nil
}

// childOf returns the first child PID of pid (systemd under unshare --fork).
func childOf(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	c, _ := strconv.Atoi(f[0])
	// unshare's child is the /bin/sh running innerScript, which execs systemd:
	// the PID stays the same.
	return c
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
