package reconciler

import (
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func waiting(name, reason string, restarts int32) v1.ContainerStatus {
	return v1.ContainerStatus{Name: name, RestartCount: restarts, State: v1.ContainerState{Waiting: &v1.ContainerStateWaiting{Reason: reason}}}
}

func runningCS(name string, ready bool, restarts int32) v1.ContainerStatus {
	started := true
	return v1.ContainerStatus{Name: name, Ready: ready, Started: &started, RestartCount: restarts,
		State: v1.ContainerState{Running: &v1.ContainerStateRunning{StartedAt: metav1.NewTime(t0)}}}
}

func terminatedCS(name, reason string, code, signal int32) v1.ContainerStatus {
	return v1.ContainerStatus{Name: name, State: v1.ContainerState{Terminated: &v1.ContainerStateTerminated{
		Reason: reason, ExitCode: code, Signal: signal, FinishedAt: metav1.NewTime(t0)}}}
}

func withLast(cs v1.ContainerStatus, finished time.Time) v1.ContainerStatus {
	cs.LastTerminationState.Terminated = &v1.ContainerStateTerminated{ExitCode: 1, Reason: "Error", FinishedAt: metav1.NewTime(finished)}
	return cs
}

func cond(t v1.PodConditionType, ok bool) v1.PodCondition {
	s := v1.ConditionFalse
	if ok {
		s = v1.ConditionTrue
	}
	return v1.PodCondition{Type: t, Status: s}
}

// TestKubectlColumns pins the READY/STATUS/RESTARTS cells against what
// kubectl's printPod prints for the same status.
func TestKubectlColumns(t *testing.T) {
	now := t0.Add(10 * time.Minute)
	twoApps := mkPod("u", "p", "a", "b")
	oneInit := mkPod("u", "p", "a")
	oneInit.Spec.InitContainers = []v1.Container{mkContainer("i")}
	withSidecar := mkPod("u", "p", "a")
	sc := mkContainer("s")
	sc.RestartPolicy = always()
	withSidecar.Spec.InitContainers = []v1.Container{sc}
	deleted := metav1.NewTime(t0)

	for _, tc := range []struct {
		name                    string
		pod                     *v1.Pod
		st                      v1.PodStatus
		deleting                bool
		ready, status, restarts string
	}{
		{"running", twoApps, v1.PodStatus{Phase: v1.PodRunning, Conditions: []v1.PodCondition{cond(v1.PodReady, true)},
			ContainerStatuses: []v1.ContainerStatus{runningCS("a", true, 0), runningCS("b", true, 0)}}, false, "2/2", "Running", "0"},
		{"one not ready", twoApps, v1.PodStatus{Phase: v1.PodRunning,
			ContainerStatuses: []v1.ContainerStatus{runningCS("a", true, 0), runningCS("b", false, 0)}}, false, "1/2", "Running", "0"},
		{"crashloop with restarts ago", twoApps, v1.PodStatus{Phase: v1.PodRunning,
			ContainerStatuses: []v1.ContainerStatus{runningCS("a", true, 0), withLast(waiting("b", "CrashLoopBackOff", 3), now.Add(-2*time.Minute))}},
			false, "1/2", "CrashLoopBackOff", "3 (2m ago)"},
		{"oomkilled", twoApps, v1.PodStatus{Phase: v1.PodRunning,
			ContainerStatuses: []v1.ContainerStatus{terminatedCS("a", "OOMKilled", 137, 0), runningCS("b", true, 0)}}, false, "1/2", "OOMKilled", "0"},
		{"completed", twoApps, v1.PodStatus{Phase: v1.PodSucceeded,
			ContainerStatuses: []v1.ContainerStatus{terminatedCS("a", "Completed", 0, 0), terminatedCS("b", "Completed", 0, 0)}}, false, "0/2", "Completed", "0"},
		{"completed but one runs, ready", twoApps, v1.PodStatus{Phase: v1.PodRunning, Conditions: []v1.PodCondition{cond(v1.PodReady, true)},
			ContainerStatuses: []v1.ContainerStatus{terminatedCS("a", "Completed", 0, 0), runningCS("b", true, 0)}}, false, "1/2", "Running", "0"},
		{"completed but one runs, not ready", twoApps, v1.PodStatus{Phase: v1.PodRunning, Conditions: []v1.PodCondition{cond(v1.PodReady, false)},
			ContainerStatuses: []v1.ContainerStatus{terminatedCS("a", "Completed", 0, 0), runningCS("b", true, 0)}}, false, "1/2", "NotReady", "0"},
		{"error", twoApps, v1.PodStatus{Phase: v1.PodFailed,
			ContainerStatuses: []v1.ContainerStatus{terminatedCS("a", "Error", 1, 0), terminatedCS("b", "Completed", 0, 0)}}, false, "0/2", "Error", "0"},
		{"signal without reason", twoApps, v1.PodStatus{Phase: v1.PodFailed,
			ContainerStatuses: []v1.ContainerStatus{terminatedCS("a", "", 137, 9), terminatedCS("b", "", 2, 0)}}, false, "0/2", "Signal:9", "0"},
		{"exit code without reason", twoApps, v1.PodStatus{Phase: v1.PodFailed,
			ContainerStatuses: []v1.ContainerStatus{runningCS("a", true, 0), terminatedCS("b", "", 2, 0)}}, false, "1/2", "ExitCode:2", "0"},
		{"image pull backoff", twoApps, v1.PodStatus{Phase: v1.PodPending,
			ContainerStatuses: []v1.ContainerStatus{waiting("a", "ImagePullBackOff", 0), waiting("b", "ContainerCreating", 0)}}, false, "0/2", "ImagePullBackOff", "0"},
		{"err image pull", twoApps, v1.PodStatus{Phase: v1.PodPending,
			ContainerStatuses: []v1.ContainerStatus{waiting("a", "ErrImagePull", 0), waiting("b", "ContainerCreating", 0)}}, false, "0/2", "ErrImagePull", "0"},
		// printPod walks containers last to first: the first one's reason wins.
		{"first container's reason wins", twoApps, v1.PodStatus{Phase: v1.PodPending,
			ContainerStatuses: []v1.ContainerStatus{waiting("a", "ContainerCreating", 0), waiting("b", "ErrImagePull", 0)}}, false, "0/2", "ContainerCreating", "0"},
		{"container creating", twoApps, v1.PodStatus{Phase: v1.PodPending,
			ContainerStatuses: []v1.ContainerStatus{waiting("a", "ContainerCreating", 0), waiting("b", "ContainerCreating", 0)}}, false, "0/2", "ContainerCreating", "0"},
		{"terminating", twoApps, v1.PodStatus{Phase: v1.PodRunning, Conditions: []v1.PodCondition{cond(v1.PodReady, true)},
			ContainerStatuses: []v1.ContainerStatus{runningCS("a", true, 0), runningCS("b", true, 0)}}, true, "2/2", "Terminating", "0"},
		{"terminated pods do not show Terminating", twoApps, v1.PodStatus{Phase: v1.PodSucceeded,
			ContainerStatuses: []v1.ContainerStatus{terminatedCS("a", "Completed", 0, 0), terminatedCS("b", "Completed", 0, 0)}}, true, "0/2", "Completed", "0"},
		{"init 0/1", oneInit, v1.PodStatus{Phase: v1.PodPending,
			InitContainerStatuses: []v1.ContainerStatus{runningCS("i", false, 0)},
			ContainerStatuses:     []v1.ContainerStatus{waiting("a", "PodInitializing", 0)}}, false, "0/1", "Init:0/1", "0"},
		{"init waiting PodInitializing counts as N/M", oneInit, v1.PodStatus{Phase: v1.PodPending,
			InitContainerStatuses: []v1.ContainerStatus{waiting("i", "PodInitializing", 0)},
			ContainerStatuses:     []v1.ContainerStatus{waiting("a", "PodInitializing", 0)}}, false, "0/1", "Init:0/1", "0"},
		{"init crashloop", oneInit, v1.PodStatus{Phase: v1.PodPending,
			InitContainerStatuses: []v1.ContainerStatus{withLast(waiting("i", "CrashLoopBackOff", 4), now.Add(-30*time.Second))},
			ContainerStatuses:     []v1.ContainerStatus{waiting("a", "PodInitializing", 0)}}, false, "0/1", "Init:CrashLoopBackOff", "4 (30s ago)"},
		{"init error", oneInit, v1.PodStatus{Phase: v1.PodFailed,
			InitContainerStatuses: []v1.ContainerStatus{terminatedCS("i", "Error", 1, 0)},
			ContainerStatuses:     []v1.ContainerStatus{waiting("a", "PodInitializing", 0)}}, false, "0/1", "Init:Error", "0"},
		{"init exit code", oneInit, v1.PodStatus{Phase: v1.PodFailed,
			InitContainerStatuses: []v1.ContainerStatus{terminatedCS("i", "", 3, 0)},
			ContainerStatuses:     []v1.ContainerStatus{waiting("a", "PodInitializing", 0)}}, false, "0/1", "Init:ExitCode:3", "0"},
		{"pod initializing", oneInit, v1.PodStatus{Phase: v1.PodPending,
			InitContainerStatuses: []v1.ContainerStatus{terminatedCS("i", "Completed", 0, 0)},
			ContainerStatuses:     []v1.ContainerStatus{waiting("a", "PodInitializing", 0)}}, false, "0/1", "PodInitializing", "0"},
		{"sidecar counted in READY, restarts kept after init", withSidecar, v1.PodStatus{Phase: v1.PodRunning,
			Conditions:            []v1.PodCondition{cond(v1.PodInitialized, true), cond(v1.PodReady, true)},
			InitContainerStatuses: []v1.ContainerStatus{withLast(runningCS("s", true, 2), now.Add(-5*time.Minute))},
			ContainerStatuses:     []v1.ContainerStatus{runningCS("a", true, 0)}}, false, "2/2", "Running", "2 (5m ago)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := tc.pod.DeepCopy()
			pod.Status = tc.st
			if tc.deleting {
				pod.DeletionTimestamp = &deleted
			}
			r, s, n := KubectlStatusAt(pod, now)
			if r != tc.ready || s != tc.status || n != tc.restarts {
				t.Fatalf("got %q %q %q, want %q %q %q", r, s, n, tc.ready, tc.status, tc.restarts)
			}
		})
	}
}

// TestComputeStatusStates checks the container states the plan derives for
// what the runtime reports.
func TestComputeStatusStates(t *testing.T) {
	pod := mkPod("u1", "web", "app")
	obs := func(op *ObservedPod, images map[string]*ImageState) *Observed {
		o := &Observed{Pods: map[types.UID]*ObservedPod{}, Images: images, HostIP: "10.0.0.1"}
		if op != nil {
			op.UID, op.Pod = "u1", pod
			o.Pods["u1"] = op
		}
		return o
	}
	run := Sandbox{ID: "sb0", State: SandboxRunning, IPs: []string{"10.88.0.9"}}
	inst := func(attempt uint32, state ContainerState, code int32, reason string, started, finished time.Time) ContainerInstance {
		return ContainerInstance{ID: "c" + u32(attempt), Name: "app", Attempt: attempt, SandboxID: "sb0", State: state,
			ExitCode: code, Reason: reason, StartedAt: started, FinishedAt: finished, ImageRef: "docker.io/library/img-app:1", ImageID: "sha256:x"}
	}
	for _, tc := range []struct {
		name       string
		o          *Observed
		now        time.Time
		wantState  string // waiting:<reason> running terminated:<reason>
		wantLast   string
		wantPhase  v1.PodPhase
		wantKubect string
	}{
		{"nothing yet", obs(nil, nil), t0, "waiting:ContainerCreating", "", v1.PodPending, "ContainerCreating"},
		{"first pull failed", obs(nil, map[string]*ImageState{"img-app:1": {Presence: ImagePullFailed, Failures: 1, LastFailure: t0, Message: "unauthorized"}}),
			t0.Add(time.Second), "waiting:ErrImagePull", "", v1.PodPending, "ErrImagePull"},
		{"pulls keep failing", obs(nil, map[string]*ImageState{"img-app:1": {Presence: ImagePullFailed, Failures: 3, LastFailure: t0}}),
			t0.Add(time.Second), "waiting:ImagePullBackOff", "", v1.PodPending, "ImagePullBackOff"},
		{"running", obs(&ObservedPod{Sandbox: run, Containers: []ContainerInstance{inst(0, ContainerRunning, 0, "", t0, time.Time{})}},
			map[string]*ImageState{"img-app:1": {Presence: ImagePresent}}), t0, "running", "", v1.PodRunning, "Running"},
		{"restarted", obs(&ObservedPod{Sandbox: run, Containers: []ContainerInstance{
			inst(0, ContainerExited, 1, "Error", t0, t0.Add(time.Second)), inst(1, ContainerRunning, 0, "", t0.Add(2*time.Second), time.Time{})}},
			map[string]*ImageState{"img-app:1": {Presence: ImagePresent}}), t0.Add(3 * time.Second), "running", "Error", v1.PodRunning, "Running"},
		{"oom killed, restart due at once", obs(&ObservedPod{Sandbox: run, Containers: []ContainerInstance{
			inst(0, ContainerExited, 137, "OOMKilled", t0, t0.Add(time.Second))}},
			map[string]*ImageState{"img-app:1": {Presence: ImagePresent}}), t0.Add(time.Second), "terminated:OOMKilled", "", v1.PodRunning, "OOMKilled"},
		{"crash loop", obs(&ObservedPod{Sandbox: run, Containers: []ContainerInstance{
			inst(0, ContainerExited, 1, "Error", t0, t0.Add(time.Second)), inst(1, ContainerExited, 1, "Error", t0.Add(2*time.Second), t0.Add(3*time.Second))}},
			map[string]*ImageState{"img-app:1": {Presence: ImagePresent}}), t0.Add(4 * time.Second), "waiting:CrashLoopBackOff", "Error", v1.PodRunning, "CrashLoopBackOff"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := ComputeStatus(pod, tc.o, tc.now, Config{})
			cs := st.ContainerStatuses[0]
			got := ""
			switch {
			case cs.State.Waiting != nil:
				got = "waiting:" + cs.State.Waiting.Reason
			case cs.State.Running != nil:
				got = "running"
			case cs.State.Terminated != nil:
				got = "terminated:" + cs.State.Terminated.Reason
			}
			last := ""
			if cs.LastTerminationState.Terminated != nil {
				last = cs.LastTerminationState.Terminated.Reason
			}
			p := pod.DeepCopy()
			p.Status = st
			_, kst, _ := KubectlStatusAt(p, tc.now)
			if got != tc.wantState || last != tc.wantLast || st.Phase != tc.wantPhase || kst != tc.wantKubect {
				t.Fatalf("state %q last %q phase %s kubectl %q; want %q %q %s %q", got, last, st.Phase, kst,
					tc.wantState, tc.wantLast, tc.wantPhase, tc.wantKubect)
			}
			if cs.State.Running != nil && (cs.ContainerID == "" || cs.Image != "docker.io/library/img-app:1" || cs.ImageID != "sha256:x" || st.PodIP != "10.88.0.9") {
				t.Fatalf("ids: %+v podIP %s", cs, st.PodIP)
			}
		})
	}
}

func TestConditionsOrderAndInitMessage(t *testing.T) {
	pod := mkPod("u1", "web", "app")
	pod.Spec.InitContainers = []v1.Container{mkContainer("init")}
	st := ComputeStatus(pod, &Observed{}, t0, Config{})
	want := []v1.PodConditionType{v1.PodReadyToStartContainers, v1.PodInitialized, v1.PodReady, v1.ContainersReady, v1.PodScheduled}
	for i, c := range st.Conditions {
		if c.Type != want[i] {
			t.Fatalf("condition %d is %s, want %s", i, c.Type, want[i])
		}
	}
	if c := st.Conditions[1]; c.Status != v1.ConditionFalse || c.Reason != "ContainersNotInitialized" || c.Message != "containers with incomplete status: [init]" {
		t.Fatalf("Initialized = %+v", c)
	}
	if w := st.ContainerStatuses[0].State.Waiting; w == nil || w.Reason != "PodInitializing" {
		t.Fatalf("app waiting %+v", st.ContainerStatuses[0].State)
	}
	if st.StartTime == nil || !st.StartTime.Time.Equal(t0) {
		t.Fatalf("startTime %v", st.StartTime)
	}
}
