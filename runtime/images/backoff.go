package images

import (
	"sync"
	"time"
)

// Kubelet's image pull backoff (pkg/kubelet/images: flowcontrol.NewBackOff(10s, 300s)).
const (
	PullBackoffInitial = 10 * time.Second
	PullBackoffMax     = 300 * time.Second
)

// Backoff is kubelet's per-image pull backoff: after a failure the next
// attempt waits 10 s, doubling per consecutive failure up to 300 s; a success
// resets it, and so does a quiet spell of twice the maximum since the last
// failure (kubelet's flowcontrol GC rule). Pure apart from the injected clock.
type Backoff struct {
	Initial, Max time.Duration
	now          func() time.Time
	mu           sync.Mutex
	entries      map[string]*backoffEntry
}

type backoffEntry struct {
	delay   time.Duration // current wait after lastErr
	last    time.Time     // when the last failure happened
	lastErr error
}

// NewBackoff makes a Backoff with kubelet's constants reading time from now.
func NewBackoff(now func() time.Time) *Backoff {
	return &Backoff{Initial: PullBackoffInitial, Max: PullBackoffMax, now: now, entries: map[string]*backoffEntry{}}
}

// Blocked says how long key must still wait (0: try now) and the error of
// the last failed attempt.
func (b *Backoff) Blocked(key string) (time.Duration, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.entries[key]
	if e == nil {
		return 0, nil
	}
	left := e.last.Add(e.delay).Sub(b.now())
	if left <= 0 {
		return 0, e.lastErr
	}
	return left, e.lastErr
}

// Failure records a failed attempt and returns the wait before the next one.
func (b *Backoff) Failure(key string, err error) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	e := b.entries[key]
	switch {
	case e == nil || now.Sub(e.last) > 2*b.Max:
		e = &backoffEntry{delay: b.Initial}
		b.entries[key] = e
	default:
		e.delay = min(2*e.delay, b.Max)
	}
	e.last, e.lastErr = now, err
	return e.delay
}

// Success forgets key's failures.
func (b *Backoff) Success(key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.entries, key)
}
