package systemd

// plan.go: what cgroups a pod gets and with which values. Pure: no IO, no
// clock. The formulas are the kubelet's (pkg/kubelet/cm/helpers_linux.go,
// qos_container_manager_linux.go, kuberuntime_container_linux.go,
// k8s.io/component-helpers/resource, pkg/apis/core/v1/helper/qos), so a pod
// gets the same cpu.shares, cfs quota and memory limit here as under a real
// kubelet with the systemd cgroup driver.

import (
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
)

// The kubelet's CFS constants (pkg/kubelet/cm/helpers_linux.go).
const (
	MinShares     = 2      // cpu.shares floor (kernel minimum)
	MaxShares     = 262144 // cpu.shares ceiling (kernel maximum)
	SharesPerCPU  = 1024
	MilliCPUToCPU = 1000
	// QuotaPeriod is the CFS period in µs the kubelet uses (100 ms).
	QuotaPeriod = 100000
	// MinQuotaPeriod is the smallest quota the kubelet writes (1 ms per period).
	MinQuotaPeriod = 1000
)

// DefaultCgroupRoot is the name of the root of the pod tree (--cgroup-root).
const DefaultCgroupRoot = "kubepods"

// ScopePrefix starts the name of every scope this program creates.
const ScopePrefix = "minikubelet-"

// PlanOptions are the node settings that shape a pod's cgroups.
type PlanOptions struct {
	CgroupRoot   string // "kubepods" (default when empty)
	PodPidsLimit *int64 // --pod-pids-limit; nil or <= 0: unlimited (kubelet's default)
}

// PodPlan is where a pod's cgroups live and what they are limited to.
type PodPlan struct {
	UID       types.UID
	QOS       QOSClass
	RootSlice string // kubepods.slice
	QOSSlice  string // kubepods-burstable.slice; "" for Guaranteed
	PodSlice  string // kubepods-burstable-pod<uid>.slice
	// SlicePath is the pod slice's cgroup path under the hierarchy roots
	// with the systemd driver (what its ControlGroup property reads, without
	// the leading slash).
	SlicePath string
	// CgroupfsPath is the pod's cgroup with the cgroupfs driver.
	CgroupfsPath string
	Pod          Resources            // the pod slice's values (summed)
	Containers   map[string]Resources // by container name, init and app
	// Sandbox is the pause process's scope: the minimum cpu weight, no
	// limits of its own (the pod slice bounds it).
	Sandbox Resources
}

// PodCgroup is the driver's view of the plan.
func (p PodPlan) PodCgroup() PodCgroup {
	return PodCgroup{UID: p.UID, QOS: p.QOS, Resources: p.Pod}
}

// PlanPod computes the pod's cgroup names and values.
func PlanPod(pod *v1.Pod, opts PlanOptions) PodPlan {
	qos := GetPodQOS(pod)
	n := NewNames(opts.CgroupRoot)
	p := PodPlan{
		UID:          pod.UID,
		QOS:          qos,
		RootSlice:    n.RootSlice(),
		QOSSlice:     n.QOSSlice(qos),
		PodSlice:     n.PodSlice(qos, pod.UID),
		SlicePath:    ExpandSlice(n.PodSlice(qos, pod.UID)),
		CgroupfsPath: n.CgroupfsPodPath(qos, pod.UID),
		Pod:          PodResources(pod, opts.PodPidsLimit),
		Containers:   map[string]Resources{},
		Sandbox:      Resources{CPUShares: sdPtr(uint64(MinShares)), CPUPeriodMicros: QuotaPeriod},
	}
	for _, c := range pod.Spec.InitContainers {
		p.Containers[c.Name] = ContainerResources(&c)
	}
	for _, c := range pod.Spec.Containers {
		p.Containers[c.Name] = ContainerResources(&c)
	}
	return p
}

// MilliCPUToShares converts a cpu request in millicores to cpu.shares.
func MilliCPUToShares(milliCPU int64) uint64 {
	if milliCPU == 0 {
		return MinShares
	}
	shares := milliCPU * SharesPerCPU / MilliCPUToCPU
	if shares < MinShares {
		return MinShares
	}
	if shares > MaxShares {
		return MaxShares
	}
	return uint64(shares)
}

// MilliCPUToQuota converts a cpu limit in millicores to a CFS quota in µs
// per period µs; 0 for no limit.
func MilliCPUToQuota(milliCPU, period int64) int64 {
	if milliCPU == 0 {
		return 0
	}
	quota := milliCPU * period / MilliCPUToCPU
	if quota < MinQuotaPeriod {
		quota = MinQuotaPeriod
	}
	return quota
}

// CPUSharesToWeight converts cpu.shares to the cgroup v2 cpu.weight the
// kubelet (through runc's ConvertCPUSharesToCgroupV2Value) writes:
// [2, 262144] maps linearly onto [1, 10000]. 0 stays 0 (unset).
func CPUSharesToWeight(shares uint64) uint64 {
	if shares == 0 {
		return 0
	}
	if shares < MinShares {
		shares = MinShares
	}
	return 1 + ((shares-2)*9999)/262142
}

// GetPodQOS returns the pod's QoS class by Kubernetes' rules
// (pkg/apis/core/v1/helper/qos.ComputePodQOS): only cpu and memory count,
// init containers included, zero quantities ignored; Guaranteed when every
// container limits both and the summed requests equal the summed limits.
// Requests missing where a limit is set default to the limit first, as the
// API server's defaulting does (a no-op for a defaulted pod).
//
// Pod-level resources (spec.resources, PodLevelResources) decide alone when
// set, as in Kubernetes: Guaranteed needs a pod-level cpu and memory limit.
func GetPodQOS(pod *v1.Pod) QOSClass {
	requests := v1.ResourceList{}
	limits := v1.ResourceList{}
	guaranteed := true
	var all []v1.Container
	if podLevelSet(pod) {
		r := pod.Spec.Resources
		for name, q := range effectiveList(r.Requests, r.Limits) {
			if isQOSResource(name) && q.Sign() > 0 {
				addQuantity(requests, name, q)
			}
		}
		for name, q := range r.Limits {
			if isQOSResource(name) && q.Sign() > 0 {
				addQuantity(limits, name, q)
			}
		}
		if _, ok := limits[v1.ResourceCPU]; !ok {
			guaranteed = false
		}
		if _, ok := limits[v1.ResourceMemory]; !ok {
			guaranteed = false
		}
	} else {
		all = append(append([]v1.Container{}, pod.Spec.Containers...), pod.Spec.InitContainers...)
	}
	for i := range all {
		reqs := effectiveRequests(&all[i])
		for name, q := range reqs {
			if isQOSResource(name) && q.Sign() > 0 {
				addQuantity(requests, name, q)
			}
		}
		found := map[v1.ResourceName]bool{}
		for name, q := range all[i].Resources.Limits {
			if isQOSResource(name) && q.Sign() > 0 {
				found[name] = true
				addQuantity(limits, name, q)
			}
		}
		if !found[v1.ResourceCPU] || !found[v1.ResourceMemory] {
			guaranteed = false
		}
	}
	if len(requests) == 0 && len(limits) == 0 {
		return v1.PodQOSBestEffort
	}
	if guaranteed {
		for name, req := range requests {
			if lim, ok := limits[name]; !ok || lim.Cmp(req) != 0 {
				guaranteed = false
				break
			}
		}
	}
	if guaranteed && len(requests) == len(limits) {
		return v1.PodQOSGuaranteed
	}
	return v1.PodQOSBurstable
}

func isQOSResource(name v1.ResourceName) bool {
	return name == v1.ResourceCPU || name == v1.ResourceMemory
}

// effectiveRequests are a container's requests with missing ones defaulted
// to its limits (SetDefaults_Pod / the kubelet's own repeat of that rule).
func effectiveRequests(c *v1.Container) v1.ResourceList {
	return effectiveList(c.Resources.Requests, c.Resources.Limits)
}

func effectiveList(requests, limits v1.ResourceList) v1.ResourceList {
	out := v1.ResourceList{}
	for name, q := range limits {
		out[name] = q.DeepCopy()
	}
	for name, q := range requests {
		out[name] = q.DeepCopy()
	}
	return out
}

// podLevelSet tells whether the pod sets cpu or memory at pod level
// (spec.resources), which then wins over the containers' sums.
func podLevelSet(pod *v1.Pod) bool {
	r := pod.Spec.Resources
	if r == nil {
		return false
	}
	for _, l := range []v1.ResourceList{r.Requests, r.Limits} {
		for name := range l {
			if isQOSResource(name) {
				return true
			}
		}
	}
	return false
}

func isSidecar(c *v1.Container) bool {
	return c.RestartPolicy != nil && *c.RestartPolicy == v1.ContainerRestartPolicyAlways
}

// aggregate sums a per-container resource list over the pod the way
// k8s.io/component-helpers/resource.PodRequests/PodLimits do (Kubernetes
// 1.29+): app containers and restartable init containers (sidecars) add up;
// a regular init container runs alone beside the sidecars started before it,
// so the pod needs max(sum(app)+sum(sidecars), each init + sidecars before it).
// visit, when set, sees what the kubelet's ContainerFn sees: each app
// container's list, and for each init container the cumulative list it
// stands for (the sidecars so far, or itself plus them).
func aggregate(pod *v1.Pod, get func(*v1.Container) v1.ResourceList, visit func(v1.ResourceList)) v1.ResourceList {
	sum := v1.ResourceList{}
	for i := range pod.Spec.Containers {
		l := get(&pod.Spec.Containers[i])
		if visit != nil {
			visit(l)
		}
		addList(sum, l)
	}
	sidecars := v1.ResourceList{}
	initMax := v1.ResourceList{}
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		var during v1.ResourceList
		if isSidecar(c) {
			addList(sum, get(c))
			addList(sidecars, get(c))
			during = sidecars
		} else {
			during = v1.ResourceList{}
			addList(during, get(c))
			addList(during, sidecars)
		}
		if visit != nil {
			visit(during)
		}
		maxList(initMax, during)
	}
	maxList(sum, initMax)
	return sum
}

// PodRequests are the pod's aggregated requests (effective requests, plus
// pod overhead).
func PodRequests(pod *v1.Pod) v1.ResourceList {
	reqs := aggregate(pod, effectiveRequests, nil)
	if podLevelSet(pod) {
		for name, q := range effectiveList(pod.Spec.Resources.Requests, pod.Spec.Resources.Limits) {
			if isQOSResource(name) {
				reqs[name] = q.DeepCopy()
			}
		}
	}
	addList(reqs, pod.Spec.Overhead)
	return reqs
}

// PodLimits are the pod's aggregated limits (overhead added to the limits
// that exist) and whether a cpu and a memory limit are declared throughout,
// judged as the kubelet's ResourceConfigForPod does (an init container
// counts with the sidecars started before it).
func PodLimits(pod *v1.Pod) (limits v1.ResourceList, allCPU, allMemory bool) {
	allCPU, allMemory = true, true
	limits = aggregate(pod, func(c *v1.Container) v1.ResourceList { return c.Resources.Limits }, func(l v1.ResourceList) {
		if l.Cpu().IsZero() {
			allCPU = false
		}
		if l.Memory().IsZero() {
			allMemory = false
		}
	})
	if podLevelSet(pod) {
		// A pod-level limit bounds the pod whatever its containers say.
		for name, q := range pod.Spec.Resources.Limits {
			if isQOSResource(name) && !q.IsZero() {
				limits[name] = q.DeepCopy()
				if name == v1.ResourceCPU {
					allCPU = true
				} else {
					allMemory = true
				}
			}
		}
	}
	for name, q := range pod.Spec.Overhead {
		if l, ok := limits[name]; ok {
			l.Add(q)
			limits[name] = l
		}
	}
	return limits, allCPU, allMemory
}

// PodResources is the pod slice's configuration (the kubelet's
// ResourceConfigForPod with CFS quota enforced): Guaranteed gets shares,
// quota and memory; Burstable gets shares, and quota / memory only when every
// container declares that limit; BestEffort gets the minimum shares.
func PodResources(pod *v1.Pod, podPidsLimit *int64) Resources {
	qos := GetPodQOS(pod)
	r := Resources{CPUPeriodMicros: QuotaPeriod}
	if podPidsLimit != nil && *podPidsLimit > 0 {
		r.PidsLimit = sdPtr(*podPidsLimit)
	}
	if qos == v1.PodQOSBestEffort {
		r.CPUShares = sdPtr(uint64(MinShares))
		return r
	}
	reqs := PodRequests(pod)
	limits, allCPU, allMemory := PodLimits(pod)
	var cpuReq, cpuLim, memLim int64
	if q, ok := reqs[v1.ResourceCPU]; ok {
		cpuReq = q.MilliValue()
	}
	if q, ok := limits[v1.ResourceCPU]; ok {
		cpuLim = q.MilliValue()
	}
	if q, ok := limits[v1.ResourceMemory]; ok {
		memLim = q.Value()
	}
	r.CPUShares = sdPtr(MilliCPUToShares(cpuReq))
	quota := MilliCPUToQuota(cpuLim, QuotaPeriod)
	if qos == v1.PodQOSGuaranteed || allCPU {
		if quota > 0 {
			r.CPUQuotaMicros = sdPtr(quota)
		}
	}
	if qos == v1.PodQOSGuaranteed || allMemory {
		if memLim > 0 {
			r.MemoryLimit = sdPtr(memLim)
		}
	}
	return r
}

// ContainerResources is one container's scope configuration (the kubelet's
// calculateLinuxResources): shares from the request (or the limit when no
// request), quota and memory only from limits. No pids limit per container.
func ContainerResources(c *v1.Container) Resources {
	r := Resources{CPUPeriodMicros: QuotaPeriod}
	cpuReq := c.Resources.Requests[v1.ResourceCPU]
	cpuLim := c.Resources.Limits[v1.ResourceCPU]
	memLim := c.Resources.Limits[v1.ResourceMemory]
	if cpuReq.IsZero() && !cpuLim.IsZero() {
		r.CPUShares = sdPtr(MilliCPUToShares(cpuLim.MilliValue()))
	} else {
		r.CPUShares = sdPtr(MilliCPUToShares(cpuReq.MilliValue()))
	}
	if q := MilliCPUToQuota(cpuLim.MilliValue(), QuotaPeriod); q > 0 {
		r.CPUQuotaMicros = sdPtr(q)
	}
	if v := memLim.Value(); v > 0 {
		r.MemoryLimit = sdPtr(v)
	}
	return r
}

// QOSResources are the values of the two QoS slices given every active pod
// (the kubelet's qos_container_manager): BestEffort always gets the minimum
// shares; Burstable gets the shares of the sum of the Burstable pods' cpu
// requests.
func QOSResources(pods []*v1.Pod) (burstable, bestEffort Resources) {
	var milli int64
	for _, p := range pods {
		if GetPodQOS(p) != v1.PodQOSBurstable {
			continue
		}
		if q, ok := PodRequests(p)[v1.ResourceCPU]; ok {
			milli += q.MilliValue()
		}
	}
	burstable = Resources{CPUShares: sdPtr(MilliCPUToShares(milli)), CPUPeriodMicros: QuotaPeriod}
	bestEffort = Resources{CPUShares: sdPtr(uint64(MinShares)), CPUPeriodMicros: QuotaPeriod}
	return burstable, bestEffort
}

// Names derives every unit name and path of the tree from the cgroup root.
type Names struct {
	root []string // the root's path components, unescaped ("kubepods")
}

// NewNames normalises --cgroup-root: "kubepods", "/kubepods" and
// "kubepods.slice" name the same root; "a/b" nests.
func NewNames(cgroupRoot string) Names {
	r := strings.TrimSuffix(strings.Trim(cgroupRoot, "/"), ".slice")
	if r == "" {
		r = DefaultCgroupRoot
	}
	return Names{root: strings.Split(r, "/")}
}

func (n Names) parts(qos QOSClass) []string {
	out := append([]string{}, n.root...)
	switch qos {
	case v1.PodQOSBurstable:
		out = append(out, "burstable")
	case v1.PodQOSBestEffort:
		out = append(out, "besteffort")
	}
	return out
}

// RootSlice is the root slice unit (kubepods.slice).
func (n Names) RootSlice() string { return sliceUnit(n.root) }

// QOSSlice is the QoS class's slice unit; "" for Guaranteed (its pods sit
// directly under the root).
func (n Names) QOSSlice(qos QOSClass) string {
	if qos == v1.PodQOSGuaranteed {
		return ""
	}
	return sliceUnit(n.parts(qos))
}

// PodSlice is the pod's slice unit, kubepods-<qos>-pod<uid>.slice.
func (n Names) PodSlice(qos QOSClass, uid types.UID) string {
	return sliceUnit(append(n.parts(qos), "pod"+string(uid)))
}

// CgroupfsPodPath is the pod's cgroup with the cgroupfs driver
// (/kubepods/burstable/pod<uid>, UID unescaped).
func (n Names) CgroupfsPodPath(qos QOSClass, uid types.UID) string {
	return "/" + strings.Join(append(n.parts(qos), "pod"+string(uid)), "/")
}

// IsPodSlice tells whether unit is a pod slice of this root and returns the
// pod's UID and QoS class.
func (n Names) IsPodSlice(unit string) (types.UID, QOSClass, bool) {
	for _, qos := range []QOSClass{v1.PodQOSBurstable, v1.PodQOSBestEffort, v1.PodQOSGuaranteed} {
		prefix := strings.TrimSuffix(sliceUnit(n.parts(qos)), ".slice") + "-pod"
		if !strings.HasPrefix(unit, prefix) || !strings.HasSuffix(unit, ".slice") {
			continue
		}
		esc := strings.TrimSuffix(strings.TrimPrefix(unit, prefix), ".slice")
		if esc == "" || strings.Contains(esc, "-") {
			continue // a deeper slice, not a pod slice of this class
		}
		return types.UID(strings.ReplaceAll(esc, "_", "-")), qos, true
	}
	return "", "", false
}

// ScopeUnitName is the scope of a sandbox or container: minikubelet-<id>.scope.
func ScopeUnitName(id string) string { return ScopePrefix + id + ".scope" }

// ScopeID is the inverse of ScopeUnitName.
func ScopeID(unit string) (string, bool) {
	if !strings.HasPrefix(unit, ScopePrefix) || !strings.HasSuffix(unit, ".scope") {
		return "", false
	}
	id := strings.TrimSuffix(strings.TrimPrefix(unit, ScopePrefix), ".scope")
	return id, id != ""
}

// escapeSystemdPart is the kubelet's escapeSystemdCgroupName: a dash in a
// slice name means "child of", so dashes inside one component become '_'.
func escapeSystemdPart(part string) string { return strings.ReplaceAll(part, "-", "_") }

func sliceUnit(parts []string) string {
	esc := make([]string, len(parts))
	for i, p := range parts {
		esc[i] = escapeSystemdPart(p)
	}
	return strings.Join(esc, "-") + ".slice"
}

// ExpandSlice turns a slice unit name into its cgroup path, as systemd does:
// "a-b-c.slice" → "a.slice/a-b.slice/a-b-c.slice"; "-.slice" is "".
func ExpandSlice(unit string) string {
	name := strings.TrimSuffix(unit, ".slice")
	if name == "-" || name == "" {
		return ""
	}
	var out []string
	for i := 0; i < len(name); i++ {
		if name[i] == '-' {
			out = append(out, name[:i]+".slice")
		}
	}
	out = append(out, unit)
	return strings.Join(out, "/")
}

func addQuantity(l v1.ResourceList, name v1.ResourceName, q resource.Quantity) {
	if cur, ok := l[name]; ok {
		cur.Add(q)
		l[name] = cur
		return
	}
	l[name] = q.DeepCopy()
}

func addList(dst, src v1.ResourceList) {
	for name, q := range src {
		addQuantity(dst, name, q)
	}
}

func maxList(dst, src v1.ResourceList) {
	for name, q := range src {
		if cur, ok := dst[name]; !ok || q.Cmp(cur) > 0 {
			dst[name] = q.DeepCopy()
		}
	}
}

func sdPtr[T any](v T) *T { return &v }
