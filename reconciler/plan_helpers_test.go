package reconciler

import (
	"fmt"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// t0 is the fake clock's origin; tests move time by adding to it.
var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func i64(n int64) *int64 { return &n }

func always() *v1.ContainerRestartPolicy {
	p := v1.ContainerRestartPolicyAlways
	return &p
}

// mkPod builds a defaulted static pod: containers named by names, image
// "img-<name>:1" (IfNotPresent), restartPolicy Always, grace 30 s.
func mkPod(uid, name string, containers ...string) *v1.Pod {
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-node1", Namespace: "default", UID: types.UID(uid)},
		Spec: v1.PodSpec{
			RestartPolicy:                 v1.RestartPolicyAlways,
			TerminationGracePeriodSeconds: i64(30),
			NodeName:                      "node1",
		},
	}
	for _, c := range containers {
		pod.Spec.Containers = append(pod.Spec.Containers, mkContainer(c))
	}
	return pod
}

func mkContainer(name string) v1.Container {
	return v1.Container{Name: name, Image: "img-" + name + ":1", ImagePullPolicy: v1.PullIfNotPresent}
}

// sim is a fake node: it executes every planned action at once on its
// Observed, the way the IO shell would, so tests can walk a pod's life.
type sim struct {
	t   *testing.T
	d   Desired
	o   Observed
	now time.Time
	cfg Config

	badImages map[string]string // image -> pull error
	last      Result
	seq       int
	events    []Event
	eventKeys map[string]bool
}

func newSim(t *testing.T, pods ...*v1.Pod) *sim {
	s := &sim{t: t, now: t0, cfg: DefaultConfig(), badImages: map[string]string{}, eventKeys: map[string]bool{}}
	s.d.Pods = map[types.UID]*DesiredPod{}
	s.o = Observed{Pods: map[types.UID]*ObservedPod{}, Images: map[string]*ImageState{},
		InFlight: map[string]struct{}{}, PrevStatus: map[types.UID]*v1.PodStatus{}, HostIP: "10.0.0.1", NodeName: "node1"}
	for _, p := range pods {
		s.want(p)
	}
	return s
}

// newStartedSim is a sim for pod whose images are present and whose first
// round ran (cgroup, sandbox and what may start, in one chain).
func newStartedSim(t *testing.T, pod *v1.Pod, images ...string) *sim {
	s := newSim(t, pod)
	s.present(images...)
	s.step()
	return s
}

func (s *sim) want(p *v1.Pod) {
	s.d.Pods[p.UID] = &DesiredPod{Pod: p, Source: "/m/" + p.Name + ".yaml"}
}

func (s *sim) present(images ...string) {
	for _, i := range images {
		s.o.Images[i] = &ImageState{Presence: ImagePresent, ImageID: "sha256:" + i}
	}
}

// plan runs Plan and persists statuses, without executing anything.
func (s *sim) plan() Result {
	s.last = Plan(s.d, s.o, s.now, s.cfg)
	for _, pp := range s.last.Pods {
		if pp.Status != nil {
			s.o.PrevStatus[pp.UID] = pp.Status
		}
	}
	for _, e := range s.last.Events {
		if !s.eventKeys[e.Key] {
			s.eventKeys[e.Key] = true
			s.events = append(s.events, e)
		}
	}
	return s.last
}

// step plans and executes every action; it returns the actions as strings.
func (s *sim) step() []string {
	r := s.plan()
	var out []string
	for _, pp := range r.Pods {
		for _, a := range pp.Actions {
			out = append(out, describe(a))
			s.exec(a)
		}
	}
	return out
}

func (s *sim) pod(uid types.UID) *ObservedPod {
	op := s.o.Pods[uid]
	if op == nil {
		dp := s.d.Pods[uid]
		op = &ObservedPod{UID: uid, Namespace: dp.Pod.Namespace, Name: dp.Pod.Name, Pod: dp.Pod, StateExists: true}
		s.o.Pods[uid] = op
	}
	return op
}

func (s *sim) exec(a Action) {
	switch a := a.(type) {
	case EnsurePodCgroup:
		s.pod(a.UID).SliceExists = true
	case PullImage:
		if msg, bad := s.badImages[a.Image]; bad {
			st := s.o.Images[a.Image]
			if st == nil {
				st = &ImageState{}
				s.o.Images[a.Image] = st
			}
			st.Presence, st.Failures, st.LastFailure, st.Message = ImagePullFailed, st.Failures+1, s.now, msg
			return
		}
		s.o.Images[a.Image] = &ImageState{Presence: ImagePresent, ImageID: "sha256:" + a.Image, PulledAt: s.now}
	case RunSandbox:
		op := s.pod(a.UID)
		op.Sandbox = Sandbox{ID: fmt.Sprintf("sb%d", a.Attempt), Attempt: a.Attempt, State: SandboxRunning, PID: 100, IPs: []string{"10.88.0.2"}}
		if op.StartTime.IsZero() {
			op.StartTime = s.now
		}
	case CreateAndStartContainer:
		op := s.pod(a.UID)
		if op.Sandbox.Attempt != a.SandboxAttempt || op.Sandbox.State != SandboxRunning {
			s.t.Fatalf("start %s in sandbox attempt %d, have %+v", a.Name, a.SandboxAttempt, op.Sandbox)
		}
		s.seq++
		op.Containers = append(op.Containers, ContainerInstance{
			ID: fmt.Sprintf("%s-%d-%d", a.Name, a.Attempt, s.seq), Name: a.Name, Attempt: a.Attempt,
			SandboxID: op.Sandbox.ID, State: ContainerRunning, StartedAt: s.now, Image: a.Image,
			ImageRef: "docker.io/library/" + a.Image, ImageID: "sha256:" + a.Image, Hash: a.Hash,
		})
	case KillContainer:
		op := s.pod(a.UID)
		for i := range op.Containers {
			if c := &op.Containers[i]; c.ID == a.ID && c.State == ContainerRunning {
				c.State, c.ExitCode, c.Reason, c.FinishedAt = ContainerExited, 137, "Error", s.now
			}
		}
		if a.RunPreStop {
			if op.PreStop == nil {
				op.PreStop = map[string]HookState{}
			}
			op.PreStop[a.ID] = HookDone
		}
	case RemoveContainer:
		op := s.pod(a.UID)
		for i := range op.Containers {
			if op.Containers[i].ID == a.ID {
				op.Containers = append(op.Containers[:i], op.Containers[i+1:]...)
				break
			}
		}
	case StopSandbox:
		s.pod(a.UID).Sandbox.State = SandboxStopped
	case MarkTerminating:
		op := s.pod(a.UID)
		if op.Termination == nil {
			op.Termination = &Termination{Since: s.now, Deadline: s.now.Add(a.Grace), Reason: a.Reason}
		}
	case RemovePod, CleanupOrphan:
		delete(s.o.Pods, a.Pod())
		delete(s.o.PrevStatus, a.Pod())
	case StopStrayScope:
		op := s.pod(a.UID)
		for i, id := range op.StrayScopes {
			if id == a.ID {
				op.StrayScopes = append(op.StrayScopes[:i:i], op.StrayScopes[i+1:]...)
				break
			}
		}
	default:
		s.t.Fatalf("unknown action %T", a)
	}
}

// exit makes the running instance of a container exit.
func (s *sim) exit(uid types.UID, name string, code int32, reason string) {
	op := s.o.Pods[uid]
	for i := range op.Containers {
		if c := &op.Containers[i]; c.Name == name && c.State == ContainerRunning {
			c.State, c.ExitCode, c.FinishedAt, c.Reason = ContainerExited, code, s.now, reason
			return
		}
	}
	s.t.Fatalf("no running %s in %s", name, uid)
}

func (s *sim) running(uid types.UID, name string) *ContainerInstance {
	op := s.o.Pods[uid]
	if op == nil {
		return nil
	}
	for i := range op.Containers {
		if c := &op.Containers[i]; c.Name == name && c.State == ContainerRunning {
			return c
		}
	}
	return nil
}

func (s *sim) status(uid types.UID) *v1.PodStatus {
	for _, pp := range s.last.Pods {
		if pp.UID == uid {
			return pp.Status
		}
	}
	s.t.Fatalf("no plan for pod %s", uid)
	return nil
}

func (s *sim) advance(d time.Duration) { s.now = s.now.Add(d) }

// wantPhase fails the test unless the pod's status has phase.
func (s *sim) wantPhase(uid types.UID, phase v1.PodPhase) {
	s.t.Helper()
	if st := s.status(uid); st.Phase != phase {
		s.t.Fatalf("phase %s", st.Phase)
	}
}

// describe renders an action compactly for comparisons.
func describe(a Action) string {
	switch a := a.(type) {
	case EnsurePodCgroup:
		return "cgroup " + string(a.UID)
	case PullImage:
		return "pull " + a.Image
	case RunSandbox:
		return fmt.Sprintf("sandbox %s #%d", a.UID, a.Attempt)
	case CreateAndStartContainer:
		kind := ""
		if a.Sidecar {
			kind = " sidecar"
		} else if a.Init {
			kind = " init"
		}
		return fmt.Sprintf("start %s/%s #%d%s", a.UID, a.Name, a.Attempt, kind)
	case KillContainer:
		pre := ""
		if a.RunPreStop {
			pre = " prestop"
		}
		return fmt.Sprintf("kill %s/%s grace=%s%s (%s)", a.UID, a.Name, a.Grace, pre, a.Reason)
	case RemoveContainer:
		return fmt.Sprintf("rm %s/%s", a.UID, a.ID)
	case StopSandbox:
		return "stopsandbox " + string(a.UID)
	case MarkTerminating:
		return fmt.Sprintf("terminating %s grace=%s (%s)", a.UID, a.Grace, a.Reason)
	case RemovePod:
		return "removepod " + string(a.UID)
	case CleanupOrphan:
		return "cleanup " + string(a.UID)
	case StopStrayScope:
		return fmt.Sprintf("stopstray %s/%s", a.UID, a.ID)
	}
	return fmt.Sprintf("%T", a)
}

func eq(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("%s:\n got: %q\nwant: %q", what, got, want)
	}
}

func (s *sim) hasEvent(reason, substr string) bool {
	for _, e := range s.events {
		if e.Reason == reason && strings.Contains(e.Message, substr) {
			return true
		}
	}
	return false
}
