package probe

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func sec(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }

// step is one consultation of the worker at t seconds: Next is checked
// (next = -1: must not probe), then, if r is set, the result is observed.
type step struct {
	t       int
	c       func(*Container) // change the container before this step
	next    int
	r       Outcome
	msg     string
	value   bool
	changed bool
	restart bool
	event   string // expected event reason ("" none)
}

func running(c *Container) { c.Running = true }

func TestWorkerStateMachine(t *testing.T) {
	grace := int64(7)
	cases := []struct {
		name  string
		kind  Kind
		spec  Spec
		steps []step
	}{
		{
			name: "readiness defaults: not ready at first, one success makes ready, three failures unready",
			kind: Readiness, spec: SpecFrom(Readiness, &corev1.Probe{}),
			steps: []step{
				{t: 0, next: 0, r: Success, value: true, changed: true},
				{t: 10, next: 10, r: Failure, msg: "boom", value: true, event: "Unhealthy"},
				{t: 20, next: 20, r: Failure, value: true, event: "Unhealthy"},
				{t: 30, next: 30, r: Failure, value: false, changed: true, event: "Unhealthy"},
				{t: 40, next: 40, r: Success, value: true, changed: true},
			},
		},
		{
			name: "liveness: third failure restarts, then holds until a new container",
			kind: Liveness, spec: Spec{Period: 10 * time.Second, SuccessThreshold: 1, FailureThreshold: 3, TerminationGracePeriodSeconds: &grace},
			steps: []step{
				{t: 0, next: 0, r: Failure, value: true, event: "Unhealthy"},
				{t: 10, next: 10, r: Failure, value: true, event: "Unhealthy"},
				{t: 20, next: 20, r: Failure, value: false, changed: true, restart: true, event: "Unhealthy"},
				{t: 30, next: -1, r: Failure, value: false}, // on hold: ignored
				{t: 35, c: func(c *Container) { c.ID, c.StartedAt = "c2", sec(35) }, next: 35, r: Success, value: true},
			},
		},
		{
			name: "liveness: alternating results never reach the threshold",
			kind: Liveness, spec: SpecFrom(Liveness, &corev1.Probe{}),
			steps: []step{
				{t: 0, next: 0, r: Failure, value: true, event: "Unhealthy"},
				{t: 10, next: 10, r: Failure, value: true, event: "Unhealthy"},
				{t: 20, next: 20, r: Success, value: true},
				{t: 30, next: 30, r: Failure, value: true, event: "Unhealthy"},
				{t: 40, next: 40, r: Failure, value: true, event: "Unhealthy"},
				{t: 50, next: 50, r: Failure, value: false, changed: true, restart: true, event: "Unhealthy"},
			},
		},
		{
			name: "initial delay and period",
			kind: Readiness, spec: SpecFrom(Readiness, &corev1.Probe{InitialDelaySeconds: 15, PeriodSeconds: 5}),
			steps: []step{
				{t: 0, next: 15},
				{t: 5, next: 15, r: Success, value: false}, // too early: ignored
				{t: 15, next: 15, r: Success, value: true, changed: true},
				{t: 16, next: 20, value: true},
			},
		},
		{
			name: "readiness success threshold 2",
			kind: Readiness, spec: SpecFrom(Readiness, &corev1.Probe{SuccessThreshold: 2, FailureThreshold: 1}),
			steps: []step{
				{t: 0, next: 0, r: Success, value: false},
				{t: 10, next: 10, r: Success, value: true, changed: true},
				{t: 20, next: 20, r: Failure, value: false, changed: true, event: "Unhealthy"},
			},
		},
		{
			name: "liveness success threshold is forced to 1",
			kind: Liveness, spec: SpecFrom(Liveness, &corev1.Probe{SuccessThreshold: 5, FailureThreshold: 1}),
			steps: []step{
				{t: 0, next: 0, r: Failure, value: false, changed: true, restart: true, event: "Unhealthy"},
			},
		},
		{
			name: "liveness waits for startup",
			kind: Liveness, spec: SpecFrom(Liveness, &corev1.Probe{FailureThreshold: 1}),
			steps: []step{
				{t: 0, c: func(c *Container) { c.Started = false }, next: -1, r: Failure, value: true},
				{t: 30, c: func(c *Container) { c.Started = true }, next: 0, r: Failure, value: false, changed: true, restart: true, event: "Unhealthy"},
			},
		},
		{
			name: "startup: not started until success, then stops probing",
			kind: Startup, spec: SpecFrom(Startup, &corev1.Probe{PeriodSeconds: 1, FailureThreshold: 30}),
			steps: []step{
				{t: 0, c: func(c *Container) { c.Started = false }, next: 0, r: Failure, value: false, event: "Unhealthy"},
				{t: 1, next: 1, r: Success, value: true, changed: true},
				{t: 2, c: func(c *Container) { c.Started = true }, next: -1, value: true},
			},
		},
		{
			name: "startup failure threshold restarts with the probe-level grace period",
			kind: Startup, spec: Spec{Period: time.Second, SuccessThreshold: 1, FailureThreshold: 2, TerminationGracePeriodSeconds: &grace},
			steps: []step{
				{t: 0, c: func(c *Container) { c.Started = false }, next: 0, r: Failure, value: false, event: "Unhealthy"},
				{t: 1, next: 1, r: Failure, value: false, restart: true, event: "Unhealthy"},
				{t: 2, next: -1},
			},
		},
		{
			name: "unknown results are thrown away, warning counts as success",
			kind: Readiness, spec: SpecFrom(Readiness, &corev1.Probe{FailureThreshold: 2}),
			steps: []step{
				{t: 0, next: 0, r: Failure, value: false, event: "Unhealthy"},
				{t: 10, next: 10, r: Unknown, msg: "bad port", value: false, event: "Unhealthy"},
				{t: 20, next: 20, r: Failure, value: false, event: "Unhealthy"},
				{t: 30, next: 30, r: Warning, msg: "redirect", value: true, changed: true, event: "ProbeWarning"},
			},
		},
		{
			name: "readiness drops when the container stops and restarts from scratch",
			kind: Readiness, spec: SpecFrom(Readiness, &corev1.Probe{}),
			steps: []step{
				{t: 0, next: 0, r: Success, value: true, changed: true},
				{t: 5, c: func(c *Container) { c.Running = false }, next: -1, value: false},
				{t: 9, c: func(c *Container) { c.Running, c.ID, c.StartedAt = true, "c2", sec(9) }, next: 9},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := NewWorker(tc.kind, tc.spec)
			c := Container{ID: "c1", Running: true, StartedAt: t0, Started: true}
			for i, s := range tc.steps {
				if s.c != nil {
					s.c(&c)
				}
				at, ok := w.Next(c)
				switch {
				case s.next < 0 && ok:
					t.Fatalf("step %d: Next = %v, want no probe", i, at.Sub(t0))
				case s.next >= 0 && (!ok || !at.Equal(sec(s.next))):
					t.Fatalf("step %d: Next = %v (ok %v), want %ds", i, at.Sub(t0), ok, s.next)
				}
				if s.r != "" {
					out := w.Observe(sec(s.t), c, Result{s.r, s.msg})
					if out.Changed != s.changed || out.Restart != s.restart {
						t.Fatalf("step %d: %+v, want changed=%v restart=%v", i, out, s.changed, s.restart)
					}
					reason := ""
					if out.Event != nil {
						reason = out.Event.Reason
						if !strings.HasPrefix(out.Event.Message, string(tc.kind)+" probe ") {
							t.Errorf("step %d: event message %q", i, out.Event.Message)
						}
					}
					if reason != s.event {
						t.Fatalf("step %d: event %+v, want reason %q", i, out.Event, s.event)
					}
					if out.Restart && out.GracePeriodSeconds != tc.spec.TerminationGracePeriodSeconds {
						t.Errorf("step %d: grace period %v, want the probe's", i, out.GracePeriodSeconds)
					}
				}
				if w.Value() != s.value {
					t.Fatalf("step %d: Value = %v, want %v", i, w.Value(), s.value)
				}
			}
		})
	}
}

func TestInitialValues(t *testing.T) {
	for kind, want := range map[Kind]bool{Liveness: true, Readiness: false, Startup: false} {
		if got := NewWorker(kind, SpecFrom(kind, &corev1.Probe{})).Value(); got != want {
			t.Errorf("%s initial value %v, want %v", kind, got, want)
		}
	}
}

func TestSpecFromDefaults(t *testing.T) {
	s := SpecFrom(Readiness, &corev1.Probe{})
	want := Spec{Period: 10 * time.Second, Timeout: time.Second, SuccessThreshold: 1, FailureThreshold: 3}
	if fmt.Sprint(s) != fmt.Sprint(want) {
		t.Fatalf("defaults %+v, want %+v", s, want)
	}
	s = SpecFrom(Readiness, &corev1.Probe{InitialDelaySeconds: 5, PeriodSeconds: 2, TimeoutSeconds: 3, SuccessThreshold: 2, FailureThreshold: 9})
	if s.InitialDelay != 5*time.Second || s.Period != 2*time.Second || s.Timeout != 3*time.Second || s.SuccessThreshold != 2 || s.FailureThreshold != 9 {
		t.Fatalf("explicit %+v", s)
	}
}

func TestFailureEventMessageIsKubeletShaped(t *testing.T) {
	w := NewWorker(Liveness, SpecFrom(Liveness, &corev1.Probe{}))
	out := w.Observe(t0, Container{ID: "c", Running: true, StartedAt: t0, Started: true}, Result{Failure, "HTTP probe failed with statuscode: 500"})
	if out.Event == nil || out.Event.Message != "Liveness probe failed: HTTP probe failed with statuscode: 500" || out.Event.Type != "Warning" {
		t.Fatalf("event %+v", out.Event)
	}
}

func TestSnapshot(t *testing.T) {
	w := NewWorker(Readiness, SpecFrom(Readiness, &corev1.Probe{FailureThreshold: 2}))
	c := Container{ID: "c1", Running: true, StartedAt: t0, Started: true}
	if s := w.Snapshot(); s.Outcome != Unknown || s.ContainerID != "" {
		t.Fatalf("fresh: %+v", s)
	}
	w.Observe(sec(0), c, Result{Failure, "refused"})
	if s := w.Snapshot(); s.Outcome != Unknown || s.ContainerID != "c1" || s.ConsecutiveFailures != 1 || s.Output != "refused" {
		t.Fatalf("one failure below threshold: %+v", s)
	}
	w.Observe(sec(10), c, Result{Failure, "refused again"})
	if s := w.Snapshot(); s.Outcome != Failure || s.ConsecutiveFailures != 2 || s.Output != "refused again" {
		t.Fatalf("at threshold: %+v", s)
	}
	w.Observe(sec(20), c, Result{Success, ""})
	if s := w.Snapshot(); s.Outcome != Success || s.ConsecutiveSuccesses != 1 || s.ConsecutiveFailures != 0 {
		t.Fatalf("after success: %+v", s)
	}
	w.Observe(sec(30), c, Result{Unknown, "bad port"})
	if s := w.Snapshot(); s.Outcome != Success || s.ConsecutiveSuccesses != 1 {
		t.Fatalf("unknown results change nothing: %+v", s)
	}
	c.ID = "c2"
	w.Next(c)
	if s := w.Snapshot(); s.Outcome != Unknown || s.ContainerID != "c2" || s.ConsecutiveSuccesses != 0 {
		t.Fatalf("new container: %+v", s)
	}
}
