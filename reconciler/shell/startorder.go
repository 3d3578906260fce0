package shell

import (
	"context"
	"sync"
)

// startTurn orders the starts of a wave of app containers created side by
// side (Loop.executeWave): a container's workload may exec once its
// predecessor's has (and its postStart hook ran). Creating is invisible to
// the workloads (the process waits at the supervisor's start barrier), so
// only the start is ordered: the kubelet starts a pod's containers one by
// one, in spec order, and images rely on it (a sidecar listed first is up
// before the app).
type startTurn struct {
	after <-chan struct{} // closed when the predecessor's start is over
	done  chan struct{}   // closed when ours is (or we gave it up)
	once  *sync.Once      // done is closed once, by whoever releases first
}

func newStartTurn(after <-chan struct{}) startTurn {
	return startTurn{after: after, done: make(chan struct{}), once: new(sync.Once)}
}

// closedChan is the first container's predecessor (its turn and its slot):
// no wait.
var closedChan = func() <-chan struct{} { c := make(chan struct{}); close(c); return c }()

type startTurnKey struct{}

func withStartTurn(ctx context.Context, t startTurn) context.Context {
	return context.WithValue(ctx, startTurnKey{}, t)
}

// WaitStartTurn blocks until the container whose action runs with ctx may
// start: at once outside a wave.
func WaitStartTurn(ctx context.Context) error {
	t, ok := ctx.Value(startTurnKey{}).(startTurn)
	if !ok {
		return nil
	}
	select {
	case <-t.after:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ReleaseStartTurn lets the next container of the wave start. Idempotent;
// the wave releases every turn when its action returns, whatever happened.
func ReleaseStartTurn(ctx context.Context) {
	if t, ok := ctx.Value(startTurnKey{}).(startTurn); ok {
		t.release()
	}
}

func (t startTurn) release() { t.once.Do(func() { close(t.done) }) }
