package reconciler

import (
	"sort"
	"strconv"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Plan decides, from what should run and what runs at now, what to do next
// for every pod, each pod's status, the events of what changed, and when to
// plan again at the latest. It is pure: no IO, no clock, no state of its
// own; the output is sorted, so the same inputs give the same Result.
func Plan(desired Desired, observed Observed, now time.Time, cfg Config) Result {
	p := planner{d: &desired, o: &observed, now: now, cfg: cfg.withDefaults()}
	return p.run()
}

// planner carries one Plan call.
type planner struct {
	d   *Desired
	o   *Observed
	now time.Time
	cfg Config

	res Result
	// pulls issued by an earlier pod in this plan: a second pod needing the
	// same image waits for that pull as if it were in flight.
	pulls map[string]struct{}
	// readyByName: for a desired pod's namespace/name, whether all its
	// images are on the node, so its predecessors (old UIDs, same name) may
	// be stopped.
	readyByName map[string]bool
	// desiredByName maps namespace/name to the desired UID.
	desiredByName map[string]types.UID
	// undesiredNames: namespace/name of observed pods nobody desires.
	undesiredNames map[string]struct{}
}

func nsName(ns, name string) string { return ns + "/" + name }

func (p *planner) run() Result {
	n := len(p.d.Pods)
	uids := make([]types.UID, 0, n+len(p.o.Pods))
	p.desiredByName = make(map[string]types.UID, n)
	for uid, dp := range p.d.Pods {
		if dp == nil || dp.Pod == nil {
			continue
		}
		uids = append(uids, uid)
		p.desiredByName[nsName(dp.Pod.Namespace, dp.Pod.Name)] = uid
	}
	for uid, op := range p.o.Pods {
		if op == nil {
			continue
		}
		if dp := p.d.Pods[uid]; dp == nil || dp.Pod == nil {
			uids = append(uids, uid)
		}
	}
	sort.Slice(uids, func(i, j int) bool { return uids[i] < uids[j] })
	p.readyByName = make(map[string]bool, n)
	p.res.Pods = make([]PodPlan, len(uids))

	// Desired pods first (their image readiness decides whether their
	// predecessors may be stopped), then the observed pods nobody wants;
	// results are placed at their sorted index either way.
	for i, uid := range uids {
		if dp := p.d.Pods[uid]; dp != nil && dp.Pod != nil {
			p.res.Pods[i] = p.planDesired(uid, dp)
		}
	}
	for i, uid := range uids {
		if dp := p.d.Pods[uid]; dp == nil || dp.Pod == nil {
			p.res.Pods[i] = p.planUndesired(uid, p.o.Pods[uid])
		}
	}
	p.fileErrorEvents()
	return p.res
}

func (p *planner) wakeAt(t time.Time) {
	if t.IsZero() || !t.After(p.now) {
		return
	}
	if p.res.NextWake.IsZero() || t.Before(p.res.NextWake) {
		p.res.NextWake = t
	}
}

func (p *planner) inFlight(key string) bool {
	_, ok := p.o.InFlight[key]
	return ok
}

func (p *planner) fileErrorEvents() {
	if len(p.d.FileErrors) == 0 {
		return
	}
	files := make([]string, 0, len(p.d.FileErrors))
	for f := range p.d.FileErrors {
		files = append(files, f)
	}
	sort.Strings(files)
	for _, f := range files {
		msg := p.d.FileErrors[f]
		p.res.Events = append(p.res.Events, Event{
			Key: "file/" + f + "/" + msg, Type: v1.EventTypeWarning, Reason: "InvalidManifest",
			Message: f + ": " + msg, Time: p.now,
		})
	}
}

// ---------------------------------------------------------------------------
// Per-pod view.

// ctr is one container of the spec with what was observed of it.
type ctr struct {
	spec    *v1.Container
	index   int // in InitContainers or Containers
	init    bool
	sidecar bool // init container with restartPolicy Always (KEP-753)

	latest *ContainerInstance // highest attempt (any sandbox)
	second *ContainerInstance // the one before it (status.lastState)
	cur    *ContainerInstance // highest attempt in the current running sandbox
	probes *ProbeResults

	// Decisions the status shows.
	restartPending bool      // latest exited and will be started again
	backoff        CrashLoop // when restartPending
	waitReason     string    // overrides the default waiting reason
	waitMessage    string
	// definitionChanged: the running instance was made from an older spec
	// (fixed metadata.uid, edited manifest) and is being replaced.
	definitionChanged bool
}

// podCtx is one pod being planned.
type podCtx struct {
	uid  types.UID
	pod  *v1.Pod
	dp   *DesiredPod  // nil for a pod nobody wants
	op   *ObservedPod // never nil (an empty one when nothing exists)
	prev *v1.PodStatus

	inits []ctr
	apps  []ctr

	sandboxRunning bool
	startTime      time.Time

	// terminal: the pod will not run containers again (phase Succeeded or
	// Failed); terminalReason is the pod's status.reason when set.
	terminal       bool
	terminalPhase  v1.PodPhase
	terminalReason string
	terminalMsg    string

	waitingForPredecessor bool

	// shutdown: the pod is being stopped for a node shutdown.
	shutdown *ShutdownStop

	actions   []Action
	truncated bool // a barrier of the chain is in flight: nothing after it
}

var emptyObserved ObservedPod

func (p *planner) newPodCtx(uid types.UID, pod *v1.Pod, dp *DesiredPod, op *ObservedPod) *podCtx {
	if op == nil {
		op = &emptyObserved
	}
	pc := &podCtx{uid: uid, pod: pod, dp: dp, op: op, prev: p.o.PrevStatus[uid]}
	pc.sandboxRunning = op.Sandbox.State == SandboxRunning && op.Sandbox.ID != ""
	pc.inits = make([]ctr, len(pod.Spec.InitContainers))
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		pc.inits[i] = ctr{spec: c, index: i, init: true, sidecar: isSidecar(c)}
		p.bind(pc, &pc.inits[i])
	}
	pc.apps = make([]ctr, len(pod.Spec.Containers))
	for i := range pod.Spec.Containers {
		pc.apps[i] = ctr{spec: &pod.Spec.Containers[i], index: i}
		p.bind(pc, &pc.apps[i])
	}
	// startTime: kept from the persisted status, else when the node first
	// started the pod, else now (kubelet sets it on the pod's first sync).
	switch {
	case pc.prev != nil && pc.prev.StartTime != nil:
		pc.startTime = pc.prev.StartTime.Time
	case !op.StartTime.IsZero():
		pc.startTime = op.StartTime
	default:
		pc.startTime = p.now
	}
	return pc
}

func isSidecar(c *v1.Container) bool {
	return c.RestartPolicy != nil && *c.RestartPolicy == v1.ContainerRestartPolicyAlways
}

// bind finds a container's instances.
func (p *planner) bind(pc *podCtx, c *ctr) {
	insts := pc.op.Containers
	for i := range insts {
		in := &insts[i]
		if in.Name != c.spec.Name {
			continue
		}
		switch {
		case c.latest == nil || in.Attempt > c.latest.Attempt:
			c.second = c.latest
			c.latest = in
		case c.second == nil || in.Attempt > c.second.Attempt:
			c.second = in
		}
		if pc.sandboxRunning && in.SandboxID == pc.op.Sandbox.ID && (c.cur == nil || in.Attempt > c.cur.Attempt) {
			c.cur = in
		}
	}
	if pr, ok := pc.op.Probes[c.spec.Name]; ok {
		c.probes = &pr
	}
}

func (c *ctr) nextAttempt() uint32 {
	if c.latest == nil {
		return 0
	}
	return c.latest.Attempt + 1
}

// started: running and its startup probe (if any) succeeded.
func (c *ctr) started() bool {
	if c.cur == nil || c.cur.State != ContainerRunning {
		return false
	}
	if c.spec.StartupProbe == nil {
		return true
	}
	return c.probes != nil && c.probes.Startup.ContainerID == c.cur.ID && c.probes.Startup.Outcome == ProbeSuccess
}

// add appends an action to the pod's chain unless it is in flight (or, for
// a pull, already issued by another pod in this plan). An in-flight barrier
// ends the chain for what needs its effect; independent actions (pulls,
// kills, removals) still go in.
func (p *planner) add(pc *podCtx, a Action) bool {
	if pc.truncated && !independent(a) {
		return false
	}
	key := a.Key()
	if _, ok := a.(PullImage); ok {
		for _, b := range pc.actions {
			if b.Key() == key {
				return true // already earlier in this pod's chain
			}
		}
	}
	busy := p.inFlight(key)
	if pi, ok := a.(PullImage); ok && !busy {
		if _, dup := p.pulls[key]; dup {
			busy = true
		} else if st := p.o.Images[pi.Image]; st != nil && st.Presence == ImagePulling {
			busy = true
		}
	}
	if busy {
		if a.barrier() {
			pc.truncated = true
		}
		return false
	}
	if pi, ok := a.(PullImage); ok {
		if p.pulls == nil {
			p.pulls = make(map[string]struct{})
		}
		p.pulls[key] = struct{}{}
		p.event(pc, "", "pulling/"+pi.Image+"/"+strconv.Itoa(p.failures(pi.Image)), v1.EventTypeNormal, "Pulling",
			`Pulling image "`+pi.Image+`"`)
	}
	pc.actions = append(pc.actions, a)
	return true
}

// independent actions need nothing earlier in the chain to have happened.
func independent(a Action) bool {
	switch a.(type) {
	case PullImage, KillContainer, MarkTerminating, RemoveContainer:
		return true
	}
	return false
}

func (p *planner) failures(image string) int {
	if st := p.o.Images[image]; st != nil {
		return st.Failures
	}
	return 0
}

// event records an event of the pod; container is the container name
// ("" for pod-level), key is unique within the pod.
func (p *planner) event(pc *podCtx, container, key, typ, reason, msg string) {
	p.res.Events = append(p.res.Events, Event{
		Key: string(pc.uid) + "/" + key, PodUID: pc.uid, Namespace: pc.pod.Namespace, Name: pc.pod.Name,
		Container: container, Type: typ, Reason: reason, Message: msg, Time: p.now,
	})
}

// ---------------------------------------------------------------------------
// Images.

// imageCheck is whether a container's image allows starting it.
type imageCheck struct {
	ready   bool // on the node as the pull policy wants
	pull    bool // a pull should be issued now
	blocked bool // neither: back-off or pull policy Never
	reason  string
	message string
}

// pullPolicy applies the v1 default when the manifest layer did not: Always
// for :latest or no tag, IfNotPresent otherwise.
func pullPolicy(c *v1.Container) v1.PullPolicy {
	if c.ImagePullPolicy != "" {
		return c.ImagePullPolicy
	}
	img := c.Image
	if at := lastIndex(img, '@'); at >= 0 {
		return v1.PullIfNotPresent
	}
	colon, slash := lastIndex(img, ':'), lastIndex(img, '/')
	if colon < 0 || colon < slash || img[colon+1:] == "latest" {
		return v1.PullAlways
	}
	return v1.PullIfNotPresent
}

func lastIndex(s string, b byte) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == b {
			return i
		}
	}
	return -1
}

func (p *planner) checkImage(pc *podCtx, c *v1.Container) imageCheck {
	st := p.o.Images[c.Image]
	present := st != nil && st.Presence == ImagePresent
	policy := pullPolicy(c)
	switch policy {
	case v1.PullNever:
		if present {
			return imageCheck{ready: true}
		}
		// kubelet's ErrImageNeverPull, message from its image manager.
		return imageCheck{blocked: true, reason: "ErrImageNeverPull",
			message: `Container image "` + c.Image + `" is not present with pull policy of Never`}
	case v1.PullAlways:
		// Always: pulled at least once since this pod's content was seen
		// (kubelet pulls on every container start; we pull per pod content
		// so a crash loop does not hammer the registry).
		if present && (pc.dp == nil || !st.PulledAt.Before(pc.dp.SeenAt)) {
			return imageCheck{ready: true}
		}
	default:
		if present {
			return imageCheck{ready: true}
		}
	}
	if st != nil && st.Presence == ImagePullFailed {
		until := ImagePullBackOffUntil(st, p.cfg)
		if p.now.Before(until) {
			p.wakeAt(until)
			// kubelet shows ErrImagePull right after a failed pull and
			// ImagePullBackOff while later retries wait.
			if st.Failures <= 1 {
				return imageCheck{blocked: true, reason: "ErrImagePull", message: st.Message}
			}
			return imageCheck{blocked: true, reason: "ImagePullBackOff",
				message: `Back-off pulling image "` + c.Image + `": ErrImagePull: ` + st.Message}
		}
		return imageCheck{pull: true, reason: "ErrImagePull", message: st.Message}
	}
	return imageCheck{pull: true}
}

// imageEvents reports failed pulls once per failure (Warning Failed, as the
// kubelet's image manager does) and the back-off (Normal BackOff).
func (p *planner) imageEvents(pc *podCtx, c *ctr, chk imageCheck) {
	st := p.o.Images[c.spec.Image]
	if st == nil || st.Presence != ImagePullFailed {
		if chk.reason == "ErrImageNeverPull" {
			p.event(pc, c.spec.Name, "neverpull/"+c.spec.Name, v1.EventTypeWarning, "ErrImageNeverPull", chk.message)
		}
		return
	}
	n := strconv.Itoa(st.Failures)
	p.event(pc, c.spec.Name, "pullfailed/"+c.spec.Name+"/"+n, v1.EventTypeWarning, "Failed",
		`Failed to pull image "`+c.spec.Image+`": `+st.Message)
	if chk.reason == "ImagePullBackOff" {
		p.event(pc, c.spec.Name, "pullbackoff/"+c.spec.Name+"/"+n, v1.EventTypeNormal, "BackOff",
			`Back-off pulling image "`+c.spec.Image+`"`)
	}
}

// ensureImage issues the pull a container needs (chained before its start)
// and reports whether its start may follow.
func (p *planner) ensureImage(pc *podCtx, c *ctr) bool {
	chk := p.checkImage(pc, c.spec)
	if chk.ready {
		return true
	}
	c.waitReason, c.waitMessage = chk.reason, chk.message
	p.imageEvents(pc, c, chk)
	if chk.blocked {
		return false
	}
	p.add(pc, PullImage{UID: pc.uid, Image: c.spec.Image, Policy: pullPolicy(c.spec)})
	return true
}

// ---------------------------------------------------------------------------
// Desired pods.

func (p *planner) planDesired(uid types.UID, dp *DesiredPod) PodPlan {
	pod := dp.Pod
	op := p.o.Pods[uid]
	pc := p.newPodCtx(uid, pod, dp, op)
	if dp.Error != "" {
		p.event(pc, "", "invalid/"+dp.Error, v1.EventTypeWarning, "InvalidManifest",
			dp.Source+": "+dp.Error+" (the last valid spec keeps running)")
	}
	name := nsName(pod.Namespace, pod.Name)

	if sd, ok := p.d.Shutdown[uid]; ok {
		// The node is shutting down: stop the pod (its state stays, so it
		// starts again when the shutdown is cancelled or the node boots).
		p.readyByName[name] = true
		pc.shutdown = &sd
		done := p.shutdownStop(pc)
		pp := p.finish(pc, dp.QOSClass, false)
		pp.ShutdownStopped = done
		return pp
	}

	// A changed manifest is a new pod (new UID, same name). Its images are
	// fetched first; the old pod is stopped only once they are all here,
	// and the new one starts once the old one is gone (two pods of one name
	// would fight for host ports and files).
	if p.hasPredecessor(uid, pod) {
		ready := true
		for _, list := range [2][]ctr{pc.inits, pc.apps} {
			for i := range list {
				if !p.checkImage(pc, list[i].spec).ready {
					ready = false
					p.ensureImage(pc, &list[i])
				}
			}
		}
		p.readyByName[name] = ready
		pc.waitingForPredecessor = true
		return p.finish(pc, dp.QOSClass, false)
	}
	p.readyByName[name] = true
	if t := pc.op.Termination; t != nil && (t.Reason == ReasonDeleted || t.Reason == ReasonReplaced) {
		// The file came back (same content, same UID) while its pod was
		// being stopped. As the kubelet does for a static pod, the
		// termination completes first; the pod then starts afresh.
		if p.stopAll(pc, t.Reason) {
			p.add(pc, RemovePod{UID: uid})
		}
		return p.finish(pc, dp.QOSClass, true)
	}
	p.lifecycle(pc)
	return p.finish(pc, dp.QOSClass, false)
}

// hasPredecessor: an observed pod with the same name and another UID that
// nobody desires (the previous content of the same file).
func (p *planner) hasPredecessor(uid types.UID, pod *v1.Pod) bool {
	if p.undesiredNames == nil {
		// Built once per plan: names of observed pods nobody desires.
		p.undesiredNames = make(map[string]struct{})
		for ouid, op := range p.o.Pods {
			if op == nil {
				continue
			}
			if dp := p.d.Pods[ouid]; dp != nil && dp.Pod != nil {
				continue
			}
			p.undesiredNames[nsName(op.Namespace, op.Name)] = struct{}{}
		}
	}
	_, ok := p.undesiredNames[nsName(pod.Namespace, pod.Name)]
	return ok
}

// lifecycle plans a pod that should run: create, keep running, restart,
// and stop it when it is done.
func (p *planner) lifecycle(pc *podCtx) {
	pod := pc.pod
	op := pc.op
	// What runs of an instance whose records were lost goes first: a new
	// sandbox beside it would be the pod twice.
	for _, id := range op.StrayScopes {
		p.add(pc, StopStrayScope{UID: pc.uid, ID: id})
	}
	p.decideTerminal(pc)
	if pc.terminal {
		p.stopAll(pc, pc.terminalReason)
		return
	}

	switch op.Sandbox.State {
	case SandboxRunning:
		if op.Sandbox.ID != "" {
			p.runningSandbox(pc)
			return
		}
	case SandboxExited:
		// The pause process died (seed: "if pause dies, the Pod dies"): kill
		// what still runs in it, release it, then recreate below (kubelet:
		// "Pod sandbox changed, it will be killed and re-created").
		p.event(pc, "", "sandboxchanged/"+op.Sandbox.ID, v1.EventTypeNormal, "SandboxChanged",
			"Pod sandbox changed, it will be killed and re-created.")
		if p.killAllIn(pc, op.Sandbox.ID, ReasonSandboxChanged) {
			return
		}
		p.add(pc, StopSandbox{UID: pc.uid, ID: op.Sandbox.ID})
	}

	// No usable sandbox: create one, unless the pod already ran and its
	// restart policy says no more (kubelet computePodActions).
	ran := false
	for i := range pc.apps {
		if pc.apps[i].latest != nil {
			ran = true
		}
	}
	if ran || op.Sandbox.Attempt > 0 || op.Sandbox.ID != "" {
		if pod.Spec.RestartPolicy == v1.RestartPolicyNever && anyInstance(pc) {
			return
		}
		if ran && !p.anyAppToStart(pc) {
			return
		}
	}

	if !op.SliceExists {
		p.add(pc, EnsurePodCgroup{UID: pc.uid})
	}
	// Every image before the sandbox, so a pod that cannot get its images
	// holds no sandbox (and no IP) while it waits.
	ok := true
	for _, list := range [2][]ctr{pc.inits, pc.apps} {
		for i := range list {
			if !p.ensureImage(pc, &list[i]) {
				ok = false
			}
		}
	}
	if !ok {
		return
	}
	attempt := uint32(0)
	if op.Sandbox.ID != "" {
		attempt = op.Sandbox.Attempt + 1
	}
	if !p.add(pc, RunSandbox{UID: pc.uid, Attempt: attempt}) {
		return
	}
	// First wave in the same chain: the first init container, or every app
	// container; the rest waits for what they report.
	if len(pc.inits) > 0 {
		p.start(pc, &pc.inits[0], attempt)
		return
	}
	for i := range pc.apps {
		if c := &pc.apps[i]; p.wantStartFresh(pc, c) {
			p.start(pc, c, attempt)
		}
	}
}

func anyInstance(pc *podCtx) bool { return len(pc.op.Containers) > 0 }

// anyAppToStart: under OnFailure, app containers that succeeded are not run
// again in a new sandbox; with none left there is nothing to recreate for.
func (p *planner) anyAppToStart(pc *podCtx) bool {
	for i := range pc.apps {
		if p.wantStartFresh(pc, &pc.apps[i]) {
			return true
		}
	}
	return false
}

// wantStartFresh: should an app container with no instance in the current
// sandbox be started there?
func (p *planner) wantStartFresh(pc *podCtx, c *ctr) bool {
	if c.latest == nil || c.latest.State != ContainerExited {
		return true
	}
	return restartAllowed(pc.pod.Spec.RestartPolicy, c.latest.ExitCode)
}

func restartAllowed(policy v1.RestartPolicy, exitCode int32) bool {
	switch policy {
	case v1.RestartPolicyNever:
		return false
	case v1.RestartPolicyOnFailure:
		return exitCode != 0
	default:
		return true
	}
}

// stickyTerminal: the persisted status is a terminal phase the pod keeps.
// A terminal phase is never left (kubelet: a pod in Succeeded/Failed stays
// there; a static pod changes by getting a new UID), except the one a node
// shutdown gave: the pod was stopped only because the node was going down,
// and a static pod runs again when the node is back (the kubelet forgets
// it across the reboot; here the shutdown ends or is cancelled).
func stickyTerminal(prev *v1.PodStatus) bool {
	if prev == nil || (prev.Phase != v1.PodSucceeded && prev.Phase != v1.PodFailed) {
		return false
	}
	switch {
	case prev.Reason == NodeShutdownReason && prev.Message == NodeShutdownMessage,
		prev.Reason == NodeShutdownRejectedReason && prev.Message == NodeShutdownRejectedMessage:
		return false
	}
	return true
}

// shutdownStop stops a pod for a node shutdown (kubelet nodeshutdown
// manager: kill with gracePeriodOverride = min(the pod's grace, its group's
// grace), status Failed/Terminated) and reports whether nothing of it runs
// any more.
func (p *planner) shutdownStop(pc *podCtx) bool {
	sd := pc.shutdown
	grace := p.podGrace(pc.pod)
	if sd.MaxGrace < grace {
		grace = sd.MaxGrace
	}
	if grace < 0 {
		grace = 0
	}
	deadline := sd.Since.Add(grace)
	if t := pc.op.Termination; t != nil && t.Deadline.Before(deadline) {
		deadline = t.Deadline
	}
	pc.terminal, pc.terminalPhase = true, v1.PodFailed
	pc.terminalReason, pc.terminalMsg = NodeShutdownReason, NodeShutdownMessage
	if stickyTerminal(pc.prev) {
		// Already finished for good (the kubelet's manager only stops
		// active pods): it keeps its phase and reason.
		pc.terminalPhase, pc.terminalReason, pc.terminalMsg = pc.prev.Phase, pc.prev.Reason, pc.prev.Message
	} else if sd.Rejected && pc.op.Sandbox.ID == "" && len(pc.op.Containers) == 0 {
		pc.terminalReason, pc.terminalMsg = NodeShutdownRejectedReason, NodeShutdownRejectedMessage
	}
	if !p.stopContainers(pc, ReasonNodeShutdown, deadline) {
		return false
	}
	sb := pc.op.Sandbox
	return sb.ID == "" || (sb.State != SandboxRunning && sb.State != SandboxExited)
}

// decideTerminal finds whether the pod is done for good.
func (p *planner) decideTerminal(pc *podCtx) {
	if stickyTerminal(pc.prev) {
		pc.terminal, pc.terminalPhase = true, pc.prev.Phase
		pc.terminalReason, pc.terminalMsg = pc.prev.Reason, pc.prev.Message
		return
	}
	if ads := pc.pod.Spec.ActiveDeadlineSeconds; ads != nil {
		deadline := pc.startTime.Add(time.Duration(*ads) * time.Second)
		if !p.now.Before(deadline) {
			pc.terminal, pc.terminalPhase = true, v1.PodFailed
			pc.terminalReason = ReasonDeadlineExceeded
			pc.terminalMsg = "Pod was active on the node longer than the specified deadline"
			p.event(pc, "", "deadline", v1.EventTypeNormal, "DeadlineExceeded", pc.terminalMsg)
			return
		}
		p.wakeAt(deadline)
	}
	policy := pc.pod.Spec.RestartPolicy
	if policy == v1.RestartPolicyNever {
		for i := range pc.inits {
			c := &pc.inits[i]
			if !c.sidecar && c.latest != nil && c.latest.State == ContainerExited && c.latest.ExitCode != 0 {
				// An init container failing under Never fails the pod.
				pc.terminal, pc.terminalPhase = true, v1.PodFailed
				return
			}
		}
	}
	if policy == v1.RestartPolicyAlways || len(pc.apps) == 0 {
		return
	}
	// OnFailure/Never: done when every app container exited and none will
	// be restarted.
	allZero := true
	for i := range pc.apps {
		l := pc.apps[i].latest
		if l == nil || l.State != ContainerExited || restartAllowed(policy, l.ExitCode) {
			return
		}
		if l.ExitCode != 0 {
			allZero = false
		}
	}
	pc.terminal = true
	if allZero {
		pc.terminalPhase = v1.PodSucceeded
	} else {
		pc.terminalPhase = v1.PodFailed
	}
}

// runningSandbox plans a pod whose sandbox runs.
func (p *planner) runningSandbox(pc *podCtx) {
	sb := pc.op.Sandbox
	// Probes first: a failed liveness or startup probe kills the container;
	// its restart follows the restart policy once it has exited.
	for _, list := range [2][]ctr{pc.inits, pc.apps} {
		for i := range list {
			p.probeKill(pc, &list[i])
		}
	}

	// Containers still running from an older sandbox (a daemon crash in the
	// middle of a sandbox change) go before anything starts in this one.
	stale := false
	for _, list := range [2][]ctr{pc.inits, pc.apps} {
		for i := range list {
			if c := &list[i]; c.latest != nil && c.latest.State == ContainerRunning && c.latest.SandboxID != sb.ID {
				p.kill(pc, c, 0, ReasonSandboxChanged, "Stopping container "+c.spec.Name)
				stale = true
			}
		}
	}
	if stale {
		return
	}
	p.definitionChanges(pc, sb.Attempt)

	// Init containers in order (kubelet computeInitContainerActions).
	// Regular ones must exit 0 before the next starts; sidecars must be
	// started (startup probe passed) and are kept running.
	// A regular container ran in this sandbox: the pod was initialized and
	// its init containers are not run again.
	initialized := false
	for i := range pc.apps {
		if pc.apps[i].cur != nil {
			initialized = true
		}
	}
	if !initialized && !p.initContainers(pc, sb.Attempt) {
		return
	}
	// Sidecars that exit after initialization restart on their own.
	for i := range pc.inits {
		if c := &pc.inits[i]; c.sidecar && c.cur != nil && c.cur.State == ContainerExited {
			p.restart(pc, c, sb.Attempt)
		}
	}
	for i := range pc.apps {
		c := &pc.apps[i]
		switch {
		case c.cur == nil:
			if p.wantStartFresh(pc, c) {
				p.start(pc, c, sb.Attempt)
			}
		case c.cur.State == ContainerCreated:
			p.staleCreated(pc, c)
		case c.cur.State == ContainerExited:
			if restartAllowed(pc.pod.Spec.RestartPolicy, c.cur.ExitCode) {
				p.restart(pc, c, sb.Attempt)
			}
		}
	}
}

// initContainers walks the init containers in order and reports whether
// all are done (regular ones exited 0, sidecars started).
func (p *planner) initContainers(pc *podCtx, sandboxAttempt uint32) bool {
	for i := range pc.inits {
		c := &pc.inits[i]
		if c.cur == nil {
			p.start(pc, c, sandboxAttempt)
			return false
		}
		if c.cur.State == ContainerCreated {
			p.staleCreated(pc, c)
			return false
		}
		if c.sidecar {
			if c.cur.State == ContainerExited {
				// A sidecar that had started lets the walk go on (its
				// restart is planned with the other sidecars below); one
				// that never started holds the next init container back.
				if c.cur.StartedAt.IsZero() {
					p.restart(pc, c, sandboxAttempt)
					return false
				}
				continue
			}
			if !c.started() {
				return false
			}
			continue
		}
		if c.cur.State == ContainerRunning {
			return false
		}
		if c.cur.ExitCode == 0 {
			continue
		}
		// A failed regular init container is restarted (Always and
		// OnFailure alike; Never made the pod terminal above).
		p.restart(pc, c, sandboxAttempt)
		return false
	}
	return true
}

// staleCreated: an instance created but never started and no start in
// flight (the daemon died between create and start, or its scope lost its
// process). Remove it; the next plan starts a fresh attempt.
func (p *planner) staleCreated(pc *podCtx, c *ctr) {
	c.waitReason = "ContainerCreating"
	if p.inFlight(CreateAndStartContainer{UID: pc.uid, Name: c.spec.Name, Attempt: c.cur.Attempt}.Key()) {
		return
	}
	p.add(pc, RemoveContainer{UID: pc.uid, ID: c.cur.ID, Name: c.spec.Name})
}

// restart starts an exited container again once its CrashLoopBackOff
// allows (the first restart at once, then 10 s, 20 s, ... from the exit).
func (p *planner) restart(pc *podCtx, c *ctr, sandboxAttempt uint32) {
	c.restartPending = true
	c.backoff = p.crashLoop(pc, c.spec.Name)
	if c.backoff.InBackOff(p.now) {
		p.wakeAt(c.backoff.Until)
		c.waitReason = "CrashLoopBackOff"
		// kubelet's message, word for word (kuberuntime doBackOff).
		c.waitMessage = "back-off " + c.backoff.Delay.String() + " restarting failed container=" +
			c.spec.Name + " pod=" + pc.pod.Name + "_" + pc.pod.Namespace + "(" + string(pc.uid) + ")"
		p.event(pc, c.spec.Name, "backoff/"+c.latest.ID, v1.EventTypeWarning, "BackOff",
			"Back-off restarting failed container "+c.spec.Name+" in pod "+pc.pod.Name+"_"+pc.pod.Namespace+"("+string(pc.uid)+")")
		return
	}
	p.start(pc, c, sandboxAttempt)
}

// crashLoop computes the back-off over the instances of one container
// without copying them.
func (p *planner) crashLoop(pc *podCtx, name string) CrashLoop {
	insts := pc.op.Containers
	// Fast path: instances of one name are usually few; gather them into a
	// small stack buffer.
	var buf [16]ContainerInstance
	h := buf[:0]
	for i := range insts {
		if insts[i].Name == name {
			h = append(h, insts[i])
		}
	}
	return CrashLoopBackOff(h, p.cfg)
}

// start creates and starts a container (after its image, if needed).
func (p *planner) start(pc *podCtx, c *ctr, sandboxAttempt uint32) {
	if !p.ensureImage(pc, c) {
		return
	}
	a := CreateAndStartContainer{UID: pc.uid, Name: c.spec.Name, Attempt: c.nextAttempt(),
		Init: c.init, Sidecar: c.sidecar, Image: c.spec.Image, SandboxAttempt: sandboxAttempt,
		Hash: containerHash(pc.pod, c.spec), DefinitionChanged: c.definitionChanged}
	if ce, ok := pc.op.CreateErrors[c.spec.Name]; ok && ce.Attempt == a.Attempt && c.waitReason == "" {
		// The same attempt failed to be created before: it is asked for
		// again, and waits with the kubelet's reason meanwhile.
		c.waitReason, c.waitMessage = ce.Reason, ce.Message
	}
	if p.add(pc, a) && c.waitReason == "" {
		if st := p.o.Images[c.spec.Image]; st != nil && st.Presence == ImagePresent {
			// kubelet reports the image on every container start.
			msg := `Container image "` + c.spec.Image + `" already present on machine`
			if pc.dp != nil && !st.PulledAt.IsZero() && !st.PulledAt.Before(pc.dp.SeenAt) && a.Attempt == 0 {
				msg = `Successfully pulled image "` + c.spec.Image + `"`
			}
			p.event(pc, c.spec.Name, "pulled/"+c.spec.Name+"/"+u32(a.Attempt), v1.EventTypeNormal, "Pulled", msg)
		}
	}
}

// probeKill kills a running container whose liveness or startup probe
// failed (kubelet: "Container X failed liveness probe, will be restarted").
func (p *planner) probeKill(pc *podCtx, c *ctr) {
	if c.cur == nil || c.cur.State != ContainerRunning || c.probes == nil {
		return
	}
	if r := &c.probes.Readiness; c.spec.ReadinessProbe != nil && r.ContainerID == c.cur.ID && r.Outcome == ProbeFailure {
		// Readiness only flips Ready (status), but users see why.
		p.event(pc, c.spec.Name, "unhealthy/"+c.cur.ID+"/readiness/"+strconv.Itoa(int(r.ConsecutiveFailures)),
			v1.EventTypeWarning, "Unhealthy", "Readiness probe failed: "+r.Output)
	}
	var probe *v1.Probe
	var res *ProbeResult
	var kind string
	switch {
	case c.spec.StartupProbe != nil && c.probes.Startup.ContainerID == c.cur.ID && c.probes.Startup.Outcome == ProbeFailure:
		probe, res, kind = c.spec.StartupProbe, &c.probes.Startup, "startup"
	case c.spec.LivenessProbe != nil && c.probes.Liveness.ContainerID == c.cur.ID && c.probes.Liveness.Outcome == ProbeFailure:
		probe, res, kind = c.spec.LivenessProbe, &c.probes.Liveness, "liveness"
	default:
		return
	}
	grace := p.podGrace(pc.pod)
	if probe.TerminationGracePeriodSeconds != nil {
		// Probe-level terminationGracePeriodSeconds wins for probe kills.
		grace = time.Duration(*probe.TerminationGracePeriodSeconds) * time.Second
	}
	upper := "Liveness"
	if kind == "startup" {
		upper = "Startup"
	}
	p.event(pc, c.spec.Name, "unhealthy/"+c.cur.ID+"/"+kind+"/"+strconv.Itoa(int(res.ConsecutiveFailures)),
		v1.EventTypeWarning, "Unhealthy", upper+" probe failed: "+res.Output)
	p.kill(pc, c, grace, kind+"ProbeFailed", "Container "+c.spec.Name+" failed "+kind+" probe, will be restarted")
}

func (p *planner) podGrace(pod *v1.Pod) time.Duration {
	if pod.Spec.TerminationGracePeriodSeconds != nil {
		return time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second
	}
	return p.cfg.DefaultGrace
}

func (p *planner) kill(pc *podCtx, c *ctr, grace time.Duration, reason, msg string) {
	inst := c.cur
	if inst == nil {
		inst = c.latest
	}
	a := KillContainer{UID: pc.uid, ID: inst.ID, Name: c.spec.Name, Grace: grace,
		MinGraceAfterPreStop: p.cfg.MinGraceAfterPreStop, Reason: reason, Message: msg}
	// preStop runs once per instance, for any graceful kill (deletion,
	// probe failure), as kubelet's killContainer does.
	if c.spec.Lifecycle != nil && c.spec.Lifecycle.PreStop != nil && pc.op.PreStop[inst.ID] == HookNotRun {
		a.RunPreStop = true
	}
	if p.add(pc, a) {
		p.event(pc, c.spec.Name, "kill/"+inst.ID, v1.EventTypeNormal, "Killing", msg)
	}
}

// killAllIn kills every container still running in a (dead) sandbox and
// reports whether any was running.
func (p *planner) killAllIn(pc *podCtx, sandboxID, reason string) bool {
	any := false
	for _, list := range [2][]ctr{pc.inits, pc.apps} {
		for i := range list {
			c := &list[i]
			if c.latest != nil && c.latest.State == ContainerRunning && c.latest.SandboxID == sandboxID {
				any = true
				p.kill(pc, c, 0, reason, "Stopping container "+c.spec.Name)
			}
		}
	}
	return any
}

// stopAll stops every container of the pod within one grace period: app
// and regular init containers first, then sidecars in reverse order (KEP
// 753), then the sandbox. It reports whether everything is stopped.
func (p *planner) stopAll(pc *podCtx, reason string) bool {
	op := pc.op
	if reason == "" {
		reason = ReasonCompleted
	}
	grace := p.podGrace(pc.pod)
	deadline := p.now.Add(grace)
	if op.Termination == nil {
		p.add(pc, MarkTerminating{UID: pc.uid, Grace: grace, Reason: reason})
	} else {
		deadline = op.Termination.Deadline
	}
	if sd, ok := p.d.Shutdown[pc.uid]; ok {
		// Already stopping (deleted, replaced, done) when the node began
		// to shut down: the shutdown's bound applies too.
		if b := sd.Since.Add(sd.MaxGrace); b.Before(deadline) {
			deadline = b
		}
	}
	return p.stopContainers(pc, reason, deadline)
}

// stopContainers is stopAll after its deadline is known.
func (p *planner) stopContainers(pc *podCtx, reason string, deadline time.Time) bool {
	op := pc.op
	left := deadline.Sub(p.now)
	if left < 0 {
		left = 0
	}
	running := false
	runningIn := func(c *ctr) bool { return c.latest != nil && c.latest.State == ContainerRunning }
	for i := range pc.apps {
		if c := &pc.apps[i]; runningIn(c) {
			running = true
			p.kill(pc, c, left, reason, "Stopping container "+c.spec.Name)
		}
	}
	for i := range pc.inits {
		if c := &pc.inits[i]; !c.sidecar && runningIn(c) {
			running = true
			p.kill(pc, c, left, reason, "Stopping container "+c.spec.Name)
		}
	}
	if !running {
		for i := len(pc.inits) - 1; i >= 0; i-- {
			if c := &pc.inits[i]; c.sidecar && runningIn(c) {
				running = true
				p.kill(pc, c, left, reason, "Stopping container "+c.spec.Name)
				break // one at a time, last started first
			}
		}
	}
	if running {
		p.wakeAt(deadline)
		return false
	}
	// Containers the pod spec no longer names (or unknown to it) that still
	// run are killed at once.
	for i := range op.Containers {
		in := &op.Containers[i]
		if in.State == ContainerRunning && !specHas(pc.pod, in.Name) {
			p.add(pc, KillContainer{UID: pc.uid, ID: in.ID, Name: in.Name, Reason: reason,
				MinGraceAfterPreStop: p.cfg.MinGraceAfterPreStop, Message: "Stopping container " + in.Name})
			running = true
		}
	}
	if running {
		return false
	}
	if op.Sandbox.ID != "" && (op.Sandbox.State == SandboxRunning || op.Sandbox.State == SandboxExited) {
		p.add(pc, StopSandbox{UID: pc.uid, ID: op.Sandbox.ID})
	}
	return true
}

func specHas(pod *v1.Pod, name string) bool {
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return true
		}
	}
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return true
		}
	}
	return false
}

// ---------------------------------------------------------------------------
// Pods nobody wants.

func (p *planner) planUndesired(uid types.UID, op *ObservedPod) PodPlan {
	if op.Pod == nil {
		// No spec survived: an orphan from a crash or another version.
		// Nothing to be graceful with: kill and remove.
		pp := PodPlan{UID: uid, Namespace: op.Namespace, Name: op.Name, Terminating: true}
		a := CleanupOrphan{UID: uid}
		if !p.inFlight(a.Key()) {
			pp.Actions = []Action{a}
		}
		return pp
	}
	pod := op.Pod
	if succ, ok := p.desiredByName[nsName(pod.Namespace, pod.Name)]; ok && succ != uid && !p.readyByName[nsName(pod.Namespace, pod.Name)] {
		// Replaced, but the new pod's images are not all here: the old pod
		// keeps running with its full lifecycle (restarts included).
		pc := p.newPodCtx(uid, pod, nil, op)
		p.lifecycle(pc)
		return p.finish(pc, "", false)
	}
	reason := ReasonDeleted
	if _, ok := p.desiredByName[nsName(pod.Namespace, pod.Name)]; ok {
		reason = ReasonReplaced
	}
	pc := p.newPodCtx(uid, pod, nil, op)
	if p.stopAll(pc, reason) {
		p.add(pc, RemovePod{UID: uid})
	}
	return p.finish(pc, "", true)
}

// finish computes the pod's status and its transition events.
func (p *planner) finish(pc *podCtx, qos v1.PodQOSClass, terminating bool) PodPlan {
	st := p.status(pc, qos)
	p.statusEvents(pc, st)
	pp := PodPlan{UID: pc.uid, Namespace: pc.pod.Namespace, Name: pc.pod.Name, Actions: pc.actions,
		Status: st, Terminating: terminating}
	if pc.dp != nil {
		pp.InvalidManifest = pc.dp.Error
	}
	return pp
}
