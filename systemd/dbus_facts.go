package systemd

import (
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// scopeFacts are the properties of a scope that List needs beyond what
// ListUnits returns, with the state they were read in.
type scopeFacts struct {
	active, sub    string // ActiveState, SubState when read
	cgroup, result string // ControlGroup (or slice/unit if inactive), Result
}

func (d *DBusDriver) scopeFactsOf(unit string) (scopeFacts, bool) {
	d.cacheMu.Lock()
	defer d.cacheMu.Unlock()
	f, ok := d.scopeFacts[unit]
	return f, ok
}

func (d *DBusDriver) setScopeFacts(unit string, f scopeFacts) {
	d.cacheMu.Lock()
	defer d.cacheMu.Unlock()
	if d.scopeFacts == nil {
		d.scopeFacts = map[string]scopeFacts{}
	}
	f = scopeFacts{active: strings.Clone(f.active), sub: strings.Clone(f.sub), cgroup: strings.Clone(f.cgroup), result: strings.Clone(f.result)}
	d.scopeFacts[strings.Clone(unit)] = f
}

// pruneScopeFacts forgets the scopes a List did not see (gone units).
func (d *DBusDriver) pruneScopeFacts(listed map[string]bool) {
	d.cacheMu.Lock()
	defer d.cacheMu.Unlock()
	for unit := range d.scopeFacts {
		if !listed[unit] {
			delete(d.scopeFacts, unit)
		}
	}
}

// cachedCgroup resolves a scope (id) or a pod slice (id "") of an active
// unit from the states List and the unit signals keep, so that reading a
// cgroup's usage costs no D-Bus round trip; ok is false when the driver
// does not know the unit as active (the caller asks systemd).
func (d *DBusDriver) cachedCgroup(uid types.UID, id string) (unit, cgroup string, ok bool) {
	d.cacheMu.Lock()
	defer d.cacheMu.Unlock()
	names := []string{ScopeUnitName(id)}
	if id == "" {
		names = names[:0]
		for _, qos := range []QOSClass{v1.PodQOSGuaranteed, v1.PodQOSBurstable, v1.PodQOSBestEffort} {
			names = append(names, d.names.PodSlice(qos, uid))
		}
	}
	for _, n := range names {
		if st, known := d.cache[n]; known && st.ActiveState == "active" && st.CgroupPath != "" {
			return n, st.CgroupPath, true
		}
	}
	return "", "", false
}

// ownStrings copies the strings of a unit state that is kept: strings
// decoded by godbus share larger buffers, and one kept substring holds its
// whole buffer (pprof: godbus stringConverter was the largest live heap
// item at 500 pods).
func ownStrings(st UnitState) UnitState {
	st.Unit, st.ID, st.ActiveState, st.SubState = strings.Clone(st.Unit), strings.Clone(st.ID), strings.Clone(st.ActiveState), strings.Clone(st.SubState)
	st.Result, st.CgroupPath, st.PodUID = strings.Clone(st.Result), strings.Clone(st.CgroupPath), types.UID(strings.Clone(string(st.PodUID)))
	return st
}
