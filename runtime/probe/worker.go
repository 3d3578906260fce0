package probe

import (
	"fmt"
	"time"
)

// Container is what a Worker knows of the container it probes. The IO
// shell fills it from runtime state each time it consults the worker.
type Container struct {
	// ID changes when the container is restarted; the worker then starts
	// over (counters, hold, published value).
	ID        string
	Running   bool
	StartedAt time.Time
	// Started: the startup probe has succeeded (or the container has none).
	// Liveness and readiness wait for it; the startup probe stops with it.
	Started bool
}

// Event is what kubelet would record for a probe outcome.
type Event struct {
	Type    string // "Warning"
	Reason  string // Unhealthy, ProbeWarning
	Message string // "Liveness probe failed: HTTP probe failed with statuscode: 500"
}

// Output is what one observation changed.
type Output struct {
	// Changed: the published value (Value) flipped.
	Changed bool
	Value   bool
	// Restart: a liveness or startup probe reached its failure threshold;
	// kill the container (then restart per policy) with reason and event
	// "Killing": "Container <c> failed <kind> probe, will be restarted".
	// The worker holds until the container ID changes.
	Restart bool
	// GracePeriodSeconds is the probe-level terminationGracePeriodSeconds
	// for that kill (nil: the pod's).
	GracePeriodSeconds *int64
	Event              *Event
}

// Worker is kubelet's per-probe worker as a pure state machine: no clock,
// no goroutine. The shell asks Next when to probe, runs the probe at that
// time and feeds the result to Observe. Published values start as kubelet's:
// readiness false, liveness true, startup false (not started).
type Worker struct {
	kind Kind
	spec Spec

	containerID string
	lastProbe   time.Time
	onHold      bool
	lastResult  bool // last counted outcome (success?)
	resultRun   int
	value       bool
	decided     bool // a threshold was reached for this container
	successes   int32
	failures    int32
	lastMessage string
}

// Snapshot is the worker's state in the shape the reconciler's plan reads
// (reconciler.ProbeResult).
type Snapshot struct {
	ContainerID string
	// Outcome is Success or Failure once a threshold was reached for this
	// container, Unknown before (the published Value then is the initial
	// one: alive, not ready, not started).
	Outcome              Outcome
	ConsecutiveSuccesses int32
	ConsecutiveFailures  int32
	Output               string // message of the last probe
}

// Snapshot returns the current state.
func (w *Worker) Snapshot() Snapshot {
	s := Snapshot{ContainerID: w.containerID, Outcome: Unknown, ConsecutiveSuccesses: w.successes, ConsecutiveFailures: w.failures, Output: w.lastMessage}
	if w.decided {
		s.Outcome = Failure
		if w.value {
			s.Outcome = Success
		}
	}
	return s
}

// NewWorker makes the worker of one probe of one container.
func NewWorker(kind Kind, spec Spec) *Worker {
	w := &Worker{kind: kind, spec: spec}
	w.reset("")
	return w
}

func (w *Worker) initialValue() bool { return w.kind == Liveness }

func (w *Worker) reset(id string) {
	w.containerID = id
	w.lastProbe = time.Time{}
	w.onHold = false
	w.resultRun = 0
	w.value = w.initialValue()
	w.decided = false
	w.successes, w.failures = 0, 0
	w.lastMessage = ""
}

// sync starts over for a new container and drops readiness of a container
// that is not running.
func (w *Worker) sync(c Container) {
	if c.ID != w.containerID {
		w.reset(c.ID)
	}
	if !c.Running && w.kind == Readiness {
		w.value = false
	}
}

// Value is the published value: ready / alive / started.
func (w *Worker) Value() bool { return w.value }

// Kind is the probe's kind.
func (w *Worker) Kind() Kind { return w.kind }

// Next returns when the container should be probed next; ok is false when
// it must not be probed now at all (not running, held after a failure,
// waiting for startup, or startup done). The first probe is due at
// StartedAt+InitialDelay, then every Period after the previous one.
func (w *Worker) Next(c Container) (at time.Time, ok bool) {
	w.sync(c)
	if !w.eligible(c) {
		return time.Time{}, false
	}
	at = c.StartedAt.Add(w.spec.InitialDelay)
	if !w.lastProbe.IsZero() {
		if p := w.lastProbe.Add(w.spec.Period); p.After(at) {
			at = p
		}
	}
	return at, true
}

func (w *Worker) eligible(c Container) bool {
	if !c.Running || w.onHold || c.ID == "" {
		return false
	}
	if w.kind == Startup {
		return !c.Started
	}
	return c.Started
}

// Observe feeds the result of a probe run at now. Results for a container
// that is not eligible (or probed before its initial delay) are ignored;
// Unknown results (the probe could not run) only produce an event, as
// kubelet throws probe errors away.
func (w *Worker) Observe(now time.Time, c Container, r Result) Output {
	w.sync(c)
	if !w.eligible(c) || now.Before(c.StartedAt.Add(w.spec.InitialDelay)) {
		return Output{}
	}
	w.lastProbe = now
	var out Output
	switch r.Outcome {
	case Unknown:
		return Output{Value: w.value, Event: &Event{"Warning", "Unhealthy", fmt.Sprintf("%s probe errored: %s", w.kind, r.Message)}}
	case Warning:
		out.Event = &Event{"Warning", "ProbeWarning", fmt.Sprintf("%s probe warning: %s", w.kind, r.Message)}
	case Failure:
		out.Event = &Event{"Warning", "Unhealthy", fmt.Sprintf("%s probe failed: %s", w.kind, r.Message)}
	}
	ok := r.Succeeded()
	w.lastMessage = r.Message
	if ok {
		w.successes, w.failures = w.successes+1, 0
	} else {
		w.successes, w.failures = 0, w.failures+1
	}
	if w.resultRun > 0 && w.lastResult == ok {
		w.resultRun++
	} else {
		w.lastResult, w.resultRun = ok, 1
	}
	if (!ok && w.resultRun < w.spec.FailureThreshold) || (ok && w.resultRun < w.spec.SuccessThreshold) {
		out.Value = w.value
		return out // below threshold: published value unchanged
	}
	out.Changed = w.value != ok
	w.value = ok
	w.decided = true
	out.Value = ok
	if !ok && (w.kind == Liveness || w.kind == Startup) {
		out.Restart = true
		out.GracePeriodSeconds = w.spec.TerminationGracePeriodSeconds
		w.onHold = true
		w.resultRun = 0
	}
	return out
}
