//go:build fieldtest

package fieldtest

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/minikubelet/minikubelet/internal/e2enode"
)

// The boot-1 tests run in source order and build on each other: the service
// installed by TestBoot1Install serves the rest; TestBoot1Reboot ends the boot.

var installed bool

func needInstalled(t *testing.T) {
	t.Helper()
	if !installed {
		t.Fatal("minikubelet.service was not installed (TestBoot1Install failed)")
	}
	t.Cleanup(func() { journal(t) })
}

// pod1 is a pod manifest. hostNetwork: the CNI path has its own tests
// (runtime/network, internal/daemon, also run in the guest); here a CNI ADD
// under emulation on a loaded host took minutes and held up every other check.
func pod1(name, spec string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\n  namespace: default\nspec:\n  hostNetwork: true\n  terminationGracePeriodSeconds: 3\n%s", name, spec)
}

func ctr(name, command, resources string) string {
	s := fmt.Sprintf("  - name: %s\n    image: %s\n    command: [\"sh\", \"-c\", %q]\n", name, image, command)
	if resources != "" {
		s += "    resources:\n" + resources
	}
	return s
}

// The static pods of the field: one per QoS class, and helpers for the
// restart, device, OOM and shutdown checks.
var fieldPods = map[string]string{
	"gu.yaml": pod1("gu", "  containers:\n"+ctr("main", "exec sleep 1000000",
		"      requests: {cpu: 250m, memory: 64Mi}\n      limits: {cpu: 250m, memory: 64Mi}\n")),
	"bu.yaml": pod1("bu", "  containers:\n"+ctr("main", "exec sleep 1000000",
		"      requests: {cpu: 100m, memory: 32Mi}\n      limits: {cpu: 500m, memory: 96Mi}\n")),
	"be.yaml": pod1("be", "  containers:\n"+ctr("main", "exec sleep 1000000", "")),
	// waiter exits 7 whenever /var/lib/mkl-fieldtest/waiter/stop appears.
	"waiter.yaml": pod1("waiter", "  volumes:\n  - name: host\n    hostPath: {path: "+stateDir+"/waiter, type: DirectoryOrCreate}\n  containers:\n"+
		ctr("main", "while [ ! -e /host/stop ]; do sleep 0.3; done; rm /host/stop; exit 7", "")+
		"    volumeMounts:\n    - {name: host, mountPath: /host}\n"),
}

func TestBoot1Install(t *testing.T) {
	t.Cleanup(func() { journal(t) })
	// A persistent journal, so boot 2 can show what the daemon said while
	// the guest went down (Debian keeps it in /run unless /var/log/journal
	// exists).
	os.MkdirAll("/var/log/journal", 0o755)
	run(t, "systemd-tmpfiles", "--create", "--prefix", "/var/log/journal")
	run(t, "journalctl", "--flush")
	// As a user would: make install (the binaries were built on the host,
	// where the Go toolchain is: -o build uses them as they are).
	out := run(t, "make", "-C", repo(t), "-o", "build", "install")
	t.Logf("make install:\n%s", out)
	for _, f := range []string{bin, "/usr/local/bin/minikubelet-shim", "/etc/systemd/system/" + service} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("make install did not install %s: %v", f, err)
		}
	}
	importImage(t)
	for f, body := range fieldPods {
		writeManifest(t, f, body)
	}
	run(t, "systemctl", "daemon-reload")
	// Type=notify: enable --now returns once the daemon sent READY=1.
	run(t, "systemctl", "enable", "--now", service)
	p := show(t, service, "ActiveState", "SubState", "Type", "MainPID", "UnitFileState")
	if p["ActiveState"] != "active" || p["Type"] != "notify" || p["UnitFileState"] != "enabled" {
		t.Fatalf("after enable --now: %v", p)
	}
	installed = true
	for _, name := range []string{"gu", "bu", "be", "waiter"} {
		waitPod(t, name+"-vm", "Running", 3*time.Minute, running)
	}
}

// TestBoot1Watchdog: the daemon pings systemd's watchdog (WATCHDOG=1): the
// last-ping timestamp systemd keeps moves on while the service runs.
func TestBoot1Watchdog(t *testing.T) {
	needInstalled(t)
	p := show(t, service, "WatchdogUSec", "WatchdogTimestampMonotonic", "NRestarts")
	if p["WatchdogUSec"] == "0" || p["WatchdogUSec"] == "" {
		t.Fatalf("WatchdogSec is not set in the unit: %v", p)
	}
	first := p["WatchdogTimestampMonotonic"]
	usec, _ := strconv.ParseInt(strings.TrimSuffix(p["WatchdogUSec"], "s"), 10, 64)
	timeout := 2 * time.Minute
	if d, err := time.ParseDuration(strings.ReplaceAll(p["WatchdogUSec"], "min", "m")); err == nil {
		timeout = d + 30*time.Second
	} else if usec > 0 {
		timeout = time.Duration(usec)*time.Microsecond + 30*time.Second
	}
	waitFor(t, "a watchdog ping (WatchdogTimestampMonotonic moving on)", timeout, func() bool {
		return show(t, service, "WatchdogTimestampMonotonic")["WatchdogTimestampMonotonic"] != first
	})
	if n := show(t, service, "NRestarts")["NRestarts"]; n != p["NRestarts"] {
		t.Fatalf("the service restarted meanwhile (NRestarts %s -> %s)", p["NRestarts"], n)
	}
}

// slice returns the Slice a unit sits in, from systemd.
func slice(t *testing.T, unit string) string {
	t.Helper()
	return show(t, unit, "Slice")["Slice"]
}

// TestBoot1CgroupTree: kubepods.slice → QoS slices → pod slices → scopes,
// with the kubelet's cgroup v2 values, read from the cgroup files and from
// systemd's unit properties.
func TestBoot1CgroupTree(t *testing.T) {
	needInstalled(t)
	type want struct {
		pod, qosSlice, podSlicePrefix string
		cpuMax, cpuWeight, memMax     string
		sdQuota, sdMem                string
		swap                          string // container memory.swap.max, "" = not checked
	}
	for _, w := range []want{
		{"gu", "", "kubepods-pod", "25000 100000", "10", "67108864", "250ms", "67108864", "0"},
		{"bu", "kubepods-burstable.slice", "kubepods-burstable-pod", "50000 100000", "4", "100663296", "500ms", "100663296", "0"},
		{"be", "kubepods-besteffort.slice", "kubepods-besteffort-pod", "max 100000", "1", "max", "infinity", "infinity", ""},
	} {
		t.Run(w.pod, func(t *testing.T) {
			p := waitPod(t, w.pod+"-vm", "Running", time.Minute, running)
			sc := scope(status(t, p, "main"))
			podSlice := slice(t, sc)
			wantSlice := w.podSlicePrefix + strings.ReplaceAll(string(p.UID), "-", "_") + ".slice"
			if podSlice != wantSlice {
				t.Errorf("%s is in %q, want %q", sc, podSlice, wantSlice)
			}
			parent := slice(t, podSlice)
			if w.qosSlice == "" {
				if parent != "kubepods.slice" {
					t.Errorf("Guaranteed pod slice %s is in %q, want kubepods.slice", podSlice, parent)
				}
			} else {
				if parent != w.qosSlice {
					t.Errorf("pod slice %s is in %q, want %s", podSlice, parent, w.qosSlice)
				}
				if pp := slice(t, parent); pp != "kubepods.slice" {
					t.Errorf("%s is in %q, want kubepods.slice", parent, pp)
				}
			}
			for _, unit := range []string{podSlice, sc} {
				for file, v := range map[string]string{"cpu.max": w.cpuMax, "cpu.weight": w.cpuWeight, "memory.max": w.memMax, "pids.max": "max"} {
					if got := cgfile(t, unit, file); got != v {
						t.Errorf("%s %s = %q, want %q", unit, file, got, v)
					}
				}
				sd := show(t, unit, "CPUWeight", "CPUQuotaPerSecUSec", "MemoryMax", "TasksMax")
				if sd["CPUWeight"] != w.cpuWeight || sd["CPUQuotaPerSecUSec"] != w.sdQuota || sd["MemoryMax"] != w.sdMem || sd["TasksMax"] != "infinity" {
					t.Errorf("systemd's view of %s: %v; want CPUWeight=%s CPUQuotaPerSecUSec=%s MemoryMax=%s TasksMax=infinity",
						unit, sd, w.cpuWeight, w.sdQuota, w.sdMem)
				}
			}
			if w.swap != "" {
				if got := cgfile(t, sc, "memory.swap.max"); got != w.swap {
					t.Errorf("%s memory.swap.max = %q, want %q (the kubelet's NoSwap)", sc, got, w.swap)
				}
			}
			// The workload is in its scope, as the kernel sees it.
			for _, pid := range procs(t, sc) {
				b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
				if !strings.Contains(string(b), "/"+sc+"\n") || !strings.HasPrefix(string(b), "0::/kubepods.slice/") {
					t.Errorf("pid %d of %s: /proc/pid/cgroup = %q", pid, sc, b)
				}
			}
		})
	}
	// QoS slices: BestEffort at the minimum weight; Burstable's weight from
	// the sum of its pods' cpu requests (bu alone: 100m → shares 102 → 4).
	if got := cgfile(t, "kubepods-besteffort.slice", "cpu.weight"); got != "1" {
		t.Errorf("kubepods-besteffort.slice cpu.weight = %q, want 1", got)
	}
	waitFor(t, "kubepods-burstable.slice cpu.weight 4", 30*time.Second, func() bool {
		return cgfile(t, "kubepods-burstable.slice", "cpu.weight") == "4"
	})
	if sl := slice(t, "kubepods.slice"); sl != "-.slice" {
		t.Errorf("kubepods.slice is in %q, want -.slice", sl)
	}
	// v2: the controllers the values need are enabled down the tree.
	for _, unit := range []string{"kubepods.slice", "kubepods-burstable.slice"} {
		ctl := cgfile(t, unit, "cgroup.subtree_control")
		for _, c := range []string{"cpu", "memory", "pids"} {
			if !slices.Contains(strings.Fields(ctl), c) {
				t.Errorf("%s cgroup.subtree_control = %q: no %s", unit, ctl, c)
			}
		}
	}
}

// TestBoot1OOMKilled: a container over its memory limit is OOM-killed by the
// kernel (memory.events oom_kill), reported OOMKilled with exit code 137,
// and restarted.
func TestBoot1OOMKilled(t *testing.T) {
	needInstalled(t)
	writeManifest(t, "oom.yaml", pod1("oom", "  containers:\n"+ctr("main", "tail /dev/zero",
		"      requests: {cpu: 100m, memory: 32Mi}\n      limits: {cpu: 100m, memory: 32Mi}\n")))
	defer os.Remove(filepath.Join(manifests, "oom.yaml"))
	p := waitPod(t, "oom-vm", "an OOM kill and a restart", 3*time.Minute, func(p *v1.Pod) bool {
		return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].RestartCount >= 1 &&
			p.Status.ContainerStatuses[0].LastTerminationState.Terminated != nil
	})
	last := p.Status.ContainerStatuses[0].LastTerminationState.Terminated
	if last.Reason != "OOMKilled" || last.ExitCode != 137 {
		t.Errorf("last termination = %s exit %d, want OOMKilled exit 137", last.Reason, last.ExitCode)
	}
	podSlice := "kubepods-pod" + strings.ReplaceAll(string(p.UID), "-", "_") + ".slice"
	ev := cgfile(t, podSlice, "memory.events")
	var kills int
	for _, l := range strings.Split(ev, "\n") {
		if k, v, _ := strings.Cut(l, " "); k == "oom_kill" {
			kills, _ = strconv.Atoi(v)
		}
	}
	if kills < 1 {
		t.Errorf("%s memory.events has no oom_kill:\n%s", podSlice, ev)
	}
}

// TestBoot1Devices: an unprivileged container may create the node of the
// guest's disk but not open it (the device allowlist, a BPF program on v2);
// /dev/null works; a privileged container opens the disk.
func TestBoot1Devices(t *testing.T) {
	needInstalled(t)
	dev, err := os.ReadFile("/sys/block/vda/dev")
	if err != nil {
		t.Fatalf("the guest's disk: %v", err)
	}
	maj, min, _ := strings.Cut(strings.TrimSpace(string(dev)), ":")
	script := fmt.Sprintf("mknod /tmp/disk b %s %s && mknod /tmp/null c 1 3 && exec sleep 1000000", maj, min)
	writeManifest(t, "devices.yaml", pod1("devices", "  containers:\n"+ctr("plain", script, "")+ctr("privileged", script, "")+
		"    securityContext: {privileged: true}\n"))
	defer os.Remove(filepath.Join(manifests, "devices.yaml"))
	p := waitPod(t, "devices-vm", "Running", 2*time.Minute, running)
	open := func(c, node string) (string, error) {
		return try(bin, "exec", "devices-vm", "-c", c, "--", "head", "-c1", "/tmp/"+node)
	}
	if out, err := open("plain", "disk"); err == nil || !strings.Contains(out, "Operation not permitted") {
		t.Errorf("unprivileged container opened the disk (%s:%s): err %v, output %q", maj, min, err, out)
	}
	if out, err := open("plain", "null"); err != nil {
		t.Errorf("unprivileged container cannot open /dev/null's node: %v %s", err, out)
	}
	if out, err := open("privileged", "disk"); err != nil {
		t.Errorf("privileged container cannot open the disk: %v %s", err, out)
	}
	// systemd's view: the unprivileged scope is DevicePolicy=strict, the
	// privileged one is not restricted.
	if got := show(t, scope(status(t, p, "plain")), "DevicePolicy")["DevicePolicy"]; got != "strict" {
		t.Errorf("unprivileged scope DevicePolicy = %q, want strict", got)
	}
	if got := show(t, scope(status(t, p, "privileged")), "DevicePolicy")["DevicePolicy"]; got != "auto" {
		t.Errorf("privileged scope DevicePolicy = %q, want auto (unrestricted)", got)
	}
}

// TestBoot1DNSUpstream: on a host whose /etc/resolv.conf is
// systemd-resolved's stub (127.0.0.53), pods get the upstream servers from
// /run/systemd/resolve/resolv.conf, as the kubelet on such a host does.
// Depends on --resolv-conf with stub detection (branch podspec): skipped
// until the installed daemon has that flag.
func TestBoot1DNSUpstream(t *testing.T) {
	needInstalled(t)
	if b, _ := os.ReadFile("/etc/resolv.conf"); !strings.Contains(string(b), "127.0.0.53") {
		t.Fatalf("the guest's /etc/resolv.conf is not the resolved stub:\n%s", b)
	}
	if !daemonFlag(t, "resolv-conf") {
		t.Skip("needs minikubelet run --resolv-conf with systemd-resolved stub detection (branch podspec, not merged yet)")
	}
	waitPod(t, "be-vm", "Running", time.Minute, running)
	out := run(t, bin, "exec", "be-vm", "--", "cat", "/etc/resolv.conf")
	if strings.Contains(out, "127.0.0.53") || !strings.Contains(out, "nameserver 10.0.2.3") {
		t.Errorf("pod resolv.conf should list the upstream 10.0.2.3, never the stub:\n%s", out)
	}
}

// snapshot is what must not change when only the daemon restarts: each
// container's ID, restart count and workload PIDs.
type snapshot map[string]string

func takeSnapshot(t *testing.T, names ...string) snapshot {
	t.Helper()
	s := snapshot{}
	for _, name := range names {
		p := waitPod(t, name+"-vm", "Running", 2*time.Minute, running)
		for _, cs := range p.Status.ContainerStatuses {
			s[name+"/"+cs.Name] = fmt.Sprintf("id=%s restarts=%d pids=%v", cs.ContainerID, cs.RestartCount, procs(t, scope(cs)))
		}
	}
	return s
}

func sameSnapshot(t *testing.T, what string, before, after snapshot) {
	t.Helper()
	for k, v := range before {
		if after[k] != v {
			t.Errorf("%s: %s changed: %s -> %s", what, k, v, after[k])
		}
	}
}

var steady = []string{"gu", "bu", "be"}

// TestBoot1RestartAdopts: systemctl restart minikubelet adopts the pods: no
// container restarted, the same workload PIDs in the same scopes.
func TestBoot1RestartAdopts(t *testing.T) {
	needInstalled(t)
	before := takeSnapshot(t, steady...)
	pid := show(t, service, "MainPID")["MainPID"]
	run(t, "systemctl", "restart", service)
	if p := show(t, service, "MainPID", "ActiveState"); p["MainPID"] == pid || p["ActiveState"] != "active" {
		t.Fatalf("after restart: %v (MainPID before %s)", p, pid)
	}
	sameSnapshot(t, "systemctl restart", before, takeSnapshot(t, steady...))
}

// TestBoot1KillAdopts: a SIGKILLed daemon is restarted by systemd
// (Restart=always) and adopts the pods untouched.
func TestBoot1KillAdopts(t *testing.T) {
	needInstalled(t)
	before := takeSnapshot(t, steady...)
	p0 := show(t, service, "NRestarts", "MainPID")
	run(t, "systemctl", "kill", "-s", "KILL", service)
	waitFor(t, "systemd to restart the killed daemon", time.Minute, func() bool {
		p := show(t, service, "NRestarts", "ActiveState", "MainPID")
		return p["NRestarts"] != p0["NRestarts"] && p["ActiveState"] == "active" && p["MainPID"] != p0["MainPID"]
	})
	sameSnapshot(t, "systemctl kill -s KILL", before, takeSnapshot(t, steady...))
}

// TestBoot1StopLeavesPods: systemctl stop minikubelet leaves the pods
// running; a container that exits meanwhile has its exit code reported by
// the next start (and is restarted then).
func TestBoot1StopLeavesPods(t *testing.T) {
	needInstalled(t)
	before := takeSnapshot(t, steady...)
	w := waitPod(t, "waiter-vm", "Running", time.Minute, running)
	ws := status(t, w, "main")
	var scopes []string
	for _, name := range steady {
		p := waitPod(t, name+"-vm", "Running", time.Minute, running)
		for _, cs := range p.Status.ContainerStatuses {
			scopes = append(scopes, scope(cs))
		}
	}
	run(t, "systemctl", "stop", service)
	defer try("systemctl", "start", service)
	// The API is down with the daemon: systemd says what runs.
	for _, sc := range scopes {
		if got := show(t, sc, "ActiveState")["ActiveState"]; got != "active" {
			t.Errorf("%s is %s after systemctl stop minikubelet, want active", sc, got)
		}
	}
	wscope := scope(ws)
	if got := show(t, wscope, "ActiveState")["ActiveState"]; got != "active" {
		t.Fatalf("waiter's scope %s is %s after systemctl stop, want active", wscope, got)
	}
	if err := os.WriteFile(filepath.Join(stateDir, "waiter", "stop"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "waiter's container to exit while the daemon is stopped", time.Minute, func() bool {
		return show(t, wscope, "ActiveState")["ActiveState"] != "active"
	})
	run(t, "systemctl", "start", service)
	p := waitPod(t, "waiter-vm", "the exit code 7 reported and a restart", 2*time.Minute, func(p *v1.Pod) bool {
		if len(p.Status.ContainerStatuses) != 1 {
			return false
		}
		cs := p.Status.ContainerStatuses[0]
		return cs.RestartCount > ws.RestartCount && cs.LastTerminationState.Terminated != nil
	})
	if last := p.Status.ContainerStatuses[0].LastTerminationState.Terminated; last.ExitCode != 7 || last.ContainerID != ws.ContainerID {
		t.Errorf("waiter's last termination = exit %d of %s, want exit 7 of %s", last.ExitCode, last.ContainerID, ws.ContainerID)
	}
	sameSnapshot(t, "systemctl stop; start", before, takeSnapshot(t, steady...))
}

// TestBoot1Upgrade: new binaries installed over the running service (make
// install), then a restart: the daemon runs the new file, the pods are
// untouched.
func TestBoot1Upgrade(t *testing.T) {
	needInstalled(t)
	before := takeSnapshot(t, steady...)
	var st0 os.FileInfo
	st0, _ = os.Stat(bin)
	run(t, "make", "-C", repo(t), "-o", "build", "install")
	st1, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}
	if os.SameFile(st0, st1) {
		t.Errorf("make install rewrote %s in place (same inode): a running daemon's text would change under it", bin)
	}
	run(t, "systemctl", "daemon-reload")
	run(t, "systemctl", "restart", service)
	pid := show(t, service, "MainPID")["MainPID"]
	exe, err := os.Readlink("/proc/" + pid + "/exe")
	if err != nil || exe != bin {
		t.Errorf("after the upgrade the daemon runs %q (%v), want %s", exe, err, bin)
	}
	sameSnapshot(t, "upgrade", before, takeSnapshot(t, steady...))
}

// bootFacts is what boot 2 compares with.
type bootFacts struct {
	BootID     string
	Containers map[string]string // pod/container -> container ID
	Scopes     []string          // every minikubelet scope of boot 1
	Mounts     []string          // mount points under /var/lib/minikubelet
	Shutdown   bool              // the graceful node shutdown pod was set up
}

func minikubeletMounts() []string { return e2enode.MountsUnder(rootDir) }

// TestBoot1Reboot records the pods' state and asks the harness for a graceful
// reboot: every unit is stopped as on any host. Boot 2 checks what it left.
func TestBoot1Reboot(t *testing.T) {
	needInstalled(t)
	facts := bootFacts{Containers: map[string]string{}}
	b, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	facts.BootID = strings.TrimSpace(string(b))
	// The graceful node shutdown check (branch nodeshutdown): a preStop that
	// leaves a file on the guest's disk, which boot 2 looks for.
	if daemonFlag(t, "shutdown-grace-period") {
		os.MkdirAll(filepath.Join(stateDir, "grace"), 0o755)
		os.Remove(filepath.Join(stateDir, "grace", "prestop"))
		writeManifest(t, "grace.yaml", pod1("grace", "  volumes:\n  - name: host\n    hostPath: {path: "+stateDir+"/grace}\n  containers:\n"+
			ctr("main", "trap 'echo term >> /host/term; exit 0' TERM; while true; do sleep 0.3; done", "")+
			"    volumeMounts:\n    - {name: host, mountPath: /host}\n"+
			"    lifecycle:\n      preStop:\n        exec:\n          command: [\"sh\", \"-c\", \"echo prestop > /host/prestop\"]\n"))
		waitPod(t, "grace-vm", "Running", 2*time.Minute, running)
		facts.Shutdown = true
		if out := run(t, "systemd-inhibit", "--list", "--no-pager"); !strings.Contains(out, "minikubelet") || !strings.Contains(out, "delay") {
			t.Errorf("no delay inhibitor lock of minikubelet:\n%s", out)
		}
	}
	ps, err := pods()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		for _, cs := range p.Status.ContainerStatuses {
			facts.Containers[p.Name+"/"+cs.Name] = cs.ContainerID
		}
	}
	out := run(t, "systemctl", "list-units", "--all", "--no-legend", "--plain", "minikubelet-*.scope")
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			facts.Scopes = append(facts.Scopes, f[0])
		}
	}
	facts.Mounts = minikubeletMounts()
	if len(facts.Scopes) == 0 || len(facts.Containers) == 0 {
		t.Fatalf("nothing to compare after the reboot: %+v", facts)
	}
	saveState(t, facts)
	if err := os.WriteFile(filepath.Join(os.Getenv("VMCTL"), "shutdown"), []byte("reboot\n"), 0o644); err != nil {
		t.Fatalf("ask the harness for a reboot: %v", err)
	}
}
