package reconciler

import (
	"time"
)

// Back-off is computed from history, not kept in timers: the kubelet keeps
// an in-memory flowcontrol.Backoff per container, which a restarted kubelet
// forgets (so a crash-looping container restarts at once after every
// kubelet restart). Here the history is the container's exit records, which
// the runtime persists, so a restarted daemon resumes the same back-off.

// CrashLoop is the restart back-off of one container.
type CrashLoop struct {
	// Delay is the back-off that applies to the latest exit (0: restart at
	// once). It is what kubelet prints: "back-off 20s restarting failed ...".
	Delay time.Duration
	// Until is when the container may be started again (latest FinishedAt +
	// Delay).
	Until time.Time
	// Crashes counts the consecutive short runs ending with the latest exit.
	Crashes int
}

// InBackOff reports whether a restart must still wait at now.
func (c CrashLoop) InBackOff(now time.Time) bool { return c.Delay > 0 && now.Before(c.Until) }

// CrashLoopBackOff computes the back-off of one container from its
// instances (any order, one container name, exited ones count) at now.
//
// Kubelet's sequence: the first restart is immediate, then 10 s, 20 s,
// 40 s ... capped at 300 s (cfg.CrashLoopMax lowers the cap), each measured
// from the exit (FinishedAt); a run that lasted cfg.CrashLoopReset (10 min)
// starts the sequence over. The latest instance must be exited; otherwise
// the zero CrashLoop is returned.
func CrashLoopBackOff(history []ContainerInstance, cfg Config) CrashLoop {
	cfg = cfg.withDefaults()
	latest := -1
	for i := range history {
		if latest < 0 || history[i].Attempt > history[latest].Attempt {
			latest = i
		}
	}
	if latest < 0 || history[latest].State != ContainerExited {
		return CrashLoop{}
	}
	// Count consecutive short runs backwards by attempt. Attempts are dense
	// (each restart is latest+1), so walk attempt numbers down; a missing
	// record (garbage collected) ends the walk, which only ever shortens the
	// back-off.
	crashes := 0
	want := history[latest].Attempt
	for {
		idx := findAttempt(history, want)
		if idx < 0 || history[idx].State != ContainerExited {
			break
		}
		crashes++
		if ranFor(&history[idx]) >= cfg.CrashLoopReset {
			// A long run resets the sequence: its exit is the first crash
			// of a new one (restarted at once).
			break
		}
		if want == 0 || crashes > 64 {
			break
		}
		want--
	}
	d := crashDelay(crashes, cfg)
	return CrashLoop{Delay: d, Until: history[latest].FinishedAt.Add(d), Crashes: crashes}
}

// crashDelay is 0 for the first crash, then initial << (n-2), capped.
func crashDelay(crashes int, cfg Config) time.Duration {
	if crashes <= 1 {
		return 0
	}
	d := cfg.CrashLoopInitial
	for i := 2; i < crashes && d < cfg.CrashLoopMax; i++ {
		d *= 2
	}
	if d > cfg.CrashLoopMax {
		d = cfg.CrashLoopMax
	}
	return d
}

func findAttempt(h []ContainerInstance, attempt uint32) int {
	for i := range h {
		if h[i].Attempt == attempt {
			return i
		}
	}
	return -1
}

// ranFor is how long an instance ran; an instance that never started
// (StartError) ran for 0.
func ranFor(c *ContainerInstance) time.Duration {
	if c.StartedAt.IsZero() || c.FinishedAt.Before(c.StartedAt) {
		return 0
	}
	return c.FinishedAt.Sub(c.StartedAt)
}

// ImagePullBackOffUntil is when a failed image may be pulled again: the
// image store's own BackoffUntil when it sets one, else kubelet's
// ImagePullBackOff (10 s after the first failure, doubling to 300 s)
// measured from the latest failure. Zero when the image has not failed.
func ImagePullBackOffUntil(st *ImageState, cfg Config) time.Time {
	if st == nil || st.Presence != ImagePullFailed {
		return time.Time{}
	}
	if !st.BackoffUntil.IsZero() {
		return st.BackoffUntil
	}
	cfg = cfg.withDefaults()
	d := cfg.ImagePullInitial
	for i := 1; i < st.Failures && d < cfg.ImagePullMax; i++ {
		d *= 2
	}
	if d > cfg.ImagePullMax {
		d = cfg.ImagePullMax
	}
	return st.LastFailure.Add(d)
}
