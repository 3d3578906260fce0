// Package testwait holds Until, the bounded poll the unit tests of several
// packages wait with: for a goroutine, a watcher or another process to
// reach a state that no channel announces.
package testwait

import (
	"testing"
	"time"
)

// Until calls cond every interval until it holds, and fails the test with
// "timed out waiting for <what>" once within has passed without it.
func Until(t testing.TB, what string, within, interval time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(interval)
	}
}
