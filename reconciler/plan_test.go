package reconciler

import (
	"reflect"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

func TestDropCreatesInOrder(t *testing.T) {
	pod := mkPod("u1", "web", "app", "side")
	s := newSim(t, pod)
	// Nothing on the node: cgroup, every pull, sandbox, all app containers,
	// in one chain.
	eq(t, "first plan", s.step(), []string{
		"cgroup u1", "pull img-app:1", "pull img-side:1", "sandbox u1 #0",
		"start u1/app #0", "start u1/side #0",
	})
	if got := s.status("u1").Phase; got != v1.PodPending {
		t.Fatalf("phase before anything ran = %s, want Pending", got)
	}
	// Everything runs now: the next plan is empty, status Running + Ready.
	eq(t, "steady", s.step(), nil)
	st := s.status("u1")
	if st.Phase != v1.PodRunning || !conditionTrue(st, v1.PodReady) || st.PodIP != "10.88.0.2" || st.HostIP != "10.0.0.1" {
		t.Fatalf("status = %+v", st)
	}
	if cs := st.ContainerStatuses[0]; cs.ContainerID == "" || cs.ContainerID[:14] != "minikubelet://" || !cs.Ready || !*cs.Started || cs.ImageID != "sha256:img-app:1" {
		t.Fatalf("container status = %+v", cs)
	}
	for _, r := range []string{"Scheduled", "Pulling", "Created", "Started"} {
		if !s.hasEvent(r, "") {
			t.Errorf("no %s event in %+v", r, s.events)
		}
	}
	if !s.last.NextWake.IsZero() {
		t.Fatalf("a running pod needs no timer, NextWake=%v", s.last.NextWake)
	}
}

func TestPresentImagesAreNotPulled(t *testing.T) {
	s := newSim(t, mkPod("u1", "web", "app"))
	s.present("img-app:1")
	eq(t, "first plan", s.step(), []string{"cgroup u1", "sandbox u1 #0", "start u1/app #0"})
	if !s.hasEvent("Pulled", `Container image "img-app:1" already present on machine`) {
		t.Fatalf("no Pulled event: %+v", s.events)
	}
}

func TestPullPolicyAlwaysAndNever(t *testing.T) {
	pod := mkPod("u1", "web", "a", "b")
	pod.Spec.Containers[0].ImagePullPolicy = v1.PullAlways
	pod.Spec.Containers[1].ImagePullPolicy = v1.PullNever
	s := newSim(t, pod)
	s.d.Pods["u1"].SeenAt = t0
	s.present("img-a:1") // present but pulled before the pod was seen
	eq(t, "Never blocks the sandbox", s.step(), []string{"cgroup u1", "pull img-a:1"})
	st := s.status("u1")
	if w := st.ContainerStatuses[1].State.Waiting; w == nil || w.Reason != "ErrImageNeverPull" {
		t.Fatalf("b waiting = %+v", st.ContainerStatuses[1].State)
	}
	s.present("img-b:1")
	eq(t, "a was pulled since seen", s.step(), []string{"sandbox u1 #0", "start u1/a #0", "start u1/b #0"})
}

func TestInFlightIsNotIssuedTwice(t *testing.T) {
	s := newSim(t, mkPod("u1", "web", "app"))
	s.present("img-app:1")
	s.o.InFlight[RunSandbox{UID: "u1"}.Key()] = struct{}{}
	r := s.plan()
	var got []string
	for _, a := range r.Pods[0].Actions {
		got = append(got, describe(a))
	}
	// The sandbox is being created: nothing that needs it follows.
	eq(t, "in flight", got, []string{"cgroup u1"})

	// A pull shared by two pods is issued once.
	s2 := newSim(t, mkPod("u1", "a", "app"), mkPod("u2", "b", "app"))
	eq(t, "shared pull", s2.step(), []string{"cgroup u1", "pull img-app:1", "sandbox u1 #0", "start u1/app #0", "cgroup u2"})
	eq(t, "second pod follows", s2.step(), []string{"sandbox u2 #0", "start u2/app #0"})
}

func TestInitContainersOneByOne(t *testing.T) {
	pod := mkPod("u1", "web", "app1", "app2")
	pod.Spec.InitContainers = []v1.Container{mkContainer("init1"), mkContainer("init2")}
	s := newSim(t, pod)
	s.present("img-app1:1", "img-app2:1", "img-init1:1", "img-init2:1")
	eq(t, "create", s.step(), []string{"cgroup u1", "sandbox u1 #0", "start u1/init1 #0 init"})
	ready, status, _ := KubectlStatusAt(&v1.Pod{Spec: pod.Spec, Status: *s.status("u1")}, s.now)
	if ready != "0/2" || status != "Init:0/2" {
		t.Fatalf("kubectl during init1 = %s %s", ready, status)
	}
	eq(t, "init1 runs", s.step(), nil)
	s.advance(time.Second)
	s.exit("u1", "init1", 0, "Completed")
	eq(t, "init1 done", s.step(), []string{"start u1/init2 #0 init"})
	s.advance(time.Second)
	s.exit("u1", "init2", 0, "Completed")
	eq(t, "init2 done", s.step(), []string{"start u1/app1 #0", "start u1/app2 #0"})
	eq(t, "running", s.step(), nil)
	st := s.status("u1")
	if st.Phase != v1.PodRunning || !conditionTrue(st, v1.PodInitialized) {
		t.Fatalf("status = %+v", st)
	}
	if !st.InitContainerStatuses[0].Ready || st.InitContainerStatuses[0].State.Terminated.Reason != "Completed" {
		t.Fatalf("init status = %+v", st.InitContainerStatuses[0])
	}
}

func TestInitFailure(t *testing.T) {
	for _, tc := range []struct {
		policy    v1.RestartPolicy
		want      []string
		phase     v1.PodPhase
		kubectlSt string
	}{
		// Never: the pod fails; nothing restarts, the sandbox is released.
		{v1.RestartPolicyNever, []string{"terminating u1 grace=30s (Completed)", "stopsandbox u1"}, v1.PodFailed, "Init:Error"},
		// OnFailure / Always: the init container restarts (first at once).
		{v1.RestartPolicyOnFailure, []string{"start u1/init #1 init"}, v1.PodPending, "Init:Error"},
		{v1.RestartPolicyAlways, []string{"start u1/init #1 init"}, v1.PodPending, "Init:Error"},
	} {
		t.Run(string(tc.policy), func(t *testing.T) {
			pod := mkPod("u1", "web", "app")
			pod.Spec.RestartPolicy = tc.policy
			pod.Spec.InitContainers = []v1.Container{mkContainer("init")}
			s := newStartedSim(t, pod, "img-app:1", "img-init:1")
			s.exit("u1", "init", 1, "Error")
			r := s.plan()
			st := s.status("u1")
			_, status, _ := KubectlStatusAt(&v1.Pod{Spec: pod.Spec, Status: *st}, s.now)
			var got []string
			for _, a := range r.Pods[0].Actions {
				got = append(got, describe(a))
			}
			eq(t, "after init failure", got, tc.want)
			if st.Phase != tc.phase || status != tc.kubectlSt {
				t.Fatalf("phase %s kubectl %q, want %s %q", st.Phase, status, tc.phase, tc.kubectlSt)
			}
			if tc.policy != v1.RestartPolicyNever {
				// Second failure waits 10 s: Init:CrashLoopBackOff.
				for _, a := range r.Pods[0].Actions {
					s.exec(a)
				}
				s.advance(time.Second)
				s.exit("u1", "init", 1, "Error")
				eq(t, "backoff", s.step(), nil)
				_, status, _ = KubectlStatusAt(&v1.Pod{Spec: pod.Spec, Status: *s.status("u1")}, s.now)
				if status != "Init:CrashLoopBackOff" || !s.last.NextWake.Equal(s.now.Add(10*time.Second)) {
					t.Fatalf("kubectl %q wake %v", status, s.last.NextWake)
				}
			}
		})
	}
}

func TestSidecars(t *testing.T) {
	pod := mkPod("u1", "web", "app")
	side1, side2 := mkContainer("side1"), mkContainer("side2")
	side1.RestartPolicy, side2.RestartPolicy = always(), always()
	side2.StartupProbe = &v1.Probe{PeriodSeconds: 1}
	pod.Spec.InitContainers = []v1.Container{side1, mkContainer("init"), side2}
	s := newSim(t, pod)
	s.present("img-app:1", "img-side1:1", "img-side2:1", "img-init:1")
	eq(t, "create", s.step(), []string{"cgroup u1", "sandbox u1 #0", "start u1/side1 #0 sidecar"})
	// side1 has no startup probe: started means running; the regular init
	// container follows while side1 keeps running.
	eq(t, "side1 started", s.step(), []string{"start u1/init #0 init"})
	s.exit("u1", "init", 0, "Completed")
	eq(t, "init done", s.step(), []string{"start u1/side2 #0 sidecar"})
	// side2's startup probe has not passed: the app waits.
	eq(t, "side2 not started", s.step(), nil)
	if st := s.status("u1"); st.Phase != v1.PodPending || conditionTrue(st, v1.PodInitialized) {
		t.Fatalf("waiting for startup probe: %+v", st)
	}
	side2ID := s.running("u1", "side2").ID
	s.o.Pods["u1"].Probes = map[string]ProbeResults{"side2": {Startup: ProbeResult{ContainerID: side2ID, Outcome: ProbeSuccess}}}
	eq(t, "side2 started", s.step(), []string{"start u1/app #0"})
	eq(t, "running", s.step(), nil)
	ready, status, _ := KubectlStatusAt(&v1.Pod{Spec: pod.Spec, Status: *s.status("u1")}, s.now)
	if ready != "3/3" || status != "Running" {
		t.Fatalf("kubectl = %s %s", ready, status)
	}
	// A sidecar exiting after initialization is restarted on its own.
	s.advance(time.Minute)
	s.exit("u1", "side1", 2, "Error")
	eq(t, "side1 restarts", s.step(), []string{"start u1/side1 #1 sidecar"})

	// Deletion: the app first, then the sidecars in reverse order.
	delete(s.d.Pods, "u1")
	eq(t, "delete: app", s.step(), []string{"terminating u1 grace=30s (Deleted)", "kill u1/app grace=30s (Deleted)"})
	eq(t, "delete: side2", s.step(), []string{"kill u1/side2 grace=30s (Deleted)"})
	eq(t, "delete: side1", s.step(), []string{"kill u1/side1 grace=30s (Deleted)"})
	eq(t, "delete: sandbox", s.step(), []string{"stopsandbox u1", "removepod u1"})
	eq(t, "gone", s.step(), nil)
}

func TestCrashLoopBackOffSequence(t *testing.T) {
	run := func(t *testing.T, cfg Config, want []time.Duration) {
		s := newSim(t, mkPod("u1", "web", "app"))
		s.cfg = cfg
		s.present("img-app:1")
		s.step()
		for i, d := range want {
			s.advance(time.Second) // each run lasts 1 s
			s.exit("u1", "app", 1, "Error")
			exitAt := s.now
			acts := s.step()
			if d == 0 {
				eq(t, "immediate restart", acts, []string{"start u1/app #" + u32(uint32(i+1))})
				continue
			}
			eq(t, "in back-off", acts, nil)
			st := s.status("u1").ContainerStatuses[0]
			wantMsg := "back-off " + d.String() + " restarting failed container=app pod=web-node1_default(u1)"
			if st.State.Waiting == nil || st.State.Waiting.Reason != "CrashLoopBackOff" || st.State.Waiting.Message != wantMsg {
				t.Fatalf("restart %d: state %+v, want message %q", i+1, st.State, wantMsg)
			}
			if st.LastTerminationState.Terminated == nil || st.LastTerminationState.Terminated.ExitCode != 1 {
				t.Fatalf("lastState = %+v", st.LastTerminationState)
			}
			if !s.last.NextWake.Equal(exitAt.Add(d)) {
				t.Fatalf("restart %d: wake %v, want exit+%s", i+1, s.last.NextWake, d)
			}
			s.advance(d - time.Nanosecond)
			eq(t, "just before", s.step(), nil)
			s.advance(time.Nanosecond)
			eq(t, "at expiry", s.step(), []string{"start u1/app #" + u32(uint32(i+1))})
		}
		if !s.hasEvent("BackOff", "Back-off restarting failed container app") {
			t.Fatalf("no BackOff event")
		}
	}
	t.Run("kubelet", func(t *testing.T) {
		run(t, DefaultConfig(), []time.Duration{0, 10e9, 20e9, 40e9, 80e9, 160e9, 300e9, 300e9})
	})
	t.Run("crashloop-max=30s", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.CrashLoopMax = 30 * time.Second
		run(t, cfg, []time.Duration{0, 10e9, 20e9, 30e9, 30e9})
	})
}

func TestCrashLoopResetsAfterTenMinutes(t *testing.T) {
	s := newStartedSim(t, mkPod("u1", "web", "app"), "img-app:1")
	for i := 0; i < 3; i++ { // three quick crashes: 0, 10 s, 20 s
		s.advance(time.Second)
		s.exit("u1", "app", 1, "Error")
		s.step()
		s.advance(time.Minute)
		s.step()
	}
	// This run lasts 10 minutes: its exit restarts at once again.
	s.advance(10 * time.Minute)
	s.exit("u1", "app", 1, "Error")
	eq(t, "reset", s.step(), []string{"start u1/app #4"})
	// And the next quick crash waits 10 s, not 40 s.
	s.advance(time.Second)
	s.exit("u1", "app", 1, "Error")
	eq(t, "second of new sequence", s.step(), nil)
	if !s.last.NextWake.Equal(s.now.Add(10 * time.Second)) {
		t.Fatalf("wake %v", s.last.NextWake.Sub(s.now))
	}
}

func TestRestartPolicies(t *testing.T) {
	for _, tc := range []struct {
		policy v1.RestartPolicy
		code   int32
		want   []string
		phase  v1.PodPhase
		kctl   string
	}{
		{v1.RestartPolicyAlways, 0, []string{"start u1/app #1"}, v1.PodRunning, "Completed"},
		{v1.RestartPolicyOnFailure, 0, []string{"terminating u1 grace=30s (Completed)", "stopsandbox u1"}, v1.PodSucceeded, "Completed"},
		{v1.RestartPolicyOnFailure, 1, []string{"start u1/app #1"}, v1.PodRunning, "Error"},
		{v1.RestartPolicyNever, 1, []string{"terminating u1 grace=30s (Completed)", "stopsandbox u1"}, v1.PodFailed, "Error"},
		{v1.RestartPolicyNever, 0, []string{"terminating u1 grace=30s (Completed)", "stopsandbox u1"}, v1.PodSucceeded, "Completed"},
	} {
		t.Run(string(tc.policy)+"/"+u32(uint32(tc.code)), func(t *testing.T) {
			pod := mkPod("u1", "job", "app")
			pod.Spec.RestartPolicy = tc.policy
			s := newStartedSim(t, pod, "img-app:1")
			s.advance(time.Second)
			reason := "Completed"
			if tc.code != 0 {
				reason = "Error"
			}
			s.exit("u1", "app", tc.code, reason)
			r := s.plan()
			var got []string
			for _, a := range r.Pods[0].Actions {
				got = append(got, describe(a))
			}
			eq(t, "after exit", got, tc.want)
			st := s.status("u1")
			_, kctl, _ := KubectlStatusAt(&v1.Pod{Spec: pod.Spec, Status: *st}, s.now)
			if st.Phase != tc.phase || kctl != tc.kctl {
				t.Fatalf("phase %s kubectl %s, want %s %s", st.Phase, kctl, tc.phase, tc.kctl)
			}
			for _, a := range r.Pods[0].Actions {
				s.exec(a)
			}
			if tc.phase == v1.PodSucceeded || tc.phase == v1.PodFailed {
				// Terminal stays terminal and nothing more happens.
				s.advance(time.Hour)
				eq(t, "terminal is quiet", s.step(), nil)
				if got := s.status("u1").Phase; got != tc.phase {
					t.Fatalf("phase moved to %s", got)
				}
			}
		})
	}
}

func TestOnFailureWaitsForAllContainers(t *testing.T) {
	pod := mkPod("u1", "job", "a", "b")
	pod.Spec.RestartPolicy = v1.RestartPolicyOnFailure
	s := newStartedSim(t, pod, "img-a:1", "img-b:1")
	s.exit("u1", "a", 0, "Completed")
	eq(t, "a done, b runs", s.step(), nil)
	s.wantPhase("u1", v1.PodRunning)
	s.exit("u1", "b", 0, "Completed")
	eq(t, "all done", s.step(), []string{"terminating u1 grace=30s (Completed)", "stopsandbox u1"})
	if st := s.status("u1"); st.Phase != v1.PodSucceeded || st.Conditions[2].Reason != "PodCompleted" {
		t.Fatalf("status %+v", st)
	}
}

func TestDeleteWithGraceAndPreStop(t *testing.T) {
	pod := mkPod("u1", "web", "app", "plain")
	pod.Spec.TerminationGracePeriodSeconds = i64(20)
	pod.Spec.Containers[0].Lifecycle = &v1.Lifecycle{PreStop: &v1.LifecycleHandler{Sleep: &v1.SleepAction{Seconds: 5}}}
	s := newStartedSim(t, pod, "img-app:1", "img-plain:1")
	delete(s.d.Pods, "u1")
	s.advance(time.Second)
	r := s.plan()
	var got []string
	for _, a := range r.Pods[0].Actions {
		got = append(got, describe(a))
	}
	eq(t, "delete", got, []string{
		"terminating u1 grace=20s (Deleted)",
		"kill u1/app grace=20s prestop (Deleted)",
		"kill u1/plain grace=20s (Deleted)",
	})
	k := r.Pods[0].Actions[1].(KillContainer)
	if k.MinGraceAfterPreStop != 2*time.Second {
		t.Fatalf("min grace after preStop = %s", k.MinGraceAfterPreStop)
	}
	if !r.Pods[0].Terminating || !r.NextWake.Equal(s.now.Add(20*time.Second)) {
		t.Fatalf("terminating=%v wake=%v", r.Pods[0].Terminating, r.NextWake)
	}
	// The shell records the termination; the kills are in flight.
	s.exec(r.Pods[0].Actions[0])
	for _, a := range r.Pods[0].Actions[1:] {
		s.o.InFlight[a.Key()] = struct{}{}
	}
	s.advance(5 * time.Second)
	eq(t, "kills in flight", s.step(), nil)
	// The daemon restarted: nothing in flight any more; the kills are
	// reissued with what is left of the grace period (15 s), the preStop
	// not again once it ran.
	s.o.InFlight = map[string]struct{}{}
	s.o.Pods["u1"].PreStop = map[string]HookState{r.Pods[0].Actions[1].(KillContainer).ID: HookDone}
	eq(t, "after daemon restart", s.step(), []string{
		"kill u1/app grace=15s (Deleted)",
		"kill u1/plain grace=15s (Deleted)",
	})
	eq(t, "stopped", s.step(), []string{"stopsandbox u1", "removepod u1"})
	if !s.hasEvent("Killing", "Stopping container app") {
		t.Fatalf("no Killing event")
	}
	if len(s.o.Pods) != 0 {
		t.Fatalf("pod left: %+v", s.o.Pods)
	}
}

func TestGraceExpiredKillsAtOnce(t *testing.T) {
	pod := mkPod("u1", "web", "app")
	s := newStartedSim(t, pod, "img-app:1")
	s.o.Pods["u1"].Termination = &Termination{Since: s.now, Deadline: s.now.Add(30 * time.Second), Reason: "Deleted"}
	delete(s.d.Pods, "u1")
	s.advance(time.Minute)
	eq(t, "past deadline", s.step(), []string{"kill u1/app grace=0s (Deleted)"})
}

func TestEditReplacesOnlyWhenNewImagesPresent(t *testing.T) {
	old := mkPod("old", "web", "app")
	s := newStartedSim(t, old, "img-app:1")
	// The file changes: new UID, same name, new image.
	nw := mkPod("new", "web", "app")
	nw.Spec.Containers[0].Image = "img-app:2"
	delete(s.d.Pods, "old")
	s.want(nw)
	eq(t, "pull first, old untouched", s.step(), []string{"pull img-app:2"})
	eq(t, "image here: stop old", s.step(), []string{"terminating old grace=30s (Replaced)", "kill old/app grace=30s (Replaced)"})
	if st := s.status("new"); st.Phase != v1.PodPending || st.ContainerStatuses[0].State.Waiting.Reason != "ContainerCreating" {
		t.Fatalf("new pod waits: %+v", st)
	}
	eq(t, "old stopped", s.step(), []string{"stopsandbox old", "removepod old"})
	eq(t, "new starts", s.step(), []string{"cgroup new", "sandbox new #0", "start new/app #0"})
	eq(t, "settled", s.step(), nil)
}

func TestBadImageOnUpdateKeepsOldPod(t *testing.T) {
	old := mkPod("old", "web", "app")
	s := newStartedSim(t, old, "img-app:1")
	nw := mkPod("new", "web", "app")
	nw.Spec.Containers[0].Image = "img-app:typo"
	s.badImages["img-app:typo"] = "manifest unknown"
	delete(s.d.Pods, "old")
	s.want(nw)
	eq(t, "pull fails", s.step(), []string{"pull img-app:typo"})
	eq(t, "back-off, old untouched", s.step(), nil)
	st := s.status("new")
	w := st.ContainerStatuses[0].State.Waiting
	if w == nil || w.Reason != "ErrImagePull" || w.Message != "manifest unknown" {
		t.Fatalf("new pod waiting = %+v", st.ContainerStatuses[0].State)
	}
	if !s.last.NextWake.Equal(s.now.Add(10 * time.Second)) {
		t.Fatalf("wake %v", s.last.NextWake.Sub(s.now))
	}
	s.advance(10 * time.Second)
	eq(t, "retry", s.step(), []string{"pull img-app:typo"})
	eq(t, "second back-off", s.step(), nil)
	_, kst, _ := KubectlStatusAt(&v1.Pod{Spec: nw.Spec, Status: *s.status("new")}, s.now)
	if kst != "ImagePullBackOff" || !s.last.NextWake.Equal(s.now.Add(20*time.Second)) {
		t.Fatalf("kubectl %q wake %v", kst, s.last.NextWake.Sub(s.now))
	}
	// The old pod kept running and is still restarted when it crashes.
	if s.status("old").Phase != v1.PodRunning || s.running("old", "app") == nil {
		t.Fatalf("old pod was touched")
	}
	s.exit("old", "app", 1, "Error")
	eq(t, "old restarts", s.step(), []string{"start old/app #1"})
	if !s.hasEvent("Failed", `Failed to pull image "img-app:typo": manifest unknown`) || !s.hasEvent("BackOff", `Back-off pulling image "img-app:typo"`) {
		t.Fatalf("events %+v", s.events)
	}
}

func TestSandboxDeath(t *testing.T) {
	pod := mkPod("u1", "web", "app")
	pod.Spec.InitContainers = []v1.Container{mkContainer("init")}
	s := newStartedSim(t, pod, "img-app:1", "img-init:1")
	s.exit("u1", "init", 0, "Completed")
	s.step()
	s.step()
	s.o.Pods["u1"].Sandbox.State = SandboxExited
	eq(t, "kill what runs in it", s.step(), []string{"kill u1/app grace=0s (SandboxChanged)"})
	// Recreated with a new attempt; init containers run again (kubelet does
	// on a sandbox change), restart counts continue.
	eq(t, "recreate", s.step(), []string{"stopsandbox u1", "sandbox u1 #1", "start u1/init #1 init"})
	s.exit("u1", "init", 0, "Completed")
	eq(t, "app again", s.step(), []string{"start u1/app #1"})
	if !s.hasEvent("SandboxChanged", "Pod sandbox changed") {
		t.Fatal("no SandboxChanged event")
	}
	s.step()
	st := s.status("u1")
	if st.ContainerStatuses[0].RestartCount != 1 {
		t.Fatalf("restartCount %d", st.ContainerStatuses[0].RestartCount)
	}
}

func TestSandboxDeathUnderNeverIsFinal(t *testing.T) {
	pod := mkPod("u1", "job", "app")
	pod.Spec.RestartPolicy = v1.RestartPolicyNever
	s := newStartedSim(t, pod, "img-app:1")
	s.o.Pods["u1"].Sandbox.State = SandboxExited
	eq(t, "kill", s.step(), []string{"kill u1/app grace=0s (SandboxChanged)"})
	eq(t, "no recreation", s.step(), []string{"terminating u1 grace=30s (Completed)", "stopsandbox u1"})
	s.wantPhase("u1", v1.PodFailed)
}

func TestAdoptionAfterDaemonRestart(t *testing.T) {
	pod := mkPod("u1", "web", "app")
	s := newStartedSim(t, pod, "img-app:1")
	s.step()
	s.step()
	prev := s.o.PrevStatus["u1"]
	nEvents := len(s.last.Events) // a steady pod's plan reports nothing
	// A fresh daemon: same observed node, no in-memory anything, the
	// persisted status read back.
	fresh := Observed{Pods: s.o.Pods, Images: s.o.Images, PrevStatus: map[types.UID]*v1.PodStatus{"u1": prev}, HostIP: "10.0.0.1"}
	r := Plan(s.d, fresh, s.now.Add(time.Hour), Config{})
	if len(r.Pods) != 1 || len(r.Pods[0].Actions) != 0 {
		t.Fatalf("adoption issued actions: %+v", r.Pods)
	}
	if len(r.Events) != 0 || nEvents != 0 {
		t.Fatalf("adoption repeated events: %+v", r.Events)
	}
	if r.Pods[0].Status.Phase != v1.PodRunning || !r.Pods[0].Status.StartTime.Time.Equal(t0) {
		t.Fatalf("status %+v", r.Pods[0].Status)
	}
	// Without a persisted status (state lost) still no action.
	fresh.PrevStatus = nil
	if r := Plan(s.d, fresh, s.now, Config{}); len(r.Pods[0].Actions) != 0 {
		t.Fatalf("actions %+v", r.Pods[0].Actions)
	}
}

func TestExitWhileDaemonWasDown(t *testing.T) {
	s := newStartedSim(t, mkPod("u1", "web", "app"), "img-app:1")
	s.step()
	// The container exited 3 while the daemon was down (exit record kept).
	s.advance(time.Minute)
	s.exit("u1", "app", 3, "Error")
	s.advance(time.Minute)
	eq(t, "restarted, reported", s.step(), []string{"start u1/app #1"})
	s.step()
	lt := s.status("u1").ContainerStatuses[0].LastTerminationState.Terminated
	if lt == nil || lt.ExitCode != 3 {
		t.Fatalf("lastState %+v", lt)
	}
}

func TestHalfCreated(t *testing.T) {
	t.Run("slice without sandbox", func(t *testing.T) {
		s := newSim(t, mkPod("u1", "web", "app"))
		s.present("img-app:1")
		s.o.Pods["u1"] = &ObservedPod{UID: "u1", Namespace: "default", Name: "web-node1", SliceExists: true}
		eq(t, "completed", s.step(), []string{"sandbox u1 #0", "start u1/app #0"})
	})
	t.Run("sandbox scope without process", func(t *testing.T) {
		s := newSim(t, mkPod("u1", "web", "app"))
		s.present("img-app:1")
		s.o.Pods["u1"] = &ObservedPod{UID: "u1", Namespace: "default", Name: "web-node1", SliceExists: true,
			Sandbox: Sandbox{ID: "sb0", State: SandboxExited}}
		eq(t, "replaced", s.step(), []string{"stopsandbox u1", "sandbox u1 #1", "start u1/app #0"})
	})
	t.Run("container created, never started", func(t *testing.T) {
		s := newStartedSim(t, mkPod("u1", "web", "app"), "img-app:1")
		c := s.running("u1", "app")
		c.State, c.StartedAt = ContainerCreated, time.Time{}
		s.o.InFlight[CreateAndStartContainer{UID: "u1", Name: "app", Attempt: 0}.Key()] = struct{}{}
		eq(t, "start in flight", s.step(), nil)
		s.o.InFlight = map[string]struct{}{}
		eq(t, "stale", s.step(), []string{"rm u1/" + c.ID})
		eq(t, "fresh", s.step(), []string{"start u1/app #0"})
	})
	t.Run("orphan without spec", func(t *testing.T) {
		s := newSim(t)
		s.o.Pods["x"] = &ObservedPod{UID: "x", SliceExists: true}
		r := s.plan()
		if len(r.Pods) != 1 || r.Pods[0].Status != nil {
			t.Fatalf("%+v", r.Pods)
		}
		eq(t, "collected", s.step(), []string{"cleanup x"})
		eq(t, "gone", s.step(), nil)
	})
	t.Run("deleted while down, spec on disk", func(t *testing.T) {
		pod := mkPod("u1", "web", "app")
		s := newStartedSim(t, pod, "img-app:1")
		delete(s.d.Pods, "u1")
		eq(t, "graceful", s.step(), []string{"terminating u1 grace=30s (Deleted)", "kill u1/app grace=30s (Deleted)"})
	})
}

func TestActiveDeadline(t *testing.T) {
	pod := mkPod("u1", "job", "app", "b")
	pod.Spec.ActiveDeadlineSeconds = i64(60)
	s := newStartedSim(t, pod, "img-app:1", "img-b:1")
	s.advance(59 * time.Second)
	eq(t, "before", s.step(), nil)
	if !s.last.NextWake.Equal(t0.Add(60 * time.Second)) {
		t.Fatalf("wake %v", s.last.NextWake)
	}
	s.advance(time.Second)
	eq(t, "deadline", s.step(), []string{
		"terminating u1 grace=30s (DeadlineExceeded)",
		"kill u1/app grace=30s (DeadlineExceeded)", "kill u1/b grace=30s (DeadlineExceeded)",
	})
	st := s.status("u1")
	if st.Phase != v1.PodFailed || st.Reason != "DeadlineExceeded" {
		t.Fatalf("status %s %s", st.Phase, st.Reason)
	}
	eq(t, "sandbox", s.step(), []string{"stopsandbox u1"})
	eq(t, "quiet", s.step(), nil)
	_, kst, _ := KubectlStatusAt(&v1.Pod{Spec: pod.Spec, Status: *s.status("u1")}, s.now)
	// printPod lets the containers' terminated reason override the pod's
	// (kubectl shows the killed container's Error here too).
	if kst != "Error" {
		t.Fatalf("kubectl %s", kst)
	}
}

func TestLivenessFailureRestarts(t *testing.T) {
	pod := mkPod("u1", "web", "app")
	pod.Spec.Containers[0].LivenessProbe = &v1.Probe{TerminationGracePeriodSeconds: i64(5)}
	s := newStartedSim(t, pod, "img-app:1")
	id := s.running("u1", "app").ID
	s.o.Pods["u1"].Probes = map[string]ProbeResults{"app": {Liveness: ProbeResult{ContainerID: id, Outcome: ProbeFailure, ConsecutiveFailures: 3, Output: "HTTP probe failed with statuscode: 500"}}}
	eq(t, "kill", s.step(), []string{"kill u1/app grace=5s (livenessProbeFailed)"})
	eq(t, "restart", s.step(), []string{"start u1/app #1"})
	// The old instance's failure does not kill the new one.
	eq(t, "new instance untouched", s.step(), nil)
	if !s.hasEvent("Unhealthy", "Liveness probe failed: HTTP probe failed with statuscode: 500") ||
		!s.hasEvent("Killing", "Container app failed liveness probe, will be restarted") {
		t.Fatalf("events %+v", s.events)
	}
}

func TestReadinessDrivesReady(t *testing.T) {
	pod := mkPod("u1", "web", "app")
	pod.Spec.Containers[0].ReadinessProbe = &v1.Probe{}
	s := newStartedSim(t, pod, "img-app:1")
	s.step()
	st := s.status("u1")
	if conditionTrue(st, v1.PodReady) || st.Conditions[2].Message != "containers with unready status: [app]" {
		t.Fatalf("ready before probe: %+v", st.Conditions)
	}
	readyAt := st.Conditions[2].LastTransitionTime
	s.advance(time.Second)
	s.step()
	if s.status("u1").Conditions[2].LastTransitionTime != readyAt {
		t.Fatal("transition time moved without a transition")
	}
	id := s.running("u1", "app").ID
	s.o.Pods["u1"].Probes = map[string]ProbeResults{"app": {Readiness: ProbeResult{ContainerID: id, Outcome: ProbeFailure, ConsecutiveFailures: 3, Output: "connection refused"}}}
	eq(t, "readiness never kills", s.step(), nil)
	if !s.hasEvent("Unhealthy", "Readiness probe failed: connection refused") {
		t.Fatalf("events %+v", s.events)
	}
	s.o.Pods["u1"].Probes = map[string]ProbeResults{"app": {Readiness: ProbeResult{ContainerID: id, Outcome: ProbeSuccess}}}
	s.step()
	if st := s.status("u1"); !conditionTrue(st, v1.PodReady) || !st.Conditions[2].LastTransitionTime.Time.Equal(s.now) {
		t.Fatalf("not ready after probe: %+v", st.Conditions)
	}
}

func TestInvalidManifestKeepsPod(t *testing.T) {
	s := newStartedSim(t, mkPod("u1", "web", "app"), "img-app:1")
	s.step()
	s.d.Pods["u1"].Error = "spec.containers[0].image: Required value"
	s.d.FileErrors = map[string]string{"/m/other.yaml": "kind: Deployment is not a Pod"}
	r := s.plan()
	if len(r.Pods[0].Actions) != 0 || r.Pods[0].InvalidManifest == "" {
		t.Fatalf("%+v", r.Pods[0])
	}
	if !s.hasEvent("InvalidManifest", "spec.containers[0].image: Required value") || !s.hasEvent("InvalidManifest", "/m/other.yaml") {
		t.Fatalf("events %+v", s.events)
	}
}

func TestOOMKilledEvent(t *testing.T) {
	s := newStartedSim(t, mkPod("u1", "web", "app"), "img-app:1")
	s.step()
	s.exit("u1", "app", 137, "OOMKilled")
	s.step()
	if !s.hasEvent("OOMKilling", "app") {
		t.Fatalf("events %+v", s.events)
	}
}

func TestPlanIsDeterministic(t *testing.T) {
	s := newSim(t)
	for i := 0; i < 50; i++ {
		p := mkPod("u"+u32(uint32(i)), "p"+u32(uint32(i)), "a", "b")
		s.want(p)
	}
	s.step()
	a := Plan(s.d, s.o, s.now, s.cfg)
	for i := 0; i < 5; i++ {
		b := Plan(s.d, s.o, s.now, s.cfg)
		if !reflect.DeepEqual(a, b) {
			t.Fatal("same inputs, different plans")
		}
	}
	for i := 1; i < len(a.Pods); i++ {
		if a.Pods[i-1].UID >= a.Pods[i].UID {
			t.Fatal("pods not sorted")
		}
	}
}

func TestCompletedPodStopsSidecarsLast(t *testing.T) {
	pod := mkPod("u1", "job", "app")
	pod.Spec.RestartPolicy = v1.RestartPolicyOnFailure
	sc := mkContainer("side")
	sc.RestartPolicy = always()
	pod.Spec.InitContainers = []v1.Container{sc}
	s := newStartedSim(t, pod, "img-app:1", "img-side:1")
	s.step()
	s.exit("u1", "app", 0, "Completed")
	eq(t, "app done: the sidecar goes", s.step(), []string{"terminating u1 grace=30s (Completed)", "kill u1/side grace=30s (Completed)"})
	eq(t, "then the sandbox", s.step(), []string{"stopsandbox u1"})
	eq(t, "quiet", s.step(), nil)
	s.wantPhase("u1", v1.PodSucceeded)
}

func TestFileRestoredDuringTermination(t *testing.T) {
	pod := mkPod("u1", "web", "app")
	s := newStartedSim(t, pod, "img-app:1")
	delete(s.d.Pods, "u1")
	eq(t, "deleting", s.step(), []string{"terminating u1 grace=30s (Deleted)", "kill u1/app grace=30s (Deleted)"})
	// The same content comes back: termination completes, then a fresh pod.
	s.want(pod)
	r := s.plan()
	if !r.Pods[0].Terminating {
		t.Fatal("pod being removed is not shown Terminating")
	}
	eq(t, "finish termination", s.step(), []string{"stopsandbox u1", "removepod u1"})
	eq(t, "fresh start", s.step(), []string{"cgroup u1", "sandbox u1 #0", "start u1/app #0"})
}

func TestContainerFromOldSandboxIsKilled(t *testing.T) {
	s := newStartedSim(t, mkPod("u1", "web", "app"), "img-app:1")
	// A crash mid sandbox change left the old container running beside a
	// new sandbox.
	op := s.o.Pods["u1"]
	op.Sandbox = Sandbox{ID: "sb1", Attempt: 1, State: SandboxRunning}
	eq(t, "old one goes first", s.step(), []string{"kill u1/app grace=0s (SandboxChanged)"})
	eq(t, "then a new one", s.step(), []string{"start u1/app #1"})
}

func TestPulledEventAfterPull(t *testing.T) {
	s := newSim(t, mkPod("u1", "web", "app"))
	s.step()
	if !s.hasEvent("Pulling", `Pulling image "img-app:1"`) {
		t.Fatalf("events %+v", s.events)
	}
	// A container start after a pull (a pod whose image came in a previous
	// round) says the pull succeeded.
	s2 := newSim(t, mkPod("u2", "web", "app"))
	s2.o.Images["img-app:1"] = &ImageState{Presence: ImagePresent, PulledAt: t0}
	s2.step()
	if !s2.hasEvent("Pulled", `Successfully pulled image "img-app:1"`) {
		t.Fatalf("events %+v", s2.events)
	}
}

func TestSandboxDeathOnFailureSkipsSucceeded(t *testing.T) {
	pod := mkPod("u1", "job", "a", "b")
	pod.Spec.RestartPolicy = v1.RestartPolicyOnFailure
	s := newStartedSim(t, pod, "img-a:1", "img-b:1")
	s.exit("u1", "a", 0, "Completed")
	s.step()
	s.o.Pods["u1"].Sandbox.State = SandboxExited
	eq(t, "kill b", s.step(), []string{"kill u1/b grace=0s (SandboxChanged)"})
	// kubelet computePodActions: under OnFailure a container that succeeded
	// is not run again in the new sandbox.
	eq(t, "recreate with b only", s.step(), []string{"stopsandbox u1", "sandbox u1 #1", "start u1/b #1"})
}

func TestSandboxDeathUnderNeverAfterInit(t *testing.T) {
	pod := mkPod("u1", "job", "app")
	pod.Spec.RestartPolicy = v1.RestartPolicyNever
	pod.Spec.InitContainers = []v1.Container{mkContainer("init")}
	s := newStartedSim(t, pod, "img-app:1", "img-init:1")
	s.exit("u1", "init", 0, "Completed")
	s.o.Pods["u1"].Sandbox.State = SandboxExited
	// Containers already ran under Never: no new sandbox (kubelet).
	eq(t, "released, not recreated", s.step(), []string{"stopsandbox u1"})
	eq(t, "quiet", s.step(), nil)
}

func TestPullPolicyDefaults(t *testing.T) {
	for img, want := range map[string]v1.PullPolicy{
		"busybox":                 v1.PullAlways,
		"busybox:latest":          v1.PullAlways,
		"busybox:1.36":            v1.PullIfNotPresent,
		"registry:5000/busybox":   v1.PullAlways,
		"registry:5000/busybox:1": v1.PullIfNotPresent,
		"busybox@sha256:0123abcd": v1.PullIfNotPresent,
	} {
		if got := pullPolicy(&v1.Container{Image: img}); got != want {
			t.Errorf("%s: %s, want %s", img, got, want)
		}
	}
	if got := pullPolicy(&v1.Container{Image: "busybox", ImagePullPolicy: v1.PullNever}); got != v1.PullNever {
		t.Errorf("explicit policy overridden: %s", got)
	}
}

func TestBackOffSurvivesDaemonRestart(t *testing.T) {
	s := newStartedSim(t, mkPod("u1", "web", "app"), "img-app:1")
	for i := 0; i < 3; i++ {
		s.advance(time.Second)
		s.exit("u1", "app", 1, "Error")
		s.advance(time.Minute)
		s.step()
	}
	s.advance(time.Second)
	s.exit("u1", "app", 1, "Error")
	// A fresh daemon: only the exit records on disk. The kubelet would
	// restart at once (its back-off is in memory); we resume at 40 s.
	fresh := Observed{Pods: s.o.Pods, Images: s.o.Images}
	r := Plan(s.d, fresh, s.now.Add(time.Second), Config{})
	if len(r.Pods[0].Actions) != 0 || !r.NextWake.Equal(s.now.Add(40*time.Second)) {
		t.Fatalf("actions %v wake +%v", r.Pods[0].Actions, r.NextWake.Sub(s.now))
	}
}

// TestStrayScopesStoppedBeforeANewSandbox (issue 14, chaos scenario 5):
// a pod whose records were lost (garbled or removed state folder) while its
// sandbox and container still ran was recreated beside them: the pod ran
// twice (two sandbox scopes, two workload processes). What runs without
// records is stopped first, and the new sandbox waits for it.
func TestStrayScopesStoppedBeforeANewSandbox(t *testing.T) {
	s := newSim(t, mkPod("u1", "web", "app"))
	s.present("img-app:1")
	op := s.pod("u1")
	op.SliceExists, op.StrayScopes = true, []string{"oldsb", "oldapp"}
	s.o.InFlight[StopStrayScope{UID: "u1", ID: "oldsb"}.Key()] = struct{}{}
	r := s.plan()
	var got []string
	for _, a := range r.Pods[0].Actions {
		got = append(got, describe(a))
	}
	eq(t, "a stray being stopped: nothing follows it yet", got, nil)
	delete(s.o.InFlight, StopStrayScope{UID: "u1", ID: "oldsb"}.Key())
	eq(t, "strays first, then the pod", s.step(), []string{"stopstray u1/oldsb", "stopstray u1/oldapp", "sandbox u1 #0", "start u1/app #0"})
	eq(t, "steady", s.step(), nil)
}
