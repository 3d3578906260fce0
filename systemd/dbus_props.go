package systemd

// dbus_props.go: Resources → systemd unit properties (pure). What systemd
// 252 maps on each hierarchy, checked in the test node (hybrid v1 here):
//
//   - v1: CPUWeight is translated to cpu.shares as weight*1024/100, which
//     cannot express most kubelet values (102, 3, 1126 ...); CPUShares is
//     written verbatim, so v1 uses CPUShares. MemoryMax and MemoryLimit both
//     land in memory.limit_in_bytes on 252; MemoryLimit is the v1 name older
//     systemd versions know too (runc's v1 driver uses it), so v1 uses it.
//   - v2: CPUWeight with the kubelet's shares→weight conversion (systemd's
//     own CPUShares→weight conversion differs, and CPUWeight wins when both
//     are set: CPUShares only records the exact shares), MemoryMax,
//     MemorySwapMax=0 for limited containers (the kubelet's NoSwap default).
//   - both: CPUQuotaPerSecUSec (µs of CPU per second of wall time); systemd
//     writes cfs_quota_us = value*period/1s with period 100 ms unless
//     CPUQuotaPeriodUSec says otherwise, and TasksMax for pids.max.
//
// Unset limits are sent as "infinity" / "unset" rather than omitted, so an
// update with SetUnitProperties clears a limit that is gone, and so a scope
// does not inherit systemd's DefaultTasksMax (15% of pid_max: 28909 on the
// test node), which the kubelet never sets on containers.

import (
	"time"

	sd "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
)

// sdInfinity is systemd's "infinity" / "unset" for the u64 properties
// (UINT64_MAX: USEC_INFINITY, CGROUP_LIMIT_MAX, CGROUP_CPU_SHARES_INVALID,
// CGROUP_WEIGHT_INVALID).
const sdInfinity = ^uint64(0)

// CPUQuotaPerSecUSec is the systemd property value for a CFS quota of
// quotaMicros per periodMicros: µs of CPU time per second, rounded up to
// systemd's storage granularity. systemd serialises it into the transient
// unit file as "CPUQuota=NN.NN%" (1/10000 of a second = 100 µs steps) and
// re-reads that on daemon-reload, so a value off that grid would change
// after a reload; kubelet quotas (multiples of 100 µs per 100 ms) are
// always on it. systemd writes cfs_quota_us = value*period/1e6 (min 1 ms).
func CPUQuotaPerSecUSec(quotaMicros int64, periodMicros uint64) uint64 {
	if quotaMicros <= 0 {
		return sdInfinity
	}
	if periodMicros == 0 {
		periodMicros = QuotaPeriod
	}
	perSec := (uint64(quotaMicros)*1000000 + periodMicros - 1) / periodMicros
	const grain = 100 // µs per second: one hundredth of a percent
	if r := perSec % grain; r != 0 {
		perSec += grain - r
	}
	return perSec
}

// CFSQuotaFromPerSec is what systemd writes to cpu.cfs_quota_us for a
// CPUQuotaPerSecUSec value and period (cgroup.c: MAX(quota*period/1s, 1ms)).
func CFSQuotaFromPerSec(perSec, periodMicros uint64) int64 {
	if perSec == sdInfinity {
		return -1
	}
	q := perSec * periodMicros / 1000000
	if q < 1000 {
		q = 1000
	}
	return int64(q)
}

func sdProp(name string, v any) sd.Property {
	return sd.Property{Name: name, Value: dbus.MakeVariant(v)}
}

// ResourceProperties are the unit properties setting r on a unit of the
// given hierarchy. container marks a container scope (swap off on v2).
func ResourceProperties(r Resources, unified, container bool) []sd.Property {
	var props []sd.Property
	shares := sdInfinity
	if r.CPUShares != nil {
		shares = *r.CPUShares
	}
	if unified {
		weight := sdInfinity
		if shares != sdInfinity {
			weight = CPUSharesToWeight(shares)
		}
		props = append(props, sdProp("CPUWeight", weight))
		// The exact shares ride along: with CPUWeight set systemd ignores
		// CPUShares for cpu.weight on v2, but keeps it as a unit property, so
		// a restarted driver reads the pods' shares back exactly (the weight
		// loses ~26 shares a step: the Burstable sum drifted on the field host).
		props = append(props, sdProp("CPUShares", shares))
	} else {
		props = append(props, sdProp("CPUShares", shares))
	}
	period := r.CPUPeriodMicros
	if period == 0 {
		period = QuotaPeriod
	}
	quota := sdInfinity
	if r.CPUQuotaMicros != nil {
		quota = CPUQuotaPerSecUSec(*r.CPUQuotaMicros, period)
	}
	props = append(props, sdProp("CPUQuotaPerSecUSec", quota))
	if period != QuotaPeriod {
		props = append(props, sdProp("CPUQuotaPeriodUSec", period))
	}
	mem := sdInfinity
	if r.MemoryLimit != nil && *r.MemoryLimit > 0 {
		mem = uint64(*r.MemoryLimit)
	}
	if unified {
		props = append(props, sdProp("MemoryMax", mem))
		if container && mem != sdInfinity {
			props = append(props, sdProp("MemorySwapMax", uint64(0)))
		}
	} else {
		props = append(props, sdProp("MemoryLimit", mem))
	}
	pids := sdInfinity
	if r.PidsLimit != nil && *r.PidsLimit > 0 {
		pids = uint64(*r.PidsLimit)
	}
	props = append(props, sdProp("TasksMax", pids))
	return props
}

// accountingProperties turn on the controllers every unit of the tree uses.
func accountingProperties() []sd.Property {
	return []sd.Property{
		sdProp("CPUAccounting", true),
		sdProp("MemoryAccounting", true),
		sdProp("TasksAccounting", true),
	}
}

// stopTimeoutSlack is added to a scope's grace period: the caller runs the
// grace period itself (SIGTERM, wait, SIGKILL); systemd's own SIGKILL only
// backs it up.
const stopTimeoutSlack = 5 * time.Second

// SliceProperties are the properties of a transient slice of the tree.
func SliceProperties(description string, r Resources, unified bool) []sd.Property {
	props := []sd.Property{
		sd.PropDescription(description),
		sdProp("DefaultDependencies", false),
	}
	props = append(props, accountingProperties()...)
	return append(props, ResourceProperties(r, unified, false)...)
}

// ScopeProperties are the properties of a container or sandbox scope.
func ScopeProperties(spec ScopeSpec, slice string, unified bool) []sd.Property {
	pids := make([]uint32, len(spec.PIDs))
	for i, p := range spec.PIDs {
		pids[i] = uint32(p)
	}
	props := []sd.Property{
		sd.PropDescription(spec.Description),
		sd.PropSlice(slice),
		sd.PropPids(pids...),
		sdProp("Delegate", true),
		sdProp("DefaultDependencies", false),
	}
	if spec.StopTimeout > 0 {
		props = append(props, sdProp("TimeoutStopUSec", uint64((spec.StopTimeout+stopTimeoutSlack)/time.Microsecond)))
	}
	props = append(props, accountingProperties()...)
	props = append(props, deviceProperties(spec.Privileged)...)
	return append(props, ResourceProperties(spec.Resources, unified, true)...)
}
