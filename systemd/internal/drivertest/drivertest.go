// Package drivertest holds the test scenarios both cgroup drivers run, the
// systemd driver's tests and the cgroupfs driver's each on their own
// driver: OOM attribution through the Driver interface, a test run again
// on a pure cgroup v2 mount, and a test's driver with its cgroup tree
// removed at the end.
package drivertest

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/opencontainers/cgroups"

	"github.com/minikubelet/minikubelet/systemd"
	"github.com/minikubelet/minikubelet/systemd/internal/heldproc"
)

// OOMAttribution: in pod, a hog scope (hogID) limited to 16 MiB allocates
// until the kernel kills it, beside a calm scope (calmID) of 256 MiB. The
// kill is reported by the hog's watcher and by the pod's (watching before
// the workload runs), counted once in the hog's and the pod's usage and not
// in the calm scope's; every watcher closes once its scope or slice is
// removed. With bystander a small process shares the hog's scope and
// outlives the kill (systemd collects an emptied scope, and its counters
// with it).
func OOMAttribution(ctx context.Context, t *testing.T, d systemd.Driver, pod systemd.PodCgroup, hogID, calmID string, bystander bool) {
	t.Helper()
	limit, big := int64(16<<20), int64(256<<20)
	hog, calm := heldproc.Start(t, "oom"), heldproc.Sleep(t)
	hogPIDs := []int{hog.PID()}
	if bystander {
		hogPIDs = append(hogPIDs, heldproc.Sleep(t).Process.Pid)
	}
	if err := d.StartScope(ctx, systemd.ScopeSpec{Pod: pod, ID: hogID, PIDs: hogPIDs, Resources: systemd.Resources{MemoryLimit: &limit}}); err != nil {
		t.Fatal(err)
	}
	if err := d.StartScope(ctx, systemd.ScopeSpec{Pod: pod, ID: calmID, PIDs: []int{calm.Process.Pid}, Resources: systemd.Resources{MemoryLimit: &big}}); err != nil {
		t.Fatal(err)
	}
	watch := func(id string) <-chan struct{} {
		t.Helper()
		ch, err := d.WatchOOM(ctx, pod.UID, id)
		if err != nil {
			t.Fatal(err)
		}
		return ch
	}
	usage := func(id string) systemd.Usage {
		t.Helper()
		u, err := d.Usage(ctx, pod.UID, id)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	hogCh, calmCh, podCh := watch(hogID), watch(calmID), watch("")
	hog.Release(t)
	heldproc.ExpectOOM(t, hogCh, "hog scope")
	// The pod's watcher counts its containers' kills too (on v1 found by
	// its periodic re-read: the eventfd of an ancestor does not fire).
	heldproc.ExpectOOM(t, podCh, "pod")
	if ws, ok := heldproc.WaitStatus(hog.Wait()); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("hog ended with %v, want SIGKILL by the OOM killer", hog.Wait())
	}
	hu, cu, pu := usage(hogID), usage(calmID), usage("")
	t.Logf("after the kill: hog %+v, calm %+v, pod %+v", hu, cu, pu)
	if pu.CPUUsageNanos == 0 || hu.CPUUsageNanos == 0 {
		t.Errorf("cpu usage not read (hog %d ns, pod %d ns)", hu.CPUUsageNanos, pu.CPUUsageNanos)
	}
	if hu.OOMKills != 1 || cu.OOMKills != 0 || pu.OOMKills != 1 {
		t.Errorf("OOMKills: hog %d (want 1), calm %d (want 0), pod %d (want 1: the hog's kill, counted for the pod too)", hu.OOMKills, cu.OOMKills, pu.OOMKills)
	}
	heldproc.ExpectNoOOM(t, calmCh, "calm scope")
	for _, id := range []string{hogID, calmID} {
		if err := d.StopScope(ctx, id, true); err != nil {
			t.Fatal(err)
		}
	}
	heldproc.ExpectClosed(t, hogCh, "hog scope")
	heldproc.ExpectClosed(t, calmCh, "calm scope")
	if err := d.RemovePod(ctx, pod.UID); err != nil {
		t.Fatal(err)
	}
	heldproc.ExpectClosed(t, podCh, "pod")
}

// pureV2Env marks the inner run of PureV2.
const pureV2Env = "MKL_CGROUP_PURE_V2"

// PureV2 runs inner on a pure cgroup v2 layout: in a private mount
// namespace of the test node, /sys/fs/cgroup is replaced by a single
// cgroup2 mount (the node's own unified hierarchy), and the test binary
// runs the calling top-level test again inside, where PureV2 checks the
// layout and calls inner.
func PureV2(t *testing.T, inner func(t *testing.T)) {
	t.Helper()
	if os.Getenv(pureV2Env) != "" {
		dirs, err := systemd.CgroupDirs("/")
		if err != nil {
			t.Fatal(err)
		}
		if len(dirs) != 1 || dirs[""] != "/sys/fs/cgroup" {
			t.Fatalf("pure v2 dirs = %v, want only \"\": /sys/fs/cgroup", dirs)
		}
		inner(t)
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
exec "$0" -test.run "^$1\$" -test.v -test.count=1`
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script, self, t.Name())
	cmd.Env = append(os.Environ(), pureV2Env+"=1")
	out, err := cmd.CombinedOutput()
	t.Logf("inner run:\n%s", out)
	if err != nil {
		t.Fatalf("inner run: %v", err)
	}
	if !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatal("inner run did not pass the test")
	}
}

// Started is a test's driver d (made with err) after its Init. When the
// test ends d is closed and its whole cgroup tree removed (d.RootPath() in
// every hierarchy, deepest first), failing the test for processes left in
// it.
func Started[D interface {
	systemd.Driver
	RootPath() string
}](t *testing.T, d D, err error) D {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.Close()
		dirs, err := systemd.CgroupDirs(d.RootPath())
		if err != nil {
			t.Error(err)
			return
		}
		for _, dir := range dirs {
			if pids, _ := cgroups.GetAllPids(dir); len(pids) > 0 {
				t.Errorf("processes left in %s: %v", dir, pids)
			}
			if err := cgroups.RemovePath(dir); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})
	if err := d.Init(context.Background()); err != nil {
		t.Fatalf("Init: %v", err)
	}
	return d
}
