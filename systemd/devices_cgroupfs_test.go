package systemd_test

// The device cgroup of the cgroupfs driver's scopes, checked with the same
// probe as the systemd driver's (devices_test.go, through export_test.go):
// an external test, since systemd/cgroupfs imports this package.

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/minikubelet/minikubelet/internal/testnode"
	"github.com/minikubelet/minikubelet/systemd"
	"github.com/minikubelet/minikubelet/systemd/cgroupfs"
)

// newCgroupfs is a cgroupfs driver on its own root, removed at the end.
func newCgroupfs(t *testing.T, root string) *cgroupfs.Driver {
	t.Helper()
	d, err := cgroupfs.New(cgroupfs.Options{CgroupRoot: root, StateDir: t.TempDir(), PollInterval: 100 * time.Millisecond, DefaultStopTimeout: 2 * time.Second})
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
			var sub []string
			filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
				if err == nil && e.IsDir() {
					sub = append(sub, p)
				}
				return nil
			})
			slices.Reverse(sub) // deepest first: rmdir of a cgroup needs it empty of children
			for _, p := range sub {
				if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
					t.Errorf("cleanup: %v", err)
				}
			}
		}
	})
	if err := d.Init(context.Background()); err != nil {
		t.Fatalf("Init: %v", err)
	}
	return d
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
// v2 mount (a private mount namespace of this test binary), where the
// rules become opencontainers/cgroups' BPF device program.
func TestCgroupfsScopeDevicesPureV2(t *testing.T) {
	testnode.Require(t)
	const env = "MKL_DEVICES_PURE_V2"
	if os.Getenv(env) != "" {
		dirs, err := systemd.CgroupDirs("/")
		if err != nil {
			t.Fatal(err)
		}
		if len(dirs) != 1 || dirs[""] != "/sys/fs/cgroup" {
			t.Fatalf("pure v2 dirs = %v", dirs)
		}
		TestCgroupfsScopeDevices(t)
		return
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	script := `set -e
while grep -q ' /sys/fs/cgroup ' /proc/self/mountinfo; do umount -R /sys/fs/cgroup; done
mount -t cgroup2 cgroup2 /sys/fs/cgroup
exec "$0" -test.run '^TestCgroupfsScopeDevicesPureV2$' -test.v -test.count=1`
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script, self)
	cmd.Env = append(os.Environ(), env+"=1")
	out, err := cmd.CombinedOutput()
	t.Logf("inner run:\n%s", out)
	if err != nil {
		t.Fatalf("inner run: %v", err)
	}
	if !strings.Contains(string(out), "--- PASS: TestCgroupfsScopeDevicesPureV2") {
		t.Fatal("inner run did not pass the test")
	}
}
