package daemon

// report.go: every round's result goes to the API store (pods with status,
// events once per key, the node-local extras describe shows) and to the
// metrics.

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/minikubelet/minikubelet/internal/api"
	"github.com/minikubelet/minikubelet/reconciler"
	"github.com/minikubelet/minikubelet/reconciler/shell"
	"github.com/minikubelet/minikubelet/systemd"
)

type reporter struct {
	store    *api.Store
	metrics  *api.Metrics
	shell    *shell.Node
	driver   systemd.Driver
	planOpts systemd.PlanOptions
	cfg      reconciler.Config
	node     string
	now      func() time.Time

	seen     map[string]time.Time // event keys recorded, with when
	shown    map[string]types.UID // namespace/name -> UID in the store
	restarts map[string]int32     // uid/container -> restartCount last seen
	started  map[types.UID]bool
	sampler  *usageSampler // describe's usage, read on demand (usage.go)
	extras   map[types.UID]api.PodExtra
	qosKey   string // QoS values last applied
	// log, when set, gets a line for each container kill (a failed
	// liveness or startup probe, a deletion): events live in memory and go
	// with a killed daemon, and a restart nobody can explain afterwards is
	// the first thing an operator asks about.
	log *slog.Logger
}

type sample struct {
	at  time.Time
	cpu uint64
}

func newReporter(store *api.Store, metrics *api.Metrics, shell *shell.Node, driver systemd.Driver,
	sampler *usageSampler, planOpts systemd.PlanOptions, cfg reconciler.Config, node string) *reporter {
	return &reporter{store: store, metrics: metrics, shell: shell, driver: driver, planOpts: planOpts, cfg: cfg,
		node: node, now: time.Now,
		seen: map[string]time.Time{}, shown: map[string]types.UID{}, restarts: map[string]int32{},
		started: map[types.UID]bool{}, sampler: sampler, extras: map[types.UID]api.PodExtra{}}
}

// shownPod is the pod the API shows under one namespace/name.
type shownPod struct {
	pod         v1.Pod
	desired     bool
	terminating bool
}

// shownBefore decides between two UIDs of one name (an edited file): the
// old pod while it is Terminating (kubectl users see it go, with its
// Killing events, as in a cluster), then the desired one.
func (sp shownPod) shownBefore(other shownPod) bool {
	rank := func(s shownPod) int {
		switch {
		case !s.desired && s.terminating:
			return 2
		case s.desired:
			return 1
		}
		return 0
	}
	return rank(sp) > rank(other)
}

func hasKey(m map[string]shownPod, k string) bool { _, ok := m[k]; return ok }

// usageEvery bounds how often a pod's cgroup usage is read for describe.
const usageEvery = 10 * time.Second

func (r *reporter) report(res *reconciler.Result, d *reconciler.Desired, o *reconciler.Observed) {
	now := r.now()
	byName := map[string]shownPod{}
	units := r.shell.Units()
	for i := range res.Pods {
		pp := &res.Pods[i]
		var spec *v1.Pod
		var dp *reconciler.DesiredPod
		if dp = d.Pods[pp.UID]; dp != nil && dp.Pod != nil {
			spec = dp.Pod
		} else if op := o.Pods[pp.UID]; op != nil {
			spec = op.Pod
		}
		if spec == nil || pp.Status == nil {
			continue
		}
		pod := v1.Pod{TypeMeta: metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"}, ObjectMeta: spec.ObjectMeta, Spec: spec.Spec}
		pod.Status = *pp.Status
		op := o.Pods[pp.UID]
		if pod.CreationTimestamp.IsZero() {
			// A mirror pod's creationTimestamp is when the node first saw it.
			switch {
			case dp != nil && !dp.SeenAt.IsZero():
				pod.CreationTimestamp = metav1.NewTime(dp.SeenAt)
			case op != nil && !op.StartTime.IsZero():
				pod.CreationTimestamp = metav1.NewTime(op.StartTime)
			case pp.Status.StartTime != nil:
				pod.CreationTimestamp = *pp.Status.StartTime
			}
		}
		if pp.Terminating {
			since := now
			if op != nil && op.Termination != nil {
				since = op.Termination.Since
			}
			ts := metav1.NewTime(since)
			pod.DeletionTimestamp = &ts
			g := int64(30)
			if spec.Spec.TerminationGracePeriodSeconds != nil {
				g = *spec.Spec.TerminationGracePeriodSeconds
			}
			pod.DeletionGracePeriodSeconds = &g
		}
		key := pod.Namespace + "/" + pod.Name
		if sp := (shownPod{pod: pod, desired: dp != nil, terminating: pp.Terminating}); !hasKey(byName, key) || sp.shownBefore(byName[key]) {
			byName[key] = sp
		}
		r.podMetrics(&pod, o)
		r.extra(pp.UID, spec, dp, op, units, pp.Status, now)
	}
	var all []v1.Pod
	for key, sp := range byName {
		r.store.SetPod(sp.pod)
		if ex, ok := r.extras[sp.pod.UID]; ok {
			r.store.SetExtra(sp.pod.UID, ex)
		}
		r.shown[key] = sp.pod.UID
		all = append(all, sp.pod)
	}
	for key, uid := range r.shown {
		if _, ok := byName[key]; !ok {
			ns, name := splitKey(key)
			r.store.DeletePod(ns, name)
			r.metrics.ForgetPod(ns, name)
			delete(r.shown, key)
			delete(r.extras, uid)
		}
	}
	r.metrics.SetPods(all)
	r.events(res.Events, now)
	r.forget(res)
	r.updateQOS(d)
}

// qosUpdater is what both drivers offer beyond Driver: the kubelet's QoS
// cgroup values (burstable shares from the sum of requests, besteffort 2).
type qosUpdater interface {
	UpdateQOS(ctx context.Context, qos systemd.QOSClass, r systemd.Resources) error
}

func (r *reporter) updateQOS(d *reconciler.Desired) {
	u, ok := r.driver.(qosUpdater)
	if !ok {
		return
	}
	pods := make([]*v1.Pod, 0, len(d.Pods))
	for _, dp := range d.Pods {
		if dp != nil && dp.Pod != nil {
			pods = append(pods, dp.Pod)
		}
	}
	burstable, bestEffort := systemd.QOSResources(pods)
	key := fmt.Sprint(ptrU(burstable.CPUShares), ptrI(burstable.MemoryLimit), ptrU(bestEffort.CPUShares))
	if key == r.qosKey {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := u.UpdateQOS(ctx, v1.PodQOSBurstable, burstable); err != nil {
		return
	}
	if err := u.UpdateQOS(ctx, v1.PodQOSBestEffort, bestEffort); err != nil {
		return
	}
	r.qosKey = key
}

func ptrU(p *uint64) any {
	if p == nil {
		return nil
	}
	return *p
}

func ptrI(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}

func splitKey(k string) (string, string) {
	for i := 0; i < len(k); i++ {
		if k[i] == '/' {
			return k[:i], k[i+1:]
		}
	}
	return "", k
}

func (r *reporter) podMetrics(pod *v1.Pod, o *reconciler.Observed) {
	for _, list := range [][]v1.ContainerStatus{pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses} {
		for _, cs := range list {
			k := string(pod.UID) + "/" + cs.Name
			if last, ok := r.restarts[k]; ok && cs.RestartCount > last {
				for i := last; i < cs.RestartCount; i++ {
					r.metrics.ContainerRestarted(pod.Namespace, pod.Name, cs.Name)
				}
			}
			r.restarts[k] = cs.RestartCount
		}
	}
	if pod.Status.Phase == v1.PodRunning && !r.started[pod.UID] {
		r.started[pod.UID] = true
		// Only pods this daemon saw start: an adopted pod was already
		// Running in its persisted status.
		if prev := o.PrevStatus[pod.UID]; prev == nil || prev.Phase != v1.PodRunning {
			if seen, err := time.Parse(time.RFC3339Nano, pod.Annotations["kubernetes.io/config.seen"]); err == nil {
				r.metrics.ObservePodStart(r.now().Sub(seen))
			}
		}
	}
}

// eventRank orders one round's events of a pod as kubelet emits them.
var eventRank = map[string]int{"Scheduled": 0, "Pulling": 1, "Pulled": 2, "Created": 3, "Started": 4}

func (r *reporter) events(evs []reconciler.Event, now time.Time) {
	evs = append([]reconciler.Event(nil), evs...)
	sort.SliceStable(evs, func(i, j int) bool {
		a, b := evs[i], evs[j]
		if a.PodUID != b.PodUID || !a.Time.Equal(b.Time) {
			return false
		}
		ra, oka := eventRank[a.Reason]
		rb, okb := eventRank[b.Reason]
		return oka && okb && ra < rb
	})
	for _, ev := range evs {
		if _, ok := r.seen[ev.Key+"|"+string(ev.PodUID)]; ok {
			continue
		}
		r.seen[ev.Key+"|"+string(ev.PodUID)] = now
		obj := v1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: ev.Namespace, Name: ev.Name, UID: ev.PodUID}
		if ev.PodUID == "" {
			obj = v1.ObjectReference{Kind: "Node", APIVersion: "v1", Name: r.node}
		}
		if ev.Container != "" {
			obj.FieldPath = "spec.containers{" + ev.Container + "}"
		}
		t := ev.Time
		if t.IsZero() {
			t = now
		}
		r.store.RecordEvent(v1.Event{InvolvedObject: obj, Reason: ev.Reason, Message: ev.Message, Type: ev.Type,
			FirstTimestamp: metav1.NewTime(t), LastTimestamp: metav1.NewTime(t),
			Source: v1.EventSource{Component: "kubelet", Host: r.node}})
		if ev.Reason == "Killing" && r.log != nil {
			r.log.Info(ev.Message, "pod", ev.Namespace+"/"+ev.Name, "uid", ev.PodUID, "container", ev.Container)
		}
	}
	// Forget keys after a day so the map does not grow forever.
	if len(r.seen) > 10000 {
		for k, t := range r.seen {
			if now.Sub(t) > 24*time.Hour {
				delete(r.seen, k)
			}
		}
	}
}

func limitsOf(res systemd.Resources) *api.CgroupLimits {
	return &api.CgroupLimits{CPUShares: res.CPUShares, CPUQuotaMicros: res.CPUQuotaMicros,
		CPUPeriodMicros: res.CPUPeriodMicros, MemoryLimit: res.MemoryLimit, PidsLimit: res.PidsLimit}
}

func (r *reporter) extra(uid types.UID, spec *v1.Pod, dp *reconciler.DesiredPod, op *reconciler.ObservedPod,
	units []systemd.UnitState, st *v1.PodStatus, now time.Time) {
	plan := systemd.PlanPod(spec, r.planOpts)
	ex := r.extras[uid]
	ex.CgroupDriver = r.driver.Name()
	cgroupfs := ex.CgroupDriver == "cgroupfs"
	if cgroupfs {
		// No systemd units: the real cgroup paths, nothing named like a slice.
		ex.Slice = ""
		ex.CgroupPath = plan.CgroupfsPath
	} else {
		ex.Slice = plan.PodSlice
		ex.CgroupPath = "/" + plan.SlicePath
	}
	if dp != nil {
		ex.ManifestPath = dp.Source
	}
	ex.Limits = limitsOf(plan.Pod)
	names := map[string]string{}
	sandboxID := ""
	if op != nil {
		sandboxID = op.Sandbox.ID
		for _, c := range op.Containers {
			names[c.ID] = c.Name
		}
	}
	ex.Scopes = nil
	for _, u := range units {
		if u.PodUID != uid || u.ID == "" {
			continue
		}
		si := api.ScopeInfo{Unit: u.Unit, ID: u.ID, ActiveState: u.ActiveState}
		if cgroupfs && u.CgroupPath != "" {
			si.Unit = u.CgroupPath // the driver reports systemd-shaped unit names for keys only
		}
		if len(u.PIDs) > 0 {
			si.MainPID = u.PIDs[0]
		}
		if u.ID == sandboxID {
			si.Limits = limitsOf(plan.Sandbox)
		} else if name, ok := names[u.ID]; ok {
			si.Container = name
			if res, ok := plan.Containers[name]; ok {
				si.Limits = limitsOf(res)
			}
		} else {
			continue
		}
		ex.Scopes = append(ex.Scopes, si)
	}
	sort.SliceStable(ex.Scopes, func(i, j int) bool {
		if (ex.Scopes[i].Container == "") != (ex.Scopes[j].Container == "") {
			return ex.Scopes[i].Container == ""
		}
		return ex.Scopes[i].Container < ex.Scopes[j].Container
	})
	// Back-off expiries for containers waiting in CrashLoopBackOff.
	ex.BackoffUntil = nil
	if op != nil {
		for _, list := range [][]v1.ContainerStatus{st.InitContainerStatuses, st.ContainerStatuses} {
			for _, cs := range list {
				if cs.State.Waiting == nil || cs.State.Waiting.Reason != "CrashLoopBackOff" {
					continue
				}
				var h []reconciler.ContainerInstance
				for _, in := range op.Containers {
					if in.Name == cs.Name {
						h = append(h, in)
					}
				}
				if cl := reconciler.CrashLoopBackOff(h, r.cfg); cl.InBackOff(now) {
					if ex.BackoffUntil == nil {
						ex.BackoffUntil = map[string]time.Time{}
					}
					ex.BackoffUntil[cs.Name] = cl.Until
				}
			}
		}
	}
	r.extras[uid] = ex
}

// forget drops per-pod bookkeeping of pods that are gone.
func (r *reporter) forget(res *reconciler.Result) {
	live := make(map[string]bool, len(res.Pods))
	for i := range res.Pods {
		live[string(res.Pods[i].UID)] = true
	}
	uidOf := func(k string) string {
		if i := strings.IndexByte(k, '/'); i >= 0 {
			return k[:i]
		}
		return k
	}
	for k := range r.restarts {
		if !live[uidOf(k)] {
			delete(r.restarts, k)
		}
	}
	r.sampler.forget(live)
	for uid := range r.started {
		if !live[string(uid)] {
			delete(r.started, uid)
		}
	}
	for uid := range r.extras {
		if !live[string(uid)] {
			delete(r.extras, uid)
		}
	}
}
