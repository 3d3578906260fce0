package reconciler

import (
	"testing"
	"time"
)

// runs builds a history of exited instances, each running for the given
// duration, one second apart.
func runs(durations ...time.Duration) []ContainerInstance {
	var h []ContainerInstance
	t := t0
	for i, d := range durations {
		h = append(h, ContainerInstance{Name: "c", Attempt: uint32(i), State: ContainerExited, StartedAt: t, FinishedAt: t.Add(d)})
		t = t.Add(d + time.Second)
	}
	return h
}

func TestCrashLoopBackOffDelays(t *testing.T) {
	short := time.Second
	capped := DefaultConfig()
	capped.CrashLoopMax = 45 * time.Second
	for _, tc := range []struct {
		name    string
		history []ContainerInstance
		cfg     Config
		want    time.Duration
	}{
		{"no history", nil, Config{}, 0},
		{"first crash restarts at once", runs(short), Config{}, 0},
		{"second crash 10s", runs(short, short), Config{}, 10 * time.Second},
		{"third 20s", runs(short, short, short), Config{}, 20 * time.Second},
		{"fourth 40s", runs(short, short, short, short), Config{}, 40 * time.Second},
		{"capped at 300s", runs(short, short, short, short, short, short, short, short, short, short), Config{}, 300 * time.Second},
		{"cap lowered", runs(short, short, short, short, short), capped, 45 * time.Second},
		{"long run resets", runs(short, short, short, 10*time.Minute), Config{}, 0},
		{"crash after long run is the second", runs(short, short, short, 10*time.Minute, short), Config{}, 10 * time.Second},
		{"just under 10 min counts as short", runs(short, short, 10*time.Minute-time.Second), Config{}, 20 * time.Second},
		{"never started (StartError) is short", []ContainerInstance{
			{Name: "c", Attempt: 0, State: ContainerExited, FinishedAt: t0},
			{Name: "c", Attempt: 1, State: ContainerExited, FinishedAt: t0.Add(time.Second)},
		}, Config{}, 10 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := CrashLoopBackOff(tc.history, tc.cfg)
			if got.Delay != tc.want {
				t.Fatalf("delay %s, want %s (crashes %d)", got.Delay, tc.want, got.Crashes)
			}
			if len(tc.history) > 0 {
				last := tc.history[len(tc.history)-1]
				if !got.Until.Equal(last.FinishedAt.Add(tc.want)) {
					t.Fatalf("until %v, want finishedAt+%s", got.Until, tc.want)
				}
				if tc.want > 0 && (!got.InBackOff(last.FinishedAt) || got.InBackOff(last.FinishedAt.Add(tc.want))) {
					t.Fatal("InBackOff boundaries wrong")
				}
			}
		})
	}
}

func TestCrashLoopBackOffRunningLatest(t *testing.T) {
	h := runs(time.Second, time.Second)
	h = append(h, ContainerInstance{Name: "c", Attempt: 2, State: ContainerRunning, StartedAt: t0})
	if got := CrashLoopBackOff(h, Config{}); got.Delay != 0 || got.InBackOff(t0) {
		t.Fatalf("a running container has no back-off: %+v", got)
	}
}

func TestCrashLoopBackOffOrderIndependent(t *testing.T) {
	h := runs(time.Second, time.Second, time.Second)
	rev := []ContainerInstance{h[2], h[0], h[1]}
	if a, b := CrashLoopBackOff(h, Config{}), CrashLoopBackOff(rev, Config{}); a != b {
		t.Fatalf("%+v != %+v", a, b)
	}
}

func TestImagePullBackOffUntil(t *testing.T) {
	for _, tc := range []struct {
		failures int
		want     time.Duration
	}{{1, 10 * time.Second}, {2, 20 * time.Second}, {3, 40 * time.Second}, {6, 300 * time.Second}, {40, 300 * time.Second}} {
		st := &ImageState{Presence: ImagePullFailed, Failures: tc.failures, LastFailure: t0}
		if got := ImagePullBackOffUntil(st, Config{}); !got.Equal(t0.Add(tc.want)) {
			t.Errorf("failures %d: %v, want +%s", tc.failures, got.Sub(t0), tc.want)
		}
	}
	own := &ImageState{Presence: ImagePullFailed, Failures: 1, LastFailure: t0, BackoffUntil: t0.Add(time.Minute)}
	if got := ImagePullBackOffUntil(own, Config{}); !got.Equal(t0.Add(time.Minute)) {
		t.Errorf("image store's BackoffUntil ignored: %v", got)
	}
	if !ImagePullBackOffUntil(&ImageState{Presence: ImagePresent}, Config{}).IsZero() {
		t.Error("a present image has no back-off")
	}
}
