package nodeshutdown

// gate.go: Pods over the reconcile loop. The loop asks the gate for the
// pods to stop (Desired.Shutdown) on every round and shows it every
// round's result, from which the gate learns which pods exist and which
// have stopped.

import (
	"context"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/minikubelet/minikubelet/reconciler"
)

// Gate implements Pods for the daemon. Its zero value is not usable; use
// NewGate.
type Gate struct {
	wake func()
	busy func(types.UID) bool
	now  func() time.Time

	mu      sync.Mutex
	active  map[types.UID]*v1.Pod // from the last round
	stops   map[types.UID]reconciler.ShutdownStop
	stopped map[types.UID]bool
	down    bool                   // Begin was called, Resume not yet
	known   map[types.UID]struct{} // the pods Active at Begin
	changed chan struct{}          // closed (and replaced) after each round
}

// NewGate returns a gate; wake asks the loop for a round, busy reports
// whether a pod's action chain is running (what a round saw of it may be a
// glimpse mid-action, so it is not taken as stopped). now may be nil.
func NewGate(wake func(), busy func(types.UID) bool, now func() time.Time) *Gate {
	if now == nil {
		now = time.Now
	}
	if busy == nil {
		busy = func(types.UID) bool { return false }
	}
	return &Gate{wake: wake, busy: busy, now: now, active: map[types.UID]*v1.Pod{},
		stopped: map[types.UID]bool{}, changed: make(chan struct{})}
}

// Fill sets d.Shutdown for a plan round: the pods asked to stop, and while
// the node shuts down, pods it did not run then (not started: the kubelet
// rejects new pods on a node shutting down).
func (g *Gate) Fill(d *reconciler.Desired) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.down && len(g.stops) == 0 {
		d.Shutdown = nil
		return
	}
	out := make(map[types.UID]reconciler.ShutdownStop, len(g.stops))
	for uid, s := range g.stops {
		out[uid] = s
	}
	if g.down {
		for uid := range d.Pods {
			if _, ok := g.known[uid]; !ok {
				if _, ok := out[uid]; !ok {
					out[uid] = reconciler.ShutdownStop{Since: g.now(), MaxGrace: 0, Rejected: true}
				}
			}
		}
	}
	d.Shutdown = out
}

// Observe takes in one round's result with its inputs (the loop's Report).
func (g *Gate) Observe(res *reconciler.Result, d *reconciler.Desired, o *reconciler.Observed) {
	active := make(map[types.UID]*v1.Pod, len(res.Pods))
	seen := make(map[types.UID]bool, len(res.Pods))
	for i := range res.Pods {
		pp := &res.Pods[i]
		seen[pp.UID] = true
		var spec *v1.Pod
		if dp := d.Pods[pp.UID]; dp != nil && dp.Pod != nil {
			spec = dp.Pod
		} else if op := o.Pods[pp.UID]; op != nil {
			spec = op.Pod
		}
		if spec != nil {
			active[pp.UID] = spec
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.active = active
	for uid := range g.stops {
		g.stopped[uid] = !seen[uid] // a pod removed meanwhile is stopped
	}
	for i := range res.Pods {
		pp := &res.Pods[i]
		if _, asked := g.stops[pp.UID]; asked {
			g.stopped[pp.UID] = pp.ShutdownStopped && !g.busy(pp.UID)
		}
	}
	close(g.changed)
	g.changed = make(chan struct{})
}

// Active implements Pods: the pods of the last round (desired ones and
// those still stopping).
func (g *Gate) Active() []*v1.Pod {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]*v1.Pod, 0, len(g.active))
	for _, p := range g.active {
		out = append(out, p)
	}
	return out
}

// Begin implements Pods.
func (g *Gate) Begin() {
	g.mu.Lock()
	g.down = true
	g.known = make(map[types.UID]struct{}, len(g.active))
	for uid := range g.active {
		g.known[uid] = struct{}{}
	}
	g.mu.Unlock()
	g.wake()
}

// Stop implements Pods.
func (g *Gate) Stop(stops map[types.UID]reconciler.ShutdownStop) {
	g.mu.Lock()
	if g.stops == nil {
		g.stops = map[types.UID]reconciler.ShutdownStop{}
	}
	for uid, s := range stops {
		if _, ok := g.stops[uid]; !ok {
			g.stops[uid] = s
			g.stopped[uid] = false
		}
	}
	g.mu.Unlock()
	g.wake()
}

// WaitStopped implements Pods: it returns once a round saw every one of
// uids stopped.
func (g *Gate) WaitStopped(ctx context.Context, uids []types.UID) error {
	for {
		g.mu.Lock()
		all := true
		for _, uid := range uids {
			if !g.stopped[uid] {
				all = false
				break
			}
		}
		ch := g.changed
		g.mu.Unlock()
		if all {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// Resume implements Pods.
func (g *Gate) Resume() {
	g.mu.Lock()
	g.down = false
	g.known = nil
	g.stops = nil
	g.stopped = map[types.UID]bool{}
	g.mu.Unlock()
	g.wake()
}

// ShuttingDown reports whether the node is shutting down (for the API or
// logs).
func (g *Gate) ShuttingDown() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.down
}
