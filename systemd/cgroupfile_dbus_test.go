package systemd

import (
	"context"
	"syscall"
	"testing"
	"time"

	sd "github.com/coreos/go-systemd/v22/dbus"
	"github.com/minikubelet/minikubelet/internal/testnode"
	v1 "k8s.io/api/core/v1"
)

// TestDBusDriverOOMAttribution drives the cgroup file functions through the
// systemd (D-Bus) driver: an OOM kill in one container scope is reported by
// its watcher and by the pod's, counted once in that scope's and the pod's
// usage, and not in its sibling's.
func TestDBusDriverOOMAttribution(t *testing.T) {
	testnode.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const root = "kubepods-oomattr"
	d, err := New(ctx, DBusOptions{CgroupRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Stopping the root slice stops everything below it.
		conn, err := sd.NewSystemdConnectionContext(context.Background())
		if err == nil {
			ch := make(chan string, 1)
			if _, err := conn.StopUnitContext(context.Background(), NewNames(root).RootSlice(), "replace", ch); err == nil {
				<-ch
			}
			conn.Close()
		}
		d.Close()
	})
	if err := d.Init(ctx); err != nil {
		t.Fatal(err)
	}
	limit, big := int64(16<<20), int64(256<<20)
	pod := PodCgroup{UID: "d-1", QOS: v1.PodQOSBurstable, Resources: Resources{CPUShares: sdPtr(uint64(102))}}
	if err := d.EnsurePod(ctx, pod); err != nil {
		t.Fatal(err)
	}
	// A bystander keeps the hog's scope alive after the kill (systemd
	// collects an emptied scope, and its counters with it).
	hog, bystander, calm := startHeld(t, "oom"), startSleep(t), startSleep(t)
	if err := d.StartScope(ctx, ScopeSpec{Pod: pod, ID: "dhog", PIDs: []int{hog.cmd.Process.Pid, bystander.Process.Pid}, Resources: Resources{MemoryLimit: &limit}}); err != nil {
		t.Fatal(err)
	}
	if err := d.StartScope(ctx, ScopeSpec{Pod: pod, ID: "dcalm", PIDs: []int{calm.Process.Pid}, Resources: Resources{MemoryLimit: &big}}); err != nil {
		t.Fatal(err)
	}
	hogCh, err := d.WatchOOM(ctx, pod.UID, "dhog")
	if err != nil {
		t.Fatal(err)
	}
	calmCh, err := d.WatchOOM(ctx, pod.UID, "dcalm")
	if err != nil {
		t.Fatal(err)
	}
	podCh, err := d.WatchOOM(ctx, pod.UID, "")
	if err != nil {
		t.Fatal(err)
	}
	hog.release(t)
	expectOOM(t, hogCh, "hog scope")
	expectOOM(t, podCh, "pod slice")
	if ws, ok := waitStatus(hog.wait()); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("hog ended with %v, want SIGKILL", hog.wait())
	}
	hu, err := d.Usage(ctx, pod.UID, "dhog")
	if err != nil {
		t.Fatal(err)
	}
	cu, err := d.Usage(ctx, pod.UID, "dcalm")
	if err != nil {
		t.Fatal(err)
	}
	pu, err := d.Usage(ctx, pod.UID, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after the kill: hog %+v, calm %+v, pod %+v", hu, cu, pu)
	if pu.CPUUsageNanos == 0 || hu.CPUUsageNanos == 0 {
		t.Errorf("cpu usage not read (hog %d ns, pod %d ns)", hu.CPUUsageNanos, pu.CPUUsageNanos)
	}
	if hu.OOMKills != 1 || cu.OOMKills != 0 || pu.OOMKills != 1 {
		t.Errorf("OOMKills: hog %d (want 1), calm %d (want 0), pod %d (want 1)", hu.OOMKills, cu.OOMKills, pu.OOMKills)
	}
	expectNoOOM(t, calmCh, "calm scope")
	if err := d.StopScope(ctx, "dhog", true); err != nil {
		t.Fatal(err)
	}
	expectClosed(t, hogCh, "hog scope")
	if err := d.StopScope(ctx, "dcalm", true); err != nil {
		t.Fatal(err)
	}
	expectClosed(t, calmCh, "calm scope")
	if err := d.RemovePod(ctx, pod.UID); err != nil {
		t.Fatal(err)
	}
	expectClosed(t, podCh, "pod slice")
}
