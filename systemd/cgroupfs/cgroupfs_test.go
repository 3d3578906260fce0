package cgroupfs

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/opencontainers/cgroups"

	"github.com/minikubelet/minikubelet/systemd"
)

func TestCgroupfsResourcesV1(t *testing.T) {
	shares, quota, mem, pids := uint64(102), int64(20000), int64(128<<20), int64(100)
	got := cgroupfsResources(systemd.Resources{CPUShares: &shares, CPUQuotaMicros: &quota, MemoryLimit: &mem, PidsLimit: &pids}, false)
	want := &cgroups.Resources{SkipDevices: true, CpuShares: 102, CpuQuota: 20000, CpuPeriod: 100000, Memory: 128 << 20, PidsLimit: &pids}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	// Unset values lift limits (an update that drops one must really drop it).
	got = cgroupfsResources(systemd.Resources{}, false)
	unlimited := int64(-1)
	want = &cgroups.Resources{SkipDevices: true, CpuShares: 1024, CpuQuota: -1, CpuPeriod: 100000, Memory: -1, PidsLimit: &unlimited}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("unset: got %+v\nwant %+v", got, want)
	}
	// --pod-pids-limit 0 or below means unlimited, as in the kubelet.
	zero := int64(0)
	if got := cgroupfsResources(systemd.Resources{PidsLimit: &zero}, false); *got.PidsLimit != -1 {
		t.Fatalf("pids 0: %d", *got.PidsLimit)
	}
}

func TestCgroupfsResourcesV2(t *testing.T) {
	shares, mem := uint64(1024), int64(64<<20)
	got := cgroupfsResources(systemd.Resources{CPUShares: &shares, MemoryLimit: &mem, CPUPeriodMicros: 50000}, true)
	if got.CpuShares != 0 || got.CpuWeight != 39 {
		t.Fatalf("v2 weight: shares %d weight %d, want 0 and 39 (plan's CPUSharesToWeight)", got.CpuShares, got.CpuWeight)
	}
	if got.Memory != 64<<20 || got.MemorySwap != 64<<20 {
		t.Fatalf("v2 memory %d swap %d: want swap = memory (memory.swap.max 0)", got.Memory, got.MemorySwap)
	}
	if got.CpuPeriod != 50000 || got.CpuQuota != -1 {
		t.Fatalf("period %d quota %d", got.CpuPeriod, got.CpuQuota)
	}
	// opencontainers turns memory+swap into swap.max: 0 here.
	if sw, err := cgroups.ConvertMemorySwapToCgroupV2Value(got.MemorySwap, got.Memory); err != nil || sw != 0 {
		t.Fatalf("swap.max would be %d (%v), want 0", sw, err)
	}
	unl := cgroupfsResources(systemd.Resources{}, true)
	if unl.Memory != -1 || unl.MemorySwap != 0 || unl.CpuWeight != 39 {
		t.Fatalf("v2 unset: %+v", unl)
	}
}

func TestFsManagerPaths(t *testing.T) {
	got := fsManagerPaths(map[string]string{"memory": "/m", "systemd": "/s", "unified": "/u", "cpu": "/c"})
	want := map[string]string{"memory": "/m", "name=systemd": "/s", "": "/u", "cpu": "/c"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v want %v", got, want)
	}
}

// Markers live under the daemon's own root dir: there is no shared default
// that two daemons with different roots could meet in.
func TestNewNeedsStateDir(t *testing.T) {
	if _, err := New(Options{CgroupRoot: "kubepods"}); err == nil || !strings.Contains(err.Error(), "StateDir") {
		t.Fatalf("no StateDir: %v, want an error", err)
	}
	state := t.TempDir()
	d, err := New(Options{CgroupRoot: "kubepods", StateDir: state})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(state, "cgroupfs", "kubepods"); d.markers != want {
		t.Errorf("markers in %s, want %s", d.markers, want)
	}
}

func TestNewRoot(t *testing.T) {
	for root, want := range map[string]string{"": "/kubepods", "kubepods": "/kubepods", "/kubepods": "/kubepods", "kubepods.slice": "/kubepods", "a/b": "/a/b"} {
		d, err := New(Options{CgroupRoot: root, StateDir: t.TempDir()})
		if err != nil {
			t.Fatalf("root %q: %v", root, err)
		}
		if d.RootPath() != want {
			t.Errorf("root %q → %s, want %s", root, d.RootPath(), want)
		}
		if got := d.podPath("Burstable", "u-1"); got != want+"/burstable/podu-1" {
			t.Errorf("burstable pod path %s", got)
		}
		if got := d.podPath("Guaranteed", "u-1"); got != want+"/podu-1" {
			t.Errorf("guaranteed pod path %s", got)
		}
		if got := d.podPath("BestEffort", "u-1"); got != want+"/besteffort/podu-1" {
			t.Errorf("besteffort pod path %s", got)
		}
		d.Close()
	}
}

func TestValidName(t *testing.T) {
	for _, bad := range []string{"", ".", "..", "a/b", "x\x00"} {
		if validName("scope ID", bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if err := validName("scope ID", "abc-123_x.y"); err != nil {
		t.Error(err)
	}
}
