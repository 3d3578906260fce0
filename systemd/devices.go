package systemd

// devices.go: the device cgroup of a container scope. An unprivileged
// container gets the allowlist runc applies to every container
// (libcontainer/specconv AllowedDevices), so even with CAP_MKNOD it can
// create device nodes but open only the harmless ones; a privileged
// container (the host's /dev) is not restricted.

import (
	"fmt"
	"slices"
	"strconv"

	sd "github.com/coreos/go-systemd/v22/dbus"
)

// DeviceWildcard is a major or minor number matching every number.
const DeviceWildcard int64 = -1

// DeviceRule is one allow rule of a device cgroup, in devices.list terms.
type DeviceRule struct {
	Type   byte   // 'c' char, 'b' block, 'a' all
	Major  int64  // DeviceWildcard for any
	Minor  int64  // DeviceWildcard for any
	Access string // subset of "rwm"
}

// String is the rule as the v1 devices.list prints it ("c 1:3 rwm").
func (r DeviceRule) String() string {
	num := func(n int64) string {
		if n == DeviceWildcard {
			return "*"
		}
		return strconv.FormatInt(n, 10)
	}
	return fmt.Sprintf("%c %s:%s %s", r.Type, num(r.Major), num(r.Minor), r.Access)
}

// defaultDeviceRules is runc's default set (read in runc's
// libcontainer/specconv): mknod of any char or block device, and
// read/write/mknod of null, zero, full, random, urandom, tty, ptmx, every
// pts and /dev/net/tun (kept by runc for compatibility). /dev/console
// (5:1) is not in it: runc dropped it, a container's console is a pts.
var defaultDeviceRules = []DeviceRule{
	{'c', DeviceWildcard, DeviceWildcard, "m"},
	{'b', DeviceWildcard, DeviceWildcard, "m"},
	{'c', 1, 3, "rwm"},                // /dev/null
	{'c', 1, 5, "rwm"},                // /dev/zero
	{'c', 1, 7, "rwm"},                // /dev/full
	{'c', 1, 8, "rwm"},                // /dev/random
	{'c', 1, 9, "rwm"},                // /dev/urandom
	{'c', 5, 0, "rwm"},                // /dev/tty
	{'c', 5, 2, "rwm"},                // /dev/ptmx
	{'c', 136, DeviceWildcard, "rwm"}, // /dev/pts/*
	{'c', 10, 200, "rwm"},             // /dev/net/tun
}

// allDevicesRule is what an unrestricted device cgroup lists.
var allDevicesRule = DeviceRule{'a', DeviceWildcard, DeviceWildcard, "rwm"}

// ScopeDeviceRules are the device rules of a scope: everything for a
// privileged container, runc's default allowlist otherwise (containers
// and the pause sandbox).
func ScopeDeviceRules(privileged bool) []DeviceRule {
	if privileged {
		return []DeviceRule{allDevicesRule}
	}
	return append([]DeviceRule(nil), defaultDeviceRules...)
}

// deviceAllow is one DeviceAllow= entry of a unit: (specifier, access).
type deviceAllow struct {
	Path   string
	Access string
}

// deviceProperties are the unit properties of a scope's device cgroup.
// Unprivileged: DevicePolicy=strict (nothing but the list; "closed" would
// add systemd's own set) and one DeviceAllow per rule. systemd takes a
// node path, or "char-<name>"/"block-<name>" for a major by its
// /proc/devices name ("*" for every major). A rule for one device uses
// "/dev/char/M:m", which systemd parses as the numbers without looking at
// the host's /dev (a node missing there would otherwise drop the rule). A
// major with any minor needs its /proc/devices name: 136 is "pts".
// Privileged: DevicePolicy=auto and an empty list, no restriction.
// On v1 systemd writes these to devices.deny/devices.allow; on v2 it
// compiles them into the scope's BPF device program.
func deviceProperties(privileged bool) []sd.Property {
	if privileged {
		return []sd.Property{
			sdProp("DevicePolicy", "auto"),
			sdProp("DeviceAllow", []deviceAllow{}),
		}
	}
	return []sd.Property{
		sdProp("DevicePolicy", "strict"),
		sdProp("DeviceAllow", slices.Clone(defaultDeviceAllow)),
	}
}

// defaultDeviceAllow is defaultDeviceRules as DeviceAllow entries, built
// once: the list is fixed, so a rule systemd cannot express is a bug
// caught when the package loads.
var defaultDeviceAllow = func() []deviceAllow {
	allow := make([]deviceAllow, 0, len(defaultDeviceRules))
	for _, r := range defaultDeviceRules {
		spec, err := systemdDeviceSpecifier(r)
		if err != nil {
			panic(err)
		}
		allow = append(allow, deviceAllow{Path: spec, Access: r.Access})
	}
	return allow
}()

// majorNames are the /proc/devices names of the majors a wildcard-minor
// rule uses.
var majorNames = map[int64]string{136: "pts"}

func systemdDeviceSpecifier(r DeviceRule) (string, error) {
	kind := map[byte]string{'c': "char", 'b': "block"}[r.Type]
	if kind == "" {
		return "", fmt.Errorf("device rule %q: systemd has no DeviceAllow for type %c", r, r.Type)
	}
	switch {
	case r.Major == DeviceWildcard && r.Minor == DeviceWildcard:
		return kind + "-*", nil
	case r.Minor == DeviceWildcard:
		name, ok := majorNames[r.Major]
		if !ok {
			return "", fmt.Errorf("device rule %q: no /proc/devices name known for major %d", r, r.Major)
		}
		return kind + "-" + name, nil
	case r.Major == DeviceWildcard:
		return "", fmt.Errorf("device rule %q: systemd cannot express any major with one minor", r)
	}
	return fmt.Sprintf("/dev/%s/%d:%d", kind, r.Major, r.Minor), nil
}
