package cgroupfs

import (
	// The devices package registers the v1 (devices.allow/deny) and v2
	// (BPF program) device writers the cgroupfs managers call.
	_ "github.com/opencontainers/cgroups/devices"
	devconfig "github.com/opencontainers/cgroups/devices/config"

	"github.com/minikubelet/minikubelet/systemd"
)

// deviceRules are the rules for opencontainers/cgroups
// (Resources.Devices): v1 writes them to devices.deny/allow (deny-all
// first unless the list allows all), v2 loads them as a BPF program.
func deviceRules(privileged bool) []*devconfig.Rule {
	rules := systemd.ScopeDeviceRules(privileged)
	out := make([]*devconfig.Rule, 0, len(rules))
	for _, r := range rules {
		out = append(out, &devconfig.Rule{
			Type:        devconfig.Type(r.Type),
			Major:       r.Major,
			Minor:       r.Minor,
			Permissions: devconfig.Permissions(r.Access),
			Allow:       true,
		})
	}
	return out
}

func ptr[T any](v T) *T { return &v }
