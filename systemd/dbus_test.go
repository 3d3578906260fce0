package systemd

// Integration tests of the systemd driver against the real systemd 252 the
// test node boots (TestMain in dbus_main_test.go). Each test uses a cgroup
// root of its own, so tests cannot see each other's units, and removes
// everything it made in t.Cleanup.

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	sd "github.com/coreos/go-systemd/v22/dbus"
	"github.com/minikubelet/minikubelet/internal/testnode"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// --- the held child ---------------------------------------------------------

// envHeldChild makes this test binary a held child: it waits on fd 3 for
// its release, and only then reports where it is and execs the workload.
const envHeldChild = "MKL_HELD_CHILD"

// envHeldWorkload is the shell command the held child execs once released.
const envHeldWorkload = "MKL_HELD_WORKLOAD"

// helperMain runs the held child when this binary was started as one.
// Exit status 3: the release pipe closed without a release, so the
// workload never ran.
func helperMain() bool {
	if os.Getenv(envHeldChild) == "" {
		return false
	}
	release := os.NewFile(3, "release")
	var b [1]byte
	if n, _ := release.Read(b[:]); n != 1 {
		os.Exit(3)
	}
	release.Close()
	// Before the workload: where am I, and what memory limit binds me?
	cg, _ := os.ReadFile("/proc/self/cgroup")
	memLimit := "unknown"
	for _, line := range strings.Split(string(cg), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		switch {
		case f[1] == "memory":
			if v, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/memory", f[2], "memory.limit_in_bytes")); err == nil {
				memLimit = strings.TrimSpace(string(v))
			}
		case f[0] == "0" && f[1] == "" && memLimit == "unknown":
			if v, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", f[2], "memory.max")); err == nil {
				memLimit = strings.TrimSpace(string(v))
			}
		}
	}
	fmt.Printf("CGROUP %s\nMEMLIMIT %s\nEXEC\n", strings.Join(strings.Fields(string(cg)), " "), memLimit)
	os.Stdout.Sync()
	workload := os.Getenv(envHeldWorkload)
	if workload == "" {
		workload = "exec sleep 300"
	}
	err := syscall.Exec("/bin/sh", []string{"sh", "-c", workload}, os.Environ())
	fmt.Fprintln(os.Stderr, "exec workload:", err)
	os.Exit(4)
	return true
}

type sdHeldChild struct {
	cmd     *exec.Cmd
	release *os.File
	lines   chan string
	exited  chan struct{}
	err     error
}

// sdStartHeld starts a held child; t.Cleanup kills it.
func sdStartHeld(t *testing.T) *sdHeldChild { t.Helper(); return sdStartHeldWorkload(t, "") }

// sdStartHeldWorkload starts a held child that execs workload (a shell
// command) once released.
func sdStartHeldWorkload(t *testing.T, workload string) *sdHeldChild {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), envHeldChild+"=1", envHeldWorkload+"="+workload)
	cmd.ExtraFiles = []*os.File{r}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.Close()
	h := &sdHeldChild{cmd: cmd, release: w, lines: make(chan string, 16), exited: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			h.lines <- sc.Text()
		}
		close(h.lines)
		h.err = cmd.Wait()
		close(h.exited)
	}()
	t.Cleanup(func() {
		w.Close()
		cmd.Process.Kill()
		<-h.exited
	})
	return h
}

func (h *sdHeldChild) pid() int { return h.cmd.Process.Pid }

// releaseAndReport lets the child go and returns what it reported before
// exec'ing its workload.
func (h *sdHeldChild) releaseAndReport(t *testing.T) map[string]string {
	t.Helper()
	if _, err := h.release.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
	h.release.Close()
	got := map[string]string{}
	// Generous: under QEMU's emulation (make test-vm) a child in a scope
	// of 10m CPU took minutes (TestTreeForEveryQOSClass no longer asks).
	timeout := time.After(3 * time.Minute)
	for {
		select {
		case line, ok := <-h.lines:
			if !ok {
				t.Fatalf("child exited before reporting: %v", h.err)
			}
			k, v, _ := strings.Cut(line, " ")
			got[k] = v
			if k == "EXEC" {
				return got
			}
		case <-timeout:
			t.Fatal("child did not report within 3 min")
		}
	}
}

// --- driver and cgroup helpers ---------------------------------------------

func randID(prefix string) string {
	b := make([]byte, 6)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testnode.Scale(2*time.Minute))
	t.Cleanup(cancel)
	return ctx
}

// newTestDriver connects a driver for a cgroup root of the test's own and
// removes the root's whole tree (and the driver) when the test ends.
func newTestDriver(t *testing.T, root string) *DBusDriver {
	t.Helper()
	d, err := New(testCtx(t), DBusOptions{CgroupRoot: root})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		removeTree(t, root)
		d.Close()
	})
	return d
}

// removeTree stops every unit of a root's tree, ours or not, deepest first.
func removeTree(t *testing.T, root string) {
	ctx := context.Background()
	c, err := sd.NewSystemdConnectionContext(ctx)
	if err != nil {
		t.Errorf("cleanup: connect: %v", err)
		return
	}
	defer c.Close()
	n := NewNames(root)
	units, err := c.ListUnitsByPatternsContext(ctx, []string{}, []string{n.RootSlice(), strings.TrimSuffix(n.RootSlice(), ".slice") + "-*.slice"})
	if err != nil {
		t.Errorf("cleanup: list: %v", err)
		return
	}
	// Longer names are deeper; stopping a slice stops its scopes.
	for depth := 4; depth >= 0; depth-- {
		for _, u := range units {
			if strings.Count(u.Name, "-") != depth {
				continue
			}
			ch := make(chan string, 1)
			if _, err := c.StopUnitContext(ctx, u.Name, "replace", ch); err == nil {
				select {
				case <-ch:
				case <-time.After(30 * time.Second):
					t.Errorf("cleanup: stop %s timed out", u.Name)
				}
			}
			c.ResetFailedUnitContext(ctx, u.Name)
		}
	}
}

// cgroupValues are the four limit files of one cgroup, as read.
type cgroupValues struct{ Memory, Shares, Quota, Pids string }

const v1Unlimited = "9223372036854771712" // memory.limit_in_bytes of -1 (4 KiB pages)

// readCgroup reads the limit files of a ControlGroup path.
func readCgroup(t *testing.T, cg string) cgroupValues {
	t.Helper()
	dirs, err := CgroupDirs(cg)
	if err != nil {
		t.Fatalf("cgroupDirs(%s): %v", cg, err)
	}
	rd := func(key, file string) string {
		dir, ok := dirs[key]
		if !ok {
			t.Fatalf("no %q hierarchy for %s (%v)", key, cg, dirs)
		}
		b, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatalf("read %s: %v", filepath.Join(dir, file), err)
		}
		return strings.TrimSpace(string(b))
	}
	if IsV2Dirs(dirs) {
		quota := strings.Fields(rd(UnifiedKey, "cpu.max"))[0]
		if quota == "max" {
			quota = "-1"
		}
		mem := rd(UnifiedKey, "memory.max")
		if mem == "max" {
			mem = v1Unlimited
		}
		return cgroupValues{Memory: mem, Shares: rd(UnifiedKey, "cpu.weight"), Quota: quota, Pids: rd(UnifiedKey, "pids.max")}
	}
	return cgroupValues{
		Memory: rd("memory", "memory.limit_in_bytes"),
		Shares: rd("cpu", "cpu.shares"),
		Quota:  rd("cpu", "cpu.cfs_quota_us"),
		Pids:   rd("pids", "pids.max"),
	}
}

// expectValues is what the files must say for r on this host.
func expectValues(d *DBusDriver, r Resources) cgroupValues {
	v := cgroupValues{Memory: v1Unlimited, Shares: "1024", Quota: "-1", Pids: "max"}
	if r.MemoryLimit != nil {
		v.Memory = strconv.FormatInt(*r.MemoryLimit, 10)
	}
	if r.CPUShares != nil {
		v.Shares = strconv.FormatUint(*r.CPUShares, 10)
	}
	if d.Unified() {
		v.Shares = "100"
		if r.CPUShares != nil {
			v.Shares = strconv.FormatUint(CPUSharesToWeight(*r.CPUShares), 10)
		}
	}
	if r.CPUQuotaMicros != nil {
		v.Quota = strconv.FormatInt(*r.CPUQuotaMicros, 10)
	}
	if r.PidsLimit != nil {
		v.Pids = strconv.FormatInt(*r.PidsLimit, 10)
	}
	return v
}

func controlGroup(t *testing.T, unit string) string {
	t.Helper()
	ctx := context.Background()
	c, err := sd.NewSystemdConnectionContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	iface := "Slice"
	if strings.HasSuffix(unit, ".scope") {
		iface = "Scope"
	}
	p, err := c.GetUnitTypePropertyContext(ctx, unit, iface, "ControlGroup")
	if err != nil {
		t.Fatalf("ControlGroup of %s: %v", unit, err)
	}
	return p.Value.Value().(string)
}

// --- tests -----------------------------------------------------------------

type treeCase struct {
	qos  QOSClass
	pod  *v1.Pod
	want map[string]cgroupValues // unit role ("pod", container name, "sandbox") → literal file values
}

// TestTreeForEveryQOSClass builds the whole tree for a Guaranteed, a
// Burstable and a BestEffort pod, checks names and the values in the cgroup
// files of the pod slices and the container scopes, and tears it all down.
func TestTreeForEveryQOSClass(t *testing.T) {
	testnode.Require(t)
	ctx := testCtx(t)
	root := "mkltree"
	d := newTestDriver(t, root)
	if err := d.Init(ctx); err != nil {
		t.Fatalf("Init: %v", err)
	}
	for _, unit := range []string{"mkltree.slice", "mkltree-burstable.slice", "mkltree-besteffort.slice"} {
		cg := controlGroup(t, unit)
		want := "/" + ExpandSlice(unit)
		if cg != want {
			t.Errorf("%s: ControlGroup %q, want %q", unit, cg, want)
		}
	}
	if got := readCgroup(t, "/mkltree.slice/mkltree-besteffort.slice"); got.Shares != expectValues(d, Resources{CPUShares: u64(2)}).Shares {
		t.Errorf("besteffort slice shares %s, want 2", got.Shares)
	}

	pids := int64(1000)
	unlimited := v1Unlimited
	cases := []treeCase{
		{v1.PodQOSGuaranteed, podOf("1111-aaaa", nil,
			ctr("a", nil, rl("cpu", "500m", "memory", "64Mi")),
			ctr("b", nil, rl("cpu", "250m", "memory", "32Mi"))),
			map[string]cgroupValues{
				"pod":     {Memory: "100663296", Shares: "768", Quota: "75000", Pids: "1000"},
				"a":       {Memory: "67108864", Shares: "512", Quota: "50000", Pids: "max"},
				"b":       {Memory: "33554432", Shares: "256", Quota: "25000", Pids: "max"},
				"sandbox": {Memory: unlimited, Shares: "2", Quota: "-1", Pids: "max"},
			}},
		{v1.PodQOSBurstable, podOf("2222-bbbb", nil,
			ctr("a", rl("cpu", "100m", "memory", "32Mi"), rl("cpu", "10m", "memory", "64Mi")),
			ctr("b", rl("cpu", "100m"), nil)),
			map[string]cgroupValues{
				"pod":     {Memory: unlimited, Shares: "204", Quota: "-1", Pids: "1000"},
				"a":       {Memory: "67108864", Shares: "102", Quota: "1000", Pids: "max"},
				"b":       {Memory: unlimited, Shares: "102", Quota: "-1", Pids: "max"},
				"sandbox": {Memory: unlimited, Shares: "2", Quota: "-1", Pids: "max"},
			}},
		{v1.PodQOSBestEffort, podOf("3333-cccc", nil, ctr("a", nil, nil)),
			map[string]cgroupValues{
				"pod":     {Memory: unlimited, Shares: "2", Quota: "-1", Pids: "1000"},
				"a":       {Memory: unlimited, Shares: "2", Quota: "-1", Pids: "max"},
				"sandbox": {Memory: unlimited, Shares: "2", Quota: "-1", Pids: "max"},
			}},
	}
	var pods []*v1.Pod
	for _, tc := range cases {
		pods = append(pods, tc.pod)
		plan := PlanPod(tc.pod, PlanOptions{CgroupRoot: root, PodPidsLimit: &pids})
		if plan.QOS != tc.qos {
			t.Fatalf("pod %s: QoS %s, want %s", tc.pod.UID, plan.QOS, tc.qos)
		}
		if err := d.EnsurePod(ctx, plan.PodCgroup()); err != nil {
			t.Fatalf("EnsurePod %s: %v", plan.PodSlice, err)
		}
		// Idempotent: ensuring again updates in place.
		if err := d.EnsurePod(ctx, plan.PodCgroup()); err != nil {
			t.Fatalf("EnsurePod again %s: %v", plan.PodSlice, err)
		}
		cg := controlGroup(t, plan.PodSlice)
		if cg != "/"+plan.SlicePath {
			t.Errorf("%s: ControlGroup %s, want /%s", plan.PodSlice, cg, plan.SlicePath)
		}
		check := func(role, unit, cg string, r Resources) {
			got := readCgroup(t, cg)
			want := tc.want[role]
			if d.Unified() {
				want = expectValues(d, r) // the literal figures are v1's
			}
			if got != want {
				t.Errorf("%s %s (%s): files %+v, want %+v", tc.qos, role, cg, got, want)
			}
			if got != expectValues(d, r) {
				t.Errorf("%s %s: files %+v disagree with the plan %+v", tc.qos, role, got, expectValues(d, r))
			}
			t.Logf("%-10s %-8s %s: memory=%s shares/weight=%s quota=%s pids=%s", tc.qos, role, cg, got.Memory, got.Shares, got.Quota, got.Pids)
		}
		check("pod", plan.PodSlice, cg, plan.Pod)
		scopes := map[string]Resources{"sandbox": plan.Sandbox}
		for name, r := range plan.Containers {
			scopes[name] = r
		}
		for role, r := range scopes {
			child := sdStartHeld(t)
			id := randID("tree" + role)
			spec := ScopeSpec{Pod: plan.PodCgroup(), ID: id, Description: "container " + role,
				PIDs: []int{child.pid()}, Resources: r, StopTimeout: 2 * time.Second}
			if err := d.StartScope(ctx, spec); err != nil {
				t.Fatalf("StartScope %s: %v", role, err)
			}
			want := "/" + plan.SlicePath + "/minikubelet-" + id + ".scope"
			if got := controlGroup(t, ScopeUnitName(id)); got != want {
				t.Errorf("scope %s: ControlGroup %s, want %s", role, got, want)
			}
			check(role, ScopeUnitName(id), want, r)
			if r.CPUQuotaMicros != nil && *r.CPUQuotaMicros < 10000 {
				// Under 10 % of a CPU (cpu.max 1000 100000 here) the child's
				// own report takes minutes under emulation: its place is
				// read from the outside instead.
				b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", child.pid()))
				if err != nil || !strings.Contains(string(b), ":"+want+"\n") {
					t.Errorf("%s %s: the workload is not in its scope %s: %s %v", tc.qos, role, want, b, err)
				}
				continue
			}
			child.releaseAndReport(t)
		}
	}
	// The Burstable QoS slice follows the Burstable pods' requests (200m → 204).
	burstable, _ := QOSResources(pods)
	if err := d.UpdateQOS(ctx, v1.PodQOSBurstable, burstable); err != nil {
		t.Fatalf("UpdateQOS: %v", err)
	}
	if got, want := readCgroup(t, "/mkltree.slice/mkltree-burstable.slice").Shares, expectValues(d, burstable).Shares; got != want || (!d.Unified() && got != "204") {
		t.Errorf("burstable slice shares %s, want %s (204)", got, want)
	}

	units, err := d.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	slices, scopes := 0, 0
	for _, u := range units {
		if u.ID == "" {
			slices++
		} else {
			scopes++
			if u.PodUID == "" || !strings.HasPrefix(u.CgroupPath, "/mkltree.slice/") {
				t.Errorf("List: scope %+v lacks its pod or path", u)
			}
		}
		if u.ActiveState != "active" {
			t.Errorf("List: %s is %s", u.Unit, u.ActiveState)
		}
	}
	if slices != 3 || scopes != 8 {
		t.Errorf("List: %d pod slices and %d scopes, want 3 and 8: %+v", slices, scopes, units)
	}

	// Teardown: scopes, then pod slices; nothing of ours stays, the
	// directories are gone, the QoS slices remain.
	for _, u := range units {
		if u.ID != "" {
			if err := d.StopScope(ctx, u.ID, true); err != nil {
				t.Errorf("StopScope %s: %v", u.ID, err)
			}
		}
	}
	var podDirs []string
	for _, tc := range cases {
		plan := PlanPod(tc.pod, PlanOptions{CgroupRoot: root})
		dirs, _ := CgroupDirs("/" + plan.SlicePath)
		for _, dir := range dirs {
			podDirs = append(podDirs, dir)
		}
		if err := d.RemovePod(ctx, tc.pod.UID); err != nil {
			t.Errorf("RemovePod %s: %v", tc.pod.UID, err)
		}
		if err := d.RemovePod(ctx, tc.pod.UID); err != nil {
			t.Errorf("RemovePod %s again: %v", tc.pod.UID, err)
		}
	}
	if units, err := d.List(ctx); err != nil || len(units) != 0 {
		t.Errorf("List after teardown: %+v, %v", units, err)
	}
	for _, dir := range podDirs {
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still exists after teardown (%v)", dir, err)
		}
	}
	if cg := controlGroup(t, "mkltree-burstable.slice"); cg == "" {
		t.Error("the burstable QoS slice must stay after the pods are gone")
	}
}

// TestWorkloadNeverRunsOutsideItsScope: the child is held on a pipe, placed
// by StartScope, then released; before exec'ing its workload it reports
// its cgroup and the memory limit it is bound by. A failed StartScope
// leaves the child unreleased: the caller kills it and its workload never ran.
func TestWorkloadNeverRunsOutsideItsScope(t *testing.T) {
	testnode.Require(t)
	ctx := testCtx(t)
	d := newTestDriver(t, "mklheld")
	if err := d.Init(ctx); err != nil {
		t.Fatal(err)
	}
	pod := podOf("4444-dddd", nil, ctr("app", nil, rl("cpu", "200m", "memory", "48Mi")))
	plan := PlanPod(pod, PlanOptions{CgroupRoot: "mklheld"})
	if err := d.EnsurePod(ctx, plan.PodCgroup()); err != nil {
		t.Fatal(err)
	}
	child := sdStartHeld(t)
	id := randID("held")
	spec := ScopeSpec{Pod: plan.PodCgroup(), ID: id, PIDs: []int{child.pid()}, Resources: plan.Containers["app"]}
	if err := d.StartScope(ctx, spec); err != nil {
		t.Fatalf("StartScope: %v", err)
	}
	report := child.releaseAndReport(t)
	wantPath := "/" + plan.SlicePath + "/" + ScopeUnitName(id)
	if !strings.Contains(report["CGROUP"], "memory:"+wantPath) || !strings.Contains(report["CGROUP"], "name=systemd:"+wantPath) {
		if !d.Unified() || !strings.Contains(report["CGROUP"], "0::"+wantPath) {
			t.Errorf("before exec the child was in %s, want %s", report["CGROUP"], wantPath)
		}
	}
	if report["MEMLIMIT"] != "50331648" {
		t.Errorf("before exec the child's memory limit was %s, want 50331648", report["MEMLIMIT"])
	}
	t.Logf("child %d before exec: %s; memory limit %s", child.pid(), report["CGROUP"], report["MEMLIMIT"])

	// Same ID again, with a second held child: StartScope must fail and the
	// child must still be held, outside any scope of ours.
	second := sdStartHeld(t)
	spec.PIDs = []int{second.pid()}
	if err := d.StartScope(ctx, spec); err == nil {
		t.Fatal("StartScope with the ID of a running scope succeeded")
	} else {
		t.Logf("second StartScope refused: %v", err)
	}
	cg, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", second.pid()))
	if strings.Contains(string(cg), ScopePrefix) {
		t.Errorf("the refused child was moved anyway: %s", cg)
	}
	select {
	case line := <-second.lines:
		t.Fatalf("the refused child ran: %q", line)
	default:
	}
	// The caller gives up: closing the release pipe ends the child without
	// its workload (exit 3).
	second.release.Close()
	<-second.exited
	var ee *exec.ExitError
	if !errors.As(second.err, &ee) || ee.ExitCode() != 3 {
		t.Errorf("refused child: %v, want exit status 3 (never released)", second.err)
	}
}

// TestSystemdReexecMidRun: daemon-reexec drops every D-Bus connection; the
// next operations reconnect and succeed, and events keep flowing.
func TestSystemdReexecMidRun(t *testing.T) {
	testnode.Require(t)
	ctx := testCtx(t)
	d := newTestDriver(t, "mklreexec")
	if err := d.Init(ctx); err != nil {
		t.Fatal(err)
	}
	first := PlanPod(podOf("5555-eeee", nil, ctr("a", nil, rl("cpu", "100m", "memory", "16Mi"))), PlanOptions{CgroupRoot: "mklreexec"})
	if err := d.EnsurePod(ctx, first.PodCgroup()); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("systemctl", "daemon-reexec").CombinedOutput(); err != nil {
		t.Fatalf("systemctl daemon-reexec: %v %s", err, out)
	}
	second := PlanPod(podOf("6666-ffff", nil, ctr("a", nil, rl("cpu", "100m", "memory", "24Mi"))), PlanOptions{CgroupRoot: "mklreexec"})
	if err := d.EnsurePod(ctx, second.PodCgroup()); err != nil {
		t.Fatalf("EnsurePod after daemon-reexec: %v", err)
	}
	child := sdStartHeld(t)
	id := randID("reexec")
	if err := d.StartScope(ctx, ScopeSpec{Pod: second.PodCgroup(), ID: id, PIDs: []int{child.pid()}, Resources: second.Containers["a"]}); err != nil {
		t.Fatalf("StartScope after daemon-reexec: %v", err)
	}
	if got := readCgroup(t, "/"+second.SlicePath).Memory; got != "25165824" {
		t.Errorf("pod slice created after the re-exec: memory limit %s, want 25165824", got)
	}
	report := child.releaseAndReport(t)
	if report["MEMLIMIT"] != "25165824" {
		t.Errorf("scope after re-exec: child saw memory limit %s", report["MEMLIMIT"])
	}
	// The slice made before the re-exec kept its limits, also through a
	// daemon-reload (every value is a unit property, not a file write).
	if out, err := exec.Command("systemctl", "daemon-reload").CombinedOutput(); err != nil {
		t.Fatalf("systemctl daemon-reload: %v %s", err, out)
	}
	if got, want := readCgroup(t, "/"+first.SlicePath), expectValues(d, first.Pod); got != want {
		t.Errorf("pod slice made before the re-exec, after re-exec and reload: %+v, want %+v", got, want)
	} else {
		t.Logf("%s after daemon-reexec + daemon-reload: %+v", first.PodSlice, got)
	}
	units, err := d.List(ctx)
	if err != nil || len(units) != 3 {
		st, _ := d.unitState(ctx, first.PodSlice)
		out, _ := exec.Command("sh", "-c", "systemctl status "+first.PodSlice+"; ls /run/systemd/transient/; cat /run/systemd/transient/"+first.PodSlice+" /run/systemd/transient/"+second.PodSlice).CombinedOutput()
		t.Logf("first slice: %+v\n%s", st, out)
		t.Errorf("List after re-exec: %+v, %v (want both pod slices and the scope)", units, err)
	}
	// Events: the signal connection came back too. Killing the workload
	// empties the scope, which systemd then removes.
	child.cmd.Process.Kill()
	waitEvent(t, d, func(e Event) bool { return e.Unit == ScopeUnitName(id) && e.Gone })
}

func waitEvent(t *testing.T, d *DBusDriver, match func(Event) bool) Event {
	t.Helper()
	deadline := time.After(30 * time.Second)
	var seen []string
	for {
		select {
		case e, ok := <-d.Events():
			if !ok {
				t.Fatal("events channel closed")
			}
			seen = append(seen, fmt.Sprintf("%s %s/%s gone=%v", e.Unit, e.State.ActiveState, e.State.SubState, e.Gone))
			if match(e) {
				return e
			}
		case <-deadline:
			t.Fatalf("expected event did not come within 30s; saw %v", seen)
		}
	}
}

// TestEventsFollowUnitState: starting a scope and its workload ending reach
// Events from D-Bus signals.
func TestEventsFollowUnitState(t *testing.T) {
	testnode.Require(t)
	ctx := testCtx(t)
	d := newTestDriver(t, "mklevents")
	if err := d.Init(ctx); err != nil {
		t.Fatal(err)
	}
	plan := PlanPod(podOf("7777-abcd", nil, ctr("a", nil, nil)), PlanOptions{CgroupRoot: "mklevents"})
	if err := d.EnsurePod(ctx, plan.PodCgroup()); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, d, func(e Event) bool {
		return e.Unit == plan.PodSlice && e.State.ActiveState == "active" && e.State.PodUID == "7777-abcd"
	})
	child := sdStartHeld(t)
	id := randID("ev")
	if err := d.StartScope(ctx, ScopeSpec{Pod: plan.PodCgroup(), ID: id, PIDs: []int{child.pid()}, Resources: plan.Containers["a"]}); err != nil {
		t.Fatal(err)
	}
	e := waitEvent(t, d, func(e Event) bool { return e.Unit == ScopeUnitName(id) && e.State.ActiveState == "active" })
	if e.State.ID != id || e.State.PodUID != "7777-abcd" {
		t.Errorf("scope event lacks its identity: %+v", e.State)
	}
	child.releaseAndReport(t)
	child.cmd.Process.Kill()
	waitEvent(t, d, func(e Event) bool { return e.Unit == ScopeUnitName(id) && e.Gone })
	if err := d.RemovePod(ctx, plan.UID); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, d, func(e Event) bool { return e.Unit == plan.PodSlice && e.Gone })
}

// TestConcurrentStopOfOneScope: two StopScope calls on one scope whose
// process ignores SIGTERM (so the stop job lasts until systemd's SIGKILL)
// both return.
func TestConcurrentStopOfOneScope(t *testing.T) {
	testnode.Require(t)
	ctx := testCtx(t)
	d := newTestDriver(t, "mklstop")
	if err := d.Init(ctx); err != nil {
		t.Fatal(err)
	}
	plan := PlanPod(podOf("8888-abcd", nil, ctr("a", nil, nil)), PlanOptions{CgroupRoot: "mklstop"})
	if err := d.EnsurePod(ctx, plan.PodCgroup()); err != nil {
		t.Fatal(err)
	}
	stubborn := startStubborn(t)
	id := randID("stop")
	if err := d.StartScope(ctx, ScopeSpec{Pod: plan.PodCgroup(), ID: id, PIDs: []int{stubborn.Process.Pid},
		Resources: plan.Containers["a"], StopTimeout: time.Second}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = d.StopScope(ctx, id, false)
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(90 * time.Second):
		t.Fatal("concurrent StopScope calls hang")
	}
	for i, err := range errs {
		if err != nil {
			t.Errorf("StopScope #%d: %v", i, err)
		}
	}
	if units, _ := d.List(ctx); len(units) != 1 {
		t.Errorf("after stop, want only the pod slice: %+v", units)
	}
	// Stopping what is gone succeeds.
	if err := d.StopScope(ctx, id, true); err != nil {
		t.Errorf("StopScope of a gone scope: %v", err)
	}
}

// TestInitRefusesForeignPodSlices: a pod slice under the root that this
// program did not create (a kubelet's) makes Init refuse, naming it.
func TestInitRefusesForeignPodSlices(t *testing.T) {
	testnode.Require(t)
	ctx := testCtx(t)
	d := newTestDriver(t, "mklcoex")
	c, err := sd.NewSystemdConnectionContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	foreign := "mklcoex-besteffort-pod9999_abcd.slice"
	ch := make(chan string, 1)
	if _, err := c.StartTransientUnitContext(ctx, foreign, "replace",
		[]sd.Property{sd.PropDescription("libcontainer container " + foreign)}, ch); err != nil {
		t.Fatal(err)
	}
	if r := <-ch; r != "done" {
		t.Fatalf("foreign slice: %s", r)
	}
	err = d.Init(ctx)
	var cerr *CoexistenceError
	if !errors.As(err, &cerr) || !strings.Contains(err.Error(), foreign) {
		t.Fatalf("Init = %v, want a coexistence error naming %s", err, foreign)
	}
	t.Logf("Init refused: %v", err)
	// List and RemovePod never touch it.
	if units, err := d.List(ctx); err != nil || len(units) != 0 {
		t.Errorf("List shows foreign units: %+v %v", units, err)
	}
	if err := d.RemovePod(ctx, types.UID("9999-abcd")); err == nil {
		t.Error("RemovePod stopped a foreign pod slice")
	}
	if st, _ := d.unitState(ctx, foreign); st.ActiveState != "active" {
		t.Errorf("foreign slice is %s, want untouched (active)", st.ActiveState)
	}
}

// TestInitRefusesRunningKubelet: a process named kubelet makes Init refuse.
func TestInitRefusesRunningKubelet(t *testing.T) {
	testnode.Require(t)
	ctx := testCtx(t)
	d := newTestDriver(t, "mklkubelet")
	bin := filepath.Join(t.TempDir(), "kubelet")
	src, err := os.Open("/bin/sleep")
	if err != nil {
		t.Fatal(err)
	}
	dst, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(dst, src)
	src.Close()
	dst.Close()
	k := exec.Command(bin, "300")
	if err := k.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Process.Kill(); k.Wait() })
	err = d.Init(ctx)
	want := fmt.Sprintf("process %d (kubelet) is running", k.Process.Pid)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Init = %v, want a refusal naming %q", err, want)
	}
	k.Process.Kill()
	k.Wait()
	if err := d.Init(ctx); err != nil {
		t.Fatalf("Init after the kubelet stopped: %v", err)
	}
}

// TestUsageAndOOM reads a container's and its pod's usage through the
// unit's ControlGroup and sees an OOM kill in a 16Mi container.
func TestUsageAndOOM(t *testing.T) {
	testnode.Require(t)
	ctx := testCtx(t)
	d := newTestDriver(t, "mkloom")
	if err := d.Init(ctx); err != nil {
		t.Fatal(err)
	}
	plan := PlanPod(podOf("aaaa-0000", nil, ctr("hog", nil, rl("cpu", "500m", "memory", "16Mi"))), PlanOptions{CgroupRoot: "mkloom"})
	if err := d.EnsurePod(ctx, plan.PodCgroup()); err != nil {
		t.Fatal(err)
	}
	child := sdStartHeld(t)
	id := randID("oom")
	if err := d.StartScope(ctx, ScopeSpec{Pod: plan.PodCgroup(), ID: id, PIDs: []int{child.pid()}, Resources: plan.Containers["hog"]}); err != nil {
		t.Fatal(err)
	}
	child.releaseAndReport(t)
	u, err := d.Usage(ctx, plan.UID, id)
	if err != nil || u.MemoryBytes == 0 || u.PIDs == 0 {
		t.Errorf("container usage %+v, %v: want memory > 0 and its tasks", u, err)
	}
	pu, err := d.Usage(ctx, plan.UID, "")
	if err != nil || pu.MemoryBytes == 0 || pu.PIDs == 0 {
		t.Errorf("pod usage %+v, %v: want memory > 0 and the container's process", pu, err)
	}
	t.Logf("container usage %+v, pod usage %+v", u, pu)
	child.cmd.Process.Kill()
	<-child.exited

	// A second container of the pod whose workload allocates 64 MiB under a
	// 16 MiB limit; the watch is armed before it is released.
	hog, hogID, oom := watchedHog(t, ctx, d, plan, nil)
	expectOOMKill(t, oom, "")
	<-hog.exited
	var ee *exec.ExitError
	if !errors.As(hog.err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("hog ended with %v, want SIGKILL by the OOM killer", hog.err)
	}
	t.Logf("OOM kill of %s seen through WatchOOM; hog: %v", ScopeUnitName(hogID), hog.err)
}

// watchedHog starts, in a scope of plan's pod ("hog" container), a held
// workload that allocates 64 MiB under a 16 MiB limit, arms WatchOOM on the
// scope (after armed, when set, has seen the scope's cgroup folders) and
// releases it.
func watchedHog(t *testing.T, ctx context.Context, d *DBusDriver, plan PodPlan, armed func(dirs map[string]string)) (*sdHeldChild, string, <-chan struct{}) {
	t.Helper()
	hog := sdStartHeldWorkload(t, "exec dd if=/dev/zero of=/dev/null bs=64M count=1")
	hogID := randID("oom")
	if err := d.StartScope(ctx, ScopeSpec{Pod: plan.PodCgroup(), ID: hogID, PIDs: []int{hog.pid()}, Resources: plan.Containers["hog"]}); err != nil {
		t.Fatal(err)
	}
	if armed != nil {
		_, cg, err := d.unitCgroup(ctx, plan.UID, hogID)
		if err != nil {
			t.Fatal(err)
		}
		dirs, err := CgroupDirs(cg)
		if err != nil {
			t.Fatal(err)
		}
		armed(dirs)
	}
	oom, err := d.WatchOOM(ctx, plan.UID, hogID)
	if err != nil {
		t.Fatalf("WatchOOM: %v", err)
	}
	hog.releaseAndReport(t)
	return hog, hogID, oom
}

// expectOOMKill waits (bounded) for one kill on an OOM watch.
func expectOOMKill(t *testing.T, oom <-chan struct{}, what string) {
	t.Helper()
	select {
	case _, ok := <-oom:
		if !ok {
			t.Fatal("WatchOOM channel closed without reporting the kill" + what)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("no OOM kill reported within 60s")
	}
}

// TestOOMKillSeenWhenTheScopeIsGoneFirst: on cgroup v1 the OOM eventfd
// fires, the kill empties the scope and systemd removes it before the watcher
// looks (a loaded host): the kill is still reported, from the count of
// notifications (the OOM's and the removal's), not lost with the counters.
func TestOOMKillSeenWhenTheScopeIsGoneFirst(t *testing.T) {
	testnode.Require(t)
	ctx := testCtx(t)
	d := newTestDriver(t, "mkloomgone")
	if err := d.Init(ctx); err != nil {
		t.Fatal(err)
	}
	plan := PlanPod(podOf("aaaa-0001", nil, ctr("hog", nil, rl("cpu", "500m", "memory", "16Mi"))), PlanOptions{CgroupRoot: "mkloomgone"})
	if err := d.EnsurePod(ctx, plan.PodCgroup()); err != nil {
		t.Fatal(err)
	}
	// The first notification (the OOM) waits until systemd has collected
	// the emptied scope.
	_, _, oom := watchedHog(t, ctx, d, plan, func(dirs map[string]string) {
		if IsV2Dirs(dirs) {
			t.Skip("the host's memory controller is on cgroup v2; this is the v1 eventfd path")
		}
		var once sync.Once
		oomV1BeforeStat = func(dir string) {
			once.Do(func() {
				deadline := time.Now().Add(30 * time.Second)
				for {
					if _, err := os.Lstat(dir); err != nil || time.Now().After(deadline) {
						return
					}
					time.Sleep(10 * time.Millisecond) // polls the real condition, bounded
				}
			})
		}
		t.Cleanup(func() { oomV1BeforeStat = nil })
	})
	expectOOMKill(t, oom, " the removal hid")
	if _, ok := <-oom; ok {
		t.Error("a second kill reported, want exactly one")
	}
}

// TestLeftoverFailedScopeIsReset: a failed scope of the same name (a stop
// that timed out in an earlier run) makes StartTransientUnit answer
// UnitExists; StartScope resets it and succeeds on the retry.
func TestLeftoverFailedScopeIsReset(t *testing.T) {
	testnode.Require(t)
	ctx := testCtx(t)
	d := newTestDriver(t, "mklfailed")
	if err := d.Init(ctx); err != nil {
		t.Fatal(err)
	}
	plan := PlanPod(podOf("bbbb-0000", nil, ctr("a", nil, nil)), PlanOptions{CgroupRoot: "mklfailed"})
	if err := d.EnsurePod(ctx, plan.PodCgroup()); err != nil {
		t.Fatal(err)
	}
	// The leftover: a scope whose process ignores SIGTERM, stopped with a
	// 200 ms timeout behind the driver's back, ends "failed" (Result=timeout).
	stubborn := startStubborn(t)
	id := randID("failed")
	unit := ScopeUnitName(id)
	c, err := sd.NewSystemdConnectionContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ch := make(chan string, 1)
	if _, err := c.StartTransientUnitContext(ctx, unit, "replace", []sd.Property{
		sd.PropDescription("minikubelet leftover"), sd.PropSlice(plan.PodSlice),
		sd.PropPids(uint32(stubborn.Process.Pid)), sdProp("TimeoutStopUSec", uint64(200000)),
	}, ch); err != nil || <-ch != "done" {
		t.Fatalf("leftover scope: %v", err)
	}
	if _, err := c.StopUnitContext(ctx, unit, "replace", ch); err != nil {
		t.Fatal(err)
	}
	<-ch
	if st, _ := d.unitState(ctx, unit); st.ActiveState != "failed" {
		t.Fatalf("leftover scope is %s, want failed", st.ActiveState)
	}
	child := sdStartHeld(t)
	if err := d.StartScope(ctx, ScopeSpec{Pod: plan.PodCgroup(), ID: id, PIDs: []int{child.pid()}, Resources: plan.Containers["a"]}); err != nil {
		t.Fatalf("StartScope over a failed leftover: %v", err)
	}
	report := child.releaseAndReport(t)
	if !strings.Contains(report["CGROUP"], "/"+plan.SlicePath+"/"+unit) {
		t.Errorf("child not in %s: %s", unit, report["CGROUP"])
	}
}

// TestBurstableSliceFollowsPods: without UpdateQOS the Burstable slice's
// shares follow the sum of its pods' shares, also across a restart of the
// driver; UpdateQOS then takes over with the kubelet's exact figure.
func TestBurstableSliceFollowsPods(t *testing.T) {
	testnode.Require(t)
	ctx := testCtx(t)
	root := "mklqos"
	d := newTestDriver(t, root)
	if err := d.Init(ctx); err != nil {
		t.Fatal(err)
	}
	qosCg := "/mklqos.slice/mklqos-burstable.slice"
	shares := func() string { return readCgroup(t, qosCg).Shares }
	want := func(s uint64) string { return expectValues(d, Resources{CPUShares: &s}).Shares }
	if got := shares(); got != want(2) {
		t.Errorf("no pods: burstable shares %s, want %s", got, want(2))
	}
	a := PlanPod(podOf("cccc-0001", nil, ctr("a", rl("cpu", "100m"), nil)), PlanOptions{CgroupRoot: root})
	b := PlanPod(podOf("cccc-0002", nil, ctr("b", rl("cpu", "250m"), nil)), PlanOptions{CgroupRoot: root})
	for _, p := range []PodPlan{a, b} {
		if err := d.EnsurePod(ctx, p.PodCgroup()); err != nil {
			t.Fatal(err)
		}
	}
	if got := shares(); got != want(358) {
		t.Errorf("pods of 100m and 250m: burstable shares %s, want %s (kubelet: 350m → 358)", got, want(358))
	}
	if err := d.RemovePod(ctx, a.UID); err != nil {
		t.Fatal(err)
	}
	if got := shares(); got != want(256) {
		t.Errorf("after removing the 100m pod: burstable shares %s, want %s", got, want(256))
	}
	// A restarted driver counts the surviving pod.
	d2, err := New(ctx, DBusOptions{CgroupRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	if err := d2.Init(ctx); err != nil {
		t.Fatal(err)
	}
	if err := d2.EnsurePod(ctx, a.PodCgroup()); err != nil {
		t.Fatal(err)
	}
	if got := shares(); got != want(358) {
		t.Errorf("restarted driver, both pods again: burstable shares %s, want %s", got, want(358))
	}
	burstable, _ := QOSResources([]*v1.Pod{podOf("x", nil, ctr("x", rl("cpu", "1"), nil))})
	if err := d2.UpdateQOS(ctx, v1.PodQOSBurstable, burstable); err != nil {
		t.Fatal(err)
	}
	if err := d2.RemovePod(ctx, a.UID); err != nil {
		t.Fatal(err)
	}
	if got := shares(); got != want(1024) {
		t.Errorf("after UpdateQOS(1 CPU) the estimate must not return: shares %s, want %s", got, want(1024))
	}
}

// TestOperationsAcrossReexec: pod slices created and removed while systemd
// re-executes twice: every call returns success (reconnecting, and reading
// the unit's state when a job's result was lost with the connection).
func TestOperationsAcrossReexec(t *testing.T) {
	testnode.Require(t)
	ctx := testCtx(t)
	root := "mklrace"
	d := newTestDriver(t, root)
	if err := d.Init(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var opErrs []error
	go func() {
		defer close(done)
		for i := 0; i < 40; i++ {
			plan := PlanPod(podOf(fmt.Sprintf("dddd-%04d", i), nil, ctr("a", rl("cpu", "10m"), rl("memory", "8Mi"))), PlanOptions{CgroupRoot: root})
			if err := d.EnsurePod(ctx, plan.PodCgroup()); err != nil {
				opErrs = append(opErrs, fmt.Errorf("EnsurePod #%d: %w", i, err))
			}
			if i%2 == 0 {
				if err := d.RemovePod(ctx, plan.UID); err != nil {
					opErrs = append(opErrs, fmt.Errorf("RemovePod #%d: %w", i, err))
				}
			}
		}
	}()
	for i := 0; i < 2; i++ {
		time.Sleep(20 * time.Millisecond)
		if out, err := exec.Command("systemctl", "daemon-reexec").CombinedOutput(); err != nil {
			t.Fatalf("daemon-reexec: %v %s", err, out)
		}
	}
	<-done
	for _, err := range opErrs {
		t.Error(err)
	}
	if n := d.reconnects.Load(); n == 0 {
		t.Error("the operations never crossed a re-exec (no reconnect): the test proves nothing")
	} else {
		t.Logf("%d reconnects during 40 operations and 2 re-execs", n)
	}
	units, err := d.List(ctx)
	if err != nil || len(units) != 20 {
		t.Errorf("List: %d units (%v), want the 20 pods kept", len(units), err)
	}
}

// startStubborn starts a shell that ignores SIGTERM and returns once the
// shell says its trap is installed (a stop before that would find a shell
// that still dies of SIGTERM, and a test of the SIGKILL path would pass
// without reaching it).
func startStubborn(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", `trap "" TERM; echo trapped; while :; do sleep 1; done`)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "trapped\n" {
		t.Fatalf("stubborn shell: read %q, %v", line, err)
	}
	return cmd
}
