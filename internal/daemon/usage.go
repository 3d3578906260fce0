package daemon

// usage.go: a pod's cgroup usage (describe's "Usage:" lines) is read when
// someone asks for the pod's extra, not by every reconcile round for every
// pod: an idle node with hundreds of pods spent most of its rounds reading
// cgroup files nobody looked at.

import (
	"context"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/minikubelet/minikubelet/internal/api"
	"github.com/minikubelet/minikubelet/systemd"
)

// rateWindow bounds the interval a CPU rate is computed over: a previous
// sample older than that gives no rate (an average over hours would pass
// for the current use).
const rateWindow = 5 * time.Minute

// usageSource serves the API from the store and fills a pod's usage when
// its extra is read.
type usageSource struct {
	*api.Store
	u *usageSampler
}

func (s usageSource) Extra(uid types.UID) (api.PodExtra, bool) {
	ex, ok := s.Store.Extra(uid)
	if ok {
		s.u.fill(uid, &ex)
	}
	return ex, ok
}

// usageSampler reads cgroup usage on demand, at most once per usageEvery
// per pod (describe in a loop reads files once per interval), and keeps
// the last sample of every cgroup for the CPU rate of the next one.
type usageSampler struct {
	driver systemd.Driver
	now    func() time.Time

	mu     sync.Mutex
	last   map[string]sample // uid/id ("" = pod) -> last sample
	recent map[types.UID]podUsage
}

type podUsage struct {
	pod        *api.Usage
	containers map[string]api.Usage
}

func newUsageSampler(driver systemd.Driver) *usageSampler {
	return &usageSampler{driver: driver, now: time.Now, last: map[string]sample{}, recent: map[types.UID]podUsage{}}
}

// fill sets ex.Usage and ex.ContainerUsage (active container scopes).
func (s *usageSampler) fill(uid types.UID, ex *api.PodExtra) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	pu, ok := s.recent[uid]
	if !ok || pu.pod == nil || now.Sub(pu.pod.SampledAt) >= usageEvery {
		pu = podUsage{containers: map[string]api.Usage{}}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if u, err := s.driver.Usage(ctx, uid, ""); err == nil {
			pu.pod = s.toUsage(string(uid), u, now)
		}
		for _, sc := range ex.Scopes {
			if sc.Container == "" || sc.ActiveState != "active" {
				continue
			}
			if u, err := s.driver.Usage(ctx, uid, sc.ID); err == nil {
				pu.containers[sc.Container] = *s.toUsage(string(uid)+"/"+sc.ID, u, now)
			}
		}
		cancel()
		s.recent[uid] = pu
	}
	ex.Usage = pu.pod
	ex.ContainerUsage = pu.containers
	if len(pu.containers) == 0 {
		ex.ContainerUsage = nil
	}
}

func (s *usageSampler) toUsage(key string, u systemd.Usage, now time.Time) *api.Usage {
	out := &api.Usage{SampledAt: now, UsageCoreNanoSeconds: u.CPUUsageNanos, WorkingSetBytes: u.MemoryBytes,
		PIDs: u.PIDs, OOMKills: u.OOMKills}
	if prev, ok := s.last[key]; ok && now.After(prev.at) && now.Sub(prev.at) <= rateWindow && u.CPUUsageNanos >= prev.cpu {
		rate := uint64(float64(u.CPUUsageNanos-prev.cpu) / now.Sub(prev.at).Seconds())
		out.UsageNanoCores = &rate
	}
	s.last[key] = sample{at: now, cpu: u.CPUUsageNanos}
	return out
}

// forget drops the samples of pods not in live.
func (s *usageSampler) forget(live map[string]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.last {
		uid := k
		if i := strings.IndexByte(k, '/'); i >= 0 {
			uid = k[:i]
		}
		if !live[uid] {
			delete(s.last, k)
		}
	}
	for uid := range s.recent {
		if !live[string(uid)] {
			delete(s.recent, uid)
		}
	}
}
