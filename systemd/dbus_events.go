package systemd

// dbus_events.go: unit state changes from systemd's D-Bus signals
// (PropertiesChanged of org.freedesktop.systemd1.Unit / .Scope, and
// Manager.UnitRemoved), on a connection of their own. No polling: when that
// connection drops (daemon-reexec) it is dialed again, re-subscribed, and
// the current state of every unit of ours is sent once, since changes
// during the gap were not seen.

import (
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"
)

const (
	sdBusName     = "org.freedesktop.systemd1"
	sdObjectPath  = dbus.ObjectPath("/org/freedesktop/systemd1")
	sdUnitPrefix  = "/org/freedesktop/systemd1/unit/"
	sdUnitIface   = "org.freedesktop.systemd1.Unit"
	sdScopeIface  = "org.freedesktop.systemd1.Scope"
	sigPropsChg   = "org.freedesktop.DBus.Properties.PropertiesChanged"
	sigUnitRemove = "org.freedesktop.systemd1.Manager.UnitRemoved"
)

// Events streams state changes of this program's slices and scopes. The
// channel is buffered; when the consumer falls behind by more than its
// capacity, events are dropped (counted by EventsDropped) rather than
// stalling the signal reader: the reconciler re-lists periodically anyway.
// It is closed by Close.
func (d *DBusDriver) Events() <-chan Event { return d.events }

// EventsDropped counts events lost to a full channel.
func (d *DBusDriver) EventsDropped() uint64 { return d.dropped.Load() }

// openSignals dials systemd, subscribes to its unit signals and returns the
// signal channel.
func (d *DBusDriver) openSignals() (*dbus.Conn, chan *dbus.Signal, error) {
	c, err := dbus.Dial(d.opts.Address, dbus.WithContext(d.ctx))
	if err != nil {
		return nil, nil, err
	}
	if err := c.Auth([]dbus.Auth{dbus.AuthExternal(strconv.Itoa(os.Getuid()))}); err != nil {
		c.Close()
		return nil, nil, err
	}
	if d.opts.Address != systemdPrivateAddress {
		// Through a bus daemon (not systemd's private socket) the
		// connection must say hello and ask for the signals it wants.
		if err := c.Hello(); err != nil {
			c.Close()
			return nil, nil, err
		}
		for _, m := range []string{
			"type='signal',sender='org.freedesktop.systemd1',interface='org.freedesktop.DBus.Properties',member='PropertiesChanged'",
			"type='signal',sender='org.freedesktop.systemd1',interface='org.freedesktop.systemd1.Manager',member='UnitRemoved'",
		} {
			c.BusObject().Call("org.freedesktop.DBus.AddMatch", 0, m)
		}
	}
	ch := make(chan *dbus.Signal, 256)
	c.Signal(ch)
	// systemd subscribes direct (private socket) connections to its unit
	// signals by default, and systemd 252 leaves Manager.Subscribe from
	// such a connection unanswered (seen in the test node), so it is only
	// called through a bus daemon.
	if d.opts.Address != systemdPrivateAddress {
		if err := c.Object(sdBusName, sdObjectPath).Call("org.freedesktop.systemd1.Manager.Subscribe", 0).Store(); err != nil {
			c.Close()
			return nil, nil, err
		}
	}
	return c, ch, nil
}

func (d *DBusDriver) eventLoop(c *dbus.Conn, sigs chan *dbus.Signal) {
	defer d.wg.Done()
	defer close(d.events)
	for {
		for sig := range sigs {
			d.handleSignal(sig)
		}
		c.Close()
		// The connection dropped: dial again until it works or Close.
		backoff := 20 * time.Millisecond
		for {
			if d.ctx.Err() != nil {
				return
			}
			var err error
			c, sigs, err = d.openSignals()
			if err == nil {
				break
			}
			select {
			case <-d.ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, time.Second)
		}
		d.resendAll()
	}
}

// resendAll sends the current state of every unit of ours once.
func (d *DBusDriver) resendAll() {
	units, err := d.List(d.ctx)
	if err != nil {
		return
	}
	seen := map[string]bool{}
	for _, u := range units {
		seen[u.Unit] = true
		d.send(Event{Unit: u.Unit, State: u})
	}
	d.cacheMu.Lock()
	var gone []string
	for name := range d.cache {
		if !seen[name] {
			gone = append(gone, name)
			delete(d.cache, name)
		}
	}
	d.cacheMu.Unlock()
	for _, name := range gone {
		d.send(Event{Unit: name, State: UnitState{Unit: name}, Gone: true})
	}
}

func (d *DBusDriver) send(ev Event) {
	select {
	case d.events <- ev:
	default:
		d.dropped.Add(1)
	}
}

// known tells whether a unit is one of ours this driver has seen: created
// or ensured by it, or listed under its root. A scope of another
// --cgroup-root has the same prefix; and asking systemd about a slice name
// loads an inactive stand-in that is later removed again, which must not
// read as a pod slice going away.
func (d *DBusDriver) known(unit string) bool {
	d.cacheMu.Lock()
	_, ok := d.cache[unit]
	d.cacheMu.Unlock()
	return ok
}

func (d *DBusDriver) remember(st UnitState) {
	st = ownStrings(st)
	d.cacheMu.Lock()
	d.cache[st.Unit] = st
	d.cacheMu.Unlock()
}

func (d *DBusDriver) handleSignal(sig *dbus.Signal) {
	switch sig.Name {
	case sigUnitRemove:
		if len(sig.Body) < 1 {
			return
		}
		unit, _ := sig.Body[0].(string)
		if !d.known(unit) {
			return
		}
		d.cacheMu.Lock()
		st, ok := d.cache[unit]
		delete(d.cache, unit)
		d.cacheMu.Unlock()
		if !ok {
			st = d.baseState(unit)
		}
		st.ActiveState, st.SubState = "inactive", "dead"
		d.send(Event{Unit: unit, State: st, Gone: true})
	case sigPropsChg:
		if len(sig.Body) < 2 || !strings.HasPrefix(string(sig.Path), sdUnitPrefix) {
			return
		}
		iface, _ := sig.Body[0].(string)
		changed, _ := sig.Body[1].(map[string]dbus.Variant)
		if iface != sdUnitIface && iface != sdScopeIface {
			return
		}
		unit := unescapeBusPath(strings.TrimPrefix(string(sig.Path), sdUnitPrefix))
		if !d.known(unit) {
			// A pod slice of this root that runs (made by an earlier run of
			// this program, or by another process of it) becomes known.
			_, _, podSlice := d.names.IsPodSlice(unit)
			v, ok := changed["ActiveState"]
			if state, _ := v.Value().(string); !podSlice || !ok || state == "inactive" {
				return
			}
		}
		d.cacheMu.Lock()
		st, ok := d.cache[unit]
		if !ok {
			st = d.baseState(unit)
		}
		before := st
		if v, ok := changed["ActiveState"]; ok {
			st.ActiveState, _ = v.Value().(string)
		}
		if v, ok := changed["SubState"]; ok {
			st.SubState, _ = v.Value().(string)
		}
		if v, ok := changed["Result"]; ok {
			st.Result, _ = v.Value().(string)
		}
		if v, ok := changed["ControlGroup"]; ok {
			if cg, _ := v.Value().(string); cg != "" {
				st.CgroupPath = cg
			}
		}
		st = ownStrings(st)
		d.cache[st.Unit] = st // st.Unit == unit, held as a copy
		d.cacheMu.Unlock()
		if st.ActiveState != before.ActiveState || st.SubState != before.SubState || st.Result != before.Result || !ok {
			d.send(Event{Unit: unit, State: st})
		}
	}
}

// baseState is what a unit's name tells about it.
func (d *DBusDriver) baseState(unit string) UnitState {
	st := UnitState{Unit: unit}
	if uid, _, ok := d.names.IsPodSlice(unit); ok {
		st.PodUID = uid
		st.CgroupPath = "/" + ExpandSlice(unit)
	} else if id, ok := ScopeID(unit); ok {
		st.ID = id
	}
	return st
}

// unescapeBusPath undoes systemd's object path escaping of unit names
// ("_2d" for '-', "_2e" for '.', ...).
func unescapeBusPath(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '_' && i+2 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				b.WriteByte(byte(n))
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
