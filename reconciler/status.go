package reconciler

import (
	"fmt"
	"strconv"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
)

// ContainerIDPrefix is the runtime name in status.containerID, as CRI
// runtimes write "containerd://<id>".
const ContainerIDPrefix = "minikubelet://"

// ComputeStatus is the status of one pod as Plan would report it, for a
// caller that needs only the status (describe, the API) and not a plan.
func ComputeStatus(pod *v1.Pod, observed *Observed, now time.Time, cfg Config) v1.PodStatus {
	if observed == nil {
		observed = &Observed{}
	}
	p := planner{d: &Desired{}, o: observed, now: now, cfg: cfg.withDefaults()}
	pc := p.newPodCtx(pod.UID, pod, nil, observed.Pods[pod.UID])
	p.lifecycle(pc)
	return *p.status(pc, pod.Status.QOSClass)
}

// status renders the pod's v1.PodStatus from the decisions of the plan.
func (p *planner) status(pc *podCtx, qos v1.PodQOSClass) *v1.PodStatus {
	pod := pc.pod
	st := &v1.PodStatus{QOSClass: qos}
	if qos == "" && pc.prev != nil {
		st.QOSClass = pc.prev.QOSClass
	}
	hasInit := len(pc.inits) > 0
	// kubelet's default waiting reason: PodInitializing for every container
	// of a pod with init containers, ContainerCreating otherwise.
	def := "ContainerCreating"
	if hasInit {
		def = "PodInitializing"
	}
	if len(pc.inits) > 0 {
		st.InitContainerStatuses = make([]v1.ContainerStatus, len(pc.inits))
		for i := range pc.inits {
			st.InitContainerStatuses[i] = p.containerStatus(pc, &pc.inits[i], def)
		}
	}
	st.ContainerStatuses = make([]v1.ContainerStatus, len(pc.apps))
	for i := range pc.apps {
		st.ContainerStatuses[i] = p.containerStatus(pc, &pc.apps[i], def)
	}

	st.Phase = getPhase(pod, st.InitContainerStatuses, st.ContainerStatuses)
	if pc.terminal && pc.terminalReason != "" {
		st.Phase = v1.PodFailed
		if pc.terminalPhase != "" {
			st.Phase = pc.terminalPhase
		}
		st.Reason, st.Message = pc.terminalReason, pc.terminalMsg
	} else if stickyTerminal(pc.prev) {
		st.Phase, st.Reason, st.Message = pc.prev.Phase, pc.prev.Reason, pc.prev.Message
	}

	if !pc.startTime.IsZero() {
		t := metav1.NewTime(pc.startTime)
		st.StartTime = &t
	}
	if p.o.HostIP != "" {
		st.HostIP = p.o.HostIP
		st.HostIPs = []v1.HostIP{{IP: p.o.HostIP}}
	}
	if pc.sandboxRunning && len(pc.op.Sandbox.IPs) > 0 {
		st.PodIP = pc.op.Sandbox.IPs[0]
		st.PodIPs = make([]v1.PodIP, len(pc.op.Sandbox.IPs))
		for i, ip := range pc.op.Sandbox.IPs {
			st.PodIPs[i] = v1.PodIP{IP: ip}
		}
	} else if pod.Spec.HostNetwork && st.HostIP != "" {
		// A hostNetwork pod's IP is the node's (kubelet does the same).
		st.PodIP = st.HostIP
		st.PodIPs = []v1.PodIP{{IP: st.HostIP}}
	}
	st.Conditions = p.conditions(pc, st)
	return st
}

// containerStatus renders one container: state from its latest instance,
// lastState from the one before, waiting reasons from the plan's decisions
// (kubelet convertToAPIContainerStatuses and its reason cache).
func (p *planner) containerStatus(pc *podCtx, c *ctr, def string) v1.ContainerStatus {
	cs := v1.ContainerStatus{Name: c.spec.Name, Image: c.spec.Image}
	started := false
	l := c.latest
	if l == nil {
		reason := def
		if c.waitReason != "" {
			reason = c.waitReason
		}
		cs.State.Waiting = &v1.ContainerStateWaiting{Reason: reason, Message: c.waitMessage}
		cs.Started = &started
		return cs
	}
	cs.RestartCount = int32(l.Attempt)
	cs.ContainerID = ContainerIDPrefix + l.ID
	if l.ImageRef != "" {
		cs.Image = l.ImageRef
	}
	cs.ImageID = l.ImageID
	if c.second != nil && c.second.State == ContainerExited {
		cs.LastTerminationState.Terminated = terminated(c.second)
	}
	switch l.State {
	case ContainerRunning:
		cs.State.Running = &v1.ContainerStateRunning{StartedAt: metav1.NewTime(l.StartedAt)}
		if c.cur == l || c.cur == nil {
			started = c.startedOf(l)
			cs.Ready = started && c.readyOf(l)
		}
	case ContainerCreated:
		reason := "ContainerCreating"
		if c.waitReason != "" {
			reason = c.waitReason
		}
		cs.State.Waiting = &v1.ContainerStateWaiting{Reason: reason, Message: c.waitMessage}
	case ContainerExited:
		t := terminated(l)
		if c.restartPending && c.waitReason != "" {
			// Waiting to restart (CrashLoopBackOff, or its image is
			// failing): waiting now, the exit as lastState.
			cs.State.Waiting = &v1.ContainerStateWaiting{Reason: c.waitReason, Message: c.waitMessage}
			cs.LastTerminationState.Terminated = t
		} else {
			cs.State.Terminated = t
			// A regular init container that succeeded counts as ready.
			cs.Ready = c.init && !c.sidecar && l.ExitCode == 0
		}
	}
	cs.Started = &started
	return cs
}

func (c *ctr) startedOf(in *ContainerInstance) bool {
	if c.spec.StartupProbe == nil {
		return true
	}
	return c.probes != nil && c.probes.Startup.ContainerID == in.ID && c.probes.Startup.Outcome == ProbeSuccess
}

// readyOf: no readiness probe means ready once started; a probe must have
// succeeded for this very instance.
func (c *ctr) readyOf(in *ContainerInstance) bool {
	if c.spec.ReadinessProbe == nil {
		return true
	}
	return c.probes != nil && c.probes.Readiness.ContainerID == in.ID && c.probes.Readiness.Outcome == ProbeSuccess
}

func terminated(in *ContainerInstance) *v1.ContainerStateTerminated {
	reason := in.Reason
	if reason == "" {
		// containerd's reasons when the runtime gave none.
		reason = "Error"
		if in.ExitCode == 0 {
			reason = "Completed"
		}
	}
	return &v1.ContainerStateTerminated{
		ExitCode: in.ExitCode, Signal: in.Signal, Reason: reason, Message: in.Message,
		StartedAt: metav1.NewTime(in.StartedAt), FinishedAt: metav1.NewTime(in.FinishedAt),
		ContainerID: ContainerIDPrefix + in.ID,
	}
}

// getPhase is kubelet's getPhase (pkg/kubelet/kubelet_pods.go) for a pod
// that is not terminal: regular init containers pending keep the pod
// Pending, a failed one under restartPolicy Never fails it; sidecars count
// with the app containers, but their exits do not end the pod.
func getPhase(pod *v1.Pod, inits, apps []v1.ContainerStatus) v1.PodPhase {
	spec := &pod.Spec
	pendingInit, pendingSidecar, failedInit := 0, 0, 0
	unknown, running, waiting, stopped, succeeded := 0, 0, 0, 0, 0
	for i := range spec.InitContainers {
		s := &inits[i]
		if isSidecar(&spec.InitContainers[i]) {
			switch {
			case s.State.Running != nil:
				if s.Started == nil || !*s.Started {
					pendingSidecar++
				}
				running++
			case s.State.Terminated != nil:
			case s.State.Waiting != nil:
				if s.LastTerminationState.Terminated == nil {
					pendingSidecar++
					waiting++
				}
			default:
				pendingSidecar++
				unknown++
			}
			continue
		}
		switch {
		case s.State.Running != nil:
			pendingInit++
		case s.State.Terminated != nil:
			if s.State.Terminated.ExitCode != 0 {
				failedInit++
			}
		case s.State.Waiting != nil:
			if s.LastTerminationState.Terminated != nil {
				if s.LastTerminationState.Terminated.ExitCode != 0 {
					failedInit++
				}
			} else {
				pendingInit++
			}
		default:
			pendingInit++
		}
	}
	anyAppStarted := false
	for i := range apps {
		s := &apps[i]
		switch {
		case s.State.Running != nil:
			running++
			anyAppStarted = true
		case s.State.Terminated != nil:
			stopped++
			anyAppStarted = true
			if s.State.Terminated.ExitCode == 0 {
				succeeded++
			}
		case s.State.Waiting != nil:
			if s.LastTerminationState.Terminated != nil {
				stopped++
				anyAppStarted = true
			} else {
				waiting++
			}
		default:
			unknown++
		}
	}
	if failedInit > 0 && spec.RestartPolicy == v1.RestartPolicyNever {
		return v1.PodFailed
	}
	switch {
	case pendingInit > 0 || (pendingSidecar > 0 && !anyAppStarted):
		return v1.PodPending
	case waiting > 0:
		return v1.PodPending
	case running > 0 && unknown == 0:
		return v1.PodRunning
	case running == 0 && stopped > 0 && unknown == 0:
		if spec.RestartPolicy == v1.RestartPolicyAlways {
			return v1.PodRunning // every container is restarting
		}
		if stopped == succeeded {
			return v1.PodSucceeded
		}
		if spec.RestartPolicy == v1.RestartPolicyNever {
			return v1.PodFailed
		}
		return v1.PodRunning // OnFailure, restarting the failed ones
	default:
		return v1.PodPending
	}
}

// conditions: PodReadyToStartContainers, Initialized, Ready,
// ContainersReady, PodScheduled (kubelet's order), transition times kept
// from the previous status while a condition's status is unchanged.
func (p *planner) conditions(pc *podCtx, st *v1.PodStatus) []v1.PodCondition {
	conds := make([]v1.PodCondition, 0, 5)
	add := func(t v1.PodConditionType, ok bool, reason, msg string) {
		s := v1.ConditionFalse
		if ok {
			s = v1.ConditionTrue
		}
		c := v1.PodCondition{Type: t, Status: s, Reason: reason, Message: msg}
		c.LastTransitionTime = metav1.NewTime(p.now)
		if pc.prev != nil {
			for i := range pc.prev.Conditions {
				if pc.prev.Conditions[i].Type == t && pc.prev.Conditions[i].Status == s {
					c.LastTransitionTime = pc.prev.Conditions[i].LastTransitionTime
				}
			}
		}
		conds = append(conds, c)
	}
	add(v1.PodReadyToStartContainers, pc.sandboxRunning, "", "")

	completed := st.Phase == v1.PodSucceeded
	// Initialized: regular init containers succeeded and sidecars started,
	// or an app container already ran (kubelet never goes back).
	var pendingInit []string
	anyApp := false
	for i := range st.ContainerStatuses {
		if s := &st.ContainerStatuses[i]; s.State.Running != nil || s.State.Terminated != nil || s.LastTerminationState.Terminated != nil {
			anyApp = true
		}
	}
	if !anyApp {
		for i := range st.InitContainerStatuses {
			s := &st.InitContainerStatuses[i]
			ok := false
			if pc.inits[i].sidecar {
				ok = s.Started != nil && *s.Started
			} else {
				ok = s.State.Terminated != nil && s.State.Terminated.ExitCode == 0
			}
			if !ok {
				pendingInit = append(pendingInit, s.Name)
			}
		}
	}
	switch {
	case completed:
		add(v1.PodInitialized, true, "PodCompleted", "")
	case len(pendingInit) > 0:
		add(v1.PodInitialized, false, "ContainersNotInitialized", "containers with incomplete status: "+list(pendingInit))
	default:
		add(v1.PodInitialized, true, "", "")
	}

	// ContainersReady / Ready: every app container and sidecar ready.
	var unready []string
	for i := range st.InitContainerStatuses {
		if pc.inits[i].sidecar && !st.InitContainerStatuses[i].Ready {
			unready = append(unready, st.InitContainerStatuses[i].Name)
		}
	}
	for i := range st.ContainerStatuses {
		if !st.ContainerStatuses[i].Ready {
			unready = append(unready, st.ContainerStatuses[i].Name)
		}
	}
	switch {
	case completed:
		add(v1.PodReady, false, "PodCompleted", "")
		add(v1.ContainersReady, false, "PodCompleted", "")
	case len(unready) > 0:
		msg := "containers with unready status: " + list(unready)
		add(v1.PodReady, false, "ContainersNotReady", msg)
		add(v1.ContainersReady, false, "ContainersNotReady", msg)
	default:
		add(v1.PodReady, true, "", "")
		add(v1.ContainersReady, true, "", "")
	}
	add(v1.PodScheduled, true, "", "")
	if pc.shutdown != nil && pc.terminalReason == NodeShutdownReason {
		// kubelet's nodeshutdown manager (PodDisruptionConditions, GA).
		add(v1.DisruptionTarget, true, v1.PodReasonTerminationByKubelet, NodeShutdownMessage)
	}
	return conds
}

// list formats names as Go prints a []string: "[a b]" (kubelet uses %s).
func list(names []string) string {
	n := 2
	for _, s := range names {
		n += len(s) + 1
	}
	b := make([]byte, 0, n)
	b = append(b, '[')
	for i, s := range names {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, s...)
	}
	return string(append(b, ']'))
}

// statusEvents derives events from the change between the persisted status
// and the new one: a new instance was created and started, a container was
// OOM-killed; Scheduled for a pod seen the first time.
func (p *planner) statusEvents(pc *podCtx, st *v1.PodStatus) {
	if pc.prev == nil && pc.dp != nil {
		node := p.o.NodeName
		p.event(pc, "", "scheduled", v1.EventTypeNormal, "Scheduled",
			"Successfully assigned "+pc.pod.Namespace+"/"+pc.pod.Name+" to "+node)
	}
	for _, l := range [2][]ctr{pc.inits, pc.apps} {
		for i := range l {
			c := &l[i]
			var prev *v1.ContainerStatus
			if pc.prev != nil {
				prev = findStatus(pc.prev, c.spec.Name, c.init)
			}
			for _, in := range [2]*ContainerInstance{c.second, c.latest} {
				if in == nil || in.State == ContainerCreated || seen(prev, in) {
					continue
				}
				p.event(pc, c.spec.Name, "created/"+in.ID, v1.EventTypeNormal, "Created", "Created container "+c.spec.Name)
				if !in.StartedAt.IsZero() {
					p.event(pc, c.spec.Name, "started/"+in.ID, v1.EventTypeNormal, "Started", "Started container "+c.spec.Name)
				}
				if in.State == ContainerExited && in.Reason == "OOMKilled" {
					p.event(pc, c.spec.Name, "oom/"+in.ID, v1.EventTypeWarning, "OOMKilling",
						"Memory cgroup out of memory: killed container "+c.spec.Name+" (exit code "+strconv.Itoa(int(in.ExitCode))+")")
				}
			}
		}
	}
}

func findStatus(st *v1.PodStatus, name string, init bool) *v1.ContainerStatus {
	l := st.ContainerStatuses
	if init {
		l = st.InitContainerStatuses
	}
	for i := range l {
		if l[i].Name == name {
			return &l[i]
		}
	}
	return nil
}

// seen: the previous status already showed this instance in its final
// state (running for a running one, terminated for an exited one).
func seen(prev *v1.ContainerStatus, in *ContainerInstance) bool {
	if prev == nil {
		return false
	}
	id := ContainerIDPrefix + in.ID
	if in.State == ContainerRunning {
		return prev.ContainerID == id && prev.State.Running != nil
	}
	if t := prev.State.Terminated; t != nil && t.ContainerID == id {
		return true
	}
	if t := prev.LastTerminationState.Terminated; t != nil && t.ContainerID == id {
		return true
	}
	// Shown running before, exited now: its Created/Started were reported.
	if prev.ContainerID == id && prev.State.Running != nil {
		return in.Reason != "OOMKilled"
	}
	return false
}

// ---------------------------------------------------------------------------
// kubectl's columns.

// KubectlStatusAt returns kubectl get pods' READY, STATUS and RESTARTS
// cells for a pod with its status, as of now (the "(2m ago)" of RESTARTS;
// the caller reads the clock, this package never does). It follows kubectl's printPod
// (pkg/printers/internalversion/printers.go): init container problems show
// as Init:<reason> or Init:N/M, then the last app container with a waiting
// or terminated reason wins, Completed becomes Running while a container
// still runs, and a deleted pod shows Terminating.
func KubectlStatusAt(pod *v1.Pod, now time.Time) (ready, status, restarts string) {
	st := &pod.Status
	nRestarts, sidecarRestarts := 0, 0
	total := len(pod.Spec.Containers)
	readyN := 0
	var lastRestart, lastSidecarRestart time.Time

	reason := string(st.Phase)
	if st.Reason != "" {
		reason = st.Reason
	}
	sidecar := make(map[string]bool, len(pod.Spec.InitContainers))
	for i := range pod.Spec.InitContainers {
		if isSidecar(&pod.Spec.InitContainers[i]) {
			sidecar[pod.Spec.InitContainers[i].Name] = true
			total++
		}
	}

	initializing := false
	for i := range st.InitContainerStatuses {
		c := &st.InitContainerStatuses[i]
		nRestarts += int(c.RestartCount)
		if t := c.LastTerminationState.Terminated; t != nil && t.FinishedAt.Time.After(lastRestart) {
			lastRestart = t.FinishedAt.Time
		}
		if sidecar[c.Name] {
			sidecarRestarts += int(c.RestartCount)
			if t := c.LastTerminationState.Terminated; t != nil && t.FinishedAt.Time.After(lastSidecarRestart) {
				lastSidecarRestart = t.FinishedAt.Time
			}
		}
		switch {
		case c.State.Terminated != nil && c.State.Terminated.ExitCode == 0:
			continue
		case sidecar[c.Name] && c.Started != nil && *c.Started:
			if c.Ready {
				readyN++
			}
			continue
		case c.State.Terminated != nil:
			t := c.State.Terminated
			switch {
			case t.Reason != "":
				reason = "Init:" + t.Reason
			case t.Signal != 0:
				reason = "Init:Signal:" + strconv.Itoa(int(t.Signal))
			default:
				reason = "Init:ExitCode:" + strconv.Itoa(int(t.ExitCode))
			}
			initializing = true
		case c.State.Waiting != nil && c.State.Waiting.Reason != "" && c.State.Waiting.Reason != "PodInitializing":
			reason = "Init:" + c.State.Waiting.Reason
			initializing = true
		default:
			reason = fmt.Sprintf("Init:%d/%d", i, len(pod.Spec.InitContainers))
			initializing = true
		}
		break
	}

	if !initializing || conditionTrue(st, v1.PodInitialized) {
		nRestarts = sidecarRestarts
		lastRestart = lastSidecarRestart
		hasRunning := false
		for i := len(st.ContainerStatuses) - 1; i >= 0; i-- {
			c := &st.ContainerStatuses[i]
			nRestarts += int(c.RestartCount)
			if t := c.LastTerminationState.Terminated; t != nil && t.FinishedAt.Time.After(lastRestart) {
				lastRestart = t.FinishedAt.Time
			}
			switch {
			case c.State.Waiting != nil && c.State.Waiting.Reason != "":
				reason = c.State.Waiting.Reason
			case c.State.Terminated != nil && c.State.Terminated.Reason != "":
				reason = c.State.Terminated.Reason
			case c.State.Terminated != nil:
				if c.State.Terminated.Signal != 0 {
					reason = "Signal:" + strconv.Itoa(int(c.State.Terminated.Signal))
				} else {
					reason = "ExitCode:" + strconv.Itoa(int(c.State.Terminated.ExitCode))
				}
			case c.Ready && c.State.Running != nil:
				hasRunning = true
				readyN++
			}
		}
		if reason == "Completed" && hasRunning {
			if conditionTrue(st, v1.PodReady) {
				reason = "Running"
			} else {
				reason = "NotReady"
			}
		}
	}

	if pod.DeletionTimestamp != nil && st.Phase != v1.PodSucceeded && st.Phase != v1.PodFailed {
		reason = "Terminating"
	}

	restarts = strconv.Itoa(nRestarts)
	if nRestarts != 0 && !lastRestart.IsZero() {
		restarts += " (" + duration.HumanDuration(now.Sub(lastRestart)) + " ago)"
	}
	return strconv.Itoa(readyN) + "/" + strconv.Itoa(total), reason, restarts
}

func conditionTrue(st *v1.PodStatus, t v1.PodConditionType) bool {
	for i := range st.Conditions {
		if st.Conditions[i].Type == t {
			return st.Conditions[i].Status == v1.ConditionTrue
		}
	}
	return false
}
