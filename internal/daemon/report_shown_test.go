package daemon

import "testing"

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
