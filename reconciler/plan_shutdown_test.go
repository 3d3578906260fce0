package reconciler

import (
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

func (s *sim) shutdownPlan(uid types.UID) PodPlan {
	for _, pp := range s.last.Pods {
		if pp.UID == uid {
			return pp
		}
	}
	s.t.Fatalf("no plan for pod %s", uid)
	return PodPlan{}
}

func hasCondition(st *v1.PodStatus, t v1.PodConditionType, reason string) bool {
	for _, c := range st.Conditions {
		if c.Type == t && c.Status == v1.ConditionTrue && c.Reason == reason {
			return true
		}
	}
	return false
}

// A node shutdown stops the listed pods with their grace bounded by the
// group's, preStop first; the others keep running; nothing is removed.
func TestShutdownStopsListedPodsWithBoundedGrace(t *testing.T) {
	web := mkPod("u1", "web", "app", "plain")
	web.Spec.Containers[0].Lifecycle = &v1.Lifecycle{PreStop: &v1.LifecycleHandler{Sleep: &v1.SleepAction{Seconds: 5}}}
	crit := mkPod("u2", "dns", "dns")
	s := newSim(t, web, crit)
	s.present("img-app:1", "img-plain:1", "img-dns:1")
	s.step()
	s.step()
	s.d.Shutdown = map[types.UID]ShutdownStop{"u1": {Since: s.now, MaxGrace: 20 * time.Second}}
	s.advance(time.Second)
	eq(t, "shutdown", s.step(), []string{
		"kill u1/app grace=19s prestop (NodeShutdown)",
		"kill u1/plain grace=19s (NodeShutdown)",
	})
	if !s.hasEvent("Killing", "Stopping container app") {
		t.Fatal("no Killing event")
	}
	st := s.status("u1")
	if st.Phase != v1.PodFailed || st.Reason != NodeShutdownReason || st.Message != NodeShutdownMessage {
		t.Fatalf("status %s %q %q", st.Phase, st.Reason, st.Message)
	}
	if !hasCondition(st, v1.DisruptionTarget, v1.PodReasonTerminationByKubelet) {
		t.Fatalf("no DisruptionTarget condition: %+v", st.Conditions)
	}
	if s.shutdownPlan("u1").ShutdownStopped {
		t.Fatal("stopped while its sandbox runs")
	}
	eq(t, "sandbox", s.step(), []string{"stopsandbox u1"})
	eq(t, "done", s.step(), nil)
	if !s.shutdownPlan("u1").ShutdownStopped {
		t.Fatal("not reported stopped")
	}
	if s.o.Pods["u1"] == nil || !s.o.Pods["u1"].StateExists {
		t.Fatal("the pod's state was removed")
	}
	if s.running("u2", "dns") == nil || s.status("u2").Phase != v1.PodRunning {
		t.Fatal("an unlisted pod was touched")
	}
	if s.shutdownPlan("u2").ShutdownStopped {
		t.Fatal("unlisted pod reported stopped")
	}
	// Later rounds do not start it again while the shutdown lasts.
	s.advance(time.Minute)
	eq(t, "stays down", s.step(), nil)
}

// The pod's own grace wins when it is shorter; the bound counts from the
// start of the shutdown, not from each plan.
func TestShutdownGraceIsTheSmallerOne(t *testing.T) {
	pod := mkPod("u1", "web", "app")
	pod.Spec.TerminationGracePeriodSeconds = i64(5)
	s := newStartedSim(t, pod, "img-app:1")
	s.d.Shutdown = map[types.UID]ShutdownStop{"u1": {Since: s.now, MaxGrace: 20 * time.Second}}
	s.advance(2 * time.Second)
	eq(t, "pod grace", s.step()[:1], []string{"kill u1/app grace=3s (NodeShutdown)"})

	s2 := newSim(t, mkPod("u1", "web", "app"))
	s2.present("img-app:1")
	s2.step()
	s2.d.Shutdown = map[types.UID]ShutdownStop{"u1": {Since: s2.now, MaxGrace: 0}}
	eq(t, "zero bound", s2.step()[:1], []string{"kill u1/app grace=0s (NodeShutdown)"})
}

// A cancelled shutdown (or the next boot: the same state is found) starts
// the pod again in a fresh sandbox; its Failed/Terminated status is not a
// terminal phase to keep.
func TestShutdownEndedStartsPodAgain(t *testing.T) {
	s := newStartedSim(t, mkPod("u1", "web", "app"), "img-app:1")
	s.d.Shutdown = map[types.UID]ShutdownStop{"u1": {Since: s.now, MaxGrace: 10 * time.Second}}
	s.step()
	s.step()
	if st := s.status("u1"); st.Phase != v1.PodFailed || st.Reason != NodeShutdownReason {
		t.Fatalf("status %s %s", st.Phase, st.Reason)
	}
	s.d.Shutdown = nil
	s.advance(time.Minute)
	eq(t, "again", s.step(), []string{"sandbox u1 #1", "start u1/app #1"})
	s.step()
	st := s.status("u1")
	if st.Phase != v1.PodRunning || st.Reason != "" || hasCondition(st, v1.DisruptionTarget, v1.PodReasonTerminationByKubelet) {
		t.Fatalf("after the shutdown: %s %q %+v", st.Phase, st.Reason, st.Conditions)
	}
}

// Other terminal phases stay terminal (the exception is only the shutdown's).
func TestStickyTerminal(t *testing.T) {
	for _, c := range []struct {
		st   v1.PodStatus
		want bool
	}{
		{v1.PodStatus{Phase: v1.PodRunning}, false},
		{v1.PodStatus{Phase: v1.PodSucceeded}, true},
		{v1.PodStatus{Phase: v1.PodFailed, Reason: ReasonDeadlineExceeded}, true},
		{v1.PodStatus{Phase: v1.PodFailed, Reason: NodeShutdownReason, Message: "other"}, true},
		{v1.PodStatus{Phase: v1.PodFailed, Reason: NodeShutdownReason, Message: NodeShutdownMessage}, false},
		{v1.PodStatus{Phase: v1.PodFailed, Reason: NodeShutdownRejectedReason, Message: NodeShutdownRejectedMessage}, false},
	} {
		if got := stickyTerminal(&c.st); got != c.want {
			t.Errorf("%+v: sticky=%v, want %v", c.st, got, c.want)
		}
	}
}

// A pod already being deleted when the shutdown starts gets the shutdown's
// bound when it is shorter than what its own grace leaves.
func TestShutdownBoundsATerminatingPod(t *testing.T) {
	s := newStartedSim(t, mkPod("u1", "web", "app"), "img-app:1")
	s.o.Pods["u1"].Termination = &Termination{Since: s.now, Deadline: s.now.Add(30 * time.Second), Reason: ReasonDeleted}
	delete(s.d.Pods, "u1")
	s.d.Shutdown = map[types.UID]ShutdownStop{"u1": {Since: s.now, MaxGrace: 5 * time.Second}}
	s.advance(time.Second)
	eq(t, "bounded", s.step(), []string{"kill u1/app grace=4s (Deleted)"})
	eq(t, "removed as usual", s.step(), []string{"stopsandbox u1", "removepod u1"})
}

// A pod that appears while the node shuts down is not started and reads
// as the kubelet's admission rejects it; it starts once the shutdown ends.
func TestShutdownRejectsNewPod(t *testing.T) {
	s := newSim(t, mkPod("u1", "late", "app"))
	s.present("img-app:1")
	s.d.Shutdown = map[types.UID]ShutdownStop{"u1": {Since: s.now, Rejected: true}}
	eq(t, "not started", s.step(), nil)
	st := s.status("u1")
	if st.Phase != v1.PodFailed || st.Reason != NodeShutdownRejectedReason || st.Message != NodeShutdownRejectedMessage {
		t.Fatalf("status %s %q %q", st.Phase, st.Reason, st.Message)
	}
	if !s.shutdownPlan("u1").ShutdownStopped {
		t.Fatal("nothing runs, yet not stopped")
	}
	s.d.Shutdown = nil
	eq(t, "after", s.step(), []string{"cgroup u1", "sandbox u1 #0", "start u1/app #0"})
}

// A pod already finished for good keeps its phase and reason through a
// shutdown, so it does not start again after it.
func TestShutdownKeepsAFinishedPod(t *testing.T) {
	pod := mkPod("u1", "job", "app")
	pod.Spec.RestartPolicy = v1.RestartPolicyNever
	s := newStartedSim(t, pod, "img-app:1")
	s.exit("u1", "app", 0, "Completed")
	s.step()
	s.step()
	s.wantPhase("u1", v1.PodSucceeded)
	s.d.Shutdown = map[types.UID]ShutdownStop{"u1": {Since: s.now, MaxGrace: 10 * time.Second}}
	eq(t, "nothing to stop", s.step(), nil)
	if st := s.status("u1"); st.Phase != v1.PodSucceeded || st.Reason == NodeShutdownReason ||
		hasCondition(st, v1.DisruptionTarget, v1.PodReasonTerminationByKubelet) {
		t.Fatalf("during the shutdown: %s %q", st.Phase, st.Reason)
	}
	s.d.Shutdown = nil
	eq(t, "not started again", s.step(), nil)
}
