package systemd

// Device cgroup of container scopes: runc's default allowlist for the
// sandbox and unprivileged containers, everything for privileged ones.
// Unit tests pin the rules and the unit properties; integration tests read
// devices.list of real scopes (systemd and cgroupfs drivers) and prove,
// from inside a scope, that a node the container may create (CAP_MKNOD)
// still cannot be opened unless the list allows it.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	sd "github.com/coreos/go-systemd/v22/dbus"
	"github.com/minikubelet/minikubelet/internal/testnode"
)

// runcDefaultDevicesList is runc's default allowlist as devices.list
// prints it, written out by hand from runc's specconv AllowedDevices.
// (sorted as strings: the tests compare sorted lists).
var runcDefaultDevicesList = []string{
	"b *:* m",
	"c *:* m",
	"c 10:200 rwm",
	"c 136:* rwm",
	"c 1:3 rwm",
	"c 1:5 rwm",
	"c 1:7 rwm",
	"c 1:8 rwm",
	"c 1:9 rwm",
	"c 5:0 rwm",
	"c 5:2 rwm",
}

func ruleStrings(rules []DeviceRule) []string {
	out := make([]string, len(rules))
	for i, r := range rules {
		out[i] = r.String()
	}
	slices.Sort(out)
	return out
}

func TestScopeDeviceRules(t *testing.T) {
	if got := ruleStrings(ScopeDeviceRules(false)); !slices.Equal(got, runcDefaultDevicesList) {
		t.Errorf("unprivileged rules\n got %q\nwant %q", got, runcDefaultDevicesList)
	}
	if got := ruleStrings(ScopeDeviceRules(true)); !slices.Equal(got, []string{"a *:* rwm"}) {
		t.Errorf("privileged rules = %q, want [a *:* rwm]", got)
	}
	// The caller may not change the package's list through the copy.
	r := ScopeDeviceRules(false)
	r[0].Access = "rwm"
	if ScopeDeviceRules(false)[0].Access == "rwm" {
		t.Error("ScopeDeviceRules returned the package's own slice")
	}
}

func propValues(props []sd.Property) map[string]any {
	m := map[string]any{}
	for _, p := range props {
		m[p.Name] = p.Value.Value()
	}
	return m
}

func TestScopeDeviceProperties(t *testing.T) {
	spec := ScopeSpec{ID: "x", PIDs: []int{1}}
	for _, unified := range []bool{false, true} {
		m := propValues(ScopeProperties(spec, "kubepods.slice", unified))
		if m["DevicePolicy"] != "strict" {
			t.Errorf("unified=%v: DevicePolicy = %v, want strict", unified, m["DevicePolicy"])
		}
		allow, ok := m["DeviceAllow"].([]deviceAllow)
		if !ok {
			t.Fatalf("unified=%v: DeviceAllow is %T", unified, m["DeviceAllow"])
		}
		var got []string
		for _, a := range allow {
			got = append(got, a.Path+" "+a.Access)
		}
		slices.Sort(got)
		want := []string{
			"/dev/char/10:200 rwm", "/dev/char/1:3 rwm", "/dev/char/1:5 rwm", "/dev/char/1:7 rwm",
			"/dev/char/1:8 rwm", "/dev/char/1:9 rwm", "/dev/char/5:0 rwm", "/dev/char/5:2 rwm",
			"block-* m", "char-* m", "char-pts rwm",
		}
		if !slices.Equal(got, want) {
			t.Errorf("unified=%v: DeviceAllow\n got %q\nwant %q", unified, got, want)
		}
	}
	spec.Privileged = true
	m := propValues(ScopeProperties(spec, "kubepods.slice", false))
	if m["DevicePolicy"] != "auto" {
		t.Errorf("privileged: DevicePolicy = %v, want auto", m["DevicePolicy"])
	}
	if a, ok := m["DeviceAllow"].([]deviceAllow); !ok || len(a) != 0 {
		t.Errorf("privileged: DeviceAllow = %#v, want an empty list", m["DeviceAllow"])
	}
	// D-Bus signature systemd expects for DeviceAllow.
	for _, p := range ScopeProperties(spec, "kubepods.slice", false) {
		if p.Name == "DeviceAllow" && p.Value.Signature().String() != "a(ss)" {
			t.Errorf("DeviceAllow signature %s, want a(ss)", p.Value.Signature())
		}
	}
}

func TestSystemdDeviceSpecifierRefusesWhatSystemdCannotSay(t *testing.T) {
	for _, r := range []DeviceRule{
		{'a', DeviceWildcard, DeviceWildcard, "rwm"},
		{'c', 99, DeviceWildcard, "rwm"},
		{'c', DeviceWildcard, 3, "rwm"},
	} {
		if s, err := systemdDeviceSpecifier(r); err == nil {
			t.Errorf("%s: got %q, want an error", r, s)
		}
	}
}

// deviceProbe is the workload of a held child: as root with CAP_MKNOD it
// creates a block node (8:0) and /dev/kmsg's node (1:11), neither in the
// allowlist, and /dev/null's (1:3), then opens each and prints one line
// per node: "<name> OK" or "<name> ERR <shell's message>".
func deviceProbe(dir string) string {
	return fmt.Sprintf(`cd %q || exit 9
mknod sda b 8 0 && echo "MKNOD-sda OK" || echo "MKNOD-sda ERR"
mknod kmsg c 1 11 && echo "MKNOD-kmsg OK" || echo "MKNOD-kmsg ERR"
mknod null c 1 3 && echo "MKNOD-null OK" || echo "MKNOD-null ERR"
for n in kmsg null; do
  if msg=$( { exec 3<"$n"; } 2>&1 ); then echo "OPEN-$n OK"; else echo "OPEN-$n ERR $msg"; fi
done
if msg=$( { exec 3<sda; } 2>&1 ); then echo "OPEN-sda OK"; else echo "OPEN-sda ERR $msg"; fi
echo DONE
exec sleep 300`, dir)
}

// probeResults reads the probe's lines after its release.
func probeResults(t *testing.T, h *sdHeldChild) map[string]string {
	t.Helper()
	got := map[string]string{}
	timeout := time.After(30 * time.Second)
	for {
		select {
		case line, ok := <-h.lines:
			if !ok {
				t.Fatalf("probe exited before DONE: %v (so far %v)", h.err, got)
			}
			if line == "DONE" {
				return got
			}
			k, v, _ := strings.Cut(line, " ")
			got[k] = v
		case <-timeout:
			t.Fatalf("probe did not finish within 30s (so far %v)", got)
		}
	}
}

// checkProbe: mknod always works (runc allows it for any device); opening
// /dev/null's node works; the others are refused by the device cgroup
// (EPERM) unless privileged. A privileged open of 8:0 may still fail for
// want of a disk (ENXIO), so only kmsg is checked for success there.
func checkProbe(t *testing.T, got map[string]string, privileged bool) {
	t.Helper()
	for _, k := range []string{"MKNOD-sda", "MKNOD-kmsg", "MKNOD-null", "OPEN-null"} {
		if got[k] != "OK" {
			t.Errorf("%s: %q, want OK (all: %v)", k, got[k], got)
		}
	}
	if privileged {
		if got["OPEN-kmsg"] != "OK" {
			t.Errorf("privileged OPEN-kmsg: %q, want OK", got["OPEN-kmsg"])
		}
		if strings.Contains(got["OPEN-sda"], "not permitted") {
			t.Errorf("privileged OPEN-sda refused by the device cgroup: %q", got["OPEN-sda"])
		}
		return
	}
	for _, k := range []string{"OPEN-kmsg", "OPEN-sda"} {
		if !strings.HasPrefix(got[k], "ERR") || !strings.Contains(got[k], "Operation not permitted") {
			t.Errorf("%s: %q, want ERR ... Operation not permitted", k, got[k])
		}
	}
}

// devicesListOf reads, sorted, the v1 devices.list that governs pid (the
// devices cgroup /proc/<pid>/cgroup names: systemd puts a scope without
// device settings in no devices cgroup of its own, its parent's rules
// apply) and returns that cgroup's path; ok is false where there is no v1
// devices hierarchy.
func devicesListOf(t *testing.T, pid int) (list []string, cgroup string, ok bool) {
	t.Helper()
	dirs, err := CgroupDirs("/")
	if err != nil {
		t.Fatal(err)
	}
	base, mounted := dirs["devices"]
	if !mounted {
		return nil, "", false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) == 3 && f[1] == "devices" {
			cgroup = f[2]
		}
	}
	if cgroup == "" {
		return nil, "", false
	}
	if strings.HasPrefix(cgroup, "/..") {
		// Above this cgroup namespace's root: not readable from here.
		return nil, cgroup, true
	}
	file := filepath.Join(base, cgroup, "devices.list")
	b, err = os.ReadFile(file)
	if err != nil {
		t.Fatalf("read %s: %v", file, err)
	}
	list = strings.Split(strings.TrimSpace(string(b)), "\n")
	slices.Sort(list)
	return list, cgroup, true
}

// checkDevicesList: the process's devices cgroup lists exactly the rules
// wanted; an unprivileged scope must have its own devices cgroup.
func checkDevicesList(t *testing.T, pid int, scopeCgroup string, privileged bool) {
	t.Helper()
	got, cg, ok := devicesListOf(t, pid)
	if !ok {
		t.Logf("no v1 devices hierarchy: only the probe checks the (BPF) device program")
		return
	}
	if !privileged && cg != scopeCgroup {
		t.Errorf("pid %d is in devices cgroup %s, want its scope's %s", pid, cg, scopeCgroup)
	}
	if privileged && got == nil {
		// systemd realizes no devices cgroup for a scope without device
		// settings: the process stays in an ancestor's, here the node's
		// own (outside the test's cgroup namespace). The probe checks it.
		t.Logf("privileged pid %d is in devices cgroup %s, outside this namespace: the probe checks its access", pid, cg)
		return
	}
	if want := wantDevicesList(privileged); !slices.Equal(got, want) {
		t.Errorf("devices.list of %s\n got %q\nwant %q", cg, got, want)
	}
}

func wantDevicesList(privileged bool) []string {
	if privileged {
		return []string{"a *:* rwm"}
	}
	return runcDefaultDevicesList
}

func TestSystemdScopeDevices(t *testing.T) {
	testnode.Require(t)
	ctx := testCtx(t)
	d := newTestDriver(t, "mkldevices")
	if err := d.Init(ctx); err != nil {
		t.Fatal(err)
	}
	plan := PlanPod(podOf("dev-1", nil, ctr("a", nil, nil)), PlanOptions{CgroupRoot: "mkldevices"})
	if err := d.EnsurePod(ctx, plan.PodCgroup()); err != nil {
		t.Fatal(err)
	}
	for _, privileged := range []bool{false, true} {
		t.Run(fmt.Sprintf("privileged=%v", privileged), func(t *testing.T) {
			child := sdStartHeldWorkload(t, deviceProbe(t.TempDir()))
			id := randID("dev")
			spec := ScopeSpec{Pod: plan.PodCgroup(), ID: id, PIDs: []int{child.pid()}, Resources: plan.Containers["a"], Privileged: privileged}
			if err := d.StartScope(ctx, spec); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { d.StopScope(context.Background(), id, true) })
			checkDevicesList(t, child.pid(), controlGroup(t, ScopeUnitName(id)), privileged)
			child.releaseAndReport(t)
			checkProbe(t, probeResults(t, child), privileged)
		})
	}
}
