package nodeshutdown

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/minikubelet/minikubelet/internal/syncbuf"
	"github.com/minikubelet/minikubelet/reconciler"
)

// fakeLogind is the signal source of the unit tests: PrepareForShutdown is
// sent by the test, locks are counted.
type fakeLogind struct {
	mu        sync.Mutex
	delay     time.Duration
	overrides []time.Duration
	reloads   int
	locks     int // held now
	taken     int
	events    chan bool
	lockEv    chan int // locks held after each take/release
}

func newFakeLogind(delay time.Duration) *fakeLogind {
	return &fakeLogind{delay: delay, events: make(chan bool), lockEv: make(chan int, 16)}
}

func (f *fakeLogind) InhibitDelayMax(context.Context) (time.Duration, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.delay, nil
}
func (f *fakeLogind) OverrideInhibitDelay(d time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.overrides = append(f.overrides, d)
	return nil
}
func (f *fakeLogind) Reload(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reloads++
	if n := len(f.overrides); n > 0 {
		f.delay = f.overrides[n-1] // logind reads the drop-in
	}
	return nil
}

type fakeLock struct {
	f    *fakeLogind
	once sync.Once
}

func (l *fakeLock) Close() error {
	l.once.Do(func() {
		l.f.mu.Lock()
		l.f.locks--
		n := l.f.locks
		l.f.mu.Unlock()
		l.f.lockEv <- n
	})
	return nil
}

func (f *fakeLogind) Inhibit(context.Context) (io.Closer, error) {
	f.mu.Lock()
	f.locks++
	f.taken++
	n := f.locks
	f.mu.Unlock()
	f.lockEv <- n
	return &fakeLock{f: f}, nil
}
func (f *fakeLogind) Shutdowns() <-chan bool { return f.events }
func (f *fakeLogind) Close() error           { return nil }

func (f *fakeLogind) waitLocks(t *testing.T, want int) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case n := <-f.lockEv:
			if n == want {
				return
			}
		case <-timeout:
			t.Fatalf("locks held never reached %d", want)
		}
	}
}

// fakePods records what the manager asks; WaitStopped answers at once
// unless hang, then it waits for its deadline (a pod that does not stop).
type fakePods struct {
	mu      sync.Mutex
	pods    []*v1.Pod
	hang    bool
	calls   []string
	stops   map[types.UID]reconciler.ShutdownStop
	resumed chan struct{}
}

func (p *fakePods) log(s string) { p.mu.Lock(); p.calls = append(p.calls, s); p.mu.Unlock() }
func (p *fakePods) Active() []*v1.Pod {
	p.log("active")
	return p.pods
}
func (p *fakePods) Begin() { p.log("begin") }
func (p *fakePods) Stop(stops map[types.UID]reconciler.ShutdownStop) {
	var names []string
	p.mu.Lock()
	if p.stops == nil {
		p.stops = map[types.UID]reconciler.ShutdownStop{}
	}
	for uid, s := range stops {
		names = append(names, string(uid)+"<="+s.MaxGrace.String())
		p.stops[uid] = s
	}
	p.mu.Unlock()
	sort.Strings(names)
	p.log("stop " + strings.Join(names, " "))
}
func (p *fakePods) WaitStopped(ctx context.Context, uids []types.UID) error {
	if p.hang {
		<-ctx.Done()
		p.log("wait timed out")
		return ctx.Err()
	}
	p.log("wait")
	return nil
}
func (p *fakePods) Resume() {
	p.log("resume")
	p.resumed <- struct{}{}
}
func (p *fakePods) got() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.calls...)
}

func run(t *testing.T, cfg Config, lg Logind, pods Pods, connErr error) (cancel func(), done chan error, logs *syncbuf.Buffer) {
	t.Helper()
	logs = &syncbuf.Buffer{}
	m := New(cfg, pods, Options{
		Connect: func(context.Context) (Logind, error) {
			if connErr != nil {
				return nil, connErr
			}
			return lg, nil
		},
		Log: slog.New(slog.NewTextHandler(logs, nil)),
	})
	ctx, cancel := context.WithCancel(context.Background())
	done = make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(cancel)
	return cancel, done, logs
}

func wait(t *testing.T, done chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
		return nil
	}
}

// The whole sequence: lock at start, regular pods then critical pods on
// PrepareForShutdown(true), lock released after; a cancellation resumes
// the pods and takes the lock again; the daemon's stop releases it and
// stops no pod.
func TestShutdownSequence(t *testing.T) {
	lg := newFakeLogind(time.Minute)
	pods := &fakePods{resumed: make(chan struct{}, 1), pods: []*v1.Pod{
		pod("web"), pod("dns", class(SystemNodeCritical)), pod("batch", prio(5)), pod("etcd", prio(2000001000)),
	}}
	cfg := Config{GracePeriod: 30 * time.Second, CriticalPodsGracePeriod: 10 * time.Second}
	cancel, done, logs := run(t, cfg, lg, pods, nil)
	lg.waitLocks(t, 1)
	lg.events <- true
	lg.waitLocks(t, 0)
	want := []string{"active", "begin",
		"stop uid-batch<=20s uid-web<=20s", "wait",
		"stop uid-dns<=10s uid-etcd<=10s", "wait"}
	if got := pods.got(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("calls:\n got %q\nwant %q", got, want)
	}
	if len(lg.overrides) != 0 {
		t.Fatalf("logind's delay of 1m covers 30s; overrides %v", lg.overrides)
	}
	// Cancelled: the pods come back and the lock is taken again.
	lg.events <- false
	<-pods.resumed
	lg.waitLocks(t, 1)
	cancel()
	lg.waitLocks(t, 0)
	if err := wait(t, done); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(strings.Join(pods.got(), "|"), "stop"); n != 2 {
		t.Fatalf("stopping the daemon stopped pods: %q", pods.got())
	}
	for _, line := range []string{"holding a logind delay inhibitor lock", "node shutting down: stopping pods",
		"node shutdown: pods stopped, inhibitor lock released", "node shutdown cancelled"} {
		if !strings.Contains(logs.String(), line) {
			t.Errorf("log lacks %q:\n%s", line, logs)
		}
	}
}

// A group whose pods do not stop in time is left after its grace; the next
// group is still stopped and the lock released.
func TestShutdownGroupTimeout(t *testing.T) {
	lg := newFakeLogind(time.Minute)
	pods := &fakePods{hang: true, resumed: make(chan struct{}, 1),
		pods: []*v1.Pod{pod("web"), pod("dns", class(SystemClusterCritical))}}
	cfg := Config{GracePeriod: 30 * time.Millisecond, CriticalPodsGracePeriod: 10 * time.Millisecond}
	_, _, logs := run(t, cfg, lg, pods, nil)
	lg.waitLocks(t, 1)
	lg.events <- true
	lg.waitLocks(t, 0)
	want := []string{"active", "begin", "stop uid-web<=20ms", "wait timed out", "stop uid-dns<=10ms", "wait timed out"}
	if got := pods.got(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("calls:\n got %q\nwant %q", got, want)
	}
	if !strings.Contains(logs.String(), "still stopping at the end of their group's grace period") {
		t.Fatalf("no timeout log:\n%s", logs)
	}
}

// Only regular pods: no wait for the empty critical group.
func TestShutdownEmptyGroupSkipped(t *testing.T) {
	lg := newFakeLogind(time.Minute)
	pods := &fakePods{resumed: make(chan struct{}, 1), pods: []*v1.Pod{pod("web", grace(3))}}
	run(t, Config{GracePeriod: 30 * time.Second, CriticalPodsGracePeriod: 10 * time.Second}, lg, pods, nil)
	lg.waitLocks(t, 1)
	lg.events <- true
	lg.waitLocks(t, 0)
	want := []string{"active", "begin", "stop uid-web<=20s", "wait"}
	if got := pods.got(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("calls:\n got %q\nwant %q", got, want)
	}
}

// logind's InhibitDelayMaxSec (5 s by default) below the grace period: the
// drop-in is written and logind reloaded before the lock is taken.
func TestInhibitDelayRaised(t *testing.T) {
	lg := newFakeLogind(5 * time.Second)
	pods := &fakePods{resumed: make(chan struct{}, 1)}
	_, _, logs := run(t, Config{GracePeriod: 30 * time.Second, CriticalPodsGracePeriod: 10 * time.Second}, lg, pods, nil)
	lg.waitLocks(t, 1)
	lg.mu.Lock()
	defer lg.mu.Unlock()
	if len(lg.overrides) != 1 || lg.overrides[0] != 30*time.Second || lg.reloads != 1 {
		t.Fatalf("overrides %v reloads %d", lg.overrides, lg.reloads)
	}
	if !strings.Contains(logs.String(), "raised logind's InhibitDelayMaxSec") {
		t.Fatalf("log:\n%s", logs)
	}
}

// No logind (the lab test node, containers): said once, no error, and no
// pod is touched.
func TestLogindUnreachable(t *testing.T) {
	pods := &fakePods{resumed: make(chan struct{}, 1)}
	_, done, logs := run(t, Config{GracePeriod: 30 * time.Second}, nil, pods, errors.New("system bus: dial unix /run/dbus/system_bus_socket: connect: no such file or directory"))
	if err := wait(t, done); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logs.String(), "graceful node shutdown unavailable"); n != 1 {
		t.Fatalf("logged %d times:\n%s", n, logs)
	}
	if len(pods.got()) != 0 {
		t.Fatalf("pods touched: %q", pods.got())
	}
}

// --shutdown-grace-period=0: off, logind never asked.
func TestDisabled(t *testing.T) {
	m := New(Config{}, &fakePods{}, Options{Connect: func(context.Context) (Logind, error) {
		t.Fatal("connected although disabled")
		return nil, nil
	}})
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestWriteDropIn(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "logind.conf.d")
	if err := WriteDropIn(dir, 30*time.Second+time.Millisecond); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "99-minikubelet.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "[Login]\nInhibitDelayMaxSec=31\n") {
		t.Fatalf("drop-in:\n%s", b)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("left behind: %v", ents)
	}
}
