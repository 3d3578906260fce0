package nodeshutdown

import (
	"context"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/minikubelet/minikubelet/reconciler"
)

func desiredOf(uids ...string) *reconciler.Desired {
	d := &reconciler.Desired{Pods: map[types.UID]*reconciler.DesiredPod{}}
	for _, u := range uids {
		p := pod(u)
		p.UID = types.UID(u)
		d.Pods[p.UID] = &reconciler.DesiredPod{Pod: p}
	}
	return d
}

func result(stopped map[string]bool, uids ...string) *reconciler.Result {
	r := &reconciler.Result{}
	for _, u := range uids {
		r.Pods = append(r.Pods, reconciler.PodPlan{UID: types.UID(u), ShutdownStopped: stopped[u]})
	}
	return r
}

func TestGate(t *testing.T) {
	wakes := 0
	busy := map[types.UID]bool{}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	g := NewGate(func() { wakes++ }, func(u types.UID) bool { return busy[u] }, func() time.Time { return now })
	obs := &reconciler.Observed{}

	d := desiredOf("a", "b")
	g.Fill(d)
	if d.Shutdown != nil {
		t.Fatalf("shutdown before any: %v", d.Shutdown)
	}
	g.Observe(result(nil, "a", "b"), d, obs)
	if n := len(g.Active()); n != 2 {
		t.Fatalf("active %d", n)
	}

	g.Begin()
	g.Stop(map[types.UID]reconciler.ShutdownStop{"a": {Since: now, MaxGrace: 20 * time.Second}})
	if wakes != 2 {
		t.Fatalf("wakes %d", wakes)
	}
	// A manifest dropped in during the shutdown is not started.
	d = desiredOf("a", "b", "new")
	g.Fill(d)
	if len(d.Shutdown) != 2 || d.Shutdown["a"].MaxGrace != 20*time.Second || d.Shutdown["new"].MaxGrace != 0 || !d.Shutdown["new"].Rejected {
		t.Fatalf("shutdown %v", d.Shutdown)
	}
	if _, ok := d.Shutdown["b"]; ok {
		t.Fatal("b is not asked to stop yet")
	}

	waited := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		waited <- g.WaitStopped(ctx, []types.UID{"a"})
	}()
	// Not stopped yet; then a glimpse of it while its chain runs does not count.
	g.Observe(result(nil, "a", "b", "new"), d, obs)
	busy["a"] = true
	g.Observe(result(map[string]bool{"a": true}, "a", "b", "new"), d, obs)
	select {
	case err := <-waited:
		t.Fatalf("WaitStopped returned early: %v", err)
	default:
	}
	busy["a"] = false
	g.Observe(result(map[string]bool{"a": true}, "a", "b", "new"), d, obs)
	if err := <-waited; err != nil {
		t.Fatal(err)
	}

	// A pod that disappears (a deleted one, removed) counts as stopped.
	g.Stop(map[types.UID]reconciler.ShutdownStop{"b": {Since: now, MaxGrace: 10 * time.Second}})
	g.Observe(result(map[string]bool{"a": true}, "a", "new"), d, obs)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.WaitStopped(ctx, []types.UID{"a", "b"}); err != nil {
		t.Fatal(err)
	}
	// A bounded wait on a pod that does not stop ends with the context.
	short, cancel2 := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel2()
	if err := g.WaitStopped(short, []types.UID{"new"}); err == nil {
		t.Fatal("not stopped, yet no error")
	}

	g.Resume()
	d = desiredOf("a", "b", "new")
	g.Fill(d)
	if d.Shutdown != nil || g.ShuttingDown() {
		t.Fatalf("after resume: %v", d.Shutdown)
	}
}
