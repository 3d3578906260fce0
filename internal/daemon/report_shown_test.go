package daemon

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/minikubelet/minikubelet/internal/api"
	"github.com/minikubelet/minikubelet/reconciler"
	"github.com/minikubelet/minikubelet/systemd"
)

// An edited pod: the old UID is shown Terminating until it is gone, then
// the desired one; an old pod that keeps running (the new one waits for its
// image) does not hide the desired one.
func TestShownPodPrefersTheTerminatingOldOne(t *testing.T) {
	old := shownPod{terminating: true}
	oldRunning := shownPod{}
	desired := shownPod{desired: true}
	for _, tc := range []struct {
		name       string
		a, b       shownPod
		aPreferred bool
	}{
		{"old terminating over desired", old, desired, true},
		{"desired not over old terminating", desired, old, false},
		{"desired over old still running", desired, oldRunning, true},
		{"old running not over desired", oldRunning, desired, false},
	} {
		if got := tc.a.shownBefore(tc.b); got != tc.aPreferred {
			t.Errorf("%s: %v", tc.name, got)
		}
	}
}

// A container killed for a failed probe is a line in the daemon's log as
// well as an event: the events go with a killed daemon.
func TestKillingEventsAreLogged(t *testing.T) {
	var buf bytes.Buffer
	r := newReporter(api.NewStore(100), nil, nil, nil, nil, systemd.PlanOptions{}, reconciler.Config{}, "node1")
	r.log = slog.New(slog.NewTextHandler(&buf, nil))
	r.events([]reconciler.Event{
		{Key: "k1", PodUID: "u1", Namespace: "default", Name: "web", Container: "app", Type: v1.EventTypeNormal,
			Reason: "Killing", Message: "Container app failed liveness probe, will be restarted"},
		{Key: "k2", PodUID: "u1", Namespace: "default", Name: "web", Container: "app", Type: v1.EventTypeNormal,
			Reason: "Started", Message: "Started container app"},
	}, time.Now())
	out := buf.String()
	if !strings.Contains(out, `msg="Container app failed liveness probe, will be restarted" pod=default/web uid=u1 container=app`) {
		t.Errorf("log = %q, want the kill with its pod and container", out)
	}
	if strings.Contains(out, "Started") || strings.Count(out, "\n") != 1 {
		t.Errorf("log = %q, want the kill alone", out)
	}
	if n := len(r.store.Events()); n != 2 {
		t.Errorf("%d events recorded, want 2", n)
	}
}
