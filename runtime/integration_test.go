package runtime

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	sd "github.com/coreos/go-systemd/v22/dbus"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/minikubelet/minikubelet/internal/testnode"
	"github.com/minikubelet/minikubelet/runtime/shim"
)

func TestMain(m *testing.M) {
	HelperMain() // re-executed as the pod supervisor or a container init
	if os.Getenv(envTestDaemon) != "" {
		os.Exit(testDaemonMain())
	}
	testnode.Main(m)
}

// pingSandbox says whether the pod's supervisor answers on its socket.
func pingSandbox(ctx context.Context, r *Runtime, uid types.UID) error {
	_, err := call(ctx, r.sandboxDir(uid), shim.Request{Op: "ping"})
	return err
}

// busyboxRoot builds a plain-directory root filesystem from Debian's
// busybox-static: /bin/busybox and one symlink per applet.
func busyboxRoot(t *testing.T, base string) string {
	t.Helper()
	root := busyboxTree(t, filepath.Join(base, "rootfs"),
		"root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n", "root:x:0:\nuser:x:1000:\n",
		"proc", "sys", "dev", "tmp", "root", "home/user", "www")
	os.Chmod(filepath.Join(root, "tmp"), 0o1777)
	return root
}

// busyboxTree writes root: /bin/busybox (Debian's busybox-static) with one
// symlink per applet, /etc/passwd and /etc/group, and the folders dirs.
func busyboxTree(t *testing.T, root, passwd, group string, dirs ...string) string {
	t.Helper()
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("busybox-static is not installed (hack/install-deps.sh installs it)")
	}
	for _, d := range append([]string{"bin", "etc"}, dirs...) {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin/busybox"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bb, "--list").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, applet := range strings.Fields(string(out)) {
		if applet != "busybox" {
			os.Symlink("busybox", filepath.Join(root, "bin", applet))
		}
	}
	os.WriteFile(filepath.Join(root, "etc/passwd"), []byte(passwd), 0o644)
	os.WriteFile(filepath.Join(root, "etc/group"), []byte(group), 0o644)
	return root
}

type fixture struct {
	t    *testing.T
	base string
	rt   *Runtime
	root string
	conn *sd.Conn
}

// newFixture makes a runtime under a short temp dir (unix socket paths are
// limited) and tears down every sandbox, scope, mount and file at the end.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	testnode.RequireRoot(t)
	base, err := os.MkdirTemp("", "mkl-rt-")
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, base: base}
	rt, err := New(Options{RootDir: filepath.Join(base, "root"), LogDir: filepath.Join(base, "logs"), NodeName: "node1"})
	if err != nil {
		t.Fatal(err)
	}
	f.rt = rt
	f.root = busyboxRoot(t, base)
	t.Cleanup(func() {
		ctx := context.Background()
		// Supervisors are this test binary: with -race, their reports land
		// in their logs.
		logs, _ := filepath.Glob(filepath.Join(base, "root/pods/*/sandbox", "supervisor.log"))
		for _, l := range logs {
			if b, _ := os.ReadFile(l); strings.Contains(string(b), "DATA RACE") || strings.Contains(string(b), "panic:") {
				t.Errorf("%s:\n%s", l, b)
			}
		}
		sbs, _ := rt.ListSandboxes(ctx)
		for _, sb := range sbs {
			if err := rt.RemoveSandbox(ctx, sb.PodUID); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
		if f.conn != nil {
			f.conn.Close()
		}
		if m := mountPoints(base); len(m) > 0 {
			t.Errorf("mounts left behind: %v", m)
			unmountUnder(base)
		}
		os.RemoveAll(base)
	})
	return f
}

func testPod(name string, containers ...v1.Container) *v1.Pod {
	uid := types.UID(fmt.Sprintf("%08x-0000-4000-8000-%012x", time.Now().UnixNano()&0xffffffff, time.Now().UnixNano()&0xffffffffffff))
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-node1", Namespace: "default", UID: uid, Labels: map[string]string{"app": name}},
		Spec:       v1.PodSpec{Containers: containers, NodeName: "node1"},
	}
}

func sh(name, script string) v1.Container {
	return v1.Container{Name: name, Command: []string{"sh", "-c", script}}
}

// place puts held PIDs into a fresh transient scope when a real systemd is
// there (the reconciler will use systemd.Driver.StartScope); it returns the
// scope name or "" when no systemd runs (root-only tests).
func (f *fixture) place(ctx context.Context, id string, pids []int) string {
	f.t.Helper()
	if !testnode.Inside() {
		return ""
	}
	if f.conn == nil {
		c, err := sd.NewSystemdConnectionContext(ctx)
		if err != nil {
			f.t.Fatalf("connect to systemd: %v", err)
		}
		f.conn = c
	}
	unit := "mkl-rt-" + id[:12] + ".scope"
	var props []sd.Property
	for _, p := range pids {
		props = append(props, sd.PropPids(uint32(p)))
	}
	done := make(chan string, 1)
	if _, err := f.conn.StartTransientUnitContext(ctx, unit, "fail", props, done); err != nil {
		f.t.Fatalf("start %s: %v", unit, err)
	}
	if r := <-done; r != "done" {
		f.t.Fatalf("start %s: %s", unit, r)
	}
	f.t.Cleanup(func() { f.conn.StopUnitContext(context.Background(), unit, "replace", nil) })
	return unit
}

// run creates and starts every container of pod, placing each.
func (f *fixture) run(ctx context.Context, pod *v1.Pod, mutate func(*ContainerConfig)) (SandboxStatus, map[string]CreatedContainer) {
	f.t.Helper()
	sb, err := f.rt.RunSandbox(ctx, SandboxConfig{Pod: pod, Place: func(ctx context.Context, pids []int) error {
		f.place(ctx, "pause-"+string(pod.UID), pids)
		return nil
	}})
	if err != nil {
		f.t.Fatalf("RunSandbox: %v", err)
	}
	out := map[string]CreatedContainer{}
	for i := range pod.Spec.Containers {
		cfg := ContainerConfig{Pod: pod, Container: &pod.Spec.Containers[i], Rootfs: Rootfs{Path: f.root}}
		if mutate != nil {
			mutate(&cfg)
		}
		cc, err := f.rt.CreateContainer(ctx, cfg)
		if err != nil {
			f.t.Fatalf("CreateContainer %s: %v", cfg.Container.Name, err)
		}
		// Held: still our container init, not the workload, until started.
		time.Sleep(100 * time.Millisecond)
		if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", cc.PID)); !strings.Contains(string(b), "__container-init") {
			f.t.Fatalf("container %s runs %q before it was started", cfg.Container.Name, b)
		}
		f.place(ctx, cc.ID, []int{cc.PID})
		if err := f.rt.StartContainer(ctx, pod.UID, cc.ID); err != nil {
			f.t.Fatalf("StartContainer %s: %v", cfg.Container.Name, err)
		}
		out[cfg.Container.Name] = cc
	}
	return sb, out
}

var criLine = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z (stdout|stderr) (F|P) (.*)$`)

// waitLog polls the container's CRI log until it contains want; it returns
// the log's payload lines (format checked on every line).
func (f *fixture) waitLog(cc CreatedContainer, want string) string {
	f.t.Helper()
	deadline := time.Now().Add(testnode.Scale(15 * time.Second))
	for {
		b, _ := os.ReadFile(cc.LogPath)
		var payload strings.Builder
		for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
			if l == "" {
				continue
			}
			m := criLine.FindStringSubmatch(l)
			if m == nil {
				f.t.Fatalf("%s: not a CRI log line: %q", cc.LogPath, l)
			}
			payload.WriteString(m[4] + "\n")
		}
		if strings.Contains(payload.String(), want) {
			return payload.String()
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("%s: %q not logged within 15s; log:\n%s", cc.LogPath, want, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func nsInode(t *testing.T, pid int, ns string) string {
	t.Helper()
	l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, ns))
	if err != nil {
		t.Fatalf("ns of %d: %v", pid, err)
	}
	return l
}

// workloadPID is the container's PID as the daemon sees it, once it exec'd
// (the container init becomes the workload in place).
func procStatus(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if ok {
			out[k] = strings.TrimSpace(v)
		}
	}
	return out
}

func TestPodSharesNetIPCUTSAndIsolatesMountPID(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	pod := testPod("web",
		sh("server", `echo from-server > /data/msg; cp /data/msg /www/index.html; hostname; exec httpd -f -p 8080 -h /www`),
		sh("client", `for i in $(seq 50); do wget -qO- http://127.0.0.1:8080/ && break; sleep 0.1; done; echo shared=$(cat /data/msg); echo cgroups=$(cut -d: -f3 /proc/self/cgroup | sort -u | xargs); grep ' /sys/fs/cgroup/memory ' /proc/self/mounts | grep -c ' ro,'; echo done; exec sleep 1000`),
	)
	pod.Spec.Volumes = []v1.Volume{{Name: "data", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}},
		{Name: "www", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{Medium: v1.StorageMediumMemory}}}}
	pod.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{{Name: "data", MountPath: "/data"}, {Name: "www", MountPath: "/www"}}
	pod.Spec.Containers[1].VolumeMounts = []v1.VolumeMount{{Name: "data", MountPath: "/data", ReadOnly: true}}
	sb, ccs := f.run(ctx, pod, nil)
	if err := pingSandbox(ctx, f.rt, pod.UID); err != nil || sb.PID == 0 {
		t.Fatalf("sandbox not ready: %+v %v", sb, err)
	}
	server, client := ccs["server"], ccs["client"]
	log := f.waitLog(client, "done")
	if !strings.Contains(log, "from-server\nshared=") {
		t.Errorf("client did not reach the server on localhost; log:\n%s", log)
	}
	// The cgroup namespace is entered after placement, so a workload that
	// sees "/" as its cgroup everywhere was inside its scope from its start.
	if !strings.Contains(log, "cgroups=/\n") {
		t.Errorf("container should see only its own cgroup (/); log:\n%s", log)
	}
	if _, err := os.Stat("/sys/fs/cgroup/memory"); err == nil && !strings.Contains(log, "cgroups=/\n1\n") {
		t.Errorf("/sys/fs/cgroup/memory should be mounted read-only in the container; log:\n%s", log)
	}
	if testnode.Inside() {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", client.PID))
		if !strings.Contains(string(b), "mkl-rt-"+client.ID[:12]+".scope") {
			t.Errorf("client is not in its scope: %s", b)
		}
	}
	if slog := f.waitLog(server, pod.Name); !strings.HasPrefix(slog, pod.Name+"\n") {
		t.Errorf("hostname = %q, want the pod name %s", slog, pod.Name)
	}
	for _, ns := range []string{"net", "ipc", "uts"} {
		p := nsInode(t, sb.PID, ns)
		for name, cc := range ccs {
			if got := nsInode(t, cc.PID, ns); got != p {
				t.Errorf("%s %s ns = %s, pause has %s", name, ns, got, p)
			}
		}
		if self := nsInode(t, os.Getpid(), ns); self == p {
			t.Errorf("pod %s ns is the node's (%s)", ns, p)
		}
	}
	for _, ns := range []string{"mnt", "pid"} {
		seen := map[string]string{"pause": nsInode(t, sb.PID, ns)}
		for name, cc := range ccs {
			got := nsInode(t, cc.PID, ns)
			for other, o := range seen {
				if o == got {
					t.Errorf("%s and %s share the %s namespace %s", name, other, ns, got)
				}
			}
			seen[name] = got
		}
	}
	// Only 0-2 reach the workload, and its cwd is inside its root.
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", client.PID))
	var fds []string
	for _, e := range ents {
		fds = append(fds, e.Name())
	}
	if strings.Join(fds, ",") != "0,1,2" {
		t.Errorf("container fds = %v, want 0,1,2", fds)
	}
	if rss := procStatus(t, sb.PID)["VmRSS"]; rss != "" {
		t.Logf("pod supervisor (pause) VmRSS = %s (this test binary re-executed)", rss)
	}
	// Stop: the exit is recorded with the signal; the pod's state goes away on remove.
	if err := f.rt.StopContainer(ctx, pod.UID, client.ID, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	st, err := f.rt.ContainerStatus(ctx, pod.UID, client.ID)
	if err != nil || st.State != ContainerExited || st.ExitCode != 137 || st.Signal != 9 || st.Reason != "Error" {
		t.Errorf("stopped client status = %+v, %v; want Exited 137 (SIGKILL: sleep as PID 1 ignores SIGTERM)", st, err)
	}
}

func TestSecurityContextAndMasks(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	uid, gid := int64(1000), int64(3000)
	yes, no := true, false
	restricted := sh("restricted", `id; grep -c . /proc/timer_list >&2; grep -E '^(CapEff|CapBnd|NoNewPrivs):' /proc/self/status; touch /rootfs-write 2>/dev/null && echo root=rw || echo root=ro; touch /tmp/x 2>/dev/null && echo tmp=rw || echo tmp=ro; echo timerlist=$(wc -c < /proc/timer_list); echo keys=$(cat /proc/keys | wc -c); echo firmware=$(ls /sys/firmware | wc -l); (echo 1 > /proc/sys/kernel/printk) 2>/dev/null && echo procsys=rw || echo procsys=ro; echo sys=$(touch /sys/x 2>&1 | grep -c Read-only); ls /dev | tr '\n' ' '; echo; exec sleep 1000`)
	restricted.SecurityContext = &v1.SecurityContext{RunAsUser: &uid, RunAsGroup: &gid, ReadOnlyRootFilesystem: &yes,
		AllowPrivilegeEscalation: &no, Capabilities: &v1.Capabilities{Drop: []v1.Capability{"ALL"}, Add: []v1.Capability{"NET_BIND_SERVICE"}}}
	def := sh("default", `id -u; grep -E '^CapEff:' /proc/self/status; touch /rootfs-write && echo root=rw; exec sleep 1000`)
	restricted.Command[2] = `echo made > /scratch/f && stat -c group=%g /scratch/f; ` + restricted.Command[2]
	restricted.VolumeMounts = []v1.VolumeMount{{Name: "scratch", MountPath: "/scratch"}}
	pod := testPod("sec", restricted, def)
	fsGroup := int64(2000)
	pod.Spec.SecurityContext = &v1.PodSecurityContext{SupplementalGroups: []int64{4000}, FSGroup: &fsGroup}
	pod.Spec.Volumes = []v1.Volume{{Name: "scratch", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}}}
	_, ccs := f.run(ctx, pod, nil)
	log := f.waitLog(ccs["restricted"], "tty")
	// The primary gid is among the supplementary groups, as containerd
	// puts it (ensureAdditionalGids).
	for _, want := range []string{"group=2000\n", "uid=1000(user) gid=3000 groups=2000,3000,4000", "CapBnd:\t0000000000000400", "NoNewPrivs:\t1",
		"root=ro", "timerlist=0", "keys=0", "firmware=0", "procsys=ro", "sys=1"} {
		if !strings.Contains(log, want) {
			t.Errorf("restricted container: %q missing from log:\n%s", want, log)
		}
	}
	for _, d := range []string{"null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "mqueue", "ptmx", "fd"} {
		if !regexp.MustCompile(`(^|\s)` + d + `(\s|$)`).MatchString(log) {
			t.Errorf("/dev/%s missing in container; log:\n%s", d, log)
		}
	}
	// A non-root workload keeps no effective capabilities (as with containerd).
	if st := procStatus(t, ccs["restricted"].PID); st["CapEff"] != "0000000000000000" || st["CapBnd"] != "0000000000000400" {
		t.Errorf("restricted CapEff=%s CapBnd=%s", st["CapEff"], st["CapBnd"])
	}
	dlog := f.waitLog(ccs["default"], "root=rw")
	if !strings.Contains(dlog, "0\nCapEff:\t00000000a80425fb\n") {
		t.Errorf("default container: want uid 0 with containerd's 14 capabilities (a80425fb); log:\n%s", dlog)
	}
	// BestEffort containers are the OOM killer's first choice (kubelet's policy).
	if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/oom_score_adj", ccs["default"].PID)); strings.TrimSpace(string(b)) != "1000" {
		t.Errorf("BestEffort container oom_score_adj = %s, want 1000", b)
	}
	if st := procStatus(t, ccs["default"].PID); st["Seccomp"] != "0" || st["NoNewPrivs"] != "0" {
		t.Errorf("default container Seccomp=%s NoNewPrivs=%s, want 0 0 (unconfined is kubelet's default)", st["Seccomp"], st["NoNewPrivs"])
	}
}

func TestShareProcessNamespace(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	pod := testPod("shared",
		sh("sleeper", `exec sleep 1001`),
		sh("watcher", `for i in $(seq 50); do ps -o pid,args | grep -q 'sleep 1001' && break; sleep 0.1; done; ps -o pid,args; exec sleep 1000`))
	share := true
	pod.Spec.ShareProcessNamespace = &share
	sb, ccs := f.run(ctx, pod, nil)
	log := f.waitLog(ccs["watcher"], "sleep 1001")
	if !regexp.MustCompile(`(?m)^\s*1 .*`+regexp.QuoteMeta(os.Args[0])).MatchString(log) && !strings.Contains(log, "    1 ") {
		t.Errorf("PID 1 of the shared namespace should be the pause; ps:\n%s", log)
	}
	if a, b := nsInode(t, ccs["sleeper"].PID, "pid"), nsInode(t, ccs["watcher"].PID, "pid"); a != b || a != nsInode(t, sb.PID, "pid") {
		t.Errorf("containers and pause should share one pid namespace: %s %s", a, b)
	}
	// The pause is not readable through /proc/1/exe from a container.
	cc, err := f.rt.CreateContainer(ctx, ContainerConfig{Pod: pod, Container: &v1.Container{Name: "probe", Command: []string{"sh", "-c", `cat /proc/1/exe >/dev/null 2>&1 && echo exe=readable || echo exe=denied; readlink /proc/1/fd/0 >/dev/null 2>&1 && echo fd=readable || echo fd=denied`}}, Rootfs: Rootfs{Path: f.root}})
	if err != nil {
		t.Fatal(err)
	}
	f.place(ctx, cc.ID, []int{cc.PID})
	if err := f.rt.StartContainer(ctx, pod.UID, cc.ID); err != nil {
		t.Fatal(err)
	}
	if log := f.waitLog(cc, "fd="); !strings.Contains(log, "exe=denied\nfd=denied") {
		t.Errorf("pause's /proc/1/exe or fds reachable from a container (CVE-2019-5736 class):\n%s", log)
	}
}

func TestHostNetwork(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	// A dummy interface only the node's network namespace has.
	if err := exec.Command("ip", "link", "add", "mkltest0", "type", "veth", "peer", "name", "mkltest1").Run(); err != nil {
		t.Skipf("cannot add a dummy interface: %v", err)
	}
	t.Cleanup(func() { exec.Command("ip", "link", "del", "mkltest0").Run() })
	pod := testPod("hostnet", sh("c", `cat /proc/net/dev; hostname; echo done; exec sleep 1000`))
	pod.Spec.HostNetwork = true
	sb, ccs := f.run(ctx, pod, nil)
	log := f.waitLog(ccs["c"], "done")
	if !strings.Contains(log, "mkltest0") {
		t.Errorf("hostNetwork pod does not see the node's interface mkltest0; log:\n%s", log)
	}
	host, _ := os.Hostname()
	if !strings.Contains(log, "\n"+host+"\n") {
		t.Errorf("hostNetwork pod should have the node's hostname %q; log:\n%s", host, log)
	}
	if nsInode(t, ccs["c"].PID, "net") != nsInode(t, os.Getpid(), "net") || nsInode(t, sb.PID, "uts") != nsInode(t, os.Getpid(), "uts") {
		t.Error("hostNetwork pod is not in the node's net/uts namespaces")
	}
	// And a normal pod does not see it.
	pod2 := testPod("podnet", sh("c", `cat /proc/net/dev; echo done; exec sleep 1000`))
	_, ccs2 := f.run(ctx, pod2, nil)
	if log := f.waitLog(ccs2["c"], "done"); strings.Contains(log, "mkltest0") || !strings.Contains(log, "lo:") {
		t.Errorf("pod network namespace should have only lo; log:\n%s", log)
	}
}

func TestStartErrorAndRunAsNonRoot(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	pod := testPod("bad", v1.Container{Name: "missing", Command: []string{"no-such-binary"}})
	yes := true
	pod.Spec.Containers = append(pod.Spec.Containers, v1.Container{Name: "root", Command: []string{"true"}, SecurityContext: &v1.SecurityContext{RunAsNonRoot: &yes}})
	if _, err := f.rt.RunSandbox(ctx, SandboxConfig{Pod: pod}); err != nil {
		t.Fatal(err)
	}
	cc, err := f.rt.CreateContainer(ctx, ContainerConfig{Pod: pod, Container: &pod.Spec.Containers[0], Rootfs: Rootfs{Path: f.root}})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.rt.StartContainer(ctx, pod.UID, cc.ID); err == nil || !strings.Contains(err.Error(), "executable file not found") {
		t.Errorf("start of a missing binary: %v", err)
	}
	st, err := f.rt.WaitContainer(ctx, pod.UID, cc.ID)
	if err != nil || st.Reason != "StartError" || st.ExitCode != 128 || !strings.Contains(st.Message, "no-such-binary") {
		t.Errorf("status = %+v, %v; want StartError 128", st, err)
	}
	_, err = f.rt.CreateContainer(ctx, ContainerConfig{Pod: pod, Container: &pod.Spec.Containers[1], Rootfs: Rootfs{Path: f.root}})
	if err == nil || !strings.Contains(err.Error(), "runAsNonRoot and image will run as root") {
		t.Errorf("runAsNonRoot with uid 0: %v", err)
	}
}

// --- kill -9 of the daemon side ---------------------------------------

const envTestDaemon = "MKL_RT_TEST_DAEMON"

// testDaemonMain is a minimal "daemon": it starts a pod from the JSON plan
// in its env, prints the IDs, and then waits to be killed with SIGKILL.
func testDaemonMain() int {
	var plan struct {
		Root, Logs, Rootfs string
		Pod                v1.Pod
	}
	if err := json.Unmarshal([]byte(os.Getenv(envTestDaemon)), &plan); err != nil {
		fmt.Println("error:", err)
		return 1
	}
	ctx := context.Background()
	rt, err := New(Options{RootDir: plan.Root, LogDir: plan.Logs})
	if err == nil {
		_, err = rt.RunSandbox(ctx, SandboxConfig{Pod: &plan.Pod})
	}
	ids := map[string]string{}
	for i := range plan.Pod.Spec.Containers {
		if err != nil {
			break
		}
		var cc CreatedContainer
		cc, err = rt.CreateContainer(ctx, ContainerConfig{Pod: &plan.Pod, Container: &plan.Pod.Spec.Containers[i], Rootfs: Rootfs{Path: plan.Rootfs}})
		if err == nil {
			err = rt.StartContainer(ctx, plan.Pod.UID, cc.ID)
			ids[plan.Pod.Spec.Containers[i].Name] = cc.ID
		}
	}
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	json.NewEncoder(os.Stdout).Encode(ids)
	select {}
}

func TestDaemonKill9KeepsPodAndExitCodes(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	pod := testPod("survivor",
		sh("long", `echo started; exec sleep 1000`),
		sh("short", `sleep 2; echo bye; exit 7`))
	plan, _ := json.Marshal(map[string]any{"Root": f.rt.opt.RootDir, "Logs": f.rt.opt.LogDir, "Rootfs": f.root, "Pod": pod})
	daemon := exec.Command(os.Args[0])
	daemon.Env = append(os.Environ(), envTestDaemon+"="+string(plan))
	out, err := daemon.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	daemon.Stderr = os.Stderr
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { daemon.Process.Kill(); daemon.Wait() })
	line, _ := bufio.NewReader(out).ReadString('\n')
	var ids map[string]string
	if err := json.Unmarshal([]byte(line), &ids); err != nil {
		t.Fatalf("test daemon: %q", line)
	}
	sbBefore, err := f.rt.SandboxStatus(ctx, pod.UID)
	if err == nil {
		err = pingSandbox(ctx, f.rt, pod.UID)
	}
	if err != nil || sbBefore.PID == 0 {
		t.Fatalf("sandbox before kill: %+v %v", sbBefore, err)
	}
	// kill -9 the daemon while "short" is still running.
	daemon.Process.Signal(syscall.SIGKILL)
	daemon.Wait()
	// "short" exits (code 7) while no daemon runs; a new "daemon" (f.rt)
	// finds the record.
	var short ContainerStatus
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if short, err = f.rt.ContainerStatus(ctx, pod.UID, ids["short"]); err == nil && short.State == ContainerExited {
			break
		}
	}
	sb, err := f.rt.SandboxStatus(ctx, pod.UID)
	if err == nil {
		err = pingSandbox(ctx, f.rt, pod.UID)
	}
	if err != nil || sb.PID != sbBefore.PID {
		t.Fatalf("sandbox after daemon kill: %+v %v (before: pid %d)", sb, err, sbBefore.PID)
	}
	long, err := f.rt.ContainerStatus(ctx, pod.UID, ids["long"])
	if err != nil || long.State != ContainerRunning || !procAlive(long.PID) {
		t.Errorf("long-running container after daemon kill: %+v %v", long, err)
	}
	if short.State != ContainerExited || short.ExitCode != 7 || short.Reason != "Error" || short.FinishedAt.IsZero() || !short.FinishedAt.After(short.StartedAt) {
		t.Errorf("exit while the daemon was dead: %+v %v; want Exited 7 Error", short, err)
	}
	if b, _ := os.ReadFile(short.LogPath); !strings.Contains(string(b), " stdout F bye\n") {
		t.Errorf("log of short: %q", b)
	}
	// The new daemon drives the adopted pod as before.
	if err := f.rt.StopContainer(ctx, pod.UID, ids["long"], time.Second); err != nil {
		t.Fatal(err)
	}
	list, _ := f.rt.ListContainers(ctx, pod.UID)
	if len(list) != 2 {
		t.Errorf("ListContainers = %+v", list)
	}
}

func init() { _ = strconv.Itoa }

func TestSeccompRuntimeDefault(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	// Creating a user namespace needs no capability, so only the filter
	// (which allows unshare only with CAP_SYS_ADMIN) can deny it.
	c := sh("confined", `grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; unshare -U true 2>&1 && echo unshare=allowed || echo unshare=denied; exec sleep 1000`)
	c.SecurityContext = &v1.SecurityContext{SeccompProfile: &v1.SeccompProfile{Type: v1.SeccompProfileTypeRuntimeDefault}}
	nnp := sh("confined-nnp", `grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; echo ok; exec sleep 1000`)
	no := false
	nnp.SecurityContext = &v1.SecurityContext{SeccompProfile: &v1.SeccompProfile{Type: v1.SeccompProfileTypeRuntimeDefault}, AllowPrivilegeEscalation: &no}
	free := sh("unconfined", `unshare -U true 2>&1 && echo unshare=allowed || echo unshare=denied; exec sleep 1000`)
	pod := testPod("seccomp", c, nnp, free)
	_, ccs := f.run(ctx, pod, nil)
	log := f.waitLog(ccs["confined"], "unshare=")
	if !strings.Contains(log, "Seccomp:\t2") || !strings.Contains(log, "unshare=denied") {
		t.Errorf("RuntimeDefault: want Seccomp 2 (filter) and unshare denied; log:\n%s", log)
	}
	if st := procStatus(t, ccs["confined"].PID); st["Seccomp"] != "2" {
		t.Errorf("confined workload Seccomp = %s", st["Seccomp"])
	}
	if log := f.waitLog(ccs["confined-nnp"], "ok"); !strings.Contains(log, "NoNewPrivs:\t1\nSeccomp:\t2") {
		t.Errorf("RuntimeDefault with no_new_privs; log:\n%s", log)
	}
	// Unconfined: unshare -U (user namespaces need no capability) works.
	if log := f.waitLog(ccs["unconfined"], "unshare="); !strings.Contains(log, "unshare=allowed") {
		t.Errorf("unconfined container could not unshare a user namespace; log:\n%s", log)
	}
}

func TestVolumesAndEscapes(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	hostDir := filepath.Join(f.base, "hostdir")
	os.MkdirAll(hostDir, 0o755)
	os.WriteFile(filepath.Join(hostDir, "hostfile"), []byte("from-host\n"), 0o644)
	// A symlink in the image pointing far out: a mount below it must land
	// inside the root, never on the host path.
	outside := filepath.Join(f.base, "outside")
	os.MkdirAll(outside, 0o755)
	if err := os.Symlink("../../../../../../../../.."+outside, filepath.Join(f.root, "escape")); err != nil {
		t.Fatal(err)
	}
	// The same path inside the root exists, so the mount has a legitimate
	// place to land (a dangling one is refused by pathrs-lite).
	os.MkdirAll(filepath.Join(f.root, outside), 0o755)
	ty := v1.HostPathFileOrCreate
	c := sh("c", `cat /host/hostfile; touch /host/x 2>/dev/null && echo host=rw || echo host=ro; echo sub > /sub/file; ls /evil | wc -l | sed 's/^/evil-entries=/'; ls /escape/x >/dev/null && echo escape-mounted; ls -la /created; echo cwd=$(pwd); echo done; exec sleep 1000`)
	c.WorkingDir = "/work/dir"
	c.VolumeMounts = []v1.VolumeMount{
		{Name: "host", MountPath: "/host", ReadOnly: true},
		{Name: "scratch", MountPath: "/sub", SubPath: "sub/dir"},
		{Name: "scratch", MountPath: "/evil", SubPath: "evil/etc"},
		{Name: "scratch", MountPath: "/escape/x"},
		{Name: "created", MountPath: "/created"},
	}
	pod := testPod("vols", c)
	pod.Spec.Volumes = []v1.Volume{
		{Name: "host", VolumeSource: v1.VolumeSource{HostPath: &v1.HostPathVolumeSource{Path: hostDir}}},
		{Name: "scratch", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}},
		{Name: "created", VolumeSource: v1.VolumeSource{HostPath: &v1.HostPathVolumeSource{Path: filepath.Join(hostDir, "made/file"), Type: &ty}}},
	}
	if _, err := f.rt.RunSandbox(ctx, SandboxConfig{Pod: pod}); err != nil {
		t.Fatal(err)
	}
	// The emptyDir holds a symlink to the host's root: subPath must not follow it out.
	scratch := f.rt.emptyDirPath(pod, "scratch")
	if st, err := os.Stat(scratch); err != nil || st.Mode().Perm() != 0o777 {
		t.Fatalf("emptyDir %s: %v %v, want mode 0777", scratch, st.Mode(), err)
	}
	os.Symlink("/", filepath.Join(scratch, "evil"))
	cc, err := f.rt.CreateContainer(ctx, ContainerConfig{Pod: pod, Container: &pod.Spec.Containers[0], Rootfs: Rootfs{Path: f.root}})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.rt.StartContainer(ctx, pod.UID, cc.ID); err != nil {
		t.Fatal(err)
	}
	log := f.waitLog(cc, "done")
	for _, want := range []string{"from-host\nhost=ro\n", "evil-entries=0\n", "escape-mounted\n", "cwd=/work/dir\n"} {
		if !strings.Contains(log, want) {
			t.Errorf("%q missing; log:\n%s", want, log)
		}
	}
	escapeOutcome(t, "subpath-symlink", "subPath evil/etc where evil is a symlink to / in the emptyDir", !strings.Contains(log, "evil-entries=0\n"), "resolved inside the volume: an empty evil/etc")
	if b, err := os.ReadFile(filepath.Join(scratch, "sub/dir/file")); err != nil || string(b) != "sub\n" {
		t.Errorf("subPath write not in the emptyDir: %q %v", b, err)
	}
	ents, _ := os.ReadDir(outside)
	escapeOutcome(t, "mount-target-symlink", "a volume mounted below an image symlink that points out of the root", len(ents) != 0, fmt.Sprintf("%s on the node has %d entries", outside, len(ents)))
	if _, err := os.Stat(filepath.Join(f.root, outside, "x")); err != nil {
		t.Errorf("mount target below the symlink should be inside the root: %v", err)
	}
	if st, err := os.Stat(filepath.Join(hostDir, "made/file")); err != nil || !st.Mode().IsRegular() {
		t.Errorf("hostPath FileOrCreate: %v", err)
	}
	// CVE-2024-21626: a working directory through a leaked fd never leads out.
	bad := v1.Container{Name: "fdcwd", Command: []string{"pwd"}, WorkingDir: "/proc/self/fd/5"}
	// The init makes the working directory with the other mount targets,
	// before the root may turn read-only (as runc does): refused at create.
	_, err = f.rt.CreateContainer(ctx, ContainerConfig{Pod: pod, Container: &bad, Rootfs: Rootfs{Path: f.root}})
	if err == nil || !strings.Contains(err.Error(), "working directory") {
		t.Errorf("workingDir /proc/self/fd/5: create error = %v, want a working directory error", err)
	} else {
		escapeOutcome(t, "leaked-fd-cwd", "workingDir /proc/self/fd/5 (CVE-2024-21626)", false, err.Error())
	}
	// A volume that is not a directory or file the kubelet allows: refused early.
	sock := v1.HostPathSocket
	pod2 := testPod("badvol", sh("c", "true"))
	pod2.Spec.Volumes = []v1.Volume{{Name: "s", VolumeSource: v1.VolumeSource{HostPath: &v1.HostPathVolumeSource{Path: hostDir, Type: &sock}}}}
	if _, err := f.rt.RunSandbox(ctx, SandboxConfig{Pod: pod2}); err == nil || !strings.Contains(err.Error(), "volume s") {
		t.Errorf("hostPath Socket on a directory: %v", err)
	}
}

func TestPrivileged(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	yes := true
	c := sh("priv", `grep -E '^CapEff:' /proc/self/status; echo timerlist=$(wc -c < /proc/timer_list); grep ' /sys sysfs ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1 | sed 's/^/sys=/'; echo devs=$(ls /dev | wc -l); exec sleep 1000`)
	c.SecurityContext = &v1.SecurityContext{Privileged: &yes}
	pod := testPod("priv", c)
	_, ccs := f.run(ctx, pod, nil)
	log := f.waitLog(ccs["priv"], "devs=")
	self := procStatus(t, os.Getpid())["CapBnd"]
	if !strings.Contains(log, "CapEff:\t"+self) || !strings.Contains(log, "sys=rw") || strings.Contains(log, "timerlist=0\n") {
		t.Errorf("privileged: want CapEff %s (the node's bounding set), /sys rw, no masks; log:\n%s", self, log)
	}
	hostDevs, _ := os.ReadDir("/dev")
	if !strings.Contains(log, fmt.Sprintf("devs=%d\n", len(hostDevs))) {
		t.Errorf("privileged container should see the host's %d /dev entries; log:\n%s", len(hostDevs), log)
	}
}

func TestEtcFilesTerminationMessageDownwardAPI(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	pod := testPod("files",
		sh("writer", `echo "bye from writer" > /dev/termination-log; exit 3`),
		sh("fallback", `echo first; echo last words; exit 4`),
		sh("reader", `cat /etc/hosts /etc/hostname /etc/resolv.conf; echo; cat /podinfo/labels; echo; cat /podinfo/name; echo; echo done; exec sleep 1000`))
	pod.Spec.Containers[1].TerminationMessagePolicy = v1.TerminationMessageFallbackToLogsOnError
	pod.Spec.Hostname, pod.Spec.Subdomain = "web-0", "web"
	pod.Spec.HostAliases = []v1.HostAlias{{IP: "192.0.2.7", Hostnames: []string{"alias.example", "alias2"}}}
	pod.Spec.DNSPolicy = v1.DNSNone
	pod.Spec.DNSConfig = &v1.PodDNSConfig{Nameservers: []string{"192.0.2.53"}}
	pod.Spec.Volumes = []v1.Volume{{Name: "podinfo", VolumeSource: v1.VolumeSource{DownwardAPI: &v1.DownwardAPIVolumeSource{Items: []v1.DownwardAPIVolumeFile{
		{Path: "labels", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.labels"}},
		{Path: "name", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.name"}},
	}}}}}
	pod.Spec.Containers[2].VolumeMounts = []v1.VolumeMount{{Name: "podinfo", MountPath: "/podinfo"}}
	if _, err := f.rt.RunSandbox(ctx, SandboxConfig{Pod: pod}); err != nil {
		t.Fatal(err)
	}
	if err := f.rt.SetPodIP(pod, "10.1.2.3"); err != nil {
		t.Fatal(err)
	}
	// The network namespace is pinned for CNI, beyond the pause's life.
	sb, _ := f.rt.SandboxStatus(ctx, pod.UID)
	var pinned, live syscall.Stat_t
	if err := syscall.Stat(sb.NetNSPath, &pinned); err != nil || syscall.Stat(fmt.Sprintf("/proc/%d/ns/net", sb.PID), &live) != nil || pinned.Ino != live.Ino {
		t.Errorf("NetNSPath %q is not the pod's network namespace: %v", sb.NetNSPath, err)
	}
	ids := map[string]string{}
	for i := range pod.Spec.Containers {
		cc, err := f.rt.CreateContainer(ctx, ContainerConfig{Pod: pod, Container: &pod.Spec.Containers[i], Rootfs: Rootfs{Path: f.root}})
		if err != nil {
			t.Fatal(err)
		}
		if err := f.rt.StartContainer(ctx, pod.UID, cc.ID); err != nil {
			t.Fatal(err)
		}
		ids[pod.Spec.Containers[i].Name] = cc.ID
		if i == 2 {
			log := f.waitLog(cc, "done")
			for _, want := range []string{"10.1.2.3\tweb-0.web.default.svc.cluster.local\tweb-0\n", "192.0.2.7\talias.example\talias2\n",
				"\nweb-0\n", "nameserver 192.0.2.53\n", `app="files"`, "\nfiles-node1\n"} {
				if !strings.Contains(log, want) {
					t.Errorf("%q missing from the reader's view; log:\n%s", want, log)
				}
			}
		}
	}
	st, err := f.rt.WaitContainer(ctx, pod.UID, ids["writer"])
	if err != nil || st.ExitCode != 3 || st.Reason != "Error" || st.Message != "bye from writer\n" {
		t.Errorf("writer: %+v %v; want exit 3 with its termination message", st, err)
	}
	st, err = f.rt.WaitContainer(ctx, pod.UID, ids["fallback"])
	if err != nil || st.ExitCode != 4 || st.Message != "first\nlast words" {
		t.Errorf("fallback: %+v %v; want the log tail as message", st, err)
	}
}

// "If pause dies, the pod dies": the containers go with the supervisor, and
// what was not recorded reads as Unknown.
func TestPauseDeathKillsContainers(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for _, shared := range []bool{false, true} {
		pod := testPod(fmt.Sprintf("mortal%v", shared), sh("c", `exec sleep 1000`))
		pod.Spec.ShareProcessNamespace = &shared
		sb, ccs := f.run(ctx, pod, nil)
		pid := ccs["c"].PID
		syscall.Kill(sb.PID, syscall.SIGKILL)
		deadline := time.Now().Add(10 * time.Second)
		for procAlive(pid) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if procAlive(pid) {
			t.Errorf("shared=%v: container %d survived its pause", shared, pid)
		}
		// The container can be gone while the pause is still in its exit
		// path (signals to children go out before it becomes a zombie).
		st, _ := f.rt.SandboxStatus(ctx, pod.UID)
		for st.PID != 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
			st, _ = f.rt.SandboxStatus(ctx, pod.UID)
		}
		if st.PID != 0 {
			t.Errorf("shared=%v: sandbox still reported alive: %+v", shared, st)
		}
		// The pinned network namespace outlives the pause, for CNI DEL.
		if st.NetNSPath == "" || st.NetNSPath != sb.NetNSPath {
			t.Errorf("shared=%v: NetNSPath after the pause's death = %q, want %q", shared, st.NetNSPath, sb.NetNSPath)
		}
		if st, err := f.rt.ContainerStatus(ctx, pod.UID, ccs["c"].ID); err != nil || st.State != ContainerUnknown {
			t.Errorf("shared=%v: container status after pause death = %+v %v, want Unknown", shared, st, err)
		}
	}
}

// TestAppArmorConfinesWorkloadAndExec: where the host has AppArmor (the
// field host, a Debian 12 guest; not the lab host), an unprivileged
// container's workload and a command exec'd into it run under containerd's
// default profile, in enforce mode, and an Unconfined container does not.
func TestAppArmorConfinesWorkloadAndExec(t *testing.T) {
	if !appArmorHost.enabled() {
		t.Skip("the kernel has no AppArmor here (it runs on the field host)")
	}
	f := newFixture(t)
	ctx := context.Background()
	confined := sh("c", `cat /proc/self/attr/current; echo; exec sleep 1000`)
	free := sh("u", `cat /proc/self/attr/current; echo; exec sleep 1000`)
	free.SecurityContext = &v1.SecurityContext{AppArmorProfile: &v1.AppArmorProfile{Type: v1.AppArmorProfileTypeUnconfined}}
	pod := testPod("aa", confined, free)
	_, ccs := f.run(ctx, pod, nil)
	want := AppArmorDefaultProfile + " (enforce)"
	if got := f.waitLog(ccs["c"], want); !strings.Contains(got, want) {
		t.Errorf("workload label %q, want %q", got, want)
	}
	if got := f.waitLog(ccs["u"], "unconfined"); !strings.Contains(got, "unconfined") {
		t.Errorf("Unconfined workload label %q", got)
	}
	var out, errb strings.Builder
	code, err := f.rt.Exec(ctx, pod.UID, ccs["c"].ID, ExecConfig{Cmd: []string{"cat", "/proc/self/attr/current"}, Stdout: &out, Stderr: &errb})
	if err != nil || code != 0 || !strings.Contains(out.String(), want) {
		t.Errorf("exec label %q (code %d, %v, stderr %q), want %q", out.String(), code, err, errb.String(), want)
	}
}

func TestExecEntersTheContainer(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for _, shared := range []bool{false, true} {
		uid := int64(1000)
		no := false
		c := sh("app", `echo hello > /data/greeting; exec sleep 1000`)
		c.SecurityContext = &v1.SecurityContext{RunAsUser: &uid, AllowPrivilegeEscalation: &no,
			SeccompProfile: &v1.SeccompProfile{Type: v1.SeccompProfileTypeRuntimeDefault}}
		c.VolumeMounts = []v1.VolumeMount{{Name: "data", MountPath: "/data"}}
		pod := testPod(fmt.Sprintf("exec%v", shared), c)
		pod.Spec.ShareProcessNamespace = &shared
		pod.Spec.Volumes = []v1.Volume{{Name: "data", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}}}
		_, ccs := f.run(ctx, pod, nil)
		cc := ccs["app"]
		f.waitLog(cc, "") // started
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if _, err := os.Stat(filepath.Join(f.rt.emptyDirPath(pod, "data"), "greeting")); err == nil {
				break
			}
		}
		var out, errb strings.Builder
		code, err := f.rt.Exec(ctx, pod.UID, cc.ID, ExecConfig{
			Cmd:    []string{"sh", "-c", `echo host=$HOSTNAME; id -u; grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status; cat /data/greeting; for n in mnt pid net; do readlink /proc/self/ns/$n; done; cut -d: -f3 /proc/self/cgroup | sort -u | xargs; exit 5`},
			Stdout: &out, Stderr: &errb})
		if err != nil || code != 5 {
			t.Fatalf("shared=%v: exec = %d, %v; stderr: %s", shared, code, err, errb.String())
		}
		want := []string{"host=" + pod.Name + "\n", "\n1000\n", "CapEff:\t0000000000000000", "NoNewPrivs:\t1", "Seccomp:\t2", "hello\n",
			nsInode(t, cc.PID, "mnt") + "\n" + nsInode(t, cc.PID, "pid") + "\n" + nsInode(t, cc.PID, "net") + "\n", "\n/\n"}
		for _, w := range want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("shared=%v: exec output lacks %q:\n%s", shared, w, out.String())
			}
		}
		errb.Reset()
		code, err = f.rt.Exec(ctx, pod.UID, cc.ID, ExecConfig{Cmd: []string{"no-such-command"}, Stderr: &errb})
		if err != nil || code != 126 || !strings.Contains(errb.String(), "executable file not found") {
			t.Errorf("shared=%v: exec of a missing command = %d, %v, %q", shared, code, err, errb.String())
		}
		// stdin reaches the command.
		out.Reset()
		if code, err := f.rt.Exec(ctx, pod.UID, cc.ID, ExecConfig{Cmd: []string{"cat"}, Stdin: strings.NewReader("piped\n"), Stdout: &out}); err != nil || code != 0 || out.String() != "piped\n" {
			t.Errorf("shared=%v: exec with stdin = %d %v %q", shared, code, err, out.String())
		}
	}
}

// The images store mounts an overlay in the container's directory before
// CreateContainer; this stands in for it with an overlay made here.
func TestOverlayRootInContainerDir(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	pod := testPod("overlay", sh("c", `echo written > /newfile; rm /bin/tail; echo done; exec sleep 1000`))
	if _, err := f.rt.RunSandbox(ctx, SandboxConfig{Pod: pod}); err != nil {
		t.Fatal(err)
	}
	id := NewContainerID()
	dir := f.rt.ContainerDir(pod.UID, id)
	for _, d := range []string{"upper", "work", "rootfs"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	rootfs := filepath.Join(dir, "rootfs")
	if err := syscall.Mount("overlay", rootfs, "overlay", 0, fmt.Sprintf("lowerdir=%s,upperdir=%s/upper,workdir=%s/work", f.root, dir, dir)); err != nil {
		t.Skipf("overlayfs: %v", err)
	}
	cc, err := f.rt.CreateContainer(ctx, ContainerConfig{ID: id, Pod: pod, Container: &pod.Spec.Containers[0], Rootfs: Rootfs{Path: rootfs}})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.rt.StartContainer(ctx, pod.UID, cc.ID); err != nil {
		t.Fatal(err)
	}
	f.waitLog(cc, "done")
	if b, err := os.ReadFile(filepath.Join(dir, "upper/newfile")); err != nil || string(b) != "written\n" {
		t.Errorf("write did not land in the upper layer: %q %v", b, err)
	}
	if _, err := os.Lstat(filepath.Join(f.root, "bin/tail")); err != nil {
		t.Errorf("a delete in the container reached the lower layer: %v", err)
	}
	if err := f.rt.StopContainer(ctx, pod.UID, cc.ID, time.Second); err != nil {
		t.Fatal(err)
	}
	if err := f.rt.RemoveContainer(ctx, pod.UID, cc.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("container dir left: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(f.root, "bin/busybox")); err != nil {
		t.Errorf("removing the container harmed the lower layer: %v", err)
	}
}

func TestHostIPCAndHostPID(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	pod := testPod("hostns", sh("c", fmt.Sprintf(`test -d /proc/%d && echo sees-node-pid; echo shm=$(stat -c %%i /dev/shm); echo done; exec sleep 1000`, os.Getpid())))
	pod.Spec.HostIPC, pod.Spec.HostPID = true, true
	sb, ccs := f.run(ctx, pod, nil)
	pid := ccs["c"].PID
	for _, ns := range []string{"ipc", "pid"} {
		if nsInode(t, pid, ns) != nsInode(t, os.Getpid(), ns) || nsInode(t, sb.PID, ns) != nsInode(t, os.Getpid(), ns) {
			t.Errorf("host%s pod is not in the node's %s namespace", strings.ToUpper(ns), ns)
		}
	}
	if nsInode(t, pid, "net") == nsInode(t, os.Getpid(), "net") {
		t.Error("hostIPC/hostPID pod should still have its own network namespace")
	}
	var st syscall.Stat_t
	syscall.Stat("/dev/shm", &st)
	log := f.waitLog(ccs["c"], "done")
	if !strings.Contains(log, "sees-node-pid") || !strings.Contains(log, fmt.Sprintf("shm=%d\n", st.Ino)) {
		t.Errorf("hostPID should show the node's processes and hostIPC the node's /dev/shm (inode %d); log:\n%s", st.Ino, log)
	}
	if mounted(filepath.Join(f.rt.PodDir(pod.UID), "shm")) {
		t.Error("hostIPC pod should not get a /dev/shm tmpfs of its own")
	}
}

func TestSysctls(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	node, _ := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start")
	pod := testPod("sysctl", sh("c", `cat /proc/sys/net/ipv4/ip_unprivileged_port_start /proc/sys/kernel/shm_rmid_forced; echo done; exec sleep 1000`))
	pod.Spec.SecurityContext = &v1.PodSecurityContext{Sysctls: []v1.Sysctl{{Name: "net.ipv4.ip_unprivileged_port_start", Value: "0"}, {Name: "kernel.shm_rmid_forced", Value: "1"}}}
	_, ccs := f.run(ctx, pod, nil)
	if log := f.waitLog(ccs["c"], "done"); log != "0\n1\ndone\n" {
		t.Errorf("pod sysctls not applied; log:\n%s", log)
	}
	if after, _ := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start"); string(after) != string(node) {
		t.Errorf("the node's sysctl changed: %q -> %q", node, after)
	}
	bad := testPod("badsysctl", sh("c", "true"))
	bad.Spec.SecurityContext = &v1.PodSecurityContext{Sysctls: []v1.Sysctl{{Name: "kernel.panic", Value: "1"}}}
	if _, err := f.rt.RunSandbox(ctx, SandboxConfig{Pod: bad}); err == nil || !strings.Contains(err.Error(), "kernel.panic") {
		t.Errorf("unsafe sysctl accepted: %v", err)
	}
}

// Masking binds /dev/null over files: a /dev/null that is not the null
// device (here a volume mounted on it) must stop the container, not mask
// with the wrong file (the "masked paths swapped" class).
func TestEscapeMaskingRefusesAFakeDevNull(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	fake := filepath.Join(f.base, "fake-null")
	os.WriteFile(fake, []byte("not null"), 0o644)
	c := sh("c", "true")
	c.VolumeMounts = []v1.VolumeMount{{Name: "fake", MountPath: "/dev/null"}}
	pod := testPod("fakenull", c)
	pod.Spec.Volumes = []v1.Volume{{Name: "fake", VolumeSource: v1.VolumeSource{HostPath: &v1.HostPathVolumeSource{Path: fake}}}}
	if _, err := f.rt.RunSandbox(ctx, SandboxConfig{Pod: pod}); err != nil {
		t.Fatal(err)
	}
	_, err := f.rt.CreateContainer(ctx, ContainerConfig{Pod: pod, Container: &pod.Spec.Containers[0], Rootfs: Rootfs{Path: f.root}})
	if err == nil || !strings.Contains(err.Error(), "not the null device") {
		t.Errorf("create with a fake /dev/null: %v", err)
	} else {
		escapeOutcome(t, "fake-dev-null", "a volume on /dev/null so that masking binds a file of the pod's choice", false, err.Error())
	}
	if b, _ := os.ReadFile(fake); string(b) != "not null" {
		t.Errorf("the fake /dev/null was changed: %q", b)
	}
}

func TestExecWithTTY(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	pod := testPod("exectty", sh("app", `exec sleep 1000`))
	_, ccs := f.run(ctx, pod, nil)
	resize := make(chan WindowSize, 1)
	resize <- WindowSize{Rows: 33, Cols: 111}
	var out strings.Builder
	inR, inW, _ := os.Pipe()
	go func() {
		time.Sleep(300 * time.Millisecond)
		inW.WriteString("typed\n")
		time.Sleep(200 * time.Millisecond)
		inW.Close()
	}()
	code, err := f.rt.Exec(ctx, pod.UID, ccs["app"].ID, ExecConfig{
		Cmd: []string{"sh", "-c", `test -t 0 && test -t 1 && echo is-a-tty; stty size; read line; echo got=$line`},
		TTY: true, Stdin: inR, Stdout: &out, Resize: resize})
	close(resize)
	got := strings.ReplaceAll(out.String(), "\r\n", "\n")
	if err != nil || code != 0 || !strings.Contains(got, "is-a-tty\n33 111\n") || !strings.Contains(got, "got=typed\n") {
		t.Errorf("exec -t = %d, %v, output %q", code, err, got)
	}
}

func TestStdinAndTTYContainers(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	piped := sh("piped", `test -t 0 || echo stdin-is-a-pipe; exec cat`)
	piped.Stdin = true
	term := sh("term", `test -t 0 && test -t 1 && echo tty-ok; exec cat`)
	term.Stdin, term.TTY = true, true
	closed := sh("closed", `cat; echo eof-at-once`)
	pod := testPod("stdio", piped, term, closed)
	_, ccs := f.run(ctx, pod, nil)
	f.waitLog(ccs["piped"], "stdin-is-a-pipe")
	f.waitLog(ccs["term"], "tty-ok")
	f.waitLog(ccs["closed"], "eof-at-once")
	time.Sleep(300 * time.Millisecond)
	for _, name := range []string{"piped", "term"} {
		if st, err := f.rt.ContainerStatus(ctx, pod.UID, ccs[name].ID); err != nil || st.State != ContainerRunning {
			t.Errorf("%s: a container with stdin open should keep waiting on it: %+v %v", name, st, err)
		}
	}
	if b, _ := os.ReadFile(ccs["term"].LogPath); !strings.Contains(string(b), " stdout ") || strings.Contains(string(b), " stderr ") {
		t.Errorf("tty output should be logged as stdout only: %q", b)
	}
}

func TestAttach(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	piped := sh("piped", `while read line; do echo "echo:$line"; done; echo stdin-closed`)
	piped.Stdin, piped.StdinOnce = true, true
	term := sh("term", `echo waiting; read line; echo "term:$line"; stty size; exec sleep 1000`)
	term.Stdin, term.TTY = true, true
	plain := sh("plain", `exec sleep 1000`)
	pod := testPod("attach", piped, term, plain)
	_, ccs := f.run(ctx, pod, nil)
	if err := f.rt.Attach(ctx, pod.UID, ccs["piped"].ID, strings.NewReader("one\ntwo\n")); err != nil {
		t.Fatal(err)
	}
	// stdinOnce: the first attach's end closes the container's stdin.
	if log := f.waitLog(ccs["piped"], "stdin-closed"); log != "echo:one\necho:two\nstdin-closed\n" {
		t.Errorf("piped log:\n%s", log)
	}
	f.waitLog(ccs["term"], "waiting")
	if err := f.rt.ResizeTerminal(ctx, pod.UID, ccs["term"].ID, WindowSize{Rows: 40, Cols: 100}); err != nil {
		t.Fatal(err)
	}
	if err := f.rt.Attach(ctx, pod.UID, ccs["term"].ID, strings.NewReader("hello\n")); err != nil {
		t.Fatal(err)
	}
	if log := f.waitLog(ccs["term"], "40 100"); !strings.Contains(log, "term:hello") {
		t.Errorf("term log:\n%s", log)
	}
	if err := f.rt.Attach(ctx, pod.UID, ccs["plain"].ID, strings.NewReader("x")); err == nil || !strings.Contains(err.Error(), "no stdin") {
		t.Errorf("attach to a container without stdin: %v", err)
	}
}

func TestPlacementFailureLeavesNothing(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	pod := testPod("unplaced", sh("c", "true"))
	var placed []int
	_, err := f.rt.RunSandbox(ctx, SandboxConfig{Pod: pod, Place: func(ctx context.Context, pids []int) error {
		placed = pids
		return fmt.Errorf("no scope for you")
	}})
	if err == nil || !strings.Contains(err.Error(), "no scope for you") {
		t.Fatalf("RunSandbox with a failing Place: %v", err)
	}
	if len(placed) != 1 || procAlive(placed[0]) {
		t.Errorf("the unplaced pause %v still runs", placed)
	}
	if _, err := os.Stat(f.rt.PodDir(pod.UID)); !os.IsNotExist(err) {
		t.Errorf("pod dir left behind: %v", err)
	}
}

func TestMountPropagationHostToContainer(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	src := filepath.Join(f.base, "shared-src")
	os.MkdirAll(src, 0o755)
	// Kubernetes expects the kubelet's folders on a shared mount.
	if err := syscall.Mount(src, src, "", syscall.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unmountUnder(src) }) // runs before the fixture's check
	if err := syscall.Mount("", src, "", syscall.MS_SHARED, ""); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"a", "b"} {
		os.MkdirAll(filepath.Join(src, d), 0o755)
	}
	h2c := v1.MountPropagationHostToContainer
	c := sh("c", `for i in $(seq 100); do test -e /h2c/a/marker && echo h2c-sees-it && break; sleep 0.1; done; test -e /none/b/marker && echo none-sees-it || echo none-blind; echo done; exec sleep 1000`)
	c.VolumeMounts = []v1.VolumeMount{{Name: "src", MountPath: "/h2c", MountPropagation: &h2c}, {Name: "src", MountPath: "/none"}}
	pod := testPod("propagation", c)
	pod.Spec.Volumes = []v1.Volume{{Name: "src", VolumeSource: v1.VolumeSource{HostPath: &v1.HostPathVolumeSource{Path: src}}}}
	_, ccs := f.run(ctx, pod, nil)
	time.Sleep(200 * time.Millisecond)
	// A mount made on the node after the container started.
	for _, d := range []string{"a", "b"} {
		p := filepath.Join(src, d)
		if err := syscall.Mount("tmpfs", p, "tmpfs", 0, "size=1m"); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(p, "marker"), nil, 0o644)
	}
	log := f.waitLog(ccs["c"], "done")
	if !strings.Contains(log, "h2c-sees-it") || !strings.Contains(log, "none-blind") {
		t.Errorf("HostToContainer should see the node's new mount, None should not; log:\n%s", log)
	}
	bi := v1.MountPropagationBidirectional
	c2 := sh("c2", "true")
	c2.VolumeMounts = []v1.VolumeMount{{Name: "src", MountPath: "/bi", MountPropagation: &bi}}
	if _, err := f.rt.CreateContainer(ctx, ContainerConfig{Pod: pod, Container: &c2, Rootfs: Rootfs{Path: f.root}}); err == nil || !strings.Contains(err.Error(), "privileged") {
		t.Errorf("Bidirectional in an unprivileged container: %v", err)
	}
}
