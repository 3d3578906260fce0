package systemd

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	sd "github.com/coreos/go-systemd/v22/dbus"
)

// propMap renders properties as name=value for table comparisons.
func propMap(props []sd.Property) map[string]string {
	m := map[string]string{}
	for _, p := range props {
		m[p.Name] = fmt.Sprint(p.Value.Value())
	}
	return m
}

func propString(props []sd.Property) string {
	var s []string
	for k, v := range propMap(props) {
		s = append(s, k+"="+v)
	}
	sort.Strings(s)
	return strings.Join(s, " ")
}

const inf = "18446744073709551615"

func TestCPUQuotaPerSecUSec(t *testing.T) {
	for _, tc := range []struct {
		quota     int64
		period    uint64
		perSec    uint64
		fileQuota int64
	}{
		{50000, 100000, 500000, 50000},    // 500m
		{1000, 100000, 10000, 1000},       // 10m and below: the kubelet's 1 ms floor
		{1100, 100000, 11000, 1100},       // 11m
		{100000, 100000, 1000000, 100000}, // 1 CPU
		{30000000, 100000, 300000000, 30000000},
		{1000, 50000, 20000, 1000},  // another period
		{1001, 100000, 10100, 1010}, // off systemd's 100 µs/s grid: rounded up
		{0, 100000, sdInfinity, -1},
	} {
		got := CPUQuotaPerSecUSec(tc.quota, tc.period)
		if got != tc.perSec {
			t.Errorf("CPUQuotaPerSecUSec(%d, %d) = %d, want %d", tc.quota, tc.period, got, tc.perSec)
		}
		if f := CFSQuotaFromPerSec(got, tc.period); f != tc.fileQuota {
			t.Errorf("cfs_quota_us for %d/%d = %d, want %d", tc.quota, tc.period, f, tc.fileQuota)
		}
	}
	// Every kubelet quota (MilliCPUToQuota) survives the round trip exactly.
	for milli := int64(1); milli <= 64000; milli++ {
		q := MilliCPUToQuota(milli, QuotaPeriod)
		if f := CFSQuotaFromPerSec(CPUQuotaPerSecUSec(q, QuotaPeriod), QuotaPeriod); f != q {
			t.Fatalf("%dm: kubelet quota %d, systemd would write %d", milli, q, f)
		}
	}
}

func TestResourcePropertiesV1(t *testing.T) {
	r := Resources{CPUShares: u64(102), CPUQuotaMicros: i64(50000), CPUPeriodMicros: QuotaPeriod, MemoryLimit: i64(64 << 20), PidsLimit: i64(100)}
	got := propString(ResourceProperties(r, false, true))
	want := "CPUQuotaPerSecUSec=500000 CPUShares=102 MemoryLimit=67108864 TasksMax=100"
	if got != want {
		t.Errorf("v1 limited:\n got %s\nwant %s", got, want)
	}
	got = propString(ResourceProperties(Resources{CPUShares: u64(2)}, false, true))
	want = "CPUQuotaPerSecUSec=" + inf + " CPUShares=2 MemoryLimit=" + inf + " TasksMax=" + inf
	if got != want {
		t.Errorf("v1 unlimited:\n got %s\nwant %s", got, want)
	}
}

func TestResourcePropertiesV2(t *testing.T) {
	r := Resources{CPUShares: u64(1024), CPUQuotaMicros: i64(50000), CPUPeriodMicros: QuotaPeriod, MemoryLimit: i64(64 << 20)}
	got := propString(ResourceProperties(r, true, true))
	want := "CPUQuotaPerSecUSec=500000 CPUShares=1024 CPUWeight=39 MemoryMax=67108864 MemorySwapMax=0 TasksMax=" + inf
	if got != want {
		t.Errorf("v2 container:\n got %s\nwant %s", got, want)
	}
	// A pod slice: no swap property (the kubelet sets swap per container).
	got = propString(ResourceProperties(r, true, false))
	want = "CPUQuotaPerSecUSec=500000 CPUShares=1024 CPUWeight=39 MemoryMax=67108864 TasksMax=" + inf
	if got != want {
		t.Errorf("v2 slice:\n got %s\nwant %s", got, want)
	}
	// No memory limit: no MemorySwapMax either; unset shares leave the weight unset.
	got = propString(ResourceProperties(Resources{CPUPeriodMicros: 50000, CPUQuotaMicros: i64(10000)}, true, true))
	want = "CPUQuotaPerSecUSec=200000 CPUQuotaPeriodUSec=50000 CPUShares=" + inf + " CPUWeight=" + inf + " MemoryMax=" + inf + " TasksMax=" + inf
	if got != want {
		t.Errorf("v2 unlimited memory:\n got %s\nwant %s", got, want)
	}
}

func TestUnitProperties(t *testing.T) {
	spec := ScopeSpec{ID: "abc", Description: "minikubelet container default/p/c", PIDs: []int{42, 43},
		Resources: Resources{CPUShares: u64(2)}, StopTimeout: 30 * time.Second}
	m := propMap(ScopeProperties(spec, "kubepods-besteffort-podx.slice", false))
	for k, v := range map[string]string{
		"Slice": "kubepods-besteffort-podx.slice", "Delegate": "true", "DefaultDependencies": "false",
		"CPUAccounting": "true", "MemoryAccounting": "true", "TasksAccounting": "true",
		"TimeoutStopUSec": "35000000", "Description": "minikubelet container default/p/c", "PIDs": "[42 43]",
		"CPUShares": "2",
	} {
		if m[k] != v {
			t.Errorf("scope %s = %q, want %q", k, m[k], v)
		}
	}
	m = propMap(SliceProperties("minikubelet pod x", Resources{CPUShares: u64(2)}, true))
	for k, v := range map[string]string{
		"DefaultDependencies": "false", "CPUAccounting": "true", "CPUWeight": "1", "Description": "minikubelet pod x",
	} {
		if m[k] != v {
			t.Errorf("slice %s = %q, want %q", k, m[k], v)
		}
	}
	if _, ok := m["Delegate"]; ok {
		t.Error("slices cannot be delegated")
	}
}
