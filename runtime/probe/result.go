package probe

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Outcome of one probe, as kubelet's probe.Result.
type Outcome string

const (
	Success Outcome = "success"
	// Warning counts as success; kubelet uses it when an httpGet probe
	// stops at a redirect to another host and records a ProbeWarning event.
	Warning Outcome = "warning"
	Failure Outcome = "failure"
	// Unknown: the probe could not be run (bad port name, exec error...).
	// The worker throws it away, as kubelet does with probe errors.
	Unknown Outcome = "unknown"
)

// Result is the outcome of one probe and its message (the failure reason
// shown in the Unhealthy event).
type Result struct {
	Outcome Outcome
	Message string
}

// Succeeded reports Success or Warning.
func (r Result) Succeeded() bool { return r.Outcome == Success || r.Outcome == Warning }

func (r Result) String() string {
	if r.Message == "" {
		return string(r.Outcome)
	}
	return fmt.Sprintf("%s: %s", r.Outcome, r.Message)
}

// Kind is the probe's role; its value is the word kubelet's events use.
type Kind string

const (
	Liveness  Kind = "Liveness"
	Readiness Kind = "Readiness"
	Startup   Kind = "Startup"
)

// kubelet's probe defaults (v1 API defaulting).
const (
	DefaultPeriod           = 10 * time.Second
	DefaultTimeout          = 1 * time.Second
	DefaultSuccessThreshold = 1
	DefaultFailureThreshold = 3
)

// Spec is a probe's timing, defaults applied.
type Spec struct {
	InitialDelay     time.Duration
	Period           time.Duration
	Timeout          time.Duration
	SuccessThreshold int
	FailureThreshold int
	// TerminationGracePeriodSeconds is the probe-level override used when a
	// liveness or startup failure kills the container (nil: the pod's).
	TerminationGracePeriodSeconds *int64
}

// SpecFrom reads a pod spec probe with kubelet's defaults for zero fields.
// Liveness and startup probes always use a success threshold of 1 (the API
// rejects anything else).
func SpecFrom(kind Kind, p *corev1.Probe) Spec {
	s := Spec{
		InitialDelay:                  time.Duration(p.InitialDelaySeconds) * time.Second,
		Period:                        time.Duration(p.PeriodSeconds) * time.Second,
		Timeout:                       time.Duration(p.TimeoutSeconds) * time.Second,
		SuccessThreshold:              int(p.SuccessThreshold),
		FailureThreshold:              int(p.FailureThreshold),
		TerminationGracePeriodSeconds: p.TerminationGracePeriodSeconds,
	}
	if s.Period <= 0 {
		s.Period = DefaultPeriod
	}
	if s.Timeout <= 0 {
		s.Timeout = DefaultTimeout
	}
	if s.SuccessThreshold <= 0 || kind != Readiness {
		s.SuccessThreshold = DefaultSuccessThreshold
	}
	if s.FailureThreshold <= 0 {
		s.FailureThreshold = DefaultFailureThreshold
	}
	if s.InitialDelay < 0 {
		s.InitialDelay = 0
	}
	return s
}
