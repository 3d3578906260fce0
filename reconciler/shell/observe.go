package shell

// observe.go: Node, the real IO shell of the loop, and how it reads
// the node back into Observed: cgroup units from the driver, sandboxes and
// containers (with their persisted exit records) from the runtime, the
// reconciler's own records, the image store and the pulls it runs.

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/moby/sys/mountinfo"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"

	"github.com/minikubelet/minikubelet/internal/layout"
	mklrt "github.com/minikubelet/minikubelet/runtime"
	"github.com/minikubelet/minikubelet/runtime/network"
	"github.com/minikubelet/minikubelet/systemd"

	"github.com/minikubelet/minikubelet/reconciler"
)

// observeParallel pods are read at once; observePodTimeout bounds the
// supervisor calls made to read one pod.
const (
	observeParallel   = 16
	observePodTimeout = 3 * time.Second
)

// NodeOptions wire a Node to the node's components.
type NodeOptions struct {
	RootDir  string
	NodeName string
	HostIP   string // "" = first global IPv4 of the host, else 127.0.0.1
	Driver   Cgroups
	Runtime  Runtime
	Images   Images
	Network  Network // nil (not a nil *network.Manager): pods get loopback only
	Plan     systemd.PlanOptions
	// LogDir and LogRetention: the log folders of pods that are gone are
	// removed once untouched for LogRetention (0: kept forever).
	LogDir       string
	LogRetention time.Duration
	// KeepExited is how many exit records are kept per container name
	// (they feed CrashLoopBackOff and lastState); default 8. Only the newest
	// exited instance keeps its root filesystem and cgroup (pruneExited).
	KeepExited int
	// Wake is called when something changed behind the loop's back (a
	// container exited, an OOM kill was counted).
	Wake func()
	// Event records an event the executor itself observes (hook failures).
	Event func(pod *v1.Pod, container, typ, reason, message string)
	Now   func() time.Time
	Log   *slog.Logger
}

// Node implements Interface over the real node.
type Node struct {
	opt     NodeOptions
	state   stateDir
	records recordCaches // what observePod reads every round

	bg     context.Context // lives until Close: exit waiters, OOM watchers
	cancel context.CancelFunc

	mu        sync.Mutex
	prev      map[types.UID]*v1.PodStatus
	written   map[types.UID]*v1.PodStatus
	images    map[string]*reconciler.ImageState // pull outcomes by spec reference
	pulling   map[string]int
	waiters   map[string]bool // container IDs with an exit waiter
	oomWatch  map[string]bool // container IDs with an OOM watcher
	lastUnits []systemd.UnitState
	removing  map[types.UID]bool // pods whose state dir is being removed: no status writes
	// persistFailing: pods whose status.json could not be written; said
	// once until a write succeeds (a full --root-dir fails every round).
	persistFailing map[types.UID]bool

	probes *probers
	// podOfContainer maps running container IDs to their pod (exec probes).
	podOfContainer map[string]types.UID
	lastLogSweep   time.Time
	// netChecked: sandbox ID -> whether its network was found broken
	// (CNI CHECK on adoption, once; sandboxes set up here are trusted).
	netChecked map[string]bool
	// netChecking: sandbox IDs whose CHECK runs in the background now;
	// netChecks counts those goroutines (tests wait on it); netCheckSem
	// bounds the CHECKs that run at once.
	netChecking map[string]bool
	netChecks   sync.WaitGroup
	netCheckSem chan struct{}
	// createErrs: pod -> container name -> latest failed create (see
	// create_errors.go).
	createErrs map[types.UID]map[string]reconciler.CreateError
}

// NewNode returns a shell; Close stops its watchers (pods keep running).
func NewNode(opt NodeOptions) *Node {
	if opt.KeepExited <= 0 {
		opt.KeepExited = 8
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if opt.Wake == nil {
		opt.Wake = func() {}
	}
	if opt.Event == nil {
		opt.Event = func(*v1.Pod, string, string, string, string) {}
	}
	if opt.HostIP == "" {
		opt.HostIP = hostIPv4()
	}
	ctx, cancel := context.WithCancel(context.Background())
	wake := opt.Wake
	n := &Node{opt: opt, state: stateDir{layout.Root(opt.RootDir)}, records: newRecordCaches(), bg: ctx, cancel: cancel,
		probes: newProbers(ctx, opt.Now, func() { wake() }), podOfContainer: map[string]types.UID{}, netChecked: map[string]bool{}, netChecking: map[string]bool{}, netCheckSem: make(chan struct{}, netCheckParallel),
		prev: map[types.UID]*v1.PodStatus{}, written: map[types.UID]*v1.PodStatus{},
		images: map[string]*reconciler.ImageState{}, pulling: map[string]int{},
		waiters: map[string]bool{}, oomWatch: map[string]bool{}, removing: map[types.UID]bool{}, persistFailing: map[types.UID]bool{}}
	n.probes.prober.Exec = shellExecer{n}
	return n
}

// Close stops the exit waiters and OOM watchers.
func (n *Node) Close() { n.cancel() }

// HostIP is the address reported as status.hostIP.
func (n *Node) HostIP() string { return n.opt.HostIP }

// Units returns the units seen by the last observation.
func (n *Node) Units() []systemd.UnitState {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]systemd.UnitState(nil), n.lastUnits...)
}

// hostIPv4 is the node's address as kubelet picks it: the IPv4 of the
// interface holding the default route, else the first global IPv4, else
// 127.0.0.1.
func hostIPv4() string {
	if b, err := os.ReadFile("/proc/net/route"); err == nil {
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) > 2 && f[1] == "00000000" {
				if ifc, err := net.InterfaceByName(f[0]); err == nil {
					if addrs, err := ifc.Addrs(); err == nil {
						for _, a := range addrs {
							if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && ipn.IP.IsGlobalUnicast() {
								return ipn.IP.String()
							}
						}
					}
				}
			}
		}
	}
	addrs, err := net.InterfaceAddrs()
	if err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && ipn.IP.IsGlobalUnicast() {
				return ipn.IP.String()
			}
		}
	}
	return "127.0.0.1"
}

// Observe implements Interface.
func (n *Node) Observe(ctx context.Context, desired *reconciler.Desired) (reconciler.Observed, error) {
	obs := reconciler.Observed{
		Pods:       map[types.UID]*reconciler.ObservedPod{},
		Images:     map[string]*reconciler.ImageState{},
		PrevStatus: map[types.UID]*v1.PodStatus{},
		HostIP:     n.opt.HostIP,
		NodeName:   n.opt.NodeName,
	}
	units, err := n.opt.Driver.List(ctx)
	if err != nil {
		return obs, err
	}
	n.mu.Lock()
	n.lastUnits = units
	n.mu.Unlock()
	scopes := map[types.UID]map[string]systemd.UnitState{}
	get := func(uid types.UID) *reconciler.ObservedPod {
		op := obs.Pods[uid]
		if op == nil {
			op = &reconciler.ObservedPod{UID: uid}
			obs.Pods[uid] = op
		}
		return op
	}
	for _, u := range units {
		if u.PodUID == "" {
			continue
		}
		if u.ID == "" {
			get(u.PodUID).SliceExists = true
			continue
		}
		if scopes[u.PodUID] == nil {
			scopes[u.PodUID] = map[string]systemd.UnitState{}
		}
		scopes[u.PodUID][u.ID] = u
		get(u.PodUID)
	}
	ents, err := os.ReadDir(n.state.podsDir())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return obs, err
	}
	for _, e := range ents {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			get(types.UID(e.Name())).StateExists = true
		}
	}
	mounts := mountPointsUnder(n.state.podsDir())
	// Pods are read in parallel, each bounded in time: a supervisor that
	// does not answer costs its own pod a timeout, not every pod one.
	var wg sync.WaitGroup
	var errMu sync.Mutex
	var firstErr error
	sem := make(chan struct{}, observeParallel)
	for uid, op := range obs.Pods {
		wg.Add(1)
		sem <- struct{}{}
		go func(uid types.UID, op *reconciler.ObservedPod) {
			defer func() { <-sem; wg.Done() }()
			pctx, cancel := context.WithTimeout(ctx, observePodTimeout)
			defer cancel()
			if err := n.observePod(pctx, op, desired, scopes[uid], mounts); err != nil {
				errMu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				errMu.Unlock()
			}
		}(uid, op)
	}
	wg.Wait()
	if firstErr != nil {
		return obs, firstErr
	}
	for uid, op := range obs.Pods {
		if st := n.prevStatus(uid, op.StateExists); st != nil {
			obs.PrevStatus[uid] = st
		}
	}
	for uid, dp := range desired.Pods {
		if dp == nil || dp.Pod == nil {
			continue
		}
		if _, ok := obs.PrevStatus[uid]; !ok {
			if st := n.prevStatus(uid, false); st != nil {
				obs.PrevStatus[uid] = st
			}
		}
		n.observeImages(dp.Pod, obs.Images)
	}
	for _, op := range obs.Pods {
		if op.Pod != nil {
			n.observeImages(op.Pod, obs.Images)
		}
	}
	running := map[string]types.UID{}
	for uid, op := range obs.Pods {
		for _, c := range op.Containers {
			if c.State == reconciler.ContainerRunning {
				running[c.ID] = uid
			}
		}
	}
	n.mu.Lock()
	n.podOfContainer = running
	n.observeCreateErrorsLocked(&obs, desired)
	for uid := range n.prev {
		if obs.Pods[uid] == nil && desired.Pods[uid] == nil {
			delete(n.prev, uid)
			delete(n.written, uid)
		}
	}
	n.mu.Unlock()
	n.probes.sync(&obs, desired, n.opt.HostIP)
	n.sweepLogs(&obs, desired)
	return obs, nil
}

// prevStatus is the last persisted status: from memory, else status.json.
func (n *Node) prevStatus(uid types.UID, onDisk bool) *v1.PodStatus {
	n.mu.Lock()
	st := n.prev[uid]
	n.mu.Unlock()
	if st != nil || !onDisk {
		return st
	}
	var s v1.PodStatus
	if !readJSON(n.state.statusFile(uid), &s) {
		return nil
	}
	n.mu.Lock()
	n.prev[uid] = &s
	n.written[uid] = &s
	n.mu.Unlock()
	return &s
}

func (n *Node) observePod(ctx context.Context, op *reconciler.ObservedPod, desired *reconciler.Desired, scopes map[string]systemd.UnitState, mounts []string) error {
	uid := op.UID
	defer func() { op.StrayScopes = strayScopes(op, scopes) }()
	var rec podRecord
	if op.StateExists {
		rec, _ = n.records.pod.Read(n.state.podFile(uid))
	}
	if rec.Pod != nil {
		op.Pod = rec.Pod
		op.Namespace, op.Name = rec.Pod.Namespace, rec.Pod.Name
		op.StartTime = rec.CreatedAt
	} else if dp := desired.Pods[uid]; dp != nil && dp.Pod != nil {
		op.Namespace, op.Name = dp.Pod.Namespace, dp.Pod.Name
	}
	prefix := n.state.pod(uid) + "/"
	for _, m := range mounts {
		if strings.HasPrefix(m, prefix) {
			op.MountsExist = true
			break
		}
	}
	if !op.StateExists {
		return nil
	}
	if term, err := n.records.term.Read(n.state.termFile(uid)); err == nil {
		op.Termination = &term
	}
	recs := map[string]containerRecord{}
	if ents, err := os.ReadDir(n.state.containersDir(uid)); err == nil {
		for _, e := range ents {
			if id, ok := strings.CutSuffix(e.Name(), ".json"); ok {
				if cr, err := n.records.container.Read(n.state.containerFile(uid, id)); err == nil {
					recs[id] = cr
				}
			}
		}
	}
	sbRunning := false
	sb, err := n.records.sandbox.Read(n.state.sandboxFile(uid))
	if err == nil {
		op.Sandbox = reconciler.Sandbox{ID: sb.ID, Attempt: sb.Attempt, IPs: sb.IPs}
		switch {
		case sb.Stopped:
			op.Sandbox.State = reconciler.SandboxStopped
		default:
			st, err := n.opt.Runtime.SandboxStatus(ctx, uid)
			_, placed := scopes[sb.ID]
			if err == nil && st.PID != 0 && !placed && n.opt.Now().Sub(sb.Created) > unplacedAfter {
				// A pause never placed in its scope (the daemon died between
				// starting it and placing it) is half a sandbox: released and
				// replaced like a dead one. Younger ones may be being placed
				// right now.
				op.Sandbox.State = reconciler.SandboxExited
			} else if err == nil && st.PID != 0 && !n.networkBroken(ctx, op, desired, sb, st, hasContainerOf(recs, sb.ID)) {
				op.Sandbox.State = reconciler.SandboxRunning
				op.Sandbox.PID = st.PID
				sbRunning = true
			} else {
				op.Sandbox.State = reconciler.SandboxExited
			}
		}
	}
	cs, err := n.opt.Runtime.ListContainers(ctx, uid)
	if err != nil {
		return err
	}
	op.PreStop = map[string]reconciler.HookState{}
	for _, c := range cs {
		cr, known := recs[c.ID]
		in := reconciler.ContainerInstance{ID: c.ID, Name: c.Name, Attempt: uint32(c.Attempt),
			ExitCode: int32(c.ExitCode), Signal: int32(c.Signal), Reason: c.Reason, Message: c.Message,
			StartedAt: c.StartedAt, FinishedAt: c.FinishedAt}
		if known {
			in.SandboxID, in.Image, in.ImageRef, in.ImageID, in.Hash = cr.SandboxID, cr.Image, cr.ImageRef, cr.ImageID, cr.Hash
			op.PreStop[c.ID] = cr.PreStop
		} else {
			// Created by the runtime but the daemon died before recording
			// it: it can only belong to the current sandbox.
			in.SandboxID = sb.ID
		}
		switch c.State {
		case mklrt.ContainerCreated:
			in.State = reconciler.ContainerCreated
		case mklrt.ContainerRunning:
			in.State = reconciler.ContainerRunning
		case mklrt.ContainerExited:
			in.State = reconciler.ContainerExited
		default: // Unknown: no exit record and the supervisor did not answer
			switch {
			case c.StartedAt.IsZero():
				in.State = reconciler.ContainerCreated
			case sbRunning:
				// The supervisor lives; a failed call is no proof of an
				// exit, and calling it one would start a duplicate.
				in.State = reconciler.ContainerRunning
			default:
				// The supervisor died without recording the exit (host
				// reboot, kill -9 of the pause): the container died with it.
				in.State = reconciler.ContainerExited
				in.ExitCode, in.Reason = 137, "Error"
				in.Message = "the pod sandbox died before the container's exit was recorded"
				if in.FinishedAt.IsZero() {
					in.FinishedAt = c.StartedAt
				}
			}
		}
		if in.State == reconciler.ContainerExited && exists(n.state.oomFile(uid, c.ID)) {
			in.Reason = "OOMKilled"
		}
		op.Containers = append(op.Containers, in)
		if in.State == reconciler.ContainerRunning && sbRunning {
			n.watchContainer(uid, c.ID)
		}
	}
	return nil
}

// strayScopes lists the running scopes of a pod that are neither its
// recorded sandbox nor one of its listed containers (sorted). Records are
// written before their scope is started (execute.go), so a scope being
// created right now is never among them.
func strayScopes(op *reconciler.ObservedPod, scopes map[string]systemd.UnitState) []string {
	var out []string
	for id, u := range scopes {
		if id == op.Sandbox.ID || u.ActiveState != "active" && u.ActiveState != "activating" {
			continue
		}
		known := false
		for _, c := range op.Containers {
			known = known || c.ID == id
		}
		if !known {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// networkBroken says whether CNI CHECK found the network of a sandbox this
// daemon process did not create (adopted after a restart) broken. A broken
// or unknown attachment makes the sandbox count as dead, so it is released
// and recreated (the network package's contract); a sandbox this process
// set up is trusted. The CHECK runs once per sandbox.
//
// For a sandbox that already has containers (its network was set up: the
// sandbox action ends with CNI ADD, containers come after it) the CHECK
// runs in the background and the sandbox is trusted until its verdict, as
// if the network broke a moment after a check: done in the round, a
// restarted daemon's first round ran every adopted pod's plugin chain
// (bridge, host-local, firewall, portmap: several execs and iptables reads
// each) before it could report or act, 10 s with 40 pods on a loaded 2-core
// host. A sandbox without containers may be half made (the daemon died
// before or during ADD): it is checked in the round, so no container is
// started in it before the verdict.
func (n *Node) networkBroken(ctx context.Context, op *reconciler.ObservedPod, desired *reconciler.Desired, sb sandboxRecord, st mklrt.SandboxStatus, background bool) bool {
	if n.opt.Network == nil {
		return false
	}
	pod := op.Pod
	if dp := desired.Pods[op.UID]; dp != nil && dp.Pod != nil {
		pod = dp.Pod
	}
	if pod == nil || pod.Spec.HostNetwork || st.NetNSPath == "" {
		return false
	}
	n.mu.Lock()
	verdict, known := n.netChecked[sb.ID]
	n.mu.Unlock()
	if known {
		return verdict
	}
	if !background {
		// No verdict in time (the round's bound ran out while other
		// CHECKs held the slots after a restart) counts as broken: the
		// sandbox may be half made, and trusting it started containers in
		// a sandbox without a network, which the late verdict then killed
		// (a restartPolicy Never pod ended with exit 137 instead of its
		// own code, chaos scenario 1 on 2026-12-03). Replacing a sandbox
		// no container has run in loses nothing.
		broken, ok := n.checkNetwork(ctx, op.UID, pod, sb.ID, st.NetNSPath)
		return broken || !ok
	}
	n.mu.Lock()
	start := !n.netChecking[sb.ID] && n.bg.Err() == nil
	if start {
		n.netChecking[sb.ID] = true
		n.netChecks.Add(1)
	}
	n.mu.Unlock()
	if start {
		go func() {
			defer n.netChecks.Done()
			n.checkNetwork(n.bg, op.UID, pod, sb.ID, st.NetNSPath)
			n.mu.Lock()
			delete(n.netChecking, sb.ID)
			n.mu.Unlock()
		}()
	}
	return false
}

// hasContainerOf says whether any container record names the sandbox.
func hasContainerOf(recs map[string]containerRecord, sandboxID string) bool {
	for _, cr := range recs {
		if cr.SandboxID == sandboxID {
			return true
		}
	}
	return false
}

// netCheckParallel bounds the background CHECKs: each runs a chain of
// plugin processes, and a restart may adopt hundreds of pods at once.
const netCheckParallel = 4

// checkNetwork runs CNI CHECK for an adopted sandbox and records the
// verdict (ok false: none, ctx ended first); a broken network wakes the
// loop, which then recreates the sandbox.
func (n *Node) checkNetwork(ctx context.Context, uid types.UID, pod *v1.Pod, sandboxID, netns string) (broken, ok bool) {
	select {
	case n.netCheckSem <- struct{}{}:
		defer func() { <-n.netCheckSem }()
	case <-ctx.Done():
		return false, false
	}
	ctx, cancel := context.WithTimeout(ctx, observePodTimeout)
	defer cancel()
	// Which CNI calls may run side by side is the network manager's
	// business (runtime/network: Manager.node).
	_, err := n.opt.Network.Check(ctx, network.PodNetwork{UID: string(uid), Namespace: pod.Namespace, Name: pod.Name,
		NetnsPath: netns, PortMappings: hostPorts(pod)})
	if ctx.Err() != nil {
		return false, false // not a verdict: checked again by a later round
	}
	broken = err != nil
	if broken {
		// A sandbox stopped or replaced meanwhile (its pod deleted, its
		// network torn down) is not broken, only gone.
		if sb, found := n.readSandbox(uid); !found || sb.ID != sandboxID || sb.Stopped {
			return false, false
		}
		n.opt.Log.Warn("adopted pod's network is broken; its sandbox is recreated", "pod", pod.Namespace+"/"+pod.Name, "err", err)
		n.opt.Event(pod, "", v1.EventTypeWarning, "NetworkNotReady", "network check failed, sandbox will be recreated: "+err.Error())
	}
	n.mu.Lock()
	n.netChecked[sandboxID] = broken
	n.mu.Unlock()
	if broken {
		n.opt.Wake()
	}
	return broken, true
}

// unplacedAfter: a pause still outside its scope this long after its
// sandbox record was written is not being placed any more (a placement
// waits at most for systemd's job timeout).
const unplacedAfter = 2 * time.Minute

// watchContainer starts, once per running container, a waiter that wakes
// the loop at its exit and an OOM watcher on its scope (re-armed after a
// daemon restart: kills from then on are attributed).
func (n *Node) watchContainer(uid types.UID, id string) {
	n.mu.Lock()
	startWait := !n.waiters[id]
	n.waiters[id] = true
	n.mu.Unlock()
	if startWait {
		go func() {
			_, err := n.opt.Runtime.WaitContainer(n.bg, uid, id)
			if n.bg.Err() != nil {
				return
			}
			if err != nil {
				// The supervisor went away: give it a moment, then look.
				time.Sleep(200 * time.Millisecond)
			}
			n.mu.Lock()
			delete(n.waiters, id)
			n.mu.Unlock()
			n.opt.Wake()
		}()
	}
	n.watchOOM(uid, id)
}

// watchOOM starts, unless one runs already, the container's OOM watcher:
// at each OOM kill of its scope it writes the time to the container's OOM
// file (whose presence makes observe report the exit OOMKilled) and wakes
// the loop. Where the driver cannot watch, the next call tries again; so
// does one after the watch ends (the scope is gone).
func (n *Node) watchOOM(uid types.UID, id string) {
	n.mu.Lock()
	armed := n.oomWatch[id]
	n.oomWatch[id] = true
	n.mu.Unlock()
	if armed {
		return
	}
	ch, err := n.opt.Driver.WatchOOM(n.bg, uid, id)
	if err != nil {
		n.mu.Lock()
		delete(n.oomWatch, id)
		n.mu.Unlock()
		return
	}
	go func() {
		for range ch {
			writeJSON(n.state.oomFile(uid, id), map[string]any{"time": n.opt.Now()})
			n.opt.Wake()
		}
		n.mu.Lock()
		delete(n.oomWatch, id)
		n.mu.Unlock()
	}()
}

// observeImages fills the state of every image a pod names.
func (n *Node) observeImages(pod *v1.Pod, out map[string]*reconciler.ImageState) {
	each := func(cs []v1.Container) {
		for i := range cs {
			ref := cs[i].Image
			if _, done := out[ref]; done || ref == "" {
				continue
			}
			out[ref] = n.imageState(ref)
		}
	}
	each(pod.Spec.InitContainers)
	each(pod.Spec.Containers)
}

func (n *Node) imageState(ref string) *reconciler.ImageState {
	n.mu.Lock()
	mem := n.images[ref]
	pulling := n.pulling[ref] > 0
	n.mu.Unlock()
	st := &reconciler.ImageState{}
	if mem != nil {
		*st = *mem
	}
	if pulling {
		st.Presence = reconciler.ImagePulling
		return st
	}
	rec, found, err := n.opt.Images.Lookup(ref)
	switch {
	case err == nil && found:
		st.Presence = reconciler.ImagePresent
		st.ImageID = rec.ImageID()
	case mem != nil && mem.Failures > 0:
		st.Presence = reconciler.ImagePullFailed
	default:
		st.Presence = reconciler.ImageAbsent
	}
	return st
}

// Persist implements Interface: the status is kept in memory (PrevStatus of
// the next round) and written to status.json when it changed and the pod
// has a state dir.
func (n *Node) Persist(pp *reconciler.PodPlan) {
	if pp.Status == nil {
		return
	}
	n.mu.Lock()
	n.prev[pp.UID] = pp.Status
	w := n.written[pp.UID]
	removing := n.removing[pp.UID]
	n.mu.Unlock()
	if removing || (w != nil && equality.Semantic.DeepEqual(w, pp.Status)) {
		return
	}
	// Only pods with a record: a status file alone would make a removed
	// pod's dir reappear.
	if !exists(n.state.podFile(pp.UID)) {
		return
	}
	if err := writeJSON(n.state.statusFile(pp.UID), pp.Status); err != nil {
		n.mu.Lock()
		first := !n.persistFailing[pp.UID]
		n.persistFailing[pp.UID] = true
		n.mu.Unlock()
		if first {
			n.opt.Log.Warn("persist pod status (said once until a write succeeds; retried every round)", "uid", pp.UID, "err", err)
		}
		return
	}
	n.mu.Lock()
	n.written[pp.UID] = pp.Status
	recovered := n.persistFailing[pp.UID]
	delete(n.persistFailing, pp.UID)
	n.mu.Unlock()
	if recovered {
		n.opt.Log.Info("pod status persisted again", "uid", pp.UID, "file", n.state.statusFile(pp.UID))
	}
}

// forget drops what the shell remembers of a removed pod.
func (n *Node) forget(uid types.UID) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.prev, uid)
	delete(n.written, uid)
	delete(n.createErrs, uid)
	delete(n.persistFailing, uid)
}

// mountPointsUnder lists mount points strictly below dir.
func mountPointsUnder(dir string) []string {
	ms, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return nil
	}
	var out []string
	for _, m := range ms {
		if m.Mountpoint != dir {
			out = append(out, m.Mountpoint)
		}
	}
	return out
}

// sweepLogs removes, at most once a minute (or retention), the log folders
// (<ns>_<pod>_<uid>) of pods neither desired nor on the node, once
// LogRetention passed since the pod's removal and the last write: logs
// outlive their pod (for a look after a delete or an edit), not forever.
func (n *Node) sweepLogs(obs *reconciler.Observed, desired *reconciler.Desired) {
	if n.opt.LogDir == "" || n.opt.LogRetention <= 0 {
		return
	}
	now := n.opt.Now()
	every := time.Minute
	if n.opt.LogRetention < every {
		every = n.opt.LogRetention
	}
	if now.Sub(n.lastLogSweep) < every {
		return
	}
	n.lastLogSweep = now
	ents, err := os.ReadDir(n.opt.LogDir)
	if err != nil {
		return
	}
	for _, e := range ents {
		i := strings.LastIndexByte(e.Name(), '_')
		if !e.IsDir() || i < 0 || strings.Count(e.Name(), "_") < 2 {
			continue
		}
		uid := types.UID(e.Name()[i+1:])
		if obs.Pods[uid] != nil || desired.Pods[uid] != nil {
			continue
		}
		dir := filepath.Join(n.opt.LogDir, e.Name())
		if newestMod(dir).Add(n.opt.LogRetention).After(now) {
			continue
		}
		if err := os.RemoveAll(dir); err == nil {
			n.opt.Log.Info("removed the logs of a pod gone since "+n.opt.LogRetention.String(), "dir", dir)
		}
	}
}

// newestMod is the latest modification time in a pod's log folder.
func newestMod(dir string) time.Time {
	var t time.Time
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if fi, err := d.Info(); err == nil && fi.ModTime().After(t) {
			t = fi.ModTime()
		}
		return nil
	})
	return t
}
