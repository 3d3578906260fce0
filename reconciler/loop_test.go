package reconciler_test

// The Loop (reconciler/shell) is tested here, beside the pure package, so
// that its fake shell can drive the plan tests' simulated node (sim, seen
// through export_test.go).

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/minikubelet/minikubelet/internal/syncbuf"
	"github.com/minikubelet/minikubelet/internal/testwait"
	"github.com/minikubelet/minikubelet/reconciler"
	"github.com/minikubelet/minikubelet/reconciler/shell"
)

// fakeShell drives the sim's fake node through the real Loop: Observe
// returns a copy of the sim's Observed, Execute applies the action to it
// (after an optional per-action hook that can block or fail).
type fakeShell struct {
	mu   sync.Mutex
	s    *reconciler.Sim
	hook func(a reconciler.Action) error // called before the action takes effect, unlocked

	executed  []string // every executed action, in order
	perPod    map[types.UID][]string
	keys      map[string]int // executions per key
	active    int            // Execute calls running now
	maxActive int
}

func newFakeShell(t *testing.T, pods ...*v1.Pod) *fakeShell {
	s := reconciler.NewSim(t, pods...)
	s.SetNow(time.Now())
	return &fakeShell{s: s, perPod: map[types.UID][]string{}, keys: map[string]int{}}
}

func (f *fakeShell) desired() (reconciler.Desired, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := reconciler.Desired{Pods: map[types.UID]*reconciler.DesiredPod{}}
	for k, v := range f.s.D().Pods {
		d.Pods[k] = v
	}
	return d, true
}

func (f *fakeShell) Observe(ctx context.Context, _ *reconciler.Desired) (reconciler.Observed, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	o := *f.s.O()
	o.Pods = map[types.UID]*reconciler.ObservedPod{}
	for uid, op := range f.s.O().Pods {
		c := *op
		c.Containers = append([]reconciler.ContainerInstance(nil), op.Containers...)
		o.Pods[uid] = &c
	}
	o.Images = map[string]*reconciler.ImageState{}
	for k, v := range f.s.O().Images {
		c := *v
		o.Images[k] = &c
	}
	o.PrevStatus = map[types.UID]*v1.PodStatus{}
	for k, v := range f.s.O().PrevStatus {
		o.PrevStatus[k] = v
	}
	o.InFlight = nil
	return o, nil
}

func (f *fakeShell) Execute(ctx context.Context, a reconciler.Action, pod *v1.Pod) error {
	f.mu.Lock()
	f.active++
	if f.active > f.maxActive {
		f.maxActive = f.active
	}
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.active--
		f.mu.Unlock()
	}()
	if f.hook != nil {
		if err := f.hook(a); err != nil {
			return err
		}
	}
	if err := shell.WaitStartTurn(ctx); err != nil {
		return err
	}
	defer shell.ReleaseStartTurn(ctx)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.s.SetNow(time.Now())
	d := reconciler.Describe(a)
	f.executed = append(f.executed, d)
	f.perPod[a.Pod()] = append(f.perPod[a.Pod()], d)
	f.keys[a.Key()]++
	f.s.Exec(a)
	return nil
}

func (f *fakeShell) Persist(pp *reconciler.PodPlan) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if pp.Status != nil {
		f.s.O().PrevStatus[pp.UID] = pp.Status
	}
}

// runningCount is how many of the pods have every container running.
func (f *fakeShell) allRunning(uids ...types.UID) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, uid := range uids {
		dp := f.s.D().Pods[uid]
		for _, c := range dp.Pod.Spec.Containers {
			if f.s.Running(uid, c.Name) == nil {
				return false
			}
		}
	}
	return true
}

func startLoop(t *testing.T, f *fakeShell, parallel int) (*shell.Loop, func()) {
	t.Helper()
	l := shell.NewLoop(f, f.desired, shell.LoopOptions{Parallel: parallel, Resync: time.Hour, RetryMin: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { l.Run(ctx); close(done) }()
	return l, func() { cancel(); <-done }
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testwait.Until(t, what, 10*time.Second, 5*time.Millisecond, cond)
}

// completeRounds wakes the loop until n more rounds have run to their end
// (the counter moves when a round's observation is done, so n+1 moves mean
// the first n rounds planned and dispatched too).
func completeRounds(t *testing.T, l *shell.Loop, n int) {
	t.Helper()
	start := l.Rounds()
	for l.Rounds() < start+uint64(n)+1 {
		before := l.Rounds()
		l.Wake()
		waitFor(t, "a round", func() bool { return l.Rounds() > before })
	}
}

func uidsOf(pods []*v1.Pod) []types.UID {
	var out []types.UID
	for _, p := range pods {
		out = append(out, p.UID)
	}
	return out
}

// Each pod's actions run in the plan's order: slice, pull, sandbox, then
// the containers; no action runs twice.
func TestLoopRunsEachPodsChainInOrder(t *testing.T) {
	var pods []*v1.Pod
	for i := 0; i < 3; i++ {
		pods = append(pods, reconciler.MkPod(fmt.Sprintf("u%d", i), fmt.Sprintf("p%d", i), "a", "b"))
	}
	f := newFakeShell(t, pods...)
	_, stop := startLoop(t, f, 4)
	defer stop()
	waitFor(t, "all pods running", func() bool { return f.allRunning(uidsOf(pods)...) })
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range pods {
		got := f.perPod[p.UID]
		u := string(p.UID)
		want := []string{"cgroup " + u, "pull img-a:1", "pull img-b:1", "sandbox " + u + " #0",
			"start " + u + "/a #0", "start " + u + "/b #0"}
		// Pulls are global: another pod may have pulled an image first.
		var filtered []string
		for _, w := range want {
			for _, g := range got {
				if g == w {
					filtered = append(filtered, w)
					break
				}
			}
		}
		reconciler.Eq(t, "order of "+u, got, filtered)
		if len(got) < 4 || got[0] != "cgroup "+u {
			t.Fatalf("pod %s: chain %q does not start with its cgroup", u, got)
		}
	}
	for k, n := range f.keys {
		if n != 1 {
			t.Errorf("action %s executed %d times", k, n)
		}
	}
}

// At most Parallel pods are worked on at once, and every pod gets done.
func TestLoopBoundsParallelism(t *testing.T) {
	var pods []*v1.Pod
	for i := 0; i < 8; i++ {
		pods = append(pods, reconciler.MkPod(fmt.Sprintf("u%d", i), fmt.Sprintf("p%d", i), "a"))
	}
	f := newFakeShell(t, pods...)
	f.hook = func(a reconciler.Action) error {
		if _, ok := a.(reconciler.RunSandbox); ok {
			time.Sleep(20 * time.Millisecond)
		}
		return nil
	}
	_, stop := startLoop(t, f, 2)
	defer stop()
	waitFor(t, "all pods running", func() bool { return f.allRunning(uidsOf(pods)...) })
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.maxActive > 2 {
		t.Fatalf("%d actions ran at once with Parallel=2", f.maxActive)
	}
}

// One pull serves every pod that needs the image, even while it is slow:
// the in-flight key keeps the plan from issuing it again.
func TestLoopDedupsInFlightPulls(t *testing.T) {
	var pods []*v1.Pod
	for i := 0; i < 4; i++ {
		p := reconciler.MkPod(fmt.Sprintf("u%d", i), fmt.Sprintf("p%d", i))
		p.Spec.Containers = []v1.Container{{Name: "c", Image: "shared:1", ImagePullPolicy: v1.PullIfNotPresent}}
		pods = append(pods, p)
	}
	f := newFakeShell(t, pods...)
	release := make(chan struct{})
	f.hook = func(a reconciler.Action) error {
		if _, ok := a.(reconciler.PullImage); ok {
			<-release
		}
		return nil
	}
	l, stop := startLoop(t, f, 8)
	defer stop()
	waitFor(t, "the pull in flight", func() bool { _, ok := l.InFlight()["pull/shared:1"]; return ok })
	completeRounds(t, l, 5) // while the pull hangs
	close(release)
	waitFor(t, "all pods running", func() bool { return f.allRunning(uidsOf(pods)...) })
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := f.keys["pull/shared:1"]; n != 1 {
		t.Fatalf("image pulled %d times, want 1", n)
	}
	for k, n := range f.keys {
		if n != 1 {
			t.Errorf("action %s executed %d times", k, n)
		}
	}
}

// A pod stuck in an action does not hold the others back.
func TestLoopSlowPodDoesNotDelayAnother(t *testing.T) {
	slow := reconciler.MkPod("slow", "slow", "a")
	fast := reconciler.MkPod("fast", "fast", "a")
	fast.Spec.Containers[0].Image = "img-fast:1"
	f := newFakeShell(t, slow, fast)
	release := make(chan struct{})
	f.hook = func(a reconciler.Action) error {
		if rs, ok := a.(reconciler.RunSandbox); ok && rs.UID == "slow" {
			<-release
		}
		return nil
	}
	_, stop := startLoop(t, f, 4)
	defer stop()
	defer close(release)
	waitFor(t, "the fast pod running while the slow one hangs", func() bool { return f.allRunning("fast") })
	if f.allRunning("slow") {
		t.Fatal("slow pod running before its sandbox was released")
	}
}

// A failing action stops its pod's chain (nothing after it runs) and is
// retried after a delay until it succeeds.
func TestLoopStopsChainAtFailureAndRetries(t *testing.T) {
	p := reconciler.MkPod("u1", "p1", "a")
	f := newFakeShell(t, p)
	var mu sync.Mutex
	failures := 0
	f.hook = func(a reconciler.Action) error {
		if _, ok := a.(reconciler.RunSandbox); ok {
			mu.Lock()
			defer mu.Unlock()
			if failures < 3 {
				failures++
				return errors.New("sandbox refused")
			}
		}
		return nil
	}
	_, stop := startLoop(t, f, 2)
	defer stop()
	waitFor(t, "pod running after retries", func() bool { return f.allRunning("u1") })
	f.mu.Lock()
	defer f.mu.Unlock()
	if failures != 3 {
		t.Fatalf("sandbox failed %d times, want 3", failures)
	}
	for _, d := range f.perPod["u1"] {
		if d == "start u1/a #0" {
			return
		}
	}
	t.Fatalf("container never started: %q", f.perPod["u1"])
}

// While a pod's chain runs, its status is not re-persisted and no events
// are derived from what is observed of it mid-action.
func TestLoopFreezesStatusOfBusyPods(t *testing.T) {
	p := reconciler.MkPod("u1", "p1", "a")
	f := newFakeShell(t, p)
	var mu sync.Mutex
	inAction, violations := false, 0
	release := make(chan struct{})
	f.hook = func(a reconciler.Action) error {
		if _, ok := a.(reconciler.RunSandbox); ok {
			mu.Lock()
			inAction = true
			mu.Unlock()
			<-release
			mu.Lock()
			inAction = false
			mu.Unlock()
		}
		return nil
	}
	var events []reconciler.Event
	l := shell.NewLoop(&persistSpy{fakeShell: f, check: func(uid types.UID) {
		mu.Lock()
		defer mu.Unlock()
		if inAction && uid == "u1" {
			violations++
		}
	}}, f.desired, shell.LoopOptions{Parallel: 2, Resync: time.Hour, Report: func(res *reconciler.Result, _ *reconciler.Desired, _ *reconciler.Observed) {
		mu.Lock()
		defer mu.Unlock()
		if inAction {
			events = append(events, res.Events...)
		}
	}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { l.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "the sandbox action in flight", func() bool { mu.Lock(); defer mu.Unlock(); return inAction })
	completeRounds(t, l, 5) // while the sandbox action hangs
	close(release)
	waitFor(t, "pod running", func() bool { return f.allRunning("u1") })
	mu.Lock()
	defer mu.Unlock()
	if violations > 0 || len(events) > 0 {
		t.Fatalf("busy pod: %d status writes, events %v", violations, events)
	}
}

type persistSpy struct {
	*fakeShell
	check func(types.UID)
}

func (p *persistSpy) Persist(pp *reconciler.PodPlan) {
	p.check(pp.UID)
	p.fakeShell.Persist(pp)
}

// Deleting a pod kills its containers side by side, each with the whole grace
// period (kubelet's killContainersWithSyncResult): two containers that ignore
// SIGTERM take one grace period, not two. The fake kills wait for each other:
// run one after the other, the first never returns and the test fails.
func TestLoopKillsAPodsContainersTogether(t *testing.T) {
	p := reconciler.MkPod("u1", "p1", "a", "b")
	f := newFakeShell(t, p)
	l, stop := startLoop(t, f, 4)
	defer stop()
	waitFor(t, "pod running", func() bool { return f.allRunning("u1") })

	var mu sync.Mutex
	entered, serialized := 0, false
	both := make(chan struct{})
	f.hook = func(a reconciler.Action) error {
		if _, ok := a.(reconciler.KillContainer); !ok {
			return nil
		}
		mu.Lock()
		entered++
		if entered == 2 {
			close(both)
		}
		mu.Unlock()
		select {
		case <-both:
			return nil
		case <-time.After(10 * time.Second):
			mu.Lock()
			serialized = true
			mu.Unlock()
			return errors.New("the other container's kill never started: kills ran one after the other")
		}
	}
	f.mu.Lock()
	delete(f.s.D().Pods, "u1")
	f.mu.Unlock()
	l.Wake()
	select {
	case <-both:
	case <-time.After(30 * time.Second):
		t.Fatal("the second kill never started")
	}
	mu.Lock()
	defer mu.Unlock()
	if serialized {
		t.Fatal("the second kill started only after the first gave up: kills ran one after the other")
	}
}

// One app container that cannot be created does not hold back its
// siblings (issue 12, item 10): the kubelet starts every app container it
// can and reports the failing one alone.
func TestLoopAppContainerFailureDoesNotHoldBackSiblings(t *testing.T) {
	p := reconciler.MkPod("u1", "p1", "bad", "good")
	f := newFakeShell(t, p)
	f.hook = func(a reconciler.Action) error {
		if c, ok := a.(reconciler.CreateAndStartContainer); ok && c.Name == "bad" {
			return errors.New("container bad: unable to find user nobody")
		}
		return nil
	}
	_, stop := startLoop(t, f, 2)
	defer stop()
	waitFor(t, "container good running while bad cannot be created", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.s.Running("u1", "good") != nil
	})
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.s.Running("u1", "bad") != nil {
		t.Fatal("container bad runs although its create always fails")
	}
}

// LastActionDone moves with every finished action, so a watchdog can tell a
// slow round that makes progress from a stuck loop.
func TestLoopLastActionDone(t *testing.T) {
	f := newFakeShell(t, reconciler.MkPod("u1", "p1", "a"))
	before := time.Now()
	l, stop := startLoop(t, f, 2)
	defer stop()
	waitFor(t, "the pod running", func() bool { return f.allRunning("u1") })
	if got := l.LastActionDone(); got.Before(before) {
		t.Fatalf("LastActionDone %v, want after the loop started (%v)", got, before)
	}
}

// The same failure at every retry (a full --root-dir) is one warning, its
// repeats debug lines; a different cause warns again.
func TestRepeatedActionFailureWarnsOnce(t *testing.T) {
	pod := reconciler.MkPod("u1", "p1", "a")
	f := newFakeShell(t, pod)
	var mu sync.Mutex
	cause := "no space left on device"
	tries := 0
	f.hook = func(a reconciler.Action) error {
		if _, ok := a.(reconciler.RunSandbox); !ok {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		tries++
		return errors.New(cause)
	}
	logs := &syncbuf.Buffer{}
	l := shell.NewLoop(f, f.desired, shell.LoopOptions{Parallel: 2, Resync: time.Hour, RetryMin: time.Millisecond, RetryMax: time.Millisecond,
		Log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { l.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	triedAtLeast := func(n int) func() bool {
		return func() bool {
			l.Wake()
			mu.Lock()
			defer mu.Unlock()
			return tries >= n
		}
	}
	waitFor(t, "five tries", triedAtLeast(5))
	mu.Lock()
	cause, tries = "read-only file system", 0
	mu.Unlock()
	waitFor(t, "five more tries", triedAtLeast(5))
	out := logs.String()
	for c, want := range map[string]int{"no space left on device": 1, "read-only file system": 1} {
		warns := 0
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, "level=WARN") && strings.Contains(line, c) {
				warns++
			}
		}
		if warns != want {
			t.Errorf("%d warnings of %q, want %d; log:\n%s", warns, c, want, out)
		}
	}
	if !strings.Contains(out, "level=DEBUG msg=\"action failed\"") {
		t.Errorf("the repeats are not debug lines; log:\n%s", out)
	}
}

// The app containers of a pod are created side by side and started in spec
// order: the last container's create runs while the first one's is still
// going, yet the starts follow the spec, one at a time. With one worker
// slot the wave still runs (slots are taken in spec order).
func TestLoopWaveCreatesSideBySideStartsInOrder(t *testing.T) {
	for _, parallel := range []int{1, 4} {
		t.Run(fmt.Sprintf("parallel %d", parallel), func(t *testing.T) {
			p := reconciler.MkPod("u1", "p1", "a", "b", "c")
			f := newFakeShell(t, p)
			cCreating := make(chan struct{})
			var once sync.Once
			f.hook = func(a reconciler.Action) error {
				c, ok := a.(reconciler.CreateAndStartContainer)
				if !ok {
					return nil
				}
				switch c.Name {
				case "c":
					once.Do(func() { close(cCreating) })
				case "a":
					if parallel > 1 {
						// a's create is slow: it ends only once c's began.
						select {
						case <-cCreating:
						case <-time.After(10 * time.Second):
							return errors.New("c's create did not begin while a's ran: the creates ran one after the other")
						}
					}
				}
				return nil
			}
			_, stop := startLoop(t, f, parallel)
			defer stop()
			waitFor(t, "all containers running", func() bool { return f.allRunning("u1") })
			f.mu.Lock()
			defer f.mu.Unlock()
			var starts []string
			for _, d := range f.perPod["u1"] {
				if strings.HasPrefix(d, "start ") {
					starts = append(starts, d)
				}
			}
			reconciler.Eq(t, "starts", starts, []string{"start u1/a #0", "start u1/b #0", "start u1/c #0"})
			if parallel == 1 && f.maxActive > 1 {
				t.Errorf("%d actions at once with one worker slot", f.maxActive)
			}
		})
	}
}
