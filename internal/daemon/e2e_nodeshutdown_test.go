package daemon

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"

	"github.com/minikubelet/minikubelet/internal/nodeshutdown"
	"github.com/minikubelet/minikubelet/internal/testnode"
)

// testLogind is a stand-in for systemd-logind on a private bus: the
// daemon's side (D-Bus calls, fd passing, the signal, its pods) is real;
// only the announcement of a shutdown comes from the test, since a real
// PrepareForShutdown needs a real poweroff (the field host's guest test).
type testLogind struct {
	t    *testing.T
	conn *dbus.Conn

	mu    sync.Mutex
	locks []*os.File // our ends of the inhibitor pipes, by Inhibit call
	ino   []uint64   // their pipes' inodes
	who   []string
}

// holders lists the PIDs of every process with a descriptor on the pipe
// of inode ino (our own excluded).
func holders(ino uint64) []int {
	want := fmt.Sprintf("pipe:[%d]", ino)
	procs, _ := os.ReadDir("/proc")
	var out []int
	for _, p := range procs {
		pid := 0
		if _, err := fmt.Sscanf(p.Name(), "%d", &pid); err != nil || pid == os.Getpid() {
			continue
		}
		fds, _ := os.ReadDir(filepath.Join("/proc", p.Name(), "fd"))
		for _, fd := range fds {
			if l, _ := os.Readlink(filepath.Join("/proc", p.Name(), "fd", fd.Name())); l == want {
				out = append(out, pid)
				break
			}
		}
	}
	return out
}

func (l *testLogind) Get(iface, prop string) (dbus.Variant, *dbus.Error) {
	if iface == "org.freedesktop.login1.Manager" && prop == "InhibitDelayMaxUSec" {
		return dbus.MakeVariant(uint64(time.Minute / time.Microsecond)), nil
	}
	return dbus.Variant{}, dbus.MakeFailedError(fmt.Errorf("no property %s.%s", iface, prop))
}

func (l *testLogind) Inhibit(what, who, why, mode string) (dbus.UnixFD, *dbus.Error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return 0, dbus.MakeFailedError(err)
	}
	var st unix.Stat_t
	unix.Fstat(p[0], &st)
	l.mu.Lock()
	l.locks = append(l.locks, os.NewFile(uintptr(p[0]), "inhibitor-read"))
	l.ino = append(l.ino, st.Ino)
	l.who = append(l.who, strings.Join([]string{what, who, mode}, "/"))
	l.mu.Unlock()
	// godbus sends the descriptor with the reply, after this returns; our
	// copy of the write end is closed once the caller holds one (then the
	// read end sees EOF exactly when the caller lets go).
	go func() {
		deadline := time.Now().Add(20 * time.Second)
		for len(holders(st.Ino)) == 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		unix.Close(p[1])
	}()
	return dbus.UnixFD(p[1]), nil
}

// released waits until the i-th lock's holder closed it (EOF on our end).
func (l *testLogind) released(i int, timeout time.Duration) bool {
	l.mu.Lock()
	f := l.locks[i]
	l.mu.Unlock()
	f.SetReadDeadline(time.Now().Add(timeout))
	_, err := f.Read(make([]byte, 1))
	return err != nil && !os.IsTimeout(err)
}

func (l *testLogind) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.locks)
}

// privateBus starts a dbus-daemon of our own, with a system-bus-like policy
// open to root, and returns its address; the daemon is killed by PID at
// cleanup.
func privateBus(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("dbus-daemon")
	if err != nil {
		t.Skip("dbus-daemon is not installed (hack/install-deps.sh installs it)")
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "bus.conf")
	os.WriteFile(conf, []byte(`<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=`+filepath.Join(dir, "bus.sock")+`</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="root"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
`), 0o644)
	cmd := exec.Command(bin, "--config-file="+conf, "--nofork", "--nopidfile", "--print-address=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errb strings.Builder
	cmd.Stderr = &errb // its warnings (fd limits) are shown if the test fails
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("dbus-daemon stderr:\n%s", errb.String())
		}
	})
	// It prints its address once it listens.
	addr := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		addr <- strings.TrimSpace(line)
	}()
	select {
	case a := <-addr:
		if a == "" {
			t.Fatal("dbus-daemon printed no address")
		}
		return a
	case <-time.After(20 * time.Second):
		t.Fatal("dbus-daemon did not start")
		return ""
	}
}

func startTestLogind(t *testing.T, addr string) *testLogind {
	t.Helper()
	conn, err := dbus.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	l := &testLogind{t: t, conn: conn}
	path := dbus.ObjectPath("/org/freedesktop/login1")
	if err := conn.ExportMethodTable(map[string]any{"Inhibit": l.Inhibit}, path, "org.freedesktop.login1.Manager"); err != nil {
		t.Fatal(err)
	}
	if err := conn.ExportMethodTable(map[string]any{"Get": l.Get}, path, "org.freedesktop.DBus.Properties"); err != nil {
		t.Fatal(err)
	}
	if r, err := conn.RequestName("org.freedesktop.login1", dbus.NameFlagDoNotQueue); err != nil || r != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("own org.freedesktop.login1 on the private bus: %v %v", r, err)
	}
	return l
}

func (l *testLogind) prepareForShutdown(down bool) {
	l.t.Helper()
	if err := l.conn.Emit("/org/freedesktop/login1", "org.freedesktop.login1.Manager.PrepareForShutdown", down); err != nil {
		l.t.Fatal(err)
	}
}

// startShutdownOrderPods starts the two pods both graceful-shutdown tests
// stop: web (regular) and dns (of priorityClassName critical), each with a
// preStop hook that appends its name to data/order, so the order the hooks
// ran in can be read back; it returns once both are Running.
func startShutdownOrderPods(n *e2eNode, data, critical string) {
	pod := func(name, extra string) string {
		return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %[1]s
  namespace: default
spec:
  terminationGracePeriodSeconds: 30
%[4]s
  containers:
  - name: c
    image: %[2]s
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done"]
    lifecycle:
      preStop: {exec: {command: [sh, -c, "echo %[1]s >> /data/order"]}}
    volumeMounts:
    - {name: data, mountPath: /data}
  volumes:
  - name: data
    hostPath: {path: %[3]s, type: Directory}
`, name, testImage, data, extra)
	}
	n.Write("web.yaml", pod("web", ""))
	n.Write("dns.yaml", pod("dns", "  priorityClassName: "+critical))
	for _, name := range []string{"web-node1", "dns-node1"} {
		n.WaitPod(name, "Running", 60*time.Second, func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning })
	}
}

// wantPreStopOrder fails the test unless the preStop hooks of
// startShutdownOrderPods ran regular pod first, critical pod second.
func wantPreStopOrder(t *testing.T, data string) {
	t.Helper()
	b, _ := os.ReadFile(filepath.Join(data, "order"))
	if string(b) != "web\ndns\n" {
		t.Fatalf("preStop hooks ran as %q, want the regular pod's then the critical pod's", b)
	}
}

// Graceful node shutdown end to end on real pods: the daemon holds a delay
// lock; on PrepareForShutdown(true) the regular pod's preStop runs and it
// stops first, then the critical one's, each within its group's grace; the
// lock is released after; the pods read Failed/Terminated with the
// kubelet's message. PrepareForShutdown(false) brings them back and the
// lock is taken again.
func TestGracefulNodeShutdown(t *testing.T) {
	n := newE2ENode(t)
	addr := privateBus(t)
	lg := startTestLogind(t, addr)
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", addr)
	data := filepath.Join(n.Dir, "data")
	os.MkdirAll(data, 0o755)
	n.Start("--shutdown-grace-period", "20s", "--shutdown-grace-period-critical-pods", "8s")
	n.WaitFor("the daemon's inhibitor lock", 20*time.Second, func() bool { return lg.count() == 1 })
	if lg.who[0] != "shutdown/"+nodeshutdown.InhibitWho+"/delay" {
		t.Fatalf("inhibitor %s", lg.who[0])
	}
	startShutdownOrderPods(n, data, "system-node-critical")
	// The lock is the daemon's alone: no pod supervisor or container
	// inherited it (it would hold every shutdown back).
	if h := holders(lg.ino[0]); len(h) != 1 || h[0] != n.Cmd.Process.Pid {
		t.Fatalf("inhibitor held by %v, want only the daemon (%d)", h, n.Cmd.Process.Pid)
	}

	lg.prepareForShutdown(true)
	if !lg.released(0, 40*time.Second) {
		t.Fatal("the inhibitor lock was not released within the grace period")
	}
	wantPreStopOrder(t, data)
	for _, name := range []string{"web-node1", "dns-node1"} {
		p := n.WaitPod(name, "Failed/Terminated", 10*time.Second, func(p *v1.Pod) bool { return p.Status.Phase == v1.PodFailed })
		if p.Status.Reason != "Terminated" || p.Status.Message != "Pod was terminated in response to imminent node shutdown." {
			t.Errorf("%s: reason %q message %q", name, p.Status.Reason, p.Status.Message)
		}
		for _, cs := range p.Status.ContainerStatuses {
			if cs.State.Terminated == nil {
				t.Errorf("%s: container %s not terminated: %+v", name, cs.Name, cs.State)
			}
		}
	}

	// Cancelled: the lock is taken again and the pods run again.
	lg.prepareForShutdown(false)
	n.WaitFor("the inhibitor lock taken again", 20*time.Second, func() bool { return lg.count() == 2 })
	// (Phase Running alone says nothing here: under restartPolicy Always
	// a pod whose containers exited is Running, as kubelet's getPhase.)
	running := func(p *v1.Pod) bool {
		cs := p.Status.ContainerStatuses
		return p.Status.Phase == v1.PodRunning && len(cs) == 1 && cs[0].State.Running != nil && cs[0].RestartCount == 1
	}
	for _, name := range []string{"web-node1", "dns-node1"} {
		n.WaitPod(name, "its container running again in a new sandbox", 60*time.Second, running)
	}
	// Stopping the daemon releases the lock and leaves the pods running.
	n.Stop(syscall.SIGTERM)
	if !lg.released(1, 10*time.Second) {
		t.Fatal("the daemon's stop did not release its lock")
	}
	n.Start()
	for _, name := range []string{"web-node1", "dns-node1"} {
		n.WaitPod(name, "adopted, not restarted", 60*time.Second, running)
	}
}

type logindInhibitor struct {
	What, Who, Why, Mode string
	UID, PID             uint32
}

// realLogindInhibitors lists logind's inhibitors; ok is false where no
// logind answers on the system bus.
func realLogindInhibitors(t *testing.T) (list []logindInhibitor, ok bool) {
	t.Helper()
	conn, err := dbus.ConnectSystemBus()
	if err != nil {
		return nil, false
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = conn.Object("org.freedesktop.login1", "/org/freedesktop/login1").
		CallWithContext(ctx, "org.freedesktop.login1.Manager.ListInhibitors", 0).Store(&list)
	return list, err == nil
}

func daemonInhibitor(t *testing.T, pid int) *logindInhibitor {
	list, _ := realLogindInhibitors(t)
	for _, in := range list {
		if in.Who == nodeshutdown.InhibitWho && int(in.PID) == pid {
			return &in
		}
	}
	return nil
}

// The same sequence against the host's real systemd-logind (the field
// host's guest; skipped where there is none): the daemon's delay lock is
// in logind's ListInhibitors, SIGUSR1 (the kubelet's test trigger of a
// shutdown event) stops the pods in order, and logind sees the lock go.
// The grace periods fit logind's default InhibitDelayMaxSec (5 s), so no
// drop-in is written here (unless MKL_TEST_SLOWDOWN stretches them).
func TestGracefulNodeShutdownRealLogind(t *testing.T) {
	if _, ok := realLogindInhibitors(t); !ok {
		testnode.Require(t)
		t.Skip("no systemd-logind on the system bus (the lab test node has none; the field host's guest has)")
	}
	n := newE2ENode(t)
	data := filepath.Join(n.Dir, "data")
	os.MkdirAll(data, 0o755)
	// Under emulation (MKL_TEST_SLOWDOWN) a preStop exec alone takes longer
	// than 2 s: the periods grow with the slowdown, and then the daemon
	// raises logind's InhibitDelayMaxSec with its drop-in, removed here.
	grace, critical := testnode.Scale(4*time.Second), testnode.Scale(2*time.Second)
	if grace > 5*time.Second {
		dropIn := filepath.Join(nodeshutdown.LogindConfDir, "99-minikubelet.conf")
		if _, err := os.Stat(dropIn); err == nil {
			t.Fatalf("%s exists already; not overwriting it", dropIn)
		}
		t.Cleanup(func() {
			os.Remove(dropIn)
			exec.Command("systemctl", "kill", "-s", "HUP", "systemd-logind").Run()
		})
	}
	n.Start("--shutdown-grace-period", grace.String(), "--shutdown-grace-period-critical-pods", critical.String())
	pid := n.Cmd.Process.Pid
	var in *logindInhibitor
	n.WaitFor("the daemon's inhibitor in logind's ListInhibitors", 20*time.Second, func() bool {
		in = daemonInhibitor(t, pid)
		return in != nil
	})
	if in.What != "shutdown" || in.Mode != "delay" || in.Why != nodeshutdown.InhibitWhy {
		t.Fatalf("inhibitor %+v", *in)
	}
	startShutdownOrderPods(n, data, "system-cluster-critical")
	n.Cmd.Process.Signal(syscall.SIGUSR1)
	n.WaitFor("logind to see the lock released", 30*time.Second, func() bool { return daemonInhibitor(t, pid) == nil })
	wantPreStopOrder(t, data)
	for _, name := range []string{"web-node1", "dns-node1"} {
		p := n.WaitPod(name, "Failed/Terminated", 10*time.Second, func(p *v1.Pod) bool { return p.Status.Phase == v1.PodFailed })
		if p.Status.Reason != "Terminated" {
			t.Errorf("%s: reason %q", name, p.Status.Reason)
		}
	}
}
