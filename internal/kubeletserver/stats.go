package kubeletserver

// stats.go: /stats/summary in the kubelet's shape
// (k8s.io/kubelet/pkg/apis/stats/v1alpha1; kubelet:
// pkg/kubelet/server/stats/summary.go), from the pod slices' usage the
// daemon samples on demand (describe's figures) and the machine's
// /proc counters for the node.

import (
	"bufio"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	statsv1alpha1 "k8s.io/kubelet/pkg/apis/stats/v1alpha1"

	"github.com/minikubelet/minikubelet/internal/api"
)

func (s *Server) summary(w http.ResponseWriter, r *http.Request) {
	now := metav1.NewTime(time.Now())
	sum := statsv1alpha1.Summary{Node: statsv1alpha1.NodeStats{NodeName: s.o.NodeName, CPU: nodeCPU(now), Memory: nodeMemory(now)}}
	if b, err := os.ReadFile("/proc/uptime"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			if up, err := strconv.ParseFloat(f[0], 64); err == nil {
				sum.Node.StartTime = metav1.NewTime(time.Now().Add(-time.Duration(up * float64(time.Second))))
			}
		}
	}
	sum.Pods = []statsv1alpha1.PodStats{}
	for _, p := range s.o.Source.Pods() {
		ps := statsv1alpha1.PodStats{PodRef: statsv1alpha1.PodReference{Name: p.Name, Namespace: p.Namespace, UID: string(p.UID)}}
		if p.Status.StartTime != nil {
			ps.StartTime = *p.Status.StartTime
		}
		ex, _ := s.o.Source.Extra(p.UID)
		if ex.Usage != nil {
			ps.CPU, ps.Memory = cpuMem(ex.Usage)
			if ex.Usage.PIDs > 0 {
				n := int64(ex.Usage.PIDs)
				ps.ProcessStats = &statsv1alpha1.ProcessStats{ProcessCount: ptrU64(uint64(n))}
			}
		}
		for _, c := range p.Spec.Containers {
			cs := statsv1alpha1.ContainerStats{Name: c.Name}
			for _, st := range p.Status.ContainerStatuses {
				if st.Name == c.Name && st.State.Running != nil {
					cs.StartTime = st.State.Running.StartedAt
				}
			}
			if u, ok := ex.ContainerUsage[c.Name]; ok {
				cs.CPU, cs.Memory = cpuMem(&u)
			}
			ps.Containers = append(ps.Containers, cs)
		}
		sum.Pods = append(sum.Pods, ps)
	}
	writeJSON(w, &sum)
}

func cpuMem(u *api.Usage) (*statsv1alpha1.CPUStats, *statsv1alpha1.MemoryStats) {
	t := metav1.NewTime(u.SampledAt)
	cpu := &statsv1alpha1.CPUStats{Time: t, UsageCoreNanoSeconds: ptrU64(u.UsageCoreNanoSeconds), UsageNanoCores: u.UsageNanoCores}
	mem := &statsv1alpha1.MemoryStats{Time: t, WorkingSetBytes: ptrU64(u.WorkingSetBytes)}
	return cpu, mem
}

func ptrU64(v uint64) *uint64 { return &v }

// nodeCPU is the machine's cumulative CPU time (/proc/stat, all but idle
// and iowait), in the kubelet's units.
func nodeCPU(now metav1.Time) *statsv1alpha1.CPUStats {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return nil
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return nil
	}
	fields := strings.Fields(sc.Text())
	if len(fields) < 5 || fields[0] != "cpu" {
		return nil
	}
	var busy uint64
	for i, v := range fields[1:] {
		n, _ := strconv.ParseUint(v, 10, 64)
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		busy += n
	}
	// USER_HZ is 100 on Linux.
	return &statsv1alpha1.CPUStats{Time: now, UsageCoreNanoSeconds: ptrU64(busy * 10_000_000)}
}

// nodeMemory: total minus available, as the working set of the machine.
func nodeMemory(now metav1.Time) *statsv1alpha1.MemoryStats {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return nil
	}
	vals := map[string]uint64{}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		vals[k] = n * 1024
	}
	total, avail := vals["MemTotal"], vals["MemAvailable"]
	if total == 0 {
		return nil
	}
	return &statsv1alpha1.MemoryStats{Time: now, WorkingSetBytes: ptrU64(total - avail), AvailableBytes: ptrU64(avail)}
}
