package systemd_test

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	sd "github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"
	"github.com/minikubelet/minikubelet/internal/testnode"
	v1 "k8s.io/api/core/v1"

	"github.com/minikubelet/minikubelet/systemd"
	"github.com/minikubelet/minikubelet/systemd/internal/drivertest"
	"github.com/minikubelet/minikubelet/systemd/internal/heldproc"
)

// TestDBusDriverOOMAttribution drives the cgroup file functions through the
// systemd (D-Bus) driver: an OOM kill in one container scope is reported by
// its watcher and by the pod's, counted once in that scope's and the pod's
// usage, and not in its sibling's (drivertest.OOMAttribution).
func TestDBusDriverOOMAttribution(t *testing.T) {
	testnode.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const root = "kubepods-oomattr"
	d, err := systemd.New(ctx, systemd.DBusOptions{CgroupRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Stopping the root slice stops everything below it.
		conn, err := sd.NewSystemdConnectionContext(context.Background())
		if err == nil {
			ch := make(chan string, 1)
			if _, err := conn.StopUnitContext(context.Background(), systemd.NewNames(root).RootSlice(), "replace", ch); err == nil {
				<-ch
			}
			conn.Close()
		}
		d.Close()
	})
	if err := d.Init(ctx); err != nil {
		t.Fatal(err)
	}
	shares := uint64(102)
	pod := systemd.PodCgroup{UID: "d-1", QOS: v1.PodQOSBurstable, Resources: systemd.Resources{CPUShares: &shares}}
	if err := d.EnsurePod(ctx, pod); err != nil {
		t.Fatal(err)
	}
	// A bystander keeps the hog's scope alive after the kill.
	drivertest.OOMAttribution(ctx, t, d, pod, "dhog", "dcalm", true)
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
		dirs, err := systemd.CgroupDirs(cg)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: ControlGroup %s, memory dir %s", unit, cg, dirs["memory"])
		return dirs
	}
	// The hog shares its scope with a small bystander, which the OOM killer
	// spares (it picks the biggest task): systemd would otherwise collect
	// the emptied scope, and its counters with it, right after the kill.
	hog := heldproc.Start(t, "oom")
	bystander := heldproc.Sleep(t)
	calm := heldproc.Sleep(t)
	hogDirs := start("mkl-cgfs-oom-hog.scope", []uint32{uint32(hog.PID()), uint32(bystander.Process.Pid)}, 16<<20)
	calmDirs := start("mkl-cgfs-oom-calm.scope", []uint32{uint32(calm.Process.Pid)}, 256<<20)
	if !systemd.IsV2Dirs(hogDirs) {
		if got := heldproc.ReadFile(t, hogDirs["memory"], "memory.limit_in_bytes"); got != "16777216" {
			t.Fatalf("hog memory.limit_in_bytes = %s", got)
		}
	}
	hogCh, err := systemd.WatchOOMDirs(ctx, hogDirs)
	if err != nil {
		t.Fatal(err)
	}
	calmCh, err := systemd.WatchOOMDirs(ctx, calmDirs)
	if err != nil {
		t.Fatal(err)
	}
	hog.Release(t)
	heldproc.ExpectOOM(t, hogCh, "hog scope")
	if ws, ok := heldproc.WaitStatus(hog.Wait()); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("hog ended with %v, want SIGKILL", hog.Wait())
	}
	hu, err := systemd.ReadUsage(hogDirs)
	if err != nil {
		t.Fatal(err)
	}
	cu, err := systemd.ReadUsage(calmDirs)
	if err != nil {
		t.Fatal(err)
	}
	if hu.OOMKills != 1 || cu.OOMKills != 0 {
		t.Errorf("OOMKills: hog %d (want 1), calm %d (want 0)", hu.OOMKills, cu.OOMKills)
	}
	heldproc.ExpectNoOOM(t, calmCh, "calm scope")
	// Once the bystander is gone too, systemd collects the emptied scope
	// and the watcher closes.
	bystander.Process.Kill()
	bystander.Wait()
	heldproc.ExpectClosed(t, hogCh, "hog scope")
}
