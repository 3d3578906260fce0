package systemd

// Unit tests of the D-Bus driver's pure parts (no systemd needed).

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/godbus/dbus/v5"
)

func TestUnescapeBusPath(t *testing.T) {
	for in, want := range map[string]string{
		"kubepods_2dburstable_2dpod12_5f34_2eslice": "kubepods-burstable-pod12_34.slice",
		"minikubelet_2dabc_2escope":                 "minikubelet-abc.scope",
		"plain":                                     "plain",
		"trailing_2":                                "trailing_2",
	} {
		if got := unescapeBusPath(in); got != want {
			t.Errorf("unescapeBusPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestOwnerDescription(t *testing.T) {
	for in, want := range map[string]string{
		"":                            "minikubelet",
		"container default/p/c":       "minikubelet container default/p/c",
		"minikubelet sandbox default": "minikubelet sandbox default",
	} {
		if got := ownerDescription(in); got != want {
			t.Errorf("ownerDescription(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestKubeletProcesses(t *testing.T) {
	proc := t.TempDir()
	for pid, comm := range map[string]string{"1": "systemd", "42": "kubelet", "77": "kubelet-wrapper", "self": "kubelet"} {
		os.MkdirAll(filepath.Join(proc, pid), 0o755)
		os.WriteFile(filepath.Join(proc, pid, "comm"), []byte(comm+"\n"), 0o644)
	}
	got := kubeletProcesses(proc)
	if len(got) != 1 || got[0] != "process 42 (kubelet) is running" {
		t.Errorf("kubeletProcesses = %q", got)
	}
	err := (&CoexistenceError{Root: "kubepods.slice", Reasons: got}).Error()
	if !strings.Contains(err, "kubepods.slice") || !strings.Contains(err, "process 42") || !strings.Contains(err, "--cgroup-root") {
		t.Errorf("CoexistenceError = %q", err)
	}
}

// fakeEventDriver is a driver with just what signal handling needs.
func fakeEventDriver() *DBusDriver {
	return &DBusDriver{names: NewNames("kubepods"), events: make(chan Event, 4), cache: map[string]UnitState{}}
}

func unitPropsSignal(unit, iface string, changed map[string]dbus.Variant) *dbus.Signal {
	var esc strings.Builder
	for i := 0; i < len(unit); i++ {
		c := unit[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			esc.WriteByte(c)
		} else {
			esc.WriteString("_" + strings.ToLower(string("0123456789ABCDEF"[c>>4])+string("0123456789ABCDEF"[c&15])))
		}
	}
	return &dbus.Signal{Name: sigPropsChg, Path: dbus.ObjectPath(sdUnitPrefix + esc.String()),
		Body: []any{iface, changed, []string{}}}
}

func TestHandleSignal(t *testing.T) {
	d := fakeEventDriver()
	slice := "kubepods-burstable-podab_cd.slice"
	d.handleSignal(unitPropsSignal(slice, sdUnitIface, map[string]dbus.Variant{
		"ActiveState": dbus.MakeVariant("active"), "SubState": dbus.MakeVariant("active")}))
	e := <-d.events
	if e.Unit != slice || e.State.PodUID != "ab-cd" || e.State.ActiveState != "active" || e.Gone ||
		e.State.CgroupPath != "/kubepods.slice/kubepods-burstable.slice/"+slice {
		t.Errorf("slice event %+v", e)
	}
	// No change, no event.
	d.handleSignal(unitPropsSignal(slice, sdUnitIface, map[string]dbus.Variant{"ActiveState": dbus.MakeVariant("active")}))
	if len(d.events) != 0 {
		t.Errorf("unchanged state sent an event: %+v", <-d.events)
	}
	// A scope this driver never started (another root's): ignored.
	d.handleSignal(unitPropsSignal("minikubelet-zzz.scope", sdUnitIface, map[string]dbus.Variant{"ActiveState": dbus.MakeVariant("active")}))
	// Foreign units: ignored.
	d.handleSignal(unitPropsSignal("kubepods-burstable.slice", sdUnitIface, map[string]dbus.Variant{"ActiveState": dbus.MakeVariant("active")}))
	d.handleSignal(unitPropsSignal("session-1.scope", sdUnitIface, map[string]dbus.Variant{"ActiveState": dbus.MakeVariant("active")}))
	// Stand-ins systemd loads when a slice name is looked up: inactive,
	// then removed; never a pod going away.
	d.handleSignal(unitPropsSignal("kubepods-besteffort-podab_cd.slice", sdUnitIface, map[string]dbus.Variant{"ActiveState": dbus.MakeVariant("inactive")}))
	d.handleSignal(&dbus.Signal{Name: sigUnitRemove, Body: []any{"kubepods-besteffort-podab_cd.slice", dbus.ObjectPath("/x")}})
	if len(d.events) != 0 {
		t.Errorf("foreign unit or stand-in sent an event: %+v", <-d.events)
	}
	// A known scope: Result from the Scope interface, then removal.
	scope := "minikubelet-c1.scope"
	d.remember(UnitState{Unit: scope, ID: "c1", PodUID: "ab-cd", ActiveState: "active"})
	d.handleSignal(unitPropsSignal(scope, sdScopeIface, map[string]dbus.Variant{"Result": dbus.MakeVariant("oom-kill")}))
	e = <-d.events
	if e.State.Result != "oom-kill" || e.State.ID != "c1" || e.State.PodUID != "ab-cd" {
		t.Errorf("scope result event %+v", e)
	}
	d.handleSignal(&dbus.Signal{Name: sigUnitRemove, Body: []any{scope, dbus.ObjectPath("/x")}})
	e = <-d.events
	if !e.Gone || e.Unit != scope || e.State.PodUID != "ab-cd" {
		t.Errorf("removal event %+v", e)
	}
	if _, ok := d.cache[scope]; ok {
		t.Error("a removed scope stays in the cache")
	}
	// A full channel drops and counts instead of blocking the reader.
	for i := 0; i < 6; i++ {
		d.send(Event{Unit: "x"})
	}
	if d.EventsDropped() != 2 {
		t.Errorf("dropped %d, want 2", d.EventsDropped())
	}
}

func TestNewWithoutSystemd(t *testing.T) {
	if _, err := os.Stat("/run/systemd/private"); err == nil {
		t.Skip("systemd runs here")
	}
	_, err := New(t.Context(), DBusOptions{})
	if err == nil || !strings.Contains(err.Error(), "systemd is not running") || !strings.Contains(err.Error(), "cgroupfs") {
		t.Errorf("New without systemd = %v", err)
	}
}
