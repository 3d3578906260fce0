package kubectl

import (
	"fmt"
	"strings"

	v1 "k8s.io/api/core/v1"
)

// RunningContainer returns the status of a container's current instance
// when it is running and has a container ID; else an error that says what
// it is instead (what is "exec into", "attach to").
func RunningContainer(pod *v1.Pod, name, what string) (v1.ContainerStatus, error) {
	all := append(append([]v1.ContainerStatus{}, pod.Status.InitContainerStatuses...), pod.Status.ContainerStatuses...)
	for _, st := range all {
		if st.Name != name {
			continue
		}
		if st.State.Running == nil {
			state := "waiting"
			switch {
			case st.State.Terminated != nil:
				state = "terminated (" + st.State.Terminated.Reason + ")"
			case st.State.Waiting != nil && st.State.Waiting.Reason != "":
				state = "waiting (" + st.State.Waiting.Reason + ")"
			}
			return st, fmt.Errorf("cannot %s container %s of pod %s: it is %s, not running", what, name, pod.Name, state)
		}
		if ContainerIDOf(st) == "" {
			return st, fmt.Errorf("container %s of pod %s has no container ID yet", name, pod.Name)
		}
		return st, nil
	}
	return v1.ContainerStatus{}, fmt.Errorf("container %s of pod %s has not started", name, pod.Name)
}

// ContainerIDOf is the runtime's ID in a status's "<runtime>://<id>".
func ContainerIDOf(st v1.ContainerStatus) string {
	_, id, _ := strings.Cut(st.ContainerID, "://")
	return id
}
