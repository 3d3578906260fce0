package shell

// observe_probes.go: the probers. runtime/probe holds kubelet's worker as a
// pure state machine and the handlers; here each probe of each running
// container gets a goroutine that runs it when its worker says so and
// wakes the loop when a threshold is reached. Observe reads the workers'
// snapshots into Observed.Probes, and Plan decides (kill on liveness or
// startup failure, Ready from readiness).

import (
	"context"
	"fmt"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/minikubelet/minikubelet/runtime/probe"

	"github.com/minikubelet/minikubelet/reconciler"
)

type probeKey struct {
	uid  types.UID
	name string
	kind probe.Kind
}

type probeEntry struct {
	w      *probe.Worker
	spec   *v1.Probe
	c      probe.Container
	target probe.Target
	stop   chan struct{}
}

type probers struct {
	mu      sync.Mutex
	entries map[probeKey]*probeEntry
	prober  probe.Prober
	now     func() time.Time
	wake    func()
	bg      context.Context
}

func newProbers(bg context.Context, now func() time.Time, wake func()) *probers {
	return &probers{entries: map[probeKey]*probeEntry{}, now: now, wake: wake, bg: bg}
}

// sync updates the probers from one observation and returns the results
// per pod and container name. Workers of containers that are gone stop.
func (p *probers) sync(obs *reconciler.Observed, desired *reconciler.Desired, hostIP string) {
	seen := map[probeKey]bool{}
	for uid, op := range obs.Pods {
		var pod *v1.Pod
		if dp := desired.Pods[uid]; dp != nil && dp.Pod != nil {
			pod = dp.Pod
		} else {
			pod = op.Pod
		}
		if pod == nil || op.Sandbox.State != reconciler.SandboxRunning {
			continue
		}
		target := probe.Target{}
		switch {
		case pod.Spec.HostNetwork:
			target.PodIP = hostIP
		case len(op.Sandbox.IPs) > 0:
			target.PodIP = op.Sandbox.IPs[0]
		case op.Sandbox.PID > 0:
			target.NetnsPath = fmt.Sprintf("/proc/%d/ns/net", op.Sandbox.PID)
		}
		for _, list := range [][]v1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
			for i := range list {
				c := &list[i]
				if c.LivenessProbe == nil && c.ReadinessProbe == nil && c.StartupProbe == nil {
					continue
				}
				cur := currentInstance(op, c.Name)
				if cur == nil {
					continue
				}
				t := target
				t.ContainerID, t.Ports = cur.ID, c.Ports
				pc := probe.Container{ID: cur.ID, Running: true, StartedAt: cur.StartedAt}
				res := reconciler.ProbeResults{}
				startupKey := probeKey{uid, c.Name, probe.Startup}
				pc.Started = c.StartupProbe == nil
				if c.StartupProbe != nil {
					p.mu.Lock()
					if e := p.entries[startupKey]; e != nil && e.c.ID == cur.ID {
						pc.Started = e.w.Value()
					}
					p.mu.Unlock()
				}
				for _, kp := range []struct {
					kind probe.Kind
					spec *v1.Probe
					out  *reconciler.ProbeResult
				}{{probe.Startup, c.StartupProbe, &res.Startup}, {probe.Liveness, c.LivenessProbe, &res.Liveness}, {probe.Readiness, c.ReadinessProbe, &res.Readiness}} {
					if kp.spec == nil {
						continue
					}
					k := probeKey{uid, c.Name, kp.kind}
					seen[k] = true
					*kp.out = p.ensure(k, kp.spec, pc, t)
				}
				if op.Probes == nil {
					op.Probes = map[string]reconciler.ProbeResults{}
				}
				op.Probes[c.Name] = res
			}
		}
	}
	p.mu.Lock()
	for k, e := range p.entries {
		if !seen[k] {
			close(e.stop)
			delete(p.entries, k)
		}
	}
	p.mu.Unlock()
}

// currentInstance is the running instance of a container in the pod's
// running sandbox.
func currentInstance(op *reconciler.ObservedPod, name string) *reconciler.ContainerInstance {
	var cur *reconciler.ContainerInstance
	for i := range op.Containers {
		in := &op.Containers[i]
		if in.Name == name && in.State == reconciler.ContainerRunning && in.SandboxID == op.Sandbox.ID && (cur == nil || in.Attempt > cur.Attempt) {
			cur = in
		}
	}
	return cur
}

func (p *probers) ensure(k probeKey, spec *v1.Probe, c probe.Container, t probe.Target) reconciler.ProbeResult {
	p.mu.Lock()
	defer p.mu.Unlock()
	e := p.entries[k]
	if e == nil {
		e = &probeEntry{w: probe.NewWorker(k.kind, probe.SpecFrom(k.kind, spec)), spec: spec, stop: make(chan struct{})}
		p.entries[k] = e
		go p.run(k, e)
	}
	e.c, e.target, e.spec = c, t, spec
	s := e.w.Snapshot()
	r := reconciler.ProbeResult{ContainerID: s.ContainerID, ConsecutiveFailures: s.ConsecutiveFailures,
		ConsecutiveSuccesses: s.ConsecutiveSuccesses, Output: s.Output}
	switch s.Outcome {
	case probe.Success:
		r.Outcome = reconciler.ProbeSuccess
	case probe.Failure:
		r.Outcome = reconciler.ProbeFailure
	}
	return r
}

// run probes when the worker says so; the loop is woken when the published
// value flips or a restart is due, so Plan sees it without waiting.
func (p *probers) run(k probeKey, e *probeEntry) {
	for {
		p.mu.Lock()
		at, ok := e.w.Next(e.c)
		c, t, spec := e.c, e.target, e.spec
		p.mu.Unlock()
		wait := time.Second // re-check state at least this often
		if ok {
			if d := at.Sub(p.now()); d < wait {
				wait = d
			}
		}
		if wait > 0 {
			select {
			case <-e.stop:
				return
			case <-p.bg.Done():
				return
			case <-time.After(wait):
			}
			if !ok || p.now().Before(at) {
				continue
			}
		}
		res := p.prober.Run(p.bg, k.kind, spec, t)
		p.mu.Lock()
		out := e.w.Observe(p.now(), c, res)
		p.mu.Unlock()
		if out.Changed || out.Restart || (out.Event != nil && res.Outcome == probe.Failure) {
			p.wake()
		}
	}
}
