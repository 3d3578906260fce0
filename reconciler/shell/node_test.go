package shell

// node_test.go: Node's crash-safety rules over fake parts (fakes_test.go):
// a restarted daemon adopts what runs, completes what a crash left half
// made, and a retried action never makes a second copy.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/minikubelet/minikubelet/reconciler"
	mklrt "github.com/minikubelet/minikubelet/runtime"
)

func wantStates(t *testing.T, w *world, uid string, want ...string) {
	t.Helper()
	if got := w.rt.states(types.UID(uid)); !slices.Equal(got, want) {
		t.Fatalf("containers of %s: got %q, want %q", uid, got, want)
	}
}

// runningPodThenDeath runs pod u1 (one container, app) to steady state under
// a first daemon, which then dies.
func runningPodThenDeath(t *testing.T) (*world, reconciler.Desired, *Node) {
	w := newWorld(t)
	desired := desiredOf(testPod("u1", "app"))
	first := w.node()
	w.converge(first, desired)
	first.Close()
	return w, desired, first
}

// A daemon started over a running pod adopts it: one CNI CHECK of the
// sandbox it did not set up, and no action at all.
func TestRestartedDaemonAdoptsRunningPod(t *testing.T) {
	w := newWorld(t)
	pod := testPod("u1", "app", "side")
	desired := desiredOf(pod)
	first := w.node()
	w.converge(first, desired)
	wantStates(t, w, "u1", "app#0=Running", "side#0=Running")
	first.Close() // the daemon dies; the pod runs on

	calls := fmt.Sprint(w.rt.calls)
	second := w.node()
	actions, errs := w.round(second, desired)
	if len(actions) != 0 || len(errs) != 0 {
		t.Fatalf("restarted daemon acted on a running pod: %q %v", actions, errs)
	}
	if got := fmt.Sprint(w.rt.calls); got != calls {
		t.Errorf("runtime calls changed across the restart: %s, before %s", got, calls)
	}
	second.netChecks.Wait() // the CHECK runs beside the round
	if actions, errs := w.round(second, desired); len(actions) != 0 || len(errs) != 0 {
		t.Fatalf("restarted daemon acted on a running pod once its network was checked: %q %v", actions, errs)
	}
	if w.net.checked != 1 {
		t.Errorf("CNI CHECK ran %d times on adoption, want once", w.net.checked)
	}
	wantStates(t, w, "u1", "app#0=Running", "side#0=Running")
}

// An adopted sandbox whose network CNI CHECK refuses is replaced (a new
// attempt with new containers), and the new one is trusted. The CHECK runs
// beside the rounds: the first round trusts the sandbox, the verdict wakes
// the loop.
func TestAdoptedSandboxWithBrokenNetworkIsReplaced(t *testing.T) {
	w, desired, _ := runningPodThenDeath(t)
	w.net.broken = true
	woken := make(chan struct{}, 1)
	w.wake = func() {
		select {
		case woken <- struct{}{}:
		default:
		}
	}
	n := w.node()
	if actions, errs := w.round(n, desired); len(actions) != 0 || len(errs) != 0 {
		t.Fatalf("first round acted before the CHECK's verdict: %q %v", actions, errs)
	}
	n.netChecks.Wait()
	select {
	case <-woken:
	default:
		t.Fatal("a broken network's verdict did not wake the loop")
	}
	w.converge(n, desired)
	if n := w.rt.count("RunSandbox"); n != 2 {
		t.Errorf("RunSandbox called %d times, want 2 (the broken sandbox replaced once)", n)
	}
	wantStates(t, w, "u1", "app#0=Exited", "app#1=Running")
}

// halfMadeSandbox leaves what a daemon killed between a pod's sandbox and
// its first container leaves: a sandbox record and its pause, no container.
func (w *world) halfMadeSandbox(desired reconciler.Desired, uid types.UID) sandboxRecord {
	first := w.node()
	w.rt.fail = func(m string) error {
		if m == "CreateContainer" {
			return errors.New("the daemon dies here")
		}
		return nil
	}
	w.round(first, desired)
	first.Close()
	w.rt.fail = nil
	sb, _ := first.readSandbox(uid)
	return sb
}

// A sandbox without containers may be half made (the daemon died before or
// during CNI ADD): its CHECK runs in the round, so a broken one is replaced
// before any container starts in it.
func TestHalfMadeSandboxIsCheckedBeforeContainers(t *testing.T) {
	w := newWorld(t)
	desired := desiredOf(testPod("u1", "app"))
	sb := w.halfMadeSandbox(desired, "u1")
	w.net.broken = true // ADD never happened or did not finish
	second := w.node()
	actions, errs := w.round(second, desired)
	if len(errs) > 0 {
		t.Fatalf("first round: %v", errs)
	}
	for _, a := range actions {
		if strings.Contains(a, "container") && !strings.Contains(a, "sandbox") {
			t.Fatalf("first round acted on containers before replacing the unchecked sandbox: %q", actions)
		}
	}
	w.net.broken = false
	w.converge(second, desired)
	if now, _ := second.readSandbox("u1"); now.ID == sb.ID {
		t.Errorf("the half-made sandbox %s was kept", sb.ID)
	}
	if n := w.rt.count("CreateContainer"); n != 2 {
		t.Errorf("CreateContainer called %d times, want 2 (the failed one, then once in the new sandbox)", n)
	}
	wantStates(t, w, "u1", "app#0=Running")
}

// A half-made sandbox whose CHECK gives no verdict within the round (the
// slots busy with other CHECKs after a restart) gets no container either: it
// is replaced like a broken one. Trusted, its containers started without a
// network, and the late verdict killed them (chaos scenario 1: a
// restartPolicy Never pod ended with 137).
func TestUncheckedHalfMadeSandboxGetsNoContainers(t *testing.T) {
	w := newWorld(t)
	desired := desiredOf(testPod("u1", "app"))
	sb := w.halfMadeSandbox(desired, "u1")
	w.net.hang = true // CHECK takes longer than the round may wait
	second := w.node()
	actions, _ := w.round(second, desired)
	for _, a := range actions {
		if strings.Contains(a, "container") && !strings.Contains(a, "sandbox") {
			t.Fatalf("first round acted on containers in a sandbox whose CHECK gave no verdict: %q", actions)
		}
	}
	w.net.mu.Lock()
	w.net.hang = false
	w.net.mu.Unlock()
	w.converge(second, desired)
	if now, _ := second.readSandbox("u1"); now.ID == sb.ID {
		t.Errorf("the unchecked half-made sandbox %s was kept", sb.ID)
	}
	wantStates(t, w, "u1", "app#0=Running")
}

// A pause the daemon started but died before placing in its scope is half
// a sandbox: while it may still be being placed it is left alone, after
// unplacedAfter it is replaced.
func TestUnplacedSandboxIsReplacedOnceStale(t *testing.T) {
	w, desired, first := runningPodThenDeath(t)
	sb, _ := first.readSandbox("u1")
	w.cg.StopScope(context.Background(), sb.ID, true) // as if never placed

	second := w.node()
	if actions, _ := w.round(second, desired); len(actions) != 0 {
		t.Fatalf("a young unplaced sandbox was acted on: %q", actions)
	}
	w.advance(unplacedAfter + time.Second)
	w.converge(second, desired)
	if n := w.rt.count("RunSandbox"); n != 2 {
		t.Errorf("RunSandbox called %d times, want 2", n)
	}
	if now, _ := second.readSandbox("u1"); now.ID == sb.ID || now.Attempt != sb.Attempt+1 {
		t.Errorf("sandbox %+v after replacing %+v: want a new ID and the next attempt", now, sb)
	}
}

// A container the runtime created while the daemon died before recording
// it belongs to the current sandbox; the next daemon never ends with two
// instances of it.
func TestUnrecordedContainerIsNotDuplicated(t *testing.T) {
	w := newWorld(t)
	desired := desiredOf(testPod("u1", "app"))
	first := w.node()
	lost := true
	w.rt.lost = func(m string) bool { return m == "CreateContainer" && lost }
	_, errs := w.round(first, desired)
	for len(errs) == 0 {
		_, errs = w.round(first, desired)
	}
	first.Close()
	lost = false
	wantStates(t, w, "u1", "app#0=Created")

	w.converge(w.node(), desired)
	running := 0
	for _, s := range w.rt.states("u1") {
		if s == "app#0=Running" || s == "app#1=Running" {
			running++
		} else if s != "app#0=Exited" {
			t.Errorf("left behind: %s", s)
		}
	}
	if running != 1 {
		t.Errorf("%d running instances of app (%q), want 1", running, w.rt.states("u1"))
	}
}

// A pod whose sandbox failed to start keeps its records; the retry starts
// one sandbox and leaves no scope of the failed one.
func TestFailedSandboxIsRetriedWithoutLeftovers(t *testing.T) {
	w := newWorld(t)
	desired := desiredOf(testPod("u1", "app"))
	n := w.node()
	w.rt.fail = func(m string) error {
		if m == "RunSandbox" {
			return errors.New("pause: exec format error")
		}
		return nil
	}
	if _, errs := w.round(n, desired); len(errs) == 0 {
		// The first round pulls; the sandbox comes in the same chain.
		t.Fatal("the failing sandbox gave no error")
	}
	if _, err := os.Stat(n.state.podFile("u1")); err != nil {
		t.Fatalf("pod record missing after a failed sandbox: %v", err)
	}
	w.rt.fail = nil
	w.converge(n, desired)
	wantStates(t, w, "u1", "app#0=Running")
	units, _ := w.cg.List(context.Background())
	if len(units) != 3 { // the slice, the sandbox's scope, app's scope
		t.Errorf("units after the retry: %+v, want the slice and two scopes", units)
	}
}

// An action retried after it succeeded (the caller did not hear back) is
// a no-op: the same sandbox attempt is not started twice.
func TestRetriedRunSandboxIsIdempotent(t *testing.T) {
	w := newWorld(t)
	pod := testPod("u1", "app")
	n := w.node()
	ctx := context.Background()
	for _, a := range []reconciler.Action{reconciler.EnsurePodCgroup{UID: "u1"}, reconciler.RunSandbox{UID: "u1", Attempt: 0}, reconciler.RunSandbox{UID: "u1", Attempt: 0}} {
		if err := n.Execute(ctx, a, pod); err != nil {
			t.Fatalf("%s: %v", a.Key(), err)
		}
	}
	if c := w.rt.count("RunSandbox"); c != 1 {
		t.Errorf("RunSandbox called %d times for one attempt, want 1", c)
	}
	if w.net.setups != 1 {
		t.Errorf("CNI ADD ran %d times, want 1", w.net.setups)
	}
}

// A refused create shows as the kubelet's waiting reason until a create of
// that container succeeds.
func TestCreateErrorIsObservedUntilACreateSucceeds(t *testing.T) {
	w := newWorld(t)
	desired := desiredOf(testPod("u1", "app"))
	n := w.node()
	w.rt.fail = func(m string) error {
		if m == "CreateContainer" {
			return &mklrt.ConfigError{Err: errors.New("container has runAsNonRoot and image will run as root")}
		}
		return nil
	}
	for i := 0; i < 5; i++ {
		if _, errs := w.round(n, desired); len(errs) > 0 {
			break
		}
	}
	obs, err := n.Observe(context.Background(), &desired)
	if err != nil {
		t.Fatal(err)
	}
	if ce := obs.Pods["u1"].CreateErrors["app"]; ce.Reason != reconciler.ReasonCreateContainerConfigError {
		t.Fatalf("create error observed as %+v, want %s", ce, reconciler.ReasonCreateContainerConfigError)
	}
	w.rt.fail = nil
	w.advance(5 * time.Minute) // past any back-off
	w.converge(n, desired)
	wantStates(t, w, "u1", "app#0=Running")
	obs, _ = n.Observe(context.Background(), &desired)
	if ce, ok := obs.Pods["u1"].CreateErrors["app"]; ok {
		t.Errorf("create error still observed after a successful create: %+v", ce)
	}
}

// A failed pull is observed as a failure and retried after its back-off.
func TestFailedPullIsRetried(t *testing.T) {
	w := newWorld(t)
	desired := desiredOf(testPod("u1", "app"))
	n := w.node()
	w.img.pullErr = errors.New("registry: connection refused")
	w.round(n, desired)
	obs, _ := n.Observe(context.Background(), &desired)
	if st := obs.Images["img-app:1"]; st == nil || st.Presence != reconciler.ImagePullFailed || st.Failures != 1 {
		t.Fatalf("image state after a failed pull: %+v", st)
	}
	w.img.pullErr = nil
	w.advance(5 * time.Minute)
	w.converge(n, desired)
	wantStates(t, w, "u1", "app#0=Running")
}

// A pod no longer desired is removed with everything it had, by a daemon
// that did not create it (its spec comes from the pod record).
func TestRemovedPodIsCollectedAfterRestart(t *testing.T) {
	w := newWorld(t)
	pod := testPod("u1", "app")
	first := w.node()
	w.converge(first, desiredOf(pod))
	first.Close()
	w.converge(w.node(), desiredOf())
	if _, err := os.Stat(w.rt.PodDir("u1")); !os.IsNotExist(err) {
		t.Errorf("pod folder left: %v", err)
	}
	if units, _ := w.cg.List(context.Background()); len(units) != 0 {
		t.Errorf("units left: %+v", units)
	}
	if recs, _ := w.img.RootfsRecords(); len(recs) != 0 {
		t.Errorf("container roots left: %+v", recs)
	}
}
