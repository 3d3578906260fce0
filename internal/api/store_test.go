package api

import (
	"context"
	"testing"

	v1 "k8s.io/api/core/v1"
)

// Setting an unchanged pod is no change (same resourceVersion, no watch
// event); a changed one is stored as a copy the caller cannot alter
// afterwards.
func TestSetPodCopiesOnlyChanges(t *testing.T) {
	s := NewStore(0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := s.Subscribe(ctx)
	p := testPod("default", "web", "node1", "uid-web", v1.PodRunning)
	p.Labels = map[string]string{"app": "web"}
	s.SetPod(p)
	<-ch // ADDED
	rv := s.ResourceVersion()
	s.SetPod(p)
	if s.ResourceVersion() != rv || len(ch) != 0 {
		t.Errorf("unchanged pod: resourceVersion %s -> %s, %d watch events", rv, s.ResourceVersion(), len(ch))
	}
	p.Labels["app"] = "changed by the caller"
	if got, _ := s.Pod("default", "web-node1"); got.Labels["app"] != "web" {
		t.Errorf("stored pod shares the caller's labels: %q", got.Labels["app"])
	}
	p.Status.Phase = v1.PodFailed
	s.SetPod(p)
	if ev := <-ch; ev.Pod == nil || ev.Pod.Status.Phase != v1.PodFailed || ev.Pod.Labels["app"] != "changed by the caller" {
		t.Errorf("change not published: %+v", ev)
	}
	p.Status.Phase = v1.PodSucceeded
	if got, _ := s.Pod("default", "web-node1"); got.Status.Phase != v1.PodFailed {
		t.Errorf("stored pod follows the caller's later edits: %s", got.Status.Phase)
	}
}

// A change is encoded once, however many watches send it.
func TestWatchEventIsEncodedOnce(t *testing.T) {
	s := NewStore(10)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, b := s.Subscribe(ctx), s.Subscribe(ctx)
	s.SetPod(testPod("default", "web", "node1", "uid-web", v1.PodRunning))
	calls := 0
	enc := func() ([]byte, error) { calls++; return []byte("line"), nil }
	for _, ch := range []<-chan WatchEvent{a, b} {
		if got, _ := (<-ch).encoded(enc); string(got) != "line" {
			t.Fatalf("encoded = %q", got)
		}
	}
	if calls != 1 {
		t.Errorf("encoded %d times for two watchers, want once", calls)
	}
}
