package systemd

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
)

// Numbers pinned against the kubelet's own tests and formulas
// (pkg/kubelet/cm/helpers_linux_test.go).
func TestMilliCPUToShares(t *testing.T) {
	for _, tc := range []struct {
		milli int64
		want  uint64
	}{
		{0, 2}, {1, 2}, {2, 2}, {3, 3}, {100, 102}, {250, 256}, {500, 512},
		{1000, 1024}, {2000, 2048}, {256000, 262144}, {300000, 262144},
	} {
		if got := MilliCPUToShares(tc.milli); got != tc.want {
			t.Errorf("MilliCPUToShares(%dm) = %d, want %d", tc.milli, got, tc.want)
		}
	}
}

func TestMilliCPUToQuota(t *testing.T) {
	for _, tc := range []struct {
		milli, period, want int64
	}{
		{0, 100000, 0}, {1, 100000, 1000}, {5, 100000, 1000}, {9, 100000, 1000},
		{10, 100000, 1000}, {11, 100000, 1100}, {200, 100000, 20000}, {500, 100000, 50000},
		{1000, 100000, 100000}, {1500, 100000, 150000}, {10, 50000, 1000}, {200, 50000, 10000},
	} {
		if got := MilliCPUToQuota(tc.milli, tc.period); got != tc.want {
			t.Errorf("MilliCPUToQuota(%dm, %d) = %d, want %d", tc.milli, tc.period, got, tc.want)
		}
	}
}

func TestCPUSharesToWeight(t *testing.T) {
	for _, tc := range []struct{ shares, want uint64 }{
		{0, 0}, {2, 1}, {102, 4}, {1024, 39}, {262144, 10000},
	} {
		if got := CPUSharesToWeight(tc.shares); got != tc.want {
			t.Errorf("CPUSharesToWeight(%d) = %d, want %d", tc.shares, got, tc.want)
		}
	}
}

// res builds a ResourceRequirements from "cpu=100m,memory=64Mi"-ish pairs.
func rl(kv ...string) v1.ResourceList {
	l := v1.ResourceList{}
	for i := 0; i+1 < len(kv); i += 2 {
		l[v1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
	}
	return l
}

func ctr(name string, req, lim v1.ResourceList) v1.Container {
	return v1.Container{Name: name, Resources: v1.ResourceRequirements{Requests: req, Limits: lim}}
}

func sidecar(name string, req, lim v1.ResourceList) v1.Container {
	c := ctr(name, req, lim)
	always := v1.ContainerRestartPolicyAlways
	c.RestartPolicy = &always
	return c
}

func podOf(uid string, init []v1.Container, app ...v1.Container) *v1.Pod {
	p := &v1.Pod{}
	p.UID = types.UID(uid)
	p.Spec.InitContainers = init
	p.Spec.Containers = app
	return p
}

func TestGetPodQOS(t *testing.T) {
	for _, tc := range []struct {
		name string
		pod  *v1.Pod
		want QOSClass
	}{
		{"no resources", podOf("u", nil, ctr("a", nil, nil)), v1.PodQOSBestEffort},
		{"zero request only", podOf("u", nil, ctr("a", rl("cpu", "0"), nil)), v1.PodQOSBestEffort},
		{"only extended resource", podOf("u", nil, ctr("a", rl("nvidia.com/gpu", "1"), rl("nvidia.com/gpu", "1"))), v1.PodQOSBestEffort},
		{"request only", podOf("u", nil, ctr("a", rl("cpu", "100m"), nil)), v1.PodQOSBurstable},
		{"limits equal requests", podOf("u", nil, ctr("a", rl("cpu", "1", "memory", "1Gi"), rl("cpu", "1", "memory", "1Gi"))), v1.PodQOSGuaranteed},
		{"limits only (requests default to them)", podOf("u", nil, ctr("a", nil, rl("cpu", "1", "memory", "1Gi"))), v1.PodQOSGuaranteed},
		{"cpu limit only", podOf("u", nil, ctr("a", nil, rl("cpu", "1"))), v1.PodQOSBurstable},
		{"requests below limits", podOf("u", nil, ctr("a", rl("cpu", "500m", "memory", "1Gi"), rl("cpu", "1", "memory", "1Gi"))), v1.PodQOSBurstable},
		{"equal quantities written differently", podOf("u", nil, ctr("a", rl("cpu", "1000m", "memory", "1024Mi"), rl("cpu", "1", "memory", "1Gi"))), v1.PodQOSGuaranteed},
		{"second container best effort", podOf("u", nil,
			ctr("a", nil, rl("cpu", "1", "memory", "1Gi")), ctr("b", nil, nil)), v1.PodQOSBurstable},
		{"init container without limits breaks Guaranteed", podOf("u",
			[]v1.Container{ctr("init", nil, nil)},
			ctr("a", nil, rl("cpu", "1", "memory", "1Gi"))), v1.PodQOSBurstable},
		{"init container requests make a best-effort app Burstable", podOf("u",
			[]v1.Container{ctr("init", rl("memory", "10Mi"), nil)},
			ctr("a", nil, nil)), v1.PodQOSBurstable},
		{"guaranteed init and app", podOf("u",
			[]v1.Container{ctr("init", nil, rl("cpu", "2", "memory", "2Gi"))},
			ctr("a", nil, rl("cpu", "1", "memory", "1Gi"))), v1.PodQOSGuaranteed},
	} {
		if got := GetPodQOS(tc.pod); got != tc.want {
			t.Errorf("%s: GetPodQOS = %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestNames(t *testing.T) {
	uid := types.UID("12345678-90ab-cdef-1234-567890abcdef")
	n := NewNames("kubepods")
	for _, tc := range []struct{ got, want string }{
		{n.RootSlice(), "kubepods.slice"},
		{n.QOSSlice(v1.PodQOSBurstable), "kubepods-burstable.slice"},
		{n.QOSSlice(v1.PodQOSBestEffort), "kubepods-besteffort.slice"},
		{n.QOSSlice(v1.PodQOSGuaranteed), ""},
		{n.PodSlice(v1.PodQOSBurstable, uid), "kubepods-burstable-pod12345678_90ab_cdef_1234_567890abcdef.slice"},
		{n.PodSlice(v1.PodQOSBestEffort, "abc"), "kubepods-besteffort-podabc.slice"},
		{n.PodSlice(v1.PodQOSGuaranteed, uid), "kubepods-pod12345678_90ab_cdef_1234_567890abcdef.slice"},
		{n.CgroupfsPodPath(v1.PodQOSBurstable, uid), "/kubepods/burstable/pod12345678-90ab-cdef-1234-567890abcdef"},
		{n.CgroupfsPodPath(v1.PodQOSGuaranteed, "abc"), "/kubepods/podabc"},
		{ExpandSlice("kubepods-burstable-podabc.slice"), "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podabc.slice"},
		{ExpandSlice("kubepods.slice"), "kubepods.slice"},
		{ExpandSlice("-.slice"), ""},
		{ScopeUnitName("0123abcd"), "minikubelet-0123abcd.scope"},
		// --cgroup-root spellings and a dash inside a root name.
		{NewNames("/kubepods").RootSlice(), "kubepods.slice"},
		{NewNames("kubepods.slice").RootSlice(), "kubepods.slice"},
		{NewNames("").RootSlice(), "kubepods.slice"},
		{NewNames("mkl-pods").QOSSlice(v1.PodQOSBurstable), "mkl_pods-burstable.slice"},
		{NewNames("system/pods").PodSlice(v1.PodQOSBestEffort, "a-b"), "system-pods-besteffort-poda_b.slice"},
		{NewNames("system/pods").CgroupfsPodPath(v1.PodQOSBestEffort, "a-b"), "/system/pods/besteffort/poda-b"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
	for _, qos := range []QOSClass{v1.PodQOSGuaranteed, v1.PodQOSBurstable, v1.PodQOSBestEffort} {
		got, gotQOS, ok := n.IsPodSlice(n.PodSlice(qos, uid))
		if !ok || got != uid || gotQOS != qos {
			t.Errorf("IsPodSlice(%s) = %q %s %v", n.PodSlice(qos, uid), got, gotQOS, ok)
		}
	}
	for _, notPod := range []string{"kubepods.slice", "kubepods-burstable.slice", "kubepods-besteffort.slice", "other-podx.slice", "kubepods-burstable-podx-y.slice", "kubepods-pod.slice"} {
		if _, _, ok := n.IsPodSlice(notPod); ok {
			t.Errorf("IsPodSlice(%s) = true, want false", notPod)
		}
	}
	if id, ok := ScopeID("minikubelet-abc.scope"); !ok || id != "abc" {
		t.Errorf("ScopeID = %q %v", id, ok)
	}
	if _, ok := ScopeID("session-1.scope"); ok {
		t.Error("ScopeID accepted a foreign scope")
	}
}

func u64(v uint64) *uint64 { return &v }
func i64(v int64) *int64   { return &v }

func eqU(a, b *uint64) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }
func eqI(a, b *int64) bool  { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

func checkRes(t *testing.T, what string, got, want Resources) {
	t.Helper()
	if !eqU(got.CPUShares, want.CPUShares) || !eqI(got.CPUQuotaMicros, want.CPUQuotaMicros) ||
		!eqI(got.MemoryLimit, want.MemoryLimit) || !eqI(got.PidsLimit, want.PidsLimit) {
		t.Errorf("%s = %s, want %s", what, fmtRes(got), fmtRes(want))
	}
	if got.CPUPeriodMicros != QuotaPeriod {
		t.Errorf("%s: period %d, want %d", what, got.CPUPeriodMicros, QuotaPeriod)
	}
}

func fmtRes(r Resources) string {
	s := "{"
	if r.CPUShares != nil {
		s += " shares=" + itoaU(*r.CPUShares)
	}
	if r.CPUQuotaMicros != nil {
		s += " quota=" + itoaI(*r.CPUQuotaMicros)
	}
	if r.MemoryLimit != nil {
		s += " mem=" + itoaI(*r.MemoryLimit)
	}
	if r.PidsLimit != nil {
		s += " pids=" + itoaI(*r.PidsLimit)
	}
	return s + " }"
}

func itoaU(v uint64) string { return resource.NewQuantity(int64(v), resource.DecimalSI).String() }
func itoaI(v int64) string  { return resource.NewQuantity(v, resource.DecimalSI).String() }

func TestPlanPodGuaranteed(t *testing.T) {
	pod := podOf("aaaa-bbbb", nil,
		ctr("a", nil, rl("cpu", "500m", "memory", "64Mi")),
		ctr("b", nil, rl("cpu", "250m", "memory", "32Mi")))
	p := PlanPod(pod, PlanOptions{CgroupRoot: "kubepods", PodPidsLimit: i64(1024)})
	if p.QOS != v1.PodQOSGuaranteed || p.QOSSlice != "" || p.RootSlice != "kubepods.slice" ||
		p.PodSlice != "kubepods-podaaaa_bbbb.slice" ||
		p.SlicePath != "kubepods.slice/kubepods-podaaaa_bbbb.slice" ||
		p.CgroupfsPath != "/kubepods/podaaaa-bbbb" {
		t.Fatalf("names: %+v", p)
	}
	checkRes(t, "pod", p.Pod, Resources{CPUShares: u64(768), CPUQuotaMicros: i64(75000), MemoryLimit: i64(96 << 20), PidsLimit: i64(1024)})
	checkRes(t, "a", p.Containers["a"], Resources{CPUShares: u64(512), CPUQuotaMicros: i64(50000), MemoryLimit: i64(64 << 20)})
	checkRes(t, "b", p.Containers["b"], Resources{CPUShares: u64(256), CPUQuotaMicros: i64(25000), MemoryLimit: i64(32 << 20)})
	checkRes(t, "sandbox", p.Sandbox, Resources{CPUShares: u64(2)})
	if pc := p.PodCgroup(); pc.UID != "aaaa-bbbb" || pc.QOS != v1.PodQOSGuaranteed {
		t.Errorf("PodCgroup = %+v", pc)
	}
}

func TestPlanPodBurstable(t *testing.T) {
	// One container without a memory limit: the pod gets quota (every
	// container limits cpu) but no memory limit.
	pod := podOf("p1", nil,
		ctr("a", rl("cpu", "100m", "memory", "10Mi"), rl("cpu", "10m", "memory", "20Mi")),
		ctr("b", rl("cpu", "1"), rl("cpu", "2")))
	p := PlanPod(pod, PlanOptions{})
	if p.QOS != v1.PodQOSBurstable || p.QOSSlice != "kubepods-burstable.slice" ||
		p.PodSlice != "kubepods-burstable-podp1.slice" ||
		p.SlicePath != "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podp1.slice" ||
		p.CgroupfsPath != "/kubepods/burstable/podp1" {
		t.Fatalf("names: %+v", p)
	}
	checkRes(t, "pod", p.Pod, Resources{CPUShares: u64(1126), CPUQuotaMicros: i64(201000)})
	checkRes(t, "a", p.Containers["a"], Resources{CPUShares: u64(102), CPUQuotaMicros: i64(1000), MemoryLimit: i64(20 << 20)})
	checkRes(t, "b", p.Containers["b"], Resources{CPUShares: u64(1024), CPUQuotaMicros: i64(200000)})

	// A container without any cpu limit: no pod quota; memory limited everywhere.
	pod = podOf("p2", nil, ctr("a", rl("cpu", "1m", "memory", "1Mi"), rl("memory", "1Mi")))
	p = PlanPod(pod, PlanOptions{})
	checkRes(t, "pod2", p.Pod, Resources{CPUShares: u64(2), MemoryLimit: i64(1 << 20)})
	checkRes(t, "a2", p.Containers["a"], Resources{CPUShares: u64(2), MemoryLimit: i64(1 << 20)})

	// cpu limit without request: shares from the limit.
	pod = podOf("p3", nil, ctr("a", nil, rl("cpu", "300")))
	p = PlanPod(pod, PlanOptions{})
	checkRes(t, "a3", p.Containers["a"], Resources{CPUShares: u64(262144), CPUQuotaMicros: i64(30000000)})
}

func TestPlanPodBestEffort(t *testing.T) {
	p := PlanPod(podOf("be", nil, ctr("a", nil, nil)), PlanOptions{PodPidsLimit: i64(-1)})
	if p.QOS != v1.PodQOSBestEffort || p.QOSSlice != "kubepods-besteffort.slice" ||
		p.PodSlice != "kubepods-besteffort-podbe.slice" || p.CgroupfsPath != "/kubepods/besteffort/podbe" {
		t.Fatalf("names: %+v", p)
	}
	checkRes(t, "pod", p.Pod, Resources{CPUShares: u64(2)})
	checkRes(t, "a", p.Containers["a"], Resources{CPUShares: u64(2)})
}

func TestPodSumsWithInitContainersAndSidecars(t *testing.T) {
	lim := func(cpu, mem string) v1.ResourceList { return rl("cpu", cpu, "memory", mem) }
	for _, tc := range []struct {
		name          string
		pod           *v1.Pod
		cpuMilli, mem int64 // pod requests = limits here (Guaranteed)
	}{
		{"init bigger than apps: max wins", podOf("u",
			[]v1.Container{ctr("i1", nil, lim("2", "200Mi")), ctr("i2", nil, lim("1", "50Mi"))},
			ctr("a", nil, lim("500m", "64Mi")), ctr("b", nil, lim("500m", "64Mi"))), 2000, 200 << 20},
		{"apps bigger than init: sum wins", podOf("u",
			[]v1.Container{ctr("i1", nil, lim("100m", "10Mi"))},
			ctr("a", nil, lim("500m", "64Mi")), ctr("b", nil, lim("500m", "64Mi"))), 1000, 128 << 20},
		{"sidecar adds to apps", podOf("u",
			[]v1.Container{sidecar("s", nil, lim("200m", "20Mi"))},
			ctr("a", nil, lim("500m", "64Mi"))), 700, 84 << 20},
		{"init after a sidecar runs beside it", podOf("u",
			[]v1.Container{sidecar("s", nil, lim("200m", "20Mi")), ctr("i", nil, lim("1", "100Mi"))},
			ctr("a", nil, lim("500m", "64Mi"))), 1200, 120 << 20},
		{"init before a sidecar runs alone", podOf("u",
			[]v1.Container{ctr("i", nil, lim("1", "100Mi")), sidecar("s", nil, lim("200m", "20Mi"))},
			ctr("a", nil, lim("500m", "64Mi"))), 1000, 100 << 20},
	} {
		if q := GetPodQOS(tc.pod); q != v1.PodQOSGuaranteed {
			t.Errorf("%s: QoS %s", tc.name, q)
			continue
		}
		req := PodRequests(tc.pod)
		lims, allCPU, allMem := PodLimits(tc.pod)
		if got := req.Cpu().MilliValue(); got != tc.cpuMilli {
			t.Errorf("%s: cpu request %dm, want %dm", tc.name, got, tc.cpuMilli)
		}
		if got := lims.Memory().Value(); got != tc.mem || !allCPU || !allMem {
			t.Errorf("%s: memory limit %d (all cpu %v, all mem %v), want %d", tc.name, got, allCPU, allMem, tc.mem)
		}
		p := PodResources(tc.pod, nil)
		checkRes(t, tc.name, p, Resources{CPUShares: u64(MilliCPUToShares(tc.cpuMilli)),
			CPUQuotaMicros: i64(MilliCPUToQuota(tc.cpuMilli, QuotaPeriod)), MemoryLimit: i64(tc.mem)})
	}
	// A pod with an init container lacking a memory limit: Burstable, and
	// no pod memory limit even though every app container has one.
	pod := podOf("u", []v1.Container{ctr("i", rl("cpu", "100m"), rl("cpu", "100m"))},
		ctr("a", nil, lim("500m", "64Mi")))
	p := PodResources(pod, nil)
	checkRes(t, "init without memory limit", p, Resources{CPUShares: u64(512), CPUQuotaMicros: i64(50000)})
}

func TestPodOverhead(t *testing.T) {
	pod := podOf("u", nil, ctr("a", nil, rl("cpu", "500m", "memory", "64Mi")))
	pod.Spec.Overhead = rl("cpu", "100m", "memory", "16Mi")
	checkRes(t, "overhead", PodResources(pod, nil),
		Resources{CPUShares: u64(614), CPUQuotaMicros: i64(60000), MemoryLimit: i64(80 << 20)})
}

func TestQOSResources(t *testing.T) {
	pods := []*v1.Pod{
		podOf("b1", nil, ctr("a", rl("cpu", "100m"), nil)),
		podOf("b2", []v1.Container{ctr("i", rl("cpu", "2"), nil)}, ctr("a", rl("cpu", "250m"), rl("cpu", "1"))),
		podOf("g", nil, ctr("a", nil, rl("cpu", "4", "memory", "1Gi"))), // Guaranteed: not counted
		podOf("be", nil, ctr("a", nil, nil)),                            // BestEffort: not counted
	}
	burstable, bestEffort := QOSResources(pods)
	checkRes(t, "burstable", burstable, Resources{CPUShares: u64(MilliCPUToShares(2100))})
	if *burstable.CPUShares != 2150 {
		t.Errorf("burstable shares %d, want 2150", *burstable.CPUShares)
	}
	checkRes(t, "besteffort", bestEffort, Resources{CPUShares: u64(2)})
	burstable, _ = QOSResources(nil)
	checkRes(t, "no pods", burstable, Resources{CPUShares: u64(2)})
}

// The kubelet judges "every container declares a limit" on the cumulative
// list an init container stands for: a regular init container without a cpu
// limit, started after a sidecar with one, does not drop the pod's quota.
func TestLimitsDeclaredWithSidecarBeforeInit(t *testing.T) {
	pod := podOf("u",
		[]v1.Container{sidecar("s", nil, rl("cpu", "200m", "memory", "20Mi")), ctr("i", rl("cpu", "100m"), nil)},
		ctr("a", nil, rl("cpu", "500m", "memory", "64Mi")))
	if q := GetPodQOS(pod); q != v1.PodQOSBurstable {
		t.Fatalf("QoS %s, want Burstable", q)
	}
	_, allCPU, allMem := PodLimits(pod)
	if !allCPU || !allMem {
		t.Errorf("limits declared: cpu %v memory %v, want both (as the kubelet's ContainerFn sees them)", allCPU, allMem)
	}
	checkRes(t, "pod", PodResources(pod, nil), Resources{CPUShares: u64(716), CPUQuotaMicros: i64(70000), MemoryLimit: i64(84 << 20)})
	// Without the sidecar the same init container drops both.
	pod.Spec.InitContainers = pod.Spec.InitContainers[1:]
	_, allCPU, allMem = PodLimits(pod)
	if allCPU || allMem {
		t.Errorf("limits declared without the sidecar: cpu %v memory %v, want neither", allCPU, allMem)
	}
}

func TestPodLevelResources(t *testing.T) {
	pod := podOf("u", nil, ctr("a", nil, nil), ctr("b", rl("cpu", "100m"), nil))
	pod.Spec.Resources = &v1.ResourceRequirements{Limits: rl("cpu", "1", "memory", "128Mi")}
	if q := GetPodQOS(pod); q != v1.PodQOSGuaranteed {
		t.Errorf("pod-level limits on cpu and memory: QoS %s, want Guaranteed", q)
	}
	checkRes(t, "pod-level", PodResources(pod, nil), Resources{CPUShares: u64(1024), CPUQuotaMicros: i64(100000), MemoryLimit: i64(128 << 20)})
	pod.Spec.Resources = &v1.ResourceRequirements{Requests: rl("cpu", "500m"), Limits: rl("memory", "64Mi")}
	if q := GetPodQOS(pod); q != v1.PodQOSBurstable {
		t.Errorf("pod-level memory limit only: QoS %s, want Burstable", q)
	}
	checkRes(t, "pod-level burstable", PodResources(pod, nil), Resources{CPUShares: u64(512), MemoryLimit: i64(64 << 20)})
}
