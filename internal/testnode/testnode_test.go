package testnode

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sd "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
)

func TestMain(m *testing.M) { Main(m) }

// TestScopeMemoryMaxLandsInCgroupFile proves the harness: a transient scope
// started over D-Bus from Go, with MemoryMax=64M, shows 67108864 in the
// memory cgroup file that systemd wrote (v1: memory.limit_in_bytes, v2: memory.max).
func TestScopeMemoryMaxLandsInCgroupFile(t *testing.T) {
	Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := sd.NewSystemdConnectionContext(ctx)
	if err != nil {
		t.Fatalf("connect to systemd: %v", err)
	}
	defer conn.Close()

	sleeper := exec.Command("sleep", "60")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { sleeper.Process.Kill(); sleeper.Wait() }()

	unit := "mkl-harness-test.scope"
	props := []sd.Property{
		sd.PropPids(uint32(sleeper.Process.Pid)),
		{Name: "MemoryAccounting", Value: dbus.MakeVariant(true)},
		{Name: "MemoryMax", Value: dbus.MakeVariant(uint64(64 << 20))},
	}
	done := make(chan string, 1)
	if _, err := conn.StartTransientUnitContext(ctx, unit, "fail", props, done); err != nil {
		t.Fatalf("start %s: %v", unit, err)
	}
	if r := <-done; r != "done" {
		t.Fatalf("start %s: job result %q", unit, r)
	}
	defer conn.StopUnitContext(ctx, unit, "replace", nil)

	p, err := conn.GetUnitTypePropertyContext(ctx, unit, "Scope", "ControlGroup")
	if err != nil {
		t.Fatal(err)
	}
	cg := strings.Trim(p.Value.String(), `"`)
	file := filepath.Join("/sys/fs/cgroup/memory", cg, "memory.limit_in_bytes")
	if _, err := os.Stat("/sys/fs/cgroup/memory"); err != nil {
		file = filepath.Join("/sys/fs/cgroup", cg, "memory.max") // pure cgroup v2
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("read %s: %v", file, err)
	}
	if got := strings.TrimSpace(string(b)); got != "67108864" {
		t.Fatalf("%s = %s, want 67108864", file, got)
	}
	t.Logf("%s (ControlGroup %s) = 67108864", file, cg)
}

func TestOutsideSkipsWithReason(t *testing.T) {
	if Inside() {
		if os.Getpid() == 1 {
			t.Fatal("test binary must not be PID 1 of the node")
		}
		return
	}
	if os.Getenv(envWhy) == "" && os.Geteuid() != 0 {
		t.Fatal("non-root run must record why integration tests are skipped")
	}
}

// TestHostModeNeedsSystemdV2Host: host mode is accepted exactly on a machine
// whose PID 1 is systemd on pure cgroup v2 (the make test-vm guest), and
// refused with a reason elsewhere (the lab host: PID 1 is not systemd or the
// hierarchy is v1 hybrid).
func TestHostModeNeedsSystemdV2Host(t *testing.T) {
	why := hostProblem()
	if Host() {
		if why != "" {
			t.Fatalf("running in host mode on a host that fails the check: %s", why)
		}
		return
	}
	comm, _ := os.ReadFile("/proc/1/comm")
	if strings.TrimSpace(string(comm)) != "systemd" && why == "" {
		t.Fatalf("PID 1 is %q but hostProblem accepts this host", comm)
	}
	if os.Getuid() != 0 && why != "not running as root" {
		t.Fatalf("non-root: hostProblem = %q", why)
	}
}
