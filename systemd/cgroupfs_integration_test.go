package systemd

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	sd "github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"
	"github.com/minikubelet/minikubelet/internal/testnode"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// The test binary doubles as the workload of these tests: with
// MKL_CGFS_HELPER set it runs a tiny program instead of the tests. It first
// waits for one byte on stdin, so the test can place it in its cgroup
// before it allocates anything (the "held stopped" contract of StartScope).
const cgfsHelperEnv = "MKL_CGFS_HELPER"

func init() {
	if mode := os.Getenv(cgfsHelperEnv); mode != "" {
		os.Exit(cgfsHelper(mode))
	}
}

var cgfsHeap [][]byte // kept reachable so the allocation stays resident

func cgfsHelper(mode string) int {
	one := make([]byte, 1)
	if _, err := os.Stdin.Read(one); err != nil {
		return 3
	}
	switch {
	case mode == "oom":
		// Allocate and touch 1 MiB at a time until the OOM killer ends us.
		for {
			b := make([]byte, 1<<20)
			for i := 0; i < len(b); i += 4096 {
				b[i] = 1
			}
			cgfsHeap = append(cgfsHeap, b)
		}
	case strings.HasPrefix(mode, "alloc:"):
		n, _ := strconv.Atoi(strings.TrimPrefix(mode, "alloc:"))
		b := make([]byte, n)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		cgfsHeap = append(cgfsHeap, b)
		// Burn a little cpu (≈200 ms of work, not measured against time).
		x := uint64(1)
		for i := 0; i < 200_000_000; i++ {
			x = x*6364136223846793005 + 1442695040888963407
		}
		fmt.Printf("ready %d\n", x&1)
		os.Stdin.Read(one) // until EOF or killed
		return 0
	case mode == "ignore-term":
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ready")
		os.Stdin.Read(one)
		return 0
	}
	return 2
}

// heldProcess is a helper process waiting for its release byte.
type heldProcess struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

func startHeld(t *testing.T, mode string) *heldProcess {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), cgfsHelperEnv+"="+mode, "GOMAXPROCS=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &heldProcess{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
	t.Cleanup(func() {
		cmd.Process.Kill() // by PID; a no-op once reaped
		stdin.Close()
		h.wait()
	})
	return h
}

func (h *heldProcess) release(t *testing.T) {
	t.Helper()
	if _, err := h.stdin.Write([]byte{1}); err != nil {
		t.Fatalf("release pid %d: %v", h.cmd.Process.Pid, err)
	}
}

func (h *heldProcess) readLine(t *testing.T) string {
	t.Helper()
	s, err := h.out.ReadString('\n')
	if err != nil {
		t.Fatalf("pid %d output: %v", h.cmd.Process.Pid, err)
	}
	return strings.TrimSpace(s)
}

var waited = map[*exec.Cmd]error{}

func (h *heldProcess) wait() error {
	if err, ok := waited[h.cmd]; ok {
		return err
	}
	err := h.cmd.Wait()
	waited[h.cmd] = err
	return err
}

func startSleep(t *testing.T) *exec.Cmd {
	t.Helper()
	c := exec.Command("sleep", "300")
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Process.Kill(); c.Wait() })
	return c
}

// newTestCgroupfs returns a cgroupfs driver on its own root (never the
// kubepods or kubepods.slice the systemd driver tests use), and removes the
// whole tree at the end, whatever happened.
func newTestCgroupfs(t *testing.T, root string) *CgroupfsDriver {
	t.Helper()
	return newTestCgroupfsIn(t, root, t.TempDir())
}

func newTestCgroupfsIn(t *testing.T, root, stateDir string) *CgroupfsDriver {
	t.Helper()
	d, err := NewCgroupfsDriver(CgroupfsOptions{CgroupRoot: root, StateDir: stateDir, PollInterval: 100 * time.Millisecond, DefaultStopTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.Close()
		dirs, err := cgroupDirs(d.RootPath())
		if err != nil {
			t.Error(err)
			return
		}
		for _, dir := range dirs {
			if pids, _ := allPIDs(map[string]string{"x": dir}); len(pids) > 0 {
				t.Errorf("processes left in %s: %v", dir, pids)
			}
		}
		if err := removeCgroupDirs(dirs); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	if err := d.Init(context.Background()); err != nil {
		t.Fatalf("Init: %v", err)
	}
	return d
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
	dirs, err := cgroupDirs(cgroupPath)
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
	dirs, err := cgroupDirs("/")
	if err != nil {
		t.Fatal(err)
	}
	if isV2Dirs(dirs) {
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
	if all, err := cgroupDirs("/"); err == nil {
		t.Logf("hierarchies in the node: %v", all)
	}
	d := newTestCgroupfs(t, "kubepods-cgfs-test")
	pidsLimit := int64(100)
	opts := PlanOptions{CgroupRoot: "kubepods-cgfs-test", PodPidsLimit: &pidsLimit}
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
		plan := PlanPod(pod, opts)
		if plan.CgroupfsPath != wantPods[i].path {
			t.Fatalf("plan path %s, driver will use %s", plan.CgroupfsPath, wantPods[i].path)
		}
		if err := d.EnsurePod(ctx, plan.PodCgroup()); err != nil {
			t.Fatalf("EnsurePod %s: %v", pod.UID, err)
		}
		if err := d.EnsurePod(ctx, plan.PodCgroup()); err != nil { // idempotent
			t.Fatalf("EnsurePod again %s: %v", pod.UID, err)
		}
		s := startSleep(t)
		sleepers[ids[i]] = s
		err := d.StartScope(ctx, ScopeSpec{Pod: plan.PodCgroup(), ID: ids[i], Description: "test " + ids[i],
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
	dirs, _ := cgroupDirs(wantScopes[1].path)
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
	got := map[string]UnitState{}
	for _, s := range states {
		got[s.Unit] = s
	}
	if len(states) != 6 {
		t.Errorf("List returned %d units, want 6: %+v", len(states), states)
	}
	for i, id := range ids {
		s, ok := got[ScopeUnitName(id)]
		if !ok || s.ActiveState != "active" || s.CgroupPath != wantScopes[i].path || s.PodUID != pods[i].UID || len(s.PIDs) != 1 {
			t.Errorf("scope %s listed as %+v", id, s)
		}
		ps := d.names.PodSlice(GetPodQOS(pods[i]), pods[i].UID)
		if s, ok := got[ps]; !ok || s.CgroupPath != wantPods[i].path {
			t.Errorf("pod %s listed as %+v", ps, s)
		}
	}

	// A second agent with its own markers refuses the root, naming a pod.
	other, _ := NewCgroupfsDriver(CgroupfsOptions{CgroupRoot: "kubepods-cgfs-test", StateDir: t.TempDir()})
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
		if ws, ok := waitStatus(err); !ok || !ws.Signaled() || (i == 0 && ws.Signal() != syscall.SIGTERM) || (i > 0 && ws.Signal() != syscall.SIGKILL) {
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
		dirs, _ := cgroupDirs(w.path)
		for k, dir := range dirs {
			if _, err := os.Stat(dir); err == nil {
				t.Errorf("hierarchy %q: %s still exists", k, dir)
			}
		}
	}
	// Only the root and QoS cgroups stay (the cleanup removes them).
	rootDirs, _ := cgroupDirs(d.RootPath())
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

func waitStatus(err error) (syscall.WaitStatus, bool) {
	ee, ok := err.(*exec.ExitError)
	if !ok {
		return 0, false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ws, ok
}

// TestCgroupfsStopScopeEscalates: a process ignoring SIGTERM is killed
// after the scope's stop timeout.
func TestCgroupfsStopScopeEscalates(t *testing.T) {
	testnode.Require(t)
	ctx := context.Background()
	d := newTestCgroupfs(t, "kubepods-cgfs-stop")
	pod := PodCgroup{UID: "s-1", QOS: v1.PodQOSBestEffort}
	h := startHeld(t, "ignore-term")
	if err := d.StartScope(ctx, ScopeSpec{Pod: pod, ID: "stubborn", PIDs: []int{h.cmd.Process.Pid}, StopTimeout: 300 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	h.release(t)
	if l := h.readLine(t); l != "ready" {
		t.Fatalf("helper said %q", l)
	}
	if err := d.StopScope(ctx, "stubborn", false); err != nil {
		t.Fatal(err)
	}
	if ws, ok := waitStatus(h.wait()); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("want SIGKILL after the stop timeout, got %v", h.wait())
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
			pod := PodCgroup{UID: "e-1", QOS: v1.PodQOSBestEffort}
			s := startSleep(t)
			if err := d.StartScope(ctx, ScopeSpec{Pod: pod, ID: "ev", PIDs: []int{s.Process.Pid}}); err != nil {
				t.Fatal(err)
			}
			next := func(unit string) Event {
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
			if ev := next(ScopeUnitName("ev")); ev.State.ActiveState != "active" || ev.Gone {
				t.Fatalf("start event %+v", ev)
			}
			s.Process.Kill()
			s.Wait()
			if ev := next(ScopeUnitName("ev")); ev.State.ActiveState != "inactive" || ev.Gone || ev.State.PodUID != pod.UID {
				t.Fatalf("exit event %+v", ev)
			}
			if err := d.StopScope(ctx, "ev", true); err != nil {
				t.Fatal(err)
			}
			if ev := next(ScopeUnitName("ev")); !ev.Gone {
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

// expectOOM waits for one value on an OOM channel.
func expectOOM(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case _, ok := <-ch:
		if !ok {
			t.Fatalf("%s: OOM channel closed before a kill was reported", what)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("%s: no OOM kill reported", what)
	}
}

func expectNoOOM(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case _, ok := <-ch:
		if ok {
			t.Fatalf("%s: OOM kill reported for a cgroup that had none", what)
		}
	default:
	}
}

func expectClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
			t.Fatalf("%s: unexpected OOM value while waiting for close", what)
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: OOM channel not closed after its cgroup was removed", what)
		}
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
	limit, big := int64(16<<20), int64(256<<20)
	pod := PodCgroup{UID: "o-1", QOS: v1.PodQOSBurstable, Resources: Resources{CPUShares: sdPtr(uint64(102))}}
	hog := startHeld(t, "oom")
	calm := startSleep(t)
	if err := d.StartScope(ctx, ScopeSpec{Pod: pod, ID: "hog", PIDs: []int{hog.cmd.Process.Pid}, Resources: Resources{MemoryLimit: &limit}}); err != nil {
		t.Fatal(err)
	}
	if err := d.StartScope(ctx, ScopeSpec{Pod: pod, ID: "calm", PIDs: []int{calm.Process.Pid}, Resources: Resources{MemoryLimit: &big}}); err != nil {
		t.Fatal(err)
	}
	// Watch before the workload runs.
	hogCh, err := d.WatchOOM(ctx, pod.UID, "hog")
	if err != nil {
		t.Fatal(err)
	}
	calmCh, err := d.WatchOOM(ctx, pod.UID, "calm")
	if err != nil {
		t.Fatal(err)
	}
	podCh, err := d.WatchOOM(ctx, pod.UID, "")
	if err != nil {
		t.Fatal(err)
	}
	hog.release(t)
	expectOOM(t, hogCh, "hog")
	// The pod's watcher counts its containers' kills too (on v1 found by
	// its periodic re-read: the eventfd of an ancestor does not fire).
	expectOOM(t, podCh, "pod")
	if ws, ok := waitStatus(hog.wait()); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("hog ended with %v, want SIGKILL by the OOM killer", hog.wait())
	}
	u, err := d.Usage(ctx, pod.UID, "hog")
	if err != nil {
		t.Fatal(err)
	}
	if u.OOMKills != 1 {
		t.Errorf("hog OOMKills = %d, want 1", u.OOMKills)
	}
	cu, err := d.Usage(ctx, pod.UID, "calm")
	if err != nil {
		t.Fatal(err)
	}
	if cu.OOMKills != 0 {
		t.Errorf("calm OOMKills = %d, want 0", cu.OOMKills)
	}
	pu, err := d.Usage(ctx, pod.UID, "")
	if err != nil {
		t.Fatal(err)
	}
	if pu.OOMKills != 1 {
		t.Errorf("pod OOMKills = %d, want 1 (the hog's kill, counted for the pod too)", pu.OOMKills)
	}
	expectNoOOM(t, calmCh, "calm")
	t.Logf("hog usage after kill %+v; calm %+v; pod %+v", u, cu, pu)
	for _, id := range []string{"hog", "calm"} {
		if err := d.StopScope(ctx, id, true); err != nil {
			t.Fatal(err)
		}
	}
	expectClosed(t, hogCh, "hog")
	expectClosed(t, calmCh, "calm")
	if err := d.RemovePod(ctx, pod.UID); err != nil {
		t.Fatal(err)
	}
	expectClosed(t, podCh, "pod")
}

// TestCgroupfsUsage: a process that allocates 24 MiB and burns a little
// cpu shows plausible usage in its 64 MiB scope and in its pod.
func TestCgroupfsUsage(t *testing.T) {
	testnode.Require(t)
	ctx := context.Background()
	d := newTestCgroupfs(t, "kubepods-cgfs-usage")
	limit := int64(64 << 20)
	pod := PodCgroup{UID: "u-1", QOS: v1.PodQOSBurstable, Resources: Resources{CPUShares: sdPtr(uint64(256))}}
	h := startHeld(t, fmt.Sprintf("alloc:%d", 24<<20))
	if err := d.StartScope(ctx, ScopeSpec{Pod: pod, ID: "worker", PIDs: []int{h.cmd.Process.Pid}, Resources: Resources{MemoryLimit: &limit}}); err != nil {
		t.Fatal(err)
	}
	before, err := d.Usage(ctx, pod.UID, "worker")
	if err != nil {
		t.Fatal(err)
	}
	h.release(t)
	if l := h.readLine(t); !strings.HasPrefix(l, "ready") {
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

// TestSystemdScopeOOMKill: the same OOM attribution for a transient scope
// made by systemd itself (systemd 252 on v1 only reports Result=signal, so
// the kill must be read from the cgroup): the shared cgroupfile functions
// find the scope's directories from its ControlGroup property.
func TestSystemdScopeOOMKill(t *testing.T) {
	testnode.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := sd.NewSystemdConnectionContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := func(unit string, pids []uint32, limit uint64) map[string]string {
		t.Helper()
		props := []sd.Property{
			sd.PropPids(pids...),
			{Name: "MemoryAccounting", Value: godbus.MakeVariant(true)},
			{Name: "MemoryMax", Value: godbus.MakeVariant(limit)},
			{Name: "Delegate", Value: godbus.MakeVariant(true)},
		}
		done := make(chan string, 1)
		if _, err := conn.StartTransientUnitContext(ctx, unit, "fail", props, done); err != nil {
			t.Fatalf("start %s: %v", unit, err)
		}
		if r := <-done; r != "done" {
			t.Fatalf("start %s: job %s", unit, r)
		}
		t.Cleanup(func() {
			ch := make(chan string, 1)
			if _, err := conn.StopUnitContext(context.Background(), unit, "replace", ch); err == nil {
				<-ch
			}
			conn.ResetFailedUnitContext(context.Background(), unit)
		})
		p, err := conn.GetUnitTypePropertyContext(ctx, unit, "Scope", "ControlGroup")
		if err != nil {
			t.Fatal(err)
		}
		cg := strings.Trim(p.Value.String(), `"`)
		dirs, err := cgroupDirs(cg)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: ControlGroup %s, memory dir %s", unit, cg, dirs["memory"])
		return dirs
	}
	// The hog shares its scope with a small bystander, which the OOM killer
	// spares (it picks the biggest task): systemd would otherwise collect
	// the emptied scope, and its counters with it, right after the kill.
	hog := startHeld(t, "oom")
	bystander := startSleep(t)
	calm := startSleep(t)
	hogDirs := start("mkl-cgfs-oom-hog.scope", []uint32{uint32(hog.cmd.Process.Pid), uint32(bystander.Process.Pid)}, 16<<20)
	calmDirs := start("mkl-cgfs-oom-calm.scope", []uint32{uint32(calm.Process.Pid)}, 256<<20)
	if !isV2Dirs(hogDirs) {
		if got := cgfsDirFile(t, hogDirs["memory"], "memory.limit_in_bytes"); got != "16777216" {
			t.Fatalf("hog memory.limit_in_bytes = %s", got)
		}
	}
	hogCh, err := watchOOM(ctx, hogDirs)
	if err != nil {
		t.Fatal(err)
	}
	calmCh, err := watchOOM(ctx, calmDirs)
	if err != nil {
		t.Fatal(err)
	}
	hog.release(t)
	expectOOM(t, hogCh, "hog scope")
	if ws, ok := waitStatus(hog.wait()); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("hog ended with %v, want SIGKILL", hog.wait())
	}
	hu, err := readUsage(hogDirs)
	if err != nil {
		t.Fatal(err)
	}
	cu, err := readUsage(calmDirs)
	if err != nil {
		t.Fatal(err)
	}
	if hu.OOMKills != 1 || cu.OOMKills != 0 {
		t.Errorf("OOMKills: hog %d (want 1), calm %d (want 0)", hu.OOMKills, cu.OOMKills)
	}
	expectNoOOM(t, calmCh, "calm scope")
	// Once the bystander is gone too, systemd collects the emptied scope
	// and the watcher closes.
	bystander.Process.Kill()
	bystander.Wait()
	expectClosed(t, hogCh, "hog scope")
}

func cgfsDirFile(t *testing.T, dir, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

const cgfsV2Env = "MKL_CGFS_PURE_V2"

// TestCgroupfsPureV2 runs the driver on a pure cgroup v2 layout: in a
// private mount namespace of the test node, /sys/fs/cgroup is replaced by a
// single cgroup2 mount (the node's own unified hierarchy), and the test
// binary runs this test again inside. This machine's v2 hierarchy has no
// memory, cpu or pids controller (v1 holds them), so it checks the v2 code
// path itself: detection, fs2 creation, placing processes, populated events
// through inotify, cgroup.kill, removal, and that a limit the hierarchy
// cannot enforce is refused rather than dropped.
func TestCgroupfsPureV2(t *testing.T) {
	testnode.Require(t)
	if os.Getenv(cgfsV2Env) != "" {
		cgfsPureV2Inner(t)
		return
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The node's private tmpfs sits over the host's: unmount every layer.
	script := `set -e
while grep -q ' /sys/fs/cgroup ' /proc/self/mountinfo; do umount -R /sys/fs/cgroup; done
mount -t cgroup2 cgroup2 /sys/fs/cgroup
exec "$0" -test.run '^TestCgroupfsPureV2$' -test.v -test.count=1`
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script, self)
	cmd.Env = append(os.Environ(), cgfsV2Env+"=1")
	out, err := cmd.CombinedOutput()
	t.Logf("inner run:\n%s", out)
	if err != nil {
		t.Fatalf("inner run: %v", err)
	}
	if !strings.Contains(string(out), "--- PASS: TestCgroupfsPureV2") {
		t.Fatal("inner run did not pass the test")
	}
}

func cgfsPureV2Inner(t *testing.T) {
	ctx := context.Background()
	dirs, err := cgroupDirs("/")
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) != 1 || dirs[""] != "/sys/fs/cgroup" {
		t.Fatalf("pure v2 dirs = %v, want only \"\": /sys/fs/cgroup", dirs)
	}
	d := newTestCgroupfs(t, "kubepods-cgfs-v2")
	pod := PodCgroup{UID: "v2-1", QOS: v1.PodQOSBestEffort, Resources: Resources{CPUShares: sdPtr(uint64(MinShares))}}
	if err := d.EnsurePod(ctx, pod); err != nil {
		t.Fatal(err)
	}
	s := startSleep(t)
	if err := d.StartScope(ctx, ScopeSpec{Pod: pod, ID: "v2c", PIDs: []int{s.Process.Pid}}); err != nil {
		t.Fatal(err)
	}
	scope := "/sys/fs/cgroup/kubepods-cgfs-v2/besteffort/podv2-1/v2c"
	if got := cgfsDirFile(t, scope, "cgroup.procs"); got != strconv.Itoa(s.Process.Pid) {
		t.Fatalf("%s/cgroup.procs = %q, want %d", scope, got, s.Process.Pid)
	}
	if got := cgfsDirFile(t, scope, "cgroup.events"); !strings.Contains(got, "populated 1") {
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
	s2 := startSleep(t)
	err = d.StartScope(ctx, ScopeSpec{Pod: pod, ID: "v2limited", PIDs: []int{s2.Process.Pid}, Resources: Resources{MemoryLimit: &limit}})
	if ctl, _ := os.ReadFile("/sys/fs/cgroup/cgroup.controllers"); slices.Contains(strings.Fields(string(ctl)), "memory") {
		if err != nil {
			t.Fatalf("memory limit with the memory controller: %v", err)
		}
		if got := cgfsDirFile(t, "/sys/fs/cgroup/kubepods-cgfs-v2/besteffort/podv2-1/v2limited", "memory.max"); got != "67108864" {
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
			if ev.Unit != ScopeUnitName("v2c") || (ev.State.ActiveState == "active" && !ev.Gone) {
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
	h := startHeld(t, "ignore-term")
	if err := d.StartScope(ctx, ScopeSpec{Pod: pod, ID: "v2stubborn", PIDs: []int{h.cmd.Process.Pid}, StopTimeout: 200 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	h.release(t)
	h.readLine(t)
	if err := d.StopScope(ctx, "v2stubborn", false); err != nil {
		t.Fatal(err)
	}
	if ws, ok := waitStatus(h.wait()); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("stubborn process ended with %v", h.wait())
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
		if err := d.EnsurePod(ctx, PlanPod(p, PlanOptions{CgroupRoot: "kubepods-cgfs-qos"}).PodCgroup()); err != nil {
			t.Fatal(err)
		}
	}
	// The estimate: 153 + 153 shares (the kubelet would say 300m → 307).
	if got := cgfsFile(t, "/kubepods-cgfs-qos/burstable", "cpu", "cpu.shares"); got != "306" {
		t.Errorf("estimated burstable cpu.shares = %s, want 306", got)
	}
	burstable, _ := QOSResources(pods)
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
	if err := d.UpdateQOS(ctx, v1.PodQOSGuaranteed, Resources{}); err == nil {
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
	pod := PodCgroup{UID: "a-1", QOS: v1.PodQOSBurstable, Resources: Resources{CPUShares: sdPtr(uint64(102))}}
	s1, s2 := startSleep(t), startSleep(t)
	for id, s := range map[string]*exec.Cmd{"keep": s1, "lost": s2} {
		if err := d1.StartScope(ctx, ScopeSpec{Pod: pod, ID: id, PIDs: []int{s.Process.Pid}}); err != nil {
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
			done = ev.Unit == ScopeUnitName("keep") && ev.State.ActiveState == "inactive"
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
	if ws, ok := waitStatus(s2.Wait()); !ok || ws.Signal() != syscall.SIGKILL {
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
	live := PodCgroup{UID: "a-live", QOS: v1.PodQOSBestEffort}
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
