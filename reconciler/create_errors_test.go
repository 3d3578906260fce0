package reconciler

import (
	"fmt"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// TestCreateErrorWaitingReasons: a container the runtime refused to create
// waits with the kubelet's reason and the runtime's message (status and
// kubectl STATUS), while the plan asks for the same attempt again.
func TestCreateErrorWaitingReasons(t *testing.T) {
	const nonRoot = `container has runAsNonRoot and image will run as root (pod: "web-node1", container: app)`
	const mountErr = "container init: mount /data: not a directory"
	present := map[string]*ImageState{"img-app:1": {Presence: ImagePresent}, "img-init:1": {Presence: ImagePresent}}
	run := Sandbox{ID: "sb0", State: SandboxRunning, IPs: []string{"10.88.0.9"}}
	inst := func(attempt uint32, state ContainerState, code int32, started, finished time.Time) ContainerInstance {
		reason := ""
		if state == ContainerExited {
			reason = "Error"
		}
		return ContainerInstance{ID: "c" + u32(attempt), Name: "app", Attempt: attempt, SandboxID: "sb0", State: state,
			ExitCode: code, Reason: reason, StartedAt: started, FinishedAt: finished}
	}
	withInit := mkPod("u1", "web", "app")
	withInit.Spec.InitContainers = []v1.Container{mkContainer("init")}
	for _, tc := range []struct {
		name      string
		pod       *v1.Pod
		op        ObservedPod
		images    map[string]*ImageState
		now       time.Time
		wantState string // of the container named in wantOf
		wantMsg   string
		wantOf    string
		wantKubec string
		wantStart string // the CreateAndStartContainer asked for ("" none)
	}{
		{"config error on the first attempt", nil,
			ObservedPod{Sandbox: run, CreateErrors: map[string]CreateError{"app": {0, ReasonCreateContainerConfigError, nonRoot}}},
			present, t0, "waiting:CreateContainerConfigError", nonRoot, "app", "CreateContainerConfigError", "app/0"},
		{"create error when restarting", nil,
			ObservedPod{Sandbox: run, Containers: []ContainerInstance{inst(0, ContainerExited, 1, t0, t0.Add(time.Second))},
				CreateErrors: map[string]CreateError{"app": {1, ReasonCreateContainerError, mountErr}}},
			present, t0.Add(time.Second), "waiting:CreateContainerError", mountErr, "app", "CreateContainerError", "app/1"},
		{"an older attempt's error is history", nil,
			ObservedPod{Sandbox: run, Containers: []ContainerInstance{inst(0, ContainerRunning, 0, t0, time.Time{})},
				CreateErrors: map[string]CreateError{"app": {0, ReasonCreateContainerError, mountErr}}},
			present, t0.Add(time.Second), "running", "", "app", "Running", ""},
		{"crash loop back-off comes first", nil,
			ObservedPod{Sandbox: run, Containers: []ContainerInstance{inst(0, ContainerExited, 1, t0, t0.Add(time.Second)), inst(1, ContainerExited, 1, t0.Add(2*time.Second), t0.Add(3*time.Second))},
				CreateErrors: map[string]CreateError{"app": {2, ReasonCreateContainerError, mountErr}}},
			present, t0.Add(4 * time.Second), "waiting:CrashLoopBackOff", "", "app", "CrashLoopBackOff", ""},
		{"a failing pull comes first", nil,
			ObservedPod{Sandbox: run, CreateErrors: map[string]CreateError{"app": {0, ReasonCreateContainerError, mountErr}}},
			map[string]*ImageState{"img-app:1": {Presence: ImagePullFailed, Failures: 1, LastFailure: t0, Message: "unauthorized"}},
			t0.Add(time.Second), "waiting:ErrImagePull", "unauthorized", "app", "ErrImagePull", ""},
		{"init container", withInit,
			ObservedPod{Sandbox: run, CreateErrors: map[string]CreateError{"init": {0, ReasonCreateContainerConfigError, "subPath \"../x\" must be a relative path inside the volume"}}},
			present, t0, "waiting:CreateContainerConfigError", "subPath \"../x\" must be a relative path inside the volume", "init", "Init:CreateContainerConfigError", "init/0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := tc.pod
			if pod == nil {
				pod = mkPod("u1", "web", "app")
			}
			op := tc.op
			op.UID, op.Pod, op.StateExists, op.SliceExists = "u1", pod, true, true
			o := Observed{Pods: map[types.UID]*ObservedPod{"u1": &op}, Images: tc.images, HostIP: "10.0.0.1"}
			st := ComputeStatus(pod, &o, tc.now, Config{})
			var cs *v1.ContainerStatus
			for _, l := range [][]v1.ContainerStatus{st.InitContainerStatuses, st.ContainerStatuses} {
				for i := range l {
					if l[i].Name == tc.wantOf {
						cs = &l[i]
					}
				}
			}
			got, msg := "", ""
			switch {
			case cs.State.Waiting != nil:
				got, msg = "waiting:"+cs.State.Waiting.Reason, cs.State.Waiting.Message
			case cs.State.Running != nil:
				got = "running"
			case cs.State.Terminated != nil:
				got = "terminated:" + cs.State.Terminated.Reason
			}
			if got != tc.wantState || (tc.wantMsg != "" && !strings.Contains(msg, tc.wantMsg)) {
				t.Errorf("%s: state %q message %q, want %q with %q", tc.wantOf, got, msg, tc.wantState, tc.wantMsg)
			}
			p := pod.DeepCopy()
			p.Status = st
			if _, kst, _ := KubectlStatusAt(p, tc.now); kst != tc.wantKubec {
				t.Errorf("kubectl STATUS %q, want %q", kst, tc.wantKubec)
			}
			// The plan retries the same attempt (the loop's retry delay paces it).
			d := Desired{Pods: map[types.UID]*DesiredPod{"u1": {Pod: pod}}}
			res := Plan(d, o, tc.now, Config{})
			start := ""
			for _, a := range res.Pods[0].Actions {
				if c, ok := a.(CreateAndStartContainer); ok {
					start = fmt.Sprintf("%s/%d", c.Name, c.Attempt)
				}
			}
			if start != tc.wantStart {
				t.Errorf("plan starts %q, want %q", start, tc.wantStart)
			}
			if ps := res.Pods[0].Status; ps == nil || len(ps.ContainerStatuses) == 0 {
				t.Fatal("plan without status")
			}
		})
	}
}
