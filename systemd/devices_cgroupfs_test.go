package systemd_test

// The device cgroup of the cgroupfs driver's scopes, checked with the same
// probe as the systemd driver's (devices_test.go, through export_test.go):
// an external test, since systemd/cgroupfs imports this package.

import (
	"context"
	"fmt"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/minikubelet/minikubelet/internal/testnode"
	"github.com/minikubelet/minikubelet/systemd"
	"github.com/minikubelet/minikubelet/systemd/cgroupfs"
	"github.com/minikubelet/minikubelet/systemd/internal/drivertest"
)

// newCgroupfs is a cgroupfs driver on its own root, removed at the end.
func newCgroupfs(t *testing.T, root string) *cgroupfs.Driver {
	t.Helper()
	d, err := cgroupfs.New(cgroupfs.Options{CgroupRoot: root, StateDir: t.TempDir(), PollInterval: 100 * time.Millisecond, DefaultStopTimeout: 2 * time.Second})
	return drivertest.Started(t, d, err)
}

func TestCgroupfsScopeDevices(t *testing.T) {
	testnode.Require(t)
	ctx := context.Background()
	d := newCgroupfs(t, "kubepods-cgfs-dev")
	pod := systemd.PodCgroup{UID: "dev-1", QOS: v1.PodQOSBestEffort}
	for _, privileged := range []bool{false, true} {
		t.Run(fmt.Sprintf("privileged=%v", privileged), func(t *testing.T) {
			child := systemd.StartHeldWorkload(t, systemd.DeviceProbe(t.TempDir()))
			id := fmt.Sprintf("dev%v", privileged)
			if err := d.StartScope(ctx, systemd.ScopeSpec{Pod: pod, ID: id, PIDs: []int{child.PID()}, Privileged: privileged}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { d.StopScope(context.Background(), id, true) })
			systemd.CheckDevicesList(t, child.PID(), scopeCgroupPath(t, d, id), privileged)
			child.ReleaseAndReport(t)
			systemd.CheckProbe(t, systemd.ProbeResults(t, child), privileged)
		})
	}
	t.Cleanup(func() { d.RemovePod(context.Background(), pod.UID) })
}

func scopeCgroupPath(t *testing.T, d *cgroupfs.Driver, id string) string {
	t.Helper()
	units, err := d.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range units {
		if u.ID == id {
			return u.CgroupPath
		}
	}
	t.Fatalf("scope %s not listed (%v)", id, units)
	return ""
}

// TestCgroupfsScopeDevicesPureV2 runs the cgroupfs probe on a pure cgroup
// v2 mount (drivertest.PureV2), where the rules become
// opencontainers/cgroups' BPF device program.
func TestCgroupfsScopeDevicesPureV2(t *testing.T) {
	testnode.Require(t)
	drivertest.PureV2(t, TestCgroupfsScopeDevices)
}
