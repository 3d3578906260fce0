package cgroupfs

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minikubelet/minikubelet/internal/testnode"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/minikubelet/minikubelet/systemd"
	"github.com/minikubelet/minikubelet/systemd/internal/drivertest"
	"github.com/minikubelet/minikubelet/systemd/internal/heldproc"
)

// newTestCgroupfs returns a cgroupfs driver on its own root (never the
// kubepods or kubepods.slice the systemd driver tests use), and removes the
// whole tree at the end, whatever happened.
func newTestCgroupfs(t *testing.T, root string) *Driver {
	t.Helper()
	return newTestCgroupfsIn(t, root, t.TempDir())
}

func newTestCgroupfsIn(t *testing.T, root, stateDir string) *Driver {
	t.Helper()
	d, err := New(Options{CgroupRoot: root, StateDir: stateDir, PollInterval: 100 * time.Millisecond, DefaultStopTimeout: 2 * time.Second})
	return drivertest.Started(t, d, err)
}

func cgfsPod(uid string, containers ...v1.Container) *v1.Pod {
	return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: uid, Namespace: "default", UID: types.UID(uid)}, Spec: v1.PodSpec{Containers: containers}}
}

func cgfsContainer(name string, req, lim map[string]string) v1.Container {
	c := v1.Container{Name: name}
	if len(req) > 0 {
		c.Resources.Requests = v1.ResourceList{}
		for k, v := range req {
			c.Resources.Requests[v1.ResourceName(k)] = resource.MustParse(v)
		}
	}
	if len(lim) > 0 {
		c.Resources.Limits = v1.ResourceList{}
		for k, v := range lim {
			c.Resources.Limits[v1.ResourceName(k)] = resource.MustParse(v)
		}
	}
	return c
}

// cgfsFile reads one cgroup file of a cgroup path in a hierarchy.
func cgfsFile(t *testing.T, cgroupPath, key, file string) string {
	t.Helper()
	dirs, err := systemd.CgroupDirs(cgroupPath)
	if err != nil {
		t.Fatal(err)
	}
	dir, ok := dirs[key]
	if !ok {
		t.Fatalf("hierarchy %q not mounted (dirs %v)", key, dirs)
	}
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		t.Fatalf("read %s: %v", filepath.Join(dir, file), err)
	}
	return strings.TrimSpace(string(b))
}

func requireV1Memory(t *testing.T) {
	t.Helper()
	dirs, err := systemd.CgroupDirs("/")
	if err != nil {
		t.Fatal(err)
	}
	if systemd.IsV2Dirs(dirs) {
		t.Skip("the file checks of this test are written for this machine's cgroup v1 hierarchy")
	}
}

// TestCgroupfsTree builds the kubelet's cgroupfs tree for a Guaranteed, a
// Burstable and a BestEffort pod with one container each, checks every
// value in the cgroup files, lists it, and tears it down to nothing.
func TestCgroupfsTree(t *testing.T) {
	testnode.Require(t)
	requireV1Memory(t)
	ctx := context.Background()
	if all, err := systemd.CgroupDirs("/"); err == nil {
		t.Logf("hierarchies in the node: %v", all)
	}
	d := newTestCgroupfs(t, "kubepods-cgfs-test")
	pidsLimit := int64(100)
	opts := systemd.PlanOptions{CgroupRoot: "kubepods-cgfs-test", PodPidsLimit: &pidsLimit}
	pods := []*v1.Pod{
		cgfsPod("g-1111", cgfsContainer("app", map[string]string{"cpu": "500m", "memory": "64Mi"}, map[string]string{"cpu": "500m", "memory": "64Mi"})),
		cgfsPod("b-2222", cgfsContainer("app", map[string]string{"cpu": "100m", "memory": "32Mi"}, map[string]string{"cpu": "200m", "memory": "128Mi"})),
		cgfsPod("be-3333", cgfsContainer("app", nil, nil)),
	}
	type want struct {
		path                     string
		limit, shares, quota, pm string
	}
	const unlimited = "9223372036854771712" // v1 memory.limit_in_bytes for "no limit"
	wantPods := []want{
		{"/kubepods-cgfs-test/podg-1111", "67108864", "512", "50000", "100"},
		{"/kubepods-cgfs-test/burstable/podb-2222", "134217728", "102", "20000", "100"},
		{"/kubepods-cgfs-test/besteffort/podbe-3333", unlimited, "2", "-1", "100"},
	}
	wantScopes := []want{
		{"/kubepods-cgfs-test/podg-1111/c-g", "67108864", "512", "50000", "max"},
		{"/kubepods-cgfs-test/burstable/podb-2222/c-b", "134217728", "102", "20000", "max"},
		{"/kubepods-cgfs-test/besteffort/podbe-3333/c-be", unlimited, "2", "-1", "max"},
	}
	ids := []string{"c-g", "c-b", "c-be"}
	sleepers := map[string]*exec.Cmd{}
	for i, pod := range pods {
		plan := systemd.PlanPod(pod, opts)
		if plan.CgroupfsPath != wantPods[i].path {
			t.Fatalf("plan path %s, driver will use %s", plan.CgroupfsPath, wantPods[i].path)
		}
		if err := d.EnsurePod(ctx, plan.PodCgroup()); err != nil {
			t.Fatalf("EnsurePod %s: %v", pod.UID, err)
		}
		if err := d.EnsurePod(ctx, plan.PodCgroup()); err != nil { // idempotent
			t.Fatalf("EnsurePod again %s: %v", pod.UID, err)
		}
		s := heldproc.Sleep(t)
		sleepers[ids[i]] = s
		err := d.StartScope(ctx, systemd.ScopeSpec{Pod: plan.PodCgroup(), ID: ids[i], Description: "test " + ids[i],
			PIDs: []int{s.Process.Pid}, Resources: plan.Containers["app"], StopTimeout: time.Second})
		if err != nil {
			t.Fatalf("StartScope %s: %v", ids[i], err)
		}
	}
	check := func(w want) {
		t.Helper()
		if got := cgfsFile(t, w.path, "memory", "memory.limit_in_bytes"); got != w.limit {
			t.Errorf("%s memory.limit_in_bytes = %s, want %s", w.path, got, w.limit)
		}
		if got := cgfsFile(t, w.path, "cpu", "cpu.shares"); got != w.shares {
			t.Errorf("%s cpu.shares = %s, want %s", w.path, got, w.shares)
		}
		if got := cgfsFile(t, w.path, "cpu", "cpu.cfs_quota_us"); got != w.quota {
			t.Errorf("%s cpu.cfs_quota_us = %s, want %s", w.path, got, w.quota)
		}
		if got := cgfsFile(t, w.path, "cpu", "cpu.cfs_period_us"); got != "100000" {
			t.Errorf("%s cpu.cfs_period_us = %s", w.path, got)
		}
		if got := cgfsFile(t, w.path, "pids", "pids.max"); got != w.pm {
			t.Errorf("%s pids.max = %s, want %s", w.path, got, w.pm)
		}
		// New v1 cpuset cgroups are seeded from the parent, or no task could join.
		if cpus, mems := cgfsFile(t, w.path, "cpuset", "cpuset.cpus"), cgfsFile(t, w.path, "cpuset", "cpuset.mems"); cpus == "" || mems == "" {
			t.Errorf("%s cpuset not seeded: cpus %q mems %q", w.path, cpus, mems)
		}
	}
	for i := range pods {
		check(wantPods[i])
		check(wantScopes[i])
	}
	if got := cgfsFile(t, "/kubepods-cgfs-test/besteffort", "cpu", "cpu.shares"); got != "2" {
		t.Errorf("besteffort cpu.shares = %s, want 2", got)
	}
	if got := cgfsFile(t, "/kubepods-cgfs-test/burstable", "cpu", "cpu.shares"); got != "102" {
		t.Errorf("burstable cpu.shares = %s, want 102 (the one burstable pod's request)", got)
	}
	// The process is in its scope in every mounted hierarchy.
	dirs, _ := systemd.CgroupDirs(wantScopes[1].path)
	for k, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		if err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(sleepers["c-b"].Process.Pid) {
			t.Errorf("hierarchy %q: %s/cgroup.procs = %q (%v), want pid %d", k, dir, b, err, sleepers["c-b"].Process.Pid)
		}
	}
	for _, k := range []string{"net_cls", "net_prio", "perf_event", "hugetlb"} {
		if _, ok := dirs[k]; ok {
			t.Errorf("unmounted controller %s in dirs", k)
		}
	}

	// List: three pods, three running scopes, with their cgroup paths.
	states, err := d.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]systemd.UnitState{}
	for _, s := range states {
		got[s.Unit] = s
	}
	if len(states) != 6 {
		t.Errorf("List returned %d units, want 6: %+v", len(states), states)
	}
	for i, id := range ids {
		s, ok := got[systemd.ScopeUnitName(id)]
		if !ok || s.ActiveState != "active" || s.CgroupPath != wantScopes[i].path || s.PodUID != pods[i].UID || len(s.PIDs) != 1 {
			t.Errorf("scope %s listed as %+v", id, s)
		}
		ps := d.names.PodSlice(systemd.GetPodQOS(pods[i]), pods[i].UID)
		if s, ok := got[ps]; !ok || s.CgroupPath != wantPods[i].path {
			t.Errorf("pod %s listed as %+v", ps, s)
		}
	}

	// A second agent with its own markers refuses the root, naming a pod.
	other, _ := New(Options{CgroupRoot: "kubepods-cgfs-test", StateDir: t.TempDir()})
	defer other.Close()
	if err := other.Init(ctx); err == nil || !strings.Contains(err.Error(), "podg-1111") {
		t.Errorf("foreign Init: %v (want a refusal naming the pod cgroups)", err)
	}

	// RemovePod refuses while a scope holds processes.
	if err := d.RemovePod(ctx, pods[0].UID); err == nil || !strings.Contains(err.Error(), strconv.Itoa(sleepers["c-g"].Process.Pid)) {
		t.Errorf("RemovePod with a live scope: %v", err)
	}

	// Teardown: graceful stop for one, kill for the others; then pods.
	for i, id := range ids {
		if err := d.StopScope(ctx, id, i > 0); err != nil {
			t.Fatalf("StopScope %s: %v", id, err)
		}
		if err := d.StopScope(ctx, id, true); err != nil { // idempotent
			t.Fatalf("StopScope %s again: %v", id, err)
		}
		err := sleepers[id].Wait()
		if ws, ok := heldproc.WaitStatus(err); !ok || !ws.Signaled() || (i == 0 && ws.Signal() != syscall.SIGTERM) || (i > 0 && ws.Signal() != syscall.SIGKILL) {
			t.Errorf("scope %s process ended with %v", id, err)
		}
	}
	for _, pod := range pods {
		if err := d.RemovePod(ctx, pod.UID); err != nil {
			t.Fatalf("RemovePod %s: %v", pod.UID, err)
		}
		if err := d.RemovePod(ctx, pod.UID); err != nil {
			t.Fatalf("RemovePod again %s: %v", pod.UID, err)
		}
	}
	if states, err := d.List(ctx); err != nil || len(states) != 0 {
		t.Errorf("List after teardown: %+v %v", states, err)
	}
	for _, w := range append(wantPods, wantScopes...) {
		dirs, _ := systemd.CgroupDirs(w.path)
		for k, dir := range dirs {
			if _, err := os.Stat(dir); err == nil {
				t.Errorf("hierarchy %q: %s still exists", k, dir)
			}
		}
	}
	// Only the root and QoS cgroups stay (the cleanup removes them).
	rootDirs, _ := systemd.CgroupDirs(d.RootPath())
	for k, dir := range rootDirs {
		ents, _ := os.ReadDir(dir)
		var sub []string
		for _, e := range ents {
			if e.IsDir() {
				sub = append(sub, e.Name())
			}
		}
		if strings.Join(sub, ",") != "besteffort,burstable" {
			t.Errorf("hierarchy %q: %s holds %v, want only the QoS cgroups", k, dir, sub)
		}
	}
	if got := cgfsFile(t, "/kubepods-cgfs-test/burstable", "cpu", "cpu.shares"); got != "2" {
		t.Errorf("burstable cpu.shares after removal = %s, want 2", got)
	}
}

// TestCgroupfsStopScopeEscalates: a process ignoring SIGTERM is killed
// after the scope's stop timeout.
func TestCgroupfsStopScopeEscalates(t *testing.T) {
	testnode.Require(t)
	ctx := context.Background()
	d := newTestCgroupfs(t, "kubepods-cgfs-stop")
	pod := systemd.PodCgroup{UID: "s-1", QOS: v1.PodQOSBestEffort}
	h := heldproc.Start(t, "ignore-term")
	if err := d.StartScope(ctx, systemd.ScopeSpec{Pod: pod, ID: "stubborn", PIDs: []int{h.PID()}, StopTimeout: 300 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	h.Release(t)
	if l := h.ReadLine(t); l != "ready" {
		t.Fatalf("helper said %q", l)
	}
	if err := d.StopScope(ctx, "stubborn", false); err != nil {
		t.Fatal(err)
	}
	if ws, ok := heldproc.WaitStatus(h.Wait()); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("want SIGKILL after the stop timeout, got %v", h.Wait())
	}
	if err := d.RemovePod(ctx, pod.UID); err != nil {
		t.Fatal(err)
	}
}

// TestCgroupfsEvents: a scope whose last process exits reports inactive;
// one removed by StopScope reports Gone. Both event sources are covered:
// inotify on the unified cgroup.events, and the pure-v1 poll.
func TestCgroupfsEvents(t *testing.T) {
	testnode.Require(t)
	for _, poll := range []bool{false, true} {
		t.Run(fmt.Sprintf("poll=%v", poll), func(t *testing.T) {
			ctx := context.Background()
			d := newTestCgroupfs(t, fmt.Sprintf("kubepods-cgfs-ev%v", poll))
			d.forcePoll = poll
			pod := systemd.PodCgroup{UID: "e-1", QOS: v1.PodQOSBestEffort}
			s := heldproc.Sleep(t)
			if err := d.StartScope(ctx, systemd.ScopeSpec{Pod: pod, ID: "ev", PIDs: []int{s.Process.Pid}}); err != nil {
				t.Fatal(err)
			}
			next := func(unit string) systemd.Event {
				t.Helper()
				timeout := time.After(20 * time.Second)
				for {
					select {
					case ev := <-d.Events():
						if ev.Unit == unit {
							return ev
						}
					case <-timeout:
						t.Fatalf("no event for %s", unit)
					}
				}
			}
			if ev := next(systemd.ScopeUnitName("ev")); ev.State.ActiveState != "active" || ev.Gone {
				t.Fatalf("start event %+v", ev)
			}
			s.Process.Kill()
			s.Wait()
			if ev := next(systemd.ScopeUnitName("ev")); ev.State.ActiveState != "inactive" || ev.Gone || ev.State.PodUID != pod.UID {
				t.Fatalf("exit event %+v", ev)
			}
			if err := d.StopScope(ctx, "ev", true); err != nil {
				t.Fatal(err)
			}
			if ev := next(systemd.ScopeUnitName("ev")); !ev.Gone {
				t.Fatalf("stop event %+v", ev)
			}
			if err := d.RemovePod(ctx, pod.UID); err != nil {
				t.Fatal(err)
			}
			if ev := next(d.names.PodSlice(pod.QOS, pod.UID)); !ev.Gone {
				t.Fatalf("pod removal event %+v", ev)
			}
		})
	}
}

// TestCgroupfsOOMKill: a container scope limited to 16 MiB allocates until
// the kernel kills it; the kill is seen by its watcher and counted in its
// usage, and not attributed to its sibling.
func TestCgroupfsOOMKill(t *testing.T) {
	testnode.Require(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d := newTestCgroupfs(t, "kubepods-cgfs-oom")
	pod := systemd.PodCgroup{UID: "o-1", QOS: v1.PodQOSBurstable, Resources: systemd.Resources{CPUShares: ptr(uint64(102))}}
	drivertest.OOMAttribution(ctx, t, d, pod, "hog", "calm", false)
}

// TestCgroupfsUsage: a process that allocates 24 MiB and burns a little
// cpu shows plausible usage in its 64 MiB scope and in its pod.
func TestCgroupfsUsage(t *testing.T) {
	testnode.Require(t)
	ctx := context.Background()
	d := newTestCgroupfs(t, "kubepods-cgfs-usage")
	limit := int64(64 << 20)
	pod := systemd.PodCgroup{UID: "u-1", QOS: v1.PodQOSBurstable, Resources: systemd.Resources{CPUShares: ptr(uint64(256))}}
	h := heldproc.Start(t, fmt.Sprintf("alloc:%d", 24<<20))
	if err := d.StartScope(ctx, systemd.ScopeSpec{Pod: pod, ID: "worker", PIDs: []int{h.PID()}, Resources: systemd.Resources{MemoryLimit: &limit}}); err != nil {
		t.Fatal(err)
	}
	before, err := d.Usage(ctx, pod.UID, "worker")
	if err != nil {
		t.Fatal(err)
	}
	h.Release(t)
	if l := h.ReadLine(t); !strings.HasPrefix(l, "ready") {
		t.Fatalf("helper said %q", l)
	}
	u, err := d.Usage(ctx, pod.UID, "worker")
	if err != nil {
		t.Fatal(err)
	}
	pu, err := d.Usage(ctx, pod.UID, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("held: %+v; after 24 MiB + cpu burn: scope %+v (%.1f MiB, %.0f ms cpu); pod %+v", before, u, float64(u.MemoryBytes)/(1<<20), float64(u.CPUUsageNanos)/1e6, pu)
	if u.MemoryBytes < 24<<20 || u.MemoryBytes >= uint64(limit) {
		t.Errorf("working set %d, want between 24 MiB and the 64 MiB limit", u.MemoryBytes)
	}
	if u.CPUUsageNanos == 0 || u.CPUUsageNanos <= before.CPUUsageNanos {
		t.Errorf("cpu usage %d (before %d): want it to grow", u.CPUUsageNanos, before.CPUUsageNanos)
	}
	if u.PIDs < 1 { // pids.current counts tasks: the Go helper has several threads
		t.Errorf("pids %d, want at least 1", u.PIDs)
	}
	// The working set is memory.current minus inactive_file from
	// memory.stat, and on cgroup v2 the kernel flushes memory.stat lazily
	// (up to 2 s late, per cgroup): a parent read just after its child may
	// trail it by a few pages. A MiB of slack; the CPU counters are exact.
	if pu.MemoryBytes+1<<20 < u.MemoryBytes || pu.CPUUsageNanos < u.CPUUsageNanos {
		t.Errorf("pod usage %+v below its scope's %+v", pu, u)
	}
	if u.OOMKills != 0 {
		t.Errorf("OOMKills %d", u.OOMKills)
	}
	if err := d.StopScope(ctx, "worker", true); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Usage(ctx, pod.UID, "worker"); err == nil {
		t.Error("usage of a stopped scope: want an error")
	}
	if err := d.RemovePod(ctx, pod.UID); err != nil {
		t.Fatal(err)
	}
}

// TestCgroupfsPureV2 runs the driver on a pure cgroup v2 layout
// (drivertest.PureV2). This machine's v2 hierarchy has no memory, cpu or
// pids controller (v1 holds them), so it checks the v2 code path itself:
// detection, fs2 creation, placing processes, populated events through
// inotify, cgroup.kill, removal, and that a limit the hierarchy cannot
// enforce is refused rather than dropped.
func TestCgroupfsPureV2(t *testing.T) {
	testnode.Require(t)
	drivertest.PureV2(t, cgfsPureV2Inner)
}

func cgfsPureV2Inner(t *testing.T) {
	ctx := context.Background()
	d := newTestCgroupfs(t, "kubepods-cgfs-v2")
	pod := systemd.PodCgroup{UID: "v2-1", QOS: v1.PodQOSBestEffort, Resources: systemd.Resources{CPUShares: ptr(uint64(systemd.MinShares))}}
	if err := d.EnsurePod(ctx, pod); err != nil {
		t.Fatal(err)
	}
	s := heldproc.Sleep(t)
	if err := d.StartScope(ctx, systemd.ScopeSpec{Pod: pod, ID: "v2c", PIDs: []int{s.Process.Pid}}); err != nil {
		t.Fatal(err)
	}
	scope := "/sys/fs/cgroup/kubepods-cgfs-v2/besteffort/podv2-1/v2c"
	if got := heldproc.ReadFile(t, scope, "cgroup.procs"); got != strconv.Itoa(s.Process.Pid) {
		t.Fatalf("%s/cgroup.procs = %q, want %d", scope, got, s.Process.Pid)
	}
	if got := heldproc.ReadFile(t, scope, "cgroup.events"); !strings.Contains(got, "populated 1") {
		t.Fatalf("cgroup.events %q", got)
	}
	if u, err := d.Usage(ctx, pod.UID, "v2c"); err != nil {
		t.Fatalf("v2 usage: %v", err)
	} else {
		t.Logf("v2 usage without memory/pids controllers: %+v", u)
	}
	// A real limit this hierarchy cannot enforce is an error, not a no-op.
	// On a hybrid host (the lab) the memory controller is bound to v1, so
	// the v2 mount has none; on a pure v2 host (make test-vm) it has one,
	// and the limit lands in memory.max.
	limit := int64(64 << 20)
	s2 := heldproc.Sleep(t)
	err := d.StartScope(ctx, systemd.ScopeSpec{Pod: pod, ID: "v2limited", PIDs: []int{s2.Process.Pid}, Resources: systemd.Resources{MemoryLimit: &limit}})
	if ctl, _ := os.ReadFile("/sys/fs/cgroup/cgroup.controllers"); slices.Contains(strings.Fields(string(ctl)), "memory") {
		if err != nil {
			t.Fatalf("memory limit with the memory controller: %v", err)
		}
		if got := heldproc.ReadFile(t, "/sys/fs/cgroup/kubepods-cgfs-v2/besteffort/podv2-1/v2limited", "memory.max"); got != "67108864" {
			t.Fatalf("v2limited memory.max = %q, want 67108864", got)
		}
	} else if err == nil || !strings.Contains(err.Error(), "memory controller") {
		t.Fatalf("memory limit without the memory controller: %v", err)
	}
	if err := d.StopScope(ctx, "v2limited", true); err != nil {
		t.Fatal(err)
	}
	// The process exits: inotify on cgroup.events reports it.
	s.Process.Kill()
	s.Wait()
	deadline := time.After(20 * time.Second)
	for done := false; !done; {
		select {
		case ev := <-d.Events():
			if ev.Unit != systemd.ScopeUnitName("v2c") || (ev.State.ActiveState == "active" && !ev.Gone) {
				continue // the start event
			}
			if ev.State.ActiveState != "inactive" || ev.Gone {
				t.Fatalf("exit event %+v", ev)
			}
			done = true
		case <-deadline:
			t.Fatal("no exit event")
		}
	}
	// StopScope on v2 uses cgroup.kill.
	h := heldproc.Start(t, "ignore-term")
	if err := d.StartScope(ctx, systemd.ScopeSpec{Pod: pod, ID: "v2stubborn", PIDs: []int{h.PID()}, StopTimeout: 200 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	h.Release(t)
	h.ReadLine(t)
	if err := d.StopScope(ctx, "v2stubborn", false); err != nil {
		t.Fatal(err)
	}
	if ws, ok := heldproc.WaitStatus(h.Wait()); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("stubborn process ended with %v", h.Wait())
	}
	if err := d.StopScope(ctx, "v2c", false); err != nil {
		t.Fatal(err)
	}
	if err := d.RemovePod(ctx, pod.UID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/sys/fs/cgroup/kubepods-cgfs-v2/besteffort/podv2-1"); err == nil {
		t.Fatal("pod cgroup left behind")
	}
}

// TestCgroupfsUpdateQOS: values given to UpdateQOS (the kubelet's exact QoS
// formula, computed by the caller) replace the driver's own estimate.
func TestCgroupfsUpdateQOS(t *testing.T) {
	testnode.Require(t)
	requireV1Memory(t)
	ctx := context.Background()
	d := newTestCgroupfs(t, "kubepods-cgfs-qos")
	pods := []*v1.Pod{
		cgfsPod("q-1", cgfsContainer("a", map[string]string{"cpu": "150m"}, nil)),
		cgfsPod("q-2", cgfsContainer("a", map[string]string{"cpu": "150m"}, nil)),
	}
	for _, p := range pods {
		if err := d.EnsurePod(ctx, systemd.PlanPod(p, systemd.PlanOptions{CgroupRoot: "kubepods-cgfs-qos"}).PodCgroup()); err != nil {
			t.Fatal(err)
		}
	}
	// The estimate: 153 + 153 shares (the kubelet would say 300m → 307).
	if got := cgfsFile(t, "/kubepods-cgfs-qos/burstable", "cpu", "cpu.shares"); got != "306" {
		t.Errorf("estimated burstable cpu.shares = %s, want 306", got)
	}
	burstable, _ := systemd.QOSResources(pods)
	if err := d.UpdateQOS(ctx, v1.PodQOSBurstable, burstable); err != nil {
		t.Fatal(err)
	}
	if got := cgfsFile(t, "/kubepods-cgfs-qos/burstable", "cpu", "cpu.shares"); got != "307" {
		t.Errorf("burstable cpu.shares after UpdateQOS = %s, want 307", got)
	}
	for _, p := range pods {
		if err := d.RemovePod(ctx, p.UID); err != nil {
			t.Fatal(err)
		}
	}
	if got := cgfsFile(t, "/kubepods-cgfs-qos/burstable", "cpu", "cpu.shares"); got != "307" {
		t.Errorf("burstable cpu.shares = %s after RemovePod: UpdateQOS's value must stay until the next UpdateQOS", got)
	}
	if err := d.UpdateQOS(ctx, v1.PodQOSGuaranteed, systemd.Resources{}); err == nil {
		t.Error("UpdateQOS(Guaranteed): want an error")
	}
}

// TestCgroupfsAdoptAfterRestart: a new driver on the same root and state
// dir (the daemon restarted) adopts the running scope: Init accepts the
// root, List shows the scope, its exit is reported, and a scope whose
// marker was lost can still be stopped.
func TestCgroupfsAdoptAfterRestart(t *testing.T) {
	testnode.Require(t)
	ctx := context.Background()
	state := t.TempDir()
	d1 := newTestCgroupfsIn(t, "kubepods-cgfs-adopt", state)
	pod := systemd.PodCgroup{UID: "a-1", QOS: v1.PodQOSBurstable, Resources: systemd.Resources{CPUShares: ptr(uint64(102))}}
	s1, s2 := heldproc.Sleep(t), heldproc.Sleep(t)
	for id, s := range map[string]*exec.Cmd{"keep": s1, "lost": s2} {
		if err := d1.StartScope(ctx, systemd.ScopeSpec{Pod: pod, ID: id, PIDs: []int{s.Process.Pid}}); err != nil {
			t.Fatal(err)
		}
	}
	d1.Close() // the daemon dies; cgroups and processes stay

	d2 := newTestCgroupfsIn(t, "kubepods-cgfs-adopt", state)
	states, err := d2.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, st := range states {
		if st.ID == "keep" || st.ID == "lost" {
			found++
			if st.ActiveState != "active" || len(st.PIDs) != 1 {
				t.Errorf("adopted scope %+v", st)
			}
		}
	}
	if found != 2 {
		t.Fatalf("adopted scopes: %+v", states)
	}
	s1.Process.Kill()
	s1.Wait()
	deadline := time.After(20 * time.Second)
	for done := false; !done; {
		select {
		case ev := <-d2.Events():
			done = ev.Unit == systemd.ScopeUnitName("keep") && ev.State.ActiveState == "inactive"
		case <-deadline:
			t.Fatal("no exit event from the adopted scope")
		}
	}
	if err := os.Remove(d2.scopeMarkerFile("lost")); err != nil {
		t.Fatal(err)
	}
	if err := d2.StopScope(ctx, "lost", true); err != nil {
		t.Fatal(err)
	}
	if ws, ok := heldproc.WaitStatus(s2.Wait()); !ok || ws.Signal() != syscall.SIGKILL {
		t.Errorf("unmarked scope's process: %v", s2.ProcessState)
	}
	if err := d2.StopScope(ctx, "keep", false); err != nil {
		t.Fatal(err)
	}
	if err := d2.RemovePod(ctx, pod.UID); err != nil {
		t.Fatal(err)
	}

	// Markers outlive their cgroups across a reboot (they sit under the
	// root dir, not on a tmpfs): the next Init drops the ones whose cgroup
	// is gone, and keeps the live ones.
	live := systemd.PodCgroup{UID: "a-live", QOS: v1.PodQOSBestEffort}
	if err := d2.EnsurePod(ctx, live); err != nil {
		t.Fatal(err)
	}
	stale := podMarker{UID: "a-stale", QOS: v1.PodQOSBurstable, CPUShares: 500}
	b, _ := json.Marshal(stale)
	if err := os.WriteFile(d2.podMarkerFile(stale.UID), b, 0o600); err != nil {
		t.Fatal(err)
	}
	b, _ = json.Marshal(scopeMarker{UID: stale.UID, QOS: stale.QOS, ID: "stale-scope"})
	if err := os.WriteFile(d2.scopeMarkerFile("stale-scope"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	d2.Close()
	d3 := newTestCgroupfsIn(t, "kubepods-cgfs-adopt", state)
	for _, f := range []string{d3.podMarkerFile(stale.UID), d3.scopeMarkerFile("stale-scope")} {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Errorf("stale marker %s kept (%v)", f, err)
		}
	}
	if _, err := d3.readPodMarker(live.UID); err != nil {
		t.Errorf("live pod's marker: %v", err)
	}
	if err := d3.RemovePod(ctx, live.UID); err != nil {
		t.Fatal(err)
	}
}
