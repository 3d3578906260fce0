package shell

// loop.go: the level-triggered loop around Plan. It observes, plans, hands
// every pod's action chain to a bounded pool of workers and sleeps until
// something may have changed. It keeps no state about pods beyond what is
// running now (in-flight keys, busy pods, retry delays): everything else is
// read back from the node on every round, so a daemon killed at any instant
// resumes by simply planning again.

import (
	"context"
	"log/slog"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/minikubelet/minikubelet/reconciler"
)

// Interface is the IO side the Loop drives (Node is the real one; tests
// use fakes).
type Interface interface {
	// Observe reads what runs on the node. InFlight is filled by the loop.
	Observe(ctx context.Context, desired *reconciler.Desired) (reconciler.Observed, error)
	// Execute performs one action. pod is the pod's spec (the desired one,
	// else the one recorded when it was created; nil for an orphan).
	// The app containers of one chain are executed side by side (a wave):
	// an Execute of CreateAndStartContainer must call WaitStartTurn(ctx)
	// before the workload starts and ReleaseStartTurn(ctx) once it started
	// (its postStart hook ran), so the starts keep spec order; the loop
	// releases the turn when Execute returns in any case.
	Execute(ctx context.Context, a reconciler.Action, pod *v1.Pod) error
	// Persist records a pod's plan outcome (its status; it comes back as
	// Observed.PrevStatus).
	Persist(pp *reconciler.PodPlan)
}

// DesiredFunc returns the desired state and whether it is complete (the
// manifest folder was read at least once); the loop plans nothing before,
// so pods of files not read yet are not deleted.
type DesiredFunc func() (reconciler.Desired, bool)

// LoopOptions tune a Loop. Zero values take the defaults.
type LoopOptions struct {
	Config   reconciler.Config
	Parallel int           // pods whose actions run at once (default 8)
	Resync   time.Duration // full re-observation period (default 20 s)
	// RetryMin/RetryMax bound the delay before a pod whose action failed is
	// given actions again (doubling; default 500 ms .. 30 s). Plan has no
	// memory of failures, so without it a persistent error would spin.
	RetryMin, RetryMax time.Duration
	Now                func() time.Time
	Log                *slog.Logger
	// Report sees every round's result with its inputs (status for the
	// API, events, metrics). Called from the loop goroutine.
	Report func(res *reconciler.Result, desired *reconciler.Desired, observed *reconciler.Observed)
	// OnRound is told how long a round took and whether observation failed.
	OnRound func(d time.Duration, err error)
	// OnActionError is told of every failed action (for a Warning event).
	OnActionError func(uid types.UID, pod *v1.Pod, a reconciler.Action, err error)
}

// Loop runs Plan forever. Create with NewLoop, start with Run.
type Loop struct {
	shell   Interface
	desired DesiredFunc
	opt     LoopOptions

	wake chan struct{}
	sem  chan struct{}
	wg   sync.WaitGroup

	mu       sync.Mutex
	inflight map[string]int
	// window collects every key that was in flight at some point while an
	// observation ran: its effect may or may not be in what was observed,
	// so the plan must treat it as still running.
	window map[string]struct{}
	busy   map[types.UID]bool
	retry  map[types.UID]retryState
	rounds uint64
	// lastDone is when an action last returned: progress even while a
	// round is slow (a slow host's CNI ADDs), for watchdogs.
	lastDone time.Time
}

type retryState struct {
	until time.Time
	delay time.Duration
	// said is the failure last logged as a warning ("action|error"): the
	// same failure at each retry (a full --root-dir) is a debug line.
	said string
}

// NewLoop returns a loop over shell and desired.
func NewLoop(shell Interface, desired DesiredFunc, opt LoopOptions) *Loop {
	if opt.Parallel <= 0 {
		opt.Parallel = 8
	}
	if opt.Resync <= 0 {
		opt.Resync = 20 * time.Second
	}
	if opt.RetryMin <= 0 {
		opt.RetryMin = 500 * time.Millisecond
	}
	if opt.RetryMax <= 0 {
		opt.RetryMax = 30 * time.Second
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	return &Loop{
		shell: shell, desired: desired, opt: opt,
		wake:     make(chan struct{}, 1),
		sem:      make(chan struct{}, opt.Parallel),
		inflight: map[string]int{},
		busy:     map[types.UID]bool{},
		retry:    map[types.UID]retryState{},
	}
}

// Wake asks for a round soon (manifest change, unit event, container exit).
// It never blocks; wakes while a round runs collapse into one more round.
func (l *Loop) Wake() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// Rounds is how many rounds ran (for watchdogs and tests).
func (l *Loop) Rounds() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rounds
}

// LastActionDone is when an action last returned (zero: none yet).
func (l *Loop) LastActionDone() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastDone
}

// InFlight returns the keys of the actions running now.
func (l *Loop) InFlight() map[string]struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]struct{}, len(l.inflight))
	for k := range l.inflight {
		out[k] = struct{}{}
	}
	return out
}

// Run plans until ctx ends, then waits for the running actions (which see
// ctx cancelled) to return. Pods are left as they are.
func (l *Loop) Run(ctx context.Context) error {
	resync := time.NewTicker(l.opt.Resync)
	defer resync.Stop()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	defer l.wg.Wait()
	for {
		next := l.Round(ctx)
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		if !next.IsZero() {
			d := next.Sub(l.opt.Now())
			if d < 10*time.Millisecond {
				d = 10 * time.Millisecond
			}
			timer.Reset(d)
		} else {
			timer.Reset(time.Hour)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-l.wake:
		case <-resync.C:
		case <-timer.C:
		}
	}
}

// Round observes, plans, reports and dispatches once; it returns when the
// loop should run again at the latest (zero: no timer needed).
func (l *Loop) Round(ctx context.Context) time.Time {
	start := time.Now()
	desired, ok := l.desired()
	if !ok {
		return time.Time{}
	}
	l.mu.Lock()
	l.window = make(map[string]struct{}, len(l.inflight))
	for k := range l.inflight {
		l.window[k] = struct{}{}
	}
	busy := make(map[types.UID]bool, len(l.busy))
	for uid := range l.busy {
		busy[uid] = true
	}
	l.mu.Unlock()

	observed, err := l.shell.Observe(ctx, &desired)

	l.mu.Lock()
	inFlight := l.window
	l.window = nil
	l.rounds++
	l.mu.Unlock()
	if err != nil {
		l.opt.Log.Error("observe node", "err", err)
		if l.opt.OnRound != nil {
			l.opt.OnRound(time.Since(start), err)
		}
		return l.opt.Now().Add(l.opt.RetryMin)
	}
	observed.InFlight = inFlight
	observedAt := time.Now()
	now := l.opt.Now()
	res := reconciler.Plan(desired, observed, now, l.opt.Config)
	for i := range res.Pods {
		pp := &res.Pods[i]
		if busy[pp.UID] {
			// What was observed of a pod whose actions are running may be a
			// glimpse mid-action (a sandbox record without its process yet):
			// keep its last status and derive no events from it; the round
			// after its chain ends reports the real transitions.
			if prev := observed.PrevStatus[pp.UID]; prev != nil {
				pp.Status = prev
			}
			continue
		}
		l.shell.Persist(pp)
	}
	if len(busy) > 0 {
		kept := res.Events[:0:0]
		for _, ev := range res.Events {
			if !busy[ev.PodUID] {
				kept = append(kept, ev)
			}
		}
		res.Events = kept
	}
	if l.opt.Report != nil {
		l.opt.Report(&res, &desired, &observed)
	}
	l.forgetRetries(&res)
	next := res.NextWake
	for i := range res.Pods {
		pp := &res.Pods[i]
		if len(pp.Actions) == 0 {
			continue
		}
		if busy[pp.UID] || l.isBusy(pp.UID) {
			// Its chain is running (or finished while we observed, so what
			// we saw may predate its effect): its end wakes the loop.
			continue
		}
		if until := l.retryUntil(pp.UID); now.Before(until) {
			if next.IsZero() || until.Before(next) {
				next = until
			}
			continue
		}
		var pod *v1.Pod
		if dp := desired.Pods[pp.UID]; dp != nil && dp.Pod != nil {
			pod = dp.Pod
		} else if op := observed.Pods[pp.UID]; op != nil {
			pod = op.Pod
		}
		l.dispatch(ctx, pp.UID, pp.Actions, pod)
	}
	l.opt.Log.Debug("round", "observe", observedAt.Sub(start), "planReportDispatch", time.Since(observedAt), "pods", len(res.Pods))
	if l.opt.OnRound != nil {
		l.opt.OnRound(time.Since(start), nil)
	}
	return next
}

// Busy reports whether the pod's chain of actions is running. A round then
// changes nothing for it (its status is kept, its events held back, no new
// chain starts) and the chain's end wakes the loop, so news about the pod
// alone need not wake the loop.
func (l *Loop) Busy(uid types.UID) bool { return l.isBusy(uid) }

func (l *Loop) isBusy(uid types.UID) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.busy[uid]
}

func (l *Loop) retryUntil(uid types.UID) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.retry[uid].until
}

// dispatch runs one pod's chain: in order (consecutive kills side by side),
// stopping at the first failure — except that a failed app container does
// not hold back its siblings: the app containers of one wave need nothing
// of each other, and the kubelet starts every one it can and reports the
// failing ones alone (kuberuntime SyncPod). The pod is retried after the
// chain either way.
// Each action but kills waits for one of Parallel slots; the waiting
// happens off the loop goroutine, so a full pool never stalls planning.
func (l *Loop) dispatch(ctx context.Context, uid types.UID, actions []reconciler.Action, pod *v1.Pod) {
	l.mu.Lock()
	l.busy[uid] = true
	l.mu.Unlock()
	l.wg.Add(1)
	go func() {
		defer func() {
			l.mu.Lock()
			delete(l.busy, uid)
			l.mu.Unlock()
			l.wg.Done()
			l.Wake()
		}()
		failed := false // an app container's create failed: only its siblings go on
		for i := 0; i < len(actions); {
			if ctx.Err() != nil {
				return
			}
			// A run of kills is one step, its kills side by side: the plan
			// emits together only the containers that stop together, and
			// each waits out its own grace period (kubelet kills a pod's
			// containers in parallel; in a row, graces would add up).
			// A run of app container creates is one step too (a wave):
			// created side by side, started in spec order (startOrder).
			j := i + 1
			_, kill := actions[i].(reconciler.KillContainer)
			wave := appContainer(actions[i])
			for j < len(actions) {
				if _, k := actions[j].(reconciler.KillContainer); !(kill && k) && !(wave && appContainer(actions[j])) {
					break
				}
				j++
			}
			step := actions[i:j]
			i = j
			if failed && !appContainer(step[0]) {
				break
			}
			errs := make([]error, len(step))
			if wave && len(step) > 1 {
				l.executeWave(ctx, step, pod, errs)
			} else {
				var steps sync.WaitGroup
				for k, a := range step {
					steps.Add(1)
					go func() {
						defer steps.Done()
						errs[k] = l.execute(ctx, a, pod)
					}()
				}
				steps.Wait()
			}
			for k, err := range errs {
				if err == nil {
					continue
				}
				if ctx.Err() != nil {
					return
				}
				failed = true
				l.logActionError(uid, pod, step[k], err)
				if l.opt.OnActionError != nil {
					l.opt.OnActionError(uid, pod, step[k], err)
				}
				if !appContainer(step[k]) {
					l.failed(uid)
					return
				}
			}
		}
		if failed {
			l.failed(uid)
			return
		}
		l.mu.Lock()
		delete(l.retry, uid)
		l.mu.Unlock()
	}()
}

// appContainer: the create of an app container (not an init container,
// whose order matters).
func appContainer(a reconciler.Action) bool {
	c, ok := a.(reconciler.CreateAndStartContainer)
	return ok && !c.Init
}

// executeWave runs a wave of app container creates (one pod, one chain)
// side by side: each container's root, process and scope are made at once,
// and its start waits for its predecessor's start (and postStart hook), so
// the workloads exec in spec order as the kubelet starts them, one by one.
// A failed create releases its turn, as a failed container does not hold
// back its siblings. Each takes a worker slot, in spec order: a later
// container never holds a slot while an earlier one (whose turn it waits
// for) still needs one, so the wave cannot deadlock the pool.
func (l *Loop) executeWave(ctx context.Context, step []reconciler.Action, pod *v1.Pod, errs []error) {
	var wg sync.WaitGroup
	prevTurn, prevSlot := closedChan, closedChan
	for k, a := range step {
		turn := newStartTurn(prevTurn)
		slotAfter, slotTaken := prevSlot, make(chan struct{})
		prevTurn, prevSlot = turn.done, slotTaken
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer turn.release()
			err := func() error {
				defer close(slotTaken)
				select {
				case <-slotAfter:
				case <-ctx.Done():
					return ctx.Err()
				}
				return l.acquire(ctx)
			}()
			if err != nil {
				errs[k] = err
				return
			}
			defer l.releaseSlot()
			errs[k] = l.run(withStartTurn(ctx, turn), a, pod)
		}()
	}
	wg.Wait()
}

// acquire takes one of the Parallel worker slots (releaseSlot gives it back).
func (l *Loop) acquire(ctx context.Context) error {
	select {
	case l.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l *Loop) releaseSlot() { <-l.sem }

// execute runs one action, holding a worker slot when it needs one.
func (l *Loop) execute(ctx context.Context, a reconciler.Action, pod *v1.Pod) error {
	// The bound is on work (cgroups, pulls, processes, mounts), not on
	// waiting: a kill mostly waits out a grace period, so a hundred pods
	// being deleted do not queue behind each other.
	if needsSlot(a) {
		if err := l.acquire(ctx); err != nil {
			return err
		}
		defer l.releaseSlot()
	}
	return l.run(ctx, a, pod)
}

// run executes one action, counted in flight while it runs.
func (l *Loop) run(ctx context.Context, a reconciler.Action, pod *v1.Pod) error {
	key := a.Key()
	l.begin(key)
	defer l.end(key)
	began := time.Now()
	err := l.shell.Execute(ctx, a, pod)
	if err == nil {
		l.opt.Log.Debug("action done", "pod", podName(pod, a.Pod()), "action", key, "took", time.Since(began))
	}
	return err
}

func needsSlot(a reconciler.Action) bool {
	switch a.(type) {
	case reconciler.KillContainer, reconciler.MarkTerminating:
		return false
	}
	return true
}

func podName(pod *v1.Pod, uid types.UID) string {
	if pod == nil {
		return string(uid)
	}
	return pod.Namespace + "/" + pod.Name
}

func (l *Loop) begin(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inflight[key]++
	if l.window != nil {
		l.window[key] = struct{}{}
	}
}

func (l *Loop) end(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lastDone = time.Now()
	if l.inflight[key]--; l.inflight[key] <= 0 {
		delete(l.inflight, key)
	}
}

func (l *Loop) failed(uid types.UID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.retry[uid]
	switch {
	case r.delay == 0:
		r.delay = l.opt.RetryMin
	case r.delay < l.opt.RetryMax:
		r.delay *= 2
		if r.delay > l.opt.RetryMax {
			r.delay = l.opt.RetryMax
		}
	}
	r.until = l.opt.Now().Add(r.delay)
	l.retry[uid] = r
}

// logActionError warns of a failed action, once while the pod keeps
// failing the same way: the retries of one cause (a full disk, a missing
// image) say it at debug level, a new cause or a failure after a success
// warns again.
func (l *Loop) logActionError(uid types.UID, pod *v1.Pod, a reconciler.Action, err error) {
	said := a.Key() + "|" + err.Error()
	l.mu.Lock()
	rs := l.retry[uid]
	repeat := rs.said == said
	rs.said = said
	l.retry[uid] = rs
	l.mu.Unlock()
	log := l.opt.Log.Warn
	if repeat {
		log = l.opt.Log.Debug
	}
	log("action failed", "pod", podName(pod, uid), "action", a.Key(), "err", err)
}

// forgetRetries drops the retry state of pods that no longer exist.
func (l *Loop) forgetRetries(res *reconciler.Result) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.retry) == 0 {
		return
	}
	live := make(map[types.UID]bool, len(res.Pods))
	for i := range res.Pods {
		live[res.Pods[i].UID] = true
	}
	for uid := range l.retry {
		if !live[uid] {
			delete(l.retry, uid)
		}
	}
}
