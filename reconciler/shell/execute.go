package shell

// execute.go: Node.Execute, one idempotent action at a time. Each action
// writes the record that names what it is about to create before creating
// it, so a daemon killed in the middle leaves something the next
// observation recognises (and completes or collects).

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/minikubelet/minikubelet/internal/podlogs"
	mklrt "github.com/minikubelet/minikubelet/runtime"
	"github.com/minikubelet/minikubelet/runtime/images"
	"github.com/minikubelet/minikubelet/runtime/network"
	"github.com/minikubelet/minikubelet/systemd"

	"github.com/minikubelet/minikubelet/reconciler"
)

// Execute implements Interface.
func (n *Node) Execute(ctx context.Context, a reconciler.Action, pod *v1.Pod) error {
	switch a := a.(type) {
	case reconciler.EnsurePodCgroup:
		return n.ensurePodCgroup(ctx, pod)
	case reconciler.PullImage:
		return n.pullImage(ctx, a)
	case reconciler.RunSandbox:
		return n.runSandbox(ctx, a, pod)
	case reconciler.CreateAndStartContainer:
		return n.createAndStart(ctx, a, pod)
	case reconciler.KillContainer:
		return n.killContainer(ctx, a, pod)
	case reconciler.RemoveContainer:
		return n.removeContainer(ctx, a.UID, a.ID)
	case reconciler.StopSandbox:
		return n.stopSandbox(ctx, a.UID, a.ID, pod)
	case reconciler.MarkTerminating:
		return n.markTerminating(a)
	case reconciler.RemovePod:
		return n.removePod(ctx, a.UID, pod)
	case reconciler.CleanupOrphan:
		return n.removePod(ctx, a.UID, pod)
	case reconciler.StopStrayScope:
		n.opt.Log.Warn("a scope of the pod's earlier instance still runs without records; killed", "uid", a.UID, "scope", systemd.ScopeUnitName(a.ID))
		return n.opt.Driver.StopScope(ctx, a.ID, true)
	}
	return fmt.Errorf("unknown action %T", a)
}

func newID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func needPod(pod *v1.Pod, a string) error {
	if pod == nil {
		return fmt.Errorf("%s: the pod's spec is unknown", a)
	}
	return nil
}

// ensureRecord writes pod.json before anything of the pod is created.
func (n *Node) ensureRecord(pod *v1.Pod) error {
	f := n.state.podFile(pod.UID)
	if exists(f) {
		return nil
	}
	n.setAsideOldLogs(pod)
	return writeJSON(f, podRecord{Pod: pod, CreatedAt: n.opt.Now().UTC()})
}

// setAsideOldLogs renames the log folder a previous instance of the same
// pod UID left (a file removed and put back unchanged): a new pod instance
// starts new log files, as with the kubelet, instead of appending to the
// old 0.log. The old folder stays under the retention rule (sweepLogs) and
// is no longer taken for this pod's (its name no longer ends in the UID).
func (n *Node) setAsideOldLogs(pod *v1.Pod) {
	if n.opt.LogDir == "" {
		return
	}
	dir := filepath.Join(n.opt.LogDir, podlogs.PodDirName(pod.Namespace, pod.Name, pod.UID))
	if !exists(dir) {
		return
	}
	aside := dir + ".before-" + n.opt.Now().UTC().Format("20060102T150405.000000000Z")
	if err := os.Rename(dir, aside); err != nil {
		n.opt.Log.Warn("cannot set the logs of the pod's previous instance aside; the new instance appends to them", "dir", dir, "err", err)
		return
	}
	n.opt.Log.Info("logs of the pod's previous instance set aside", "pod", pod.Namespace+"/"+pod.Name, "dir", aside)
}

func (n *Node) cgroupPlan(pod *v1.Pod) systemd.PodPlan {
	return systemd.PlanPod(pod, n.opt.Plan)
}

func (n *Node) ensurePodCgroup(ctx context.Context, pod *v1.Pod) error {
	if err := needPod(pod, "ensure pod cgroup"); err != nil {
		return err
	}
	if err := n.ensureRecord(pod); err != nil {
		return err
	}
	if err := n.opt.Driver.EnsurePod(ctx, n.cgroupPlan(pod).PodCgroup()); err != nil {
		return fmt.Errorf("pod %s/%s: slice: %w", pod.Namespace, pod.Name, err)
	}
	return nil
}

func (n *Node) pullImage(ctx context.Context, a reconciler.PullImage) error {
	n.mu.Lock()
	n.pulling[a.Image]++
	n.mu.Unlock()
	_, err := n.opt.Images.EnsureImage(ctx, a.Image, a.Policy, nil)
	now := n.opt.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.pulling[a.Image]--; n.pulling[a.Image] <= 0 {
		delete(n.pulling, a.Image)
	}
	st := n.images[a.Image]
	if st == nil {
		st = &reconciler.ImageState{}
		n.images[a.Image] = st
	}
	if err == nil {
		*st = reconciler.ImageState{PulledAt: now}
		return nil
	}
	if ctx.Err() != nil {
		return err
	}
	var pe *images.PullError
	if errors.As(err, &pe) {
		st.Message = pe.Message
		if pe.Reason == images.ReasonImagePullBackOff {
			// The store is still backing off from an earlier failure: not a
			// new failure, only when to try again.
			st.BackoffUntil = now.Add(pe.Retry)
			if st.Failures == 0 {
				st.Failures, st.LastFailure = 1, now
			}
			return err
		}
	} else {
		st.Message = err.Error()
	}
	st.Failures++
	st.LastFailure = now
	st.BackoffUntil = time.Time{}
	return err
}

func (n *Node) readSandbox(uid types.UID) (sandboxRecord, bool) {
	var sb sandboxRecord
	ok := readJSON(n.state.sandboxFile(uid), &sb)
	return sb, ok
}

func (n *Node) runSandbox(ctx context.Context, a reconciler.RunSandbox, pod *v1.Pod) error {
	if err := needPod(pod, "run sandbox"); err != nil {
		return err
	}
	if err := n.ensureRecord(pod); err != nil {
		return err
	}
	if sb, ok := n.readSandbox(a.UID); ok && sb.Attempt == a.Attempt && !sb.Stopped {
		if st, err := n.opt.Runtime.SandboxStatus(ctx, a.UID); err == nil && st.PID != 0 {
			return nil // done before a crash
		}
	}
	sb := sandboxRecord{ID: newID(), Attempt: a.Attempt, Created: n.opt.Now().UTC()}
	// Set up by this process: no CNI CHECK, also not by a round that sees
	// the pause before its network is set up (CHECK would find nothing
	// attached and call it broken). Known before the record names it; a
	// failure below forgets it (unknown again: checked if it still runs).
	n.mu.Lock()
	n.netChecked[sb.ID] = false
	n.mu.Unlock()
	if err := writeJSON(n.state.sandboxFile(a.UID), sb); err != nil {
		return err
	}
	sp := n.newSpans("sandbox running", "pod", pod.Namespace+"/"+pod.Name)
	defer sp.done()
	plan := n.cgroupPlan(pod)
	place := func(ctx context.Context, pids []int) error {
		sp.mark("spawn")
		defer sp.mark("scope")
		return n.opt.Driver.StartScope(ctx, systemd.ScopeSpec{Pod: plan.PodCgroup(), ID: sb.ID,
			Description: "minikubelet sandbox " + pod.Namespace + "/" + pod.Name,
			PIDs:        pids, Resources: plan.Sandbox})
	}
	st, err := n.opt.Runtime.RunSandbox(ctx, mklrt.SandboxConfig{Pod: pod, Place: place})
	fail := func(err error) error {
		// Leave the record (the sandbox shows as exited): the next plan
		// releases it and starts a new attempt.
		cctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		n.opt.Runtime.StopSandbox(cctx, a.UID)
		n.opt.Driver.StopScope(cctx, sb.ID, true)
		n.mu.Lock()
		delete(n.netChecked, sb.ID)
		n.mu.Unlock()
		return err
	}
	if err != nil {
		return fail(err)
	}
	sp.mark("ready")
	if !pod.Spec.HostNetwork && n.opt.Network != nil {
		res, err := n.opt.Network.Setup(ctx, network.PodNetwork{UID: string(pod.UID), Namespace: pod.Namespace,
			Name: pod.Name, NetnsPath: st.NetNSPath, PortMappings: hostPorts(pod)})
		if err != nil {
			n.opt.Network.Teardown(context.Background(), network.PodNetwork{UID: string(pod.UID), Namespace: pod.Namespace, Name: pod.Name})
		}
		if err != nil {
			return fail(fmt.Errorf("pod %s/%s: network: %w", pod.Namespace, pod.Name, err))
		}
		for _, ip := range res.IPs {
			sb.IPs = append(sb.IPs, ip.String())
		}
		if len(sb.IPs) > 0 {
			if err := n.opt.Runtime.SetPodIP(pod, sb.IPs[0]); err != nil {
				n.opt.Log.Warn("pod IP in /etc/hosts", "pod", pod.Namespace+"/"+pod.Name, "err", err)
			}
		}
	} else if pod.Spec.HostNetwork {
		sb.IPs = []string{n.opt.HostIP}
	}
	return writeJSON(n.state.sandboxFile(a.UID), sb)
}

func hostPorts(pod *v1.Pod) []network.HostPort {
	var out []network.HostPort
	for _, list := range [][]v1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range list {
			for _, p := range c.Ports {
				if p.HostPort != 0 {
					out = append(out, network.HostPort{HostPort: p.HostPort, ContainerPort: p.ContainerPort,
						Protocol: string(p.Protocol), HostIP: p.HostIP})
				}
			}
		}
	}
	return out
}

func findContainer(pod *v1.Pod, name string) *v1.Container {
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return &pod.Spec.InitContainers[i]
		}
	}
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return &pod.Spec.Containers[i]
		}
	}
	return nil
}

func podGraceOf(pod *v1.Pod) time.Duration {
	if pod.Spec.TerminationGracePeriodSeconds != nil {
		return time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second
	}
	return 30 * time.Second
}

func (n *Node) createAndStart(ctx context.Context, a reconciler.CreateAndStartContainer, pod *v1.Pod) error {
	if err := needPod(pod, "start container "+a.Name); err != nil {
		return err
	}
	c := findContainer(pod, a.Name)
	if c == nil {
		return fmt.Errorf("pod %s/%s: no container %q in the spec", pod.Namespace, pod.Name, a.Name)
	}
	if a.DefinitionChanged {
		// The pod was edited under its fixed UID: the recorded spec (what a
		// deletion stops the pod with) follows.
		if err := writeJSON(n.state.podFile(pod.UID), podRecord{Pod: pod, CreatedAt: n.opt.Now().UTC()}); err != nil {
			return err
		}
	}
	sb, ok := n.readSandbox(a.UID)
	if !ok || sb.Stopped || sb.Attempt != a.SandboxAttempt {
		return fmt.Errorf("pod %s/%s: container %s: sandbox attempt %d is not the current one", pod.Namespace, pod.Name, a.Name, a.SandboxAttempt)
	}
	img, found, err := n.opt.Images.Lookup(c.Image)
	if err != nil {
		return fmt.Errorf("container %s: image %s: %w", a.Name, c.Image, err)
	}
	if !found {
		return fmt.Errorf("container %s: image %s is not in the store", a.Name, c.Image)
	}
	readOnly := c.SecurityContext != nil && c.SecurityContext.ReadOnlyRootFilesystem != nil && *c.SecurityContext.ReadOnlyRootFilesystem
	sp := n.newSpans("container started", "pod", pod.Namespace+"/"+pod.Name, "container", a.Name)
	defer sp.done()
	rid := string(a.UID) + "_" + a.Name + "_" + strconv.FormatUint(uint64(a.Attempt), 10)
	rdir := n.state.rootfsDir(a.UID, a.Name, a.Attempt)
	merged := filepath.Join(rdir, "merged")
	if err := os.MkdirAll(merged, 0o755); err != nil {
		return err
	}
	if !isMountPoint(merged) {
		if err := n.opt.Images.MountRootfs(ctx, rid, img, rdir, readOnly, merged); err != nil {
			err = fmt.Errorf("container %s: %w", a.Name, err)
			n.recordCreateError(a.UID, a.Name, a.Attempt, reconciler.ReasonCreateContainerError, err)
			return err
		}
	}
	sp.mark("rootfs")
	podIP := ""
	if len(sb.IPs) > 0 {
		podIP = sb.IPs[0]
	}
	ic := img.Config
	cc, err := n.opt.Runtime.CreateContainer(ctx, mklrt.ContainerConfig{Pod: pod, Container: c, Attempt: int(a.Attempt),
		Rootfs: mklrt.Rootfs{Path: merged, ReadOnly: readOnly},
		Image:  mklrt.ImageConfig{Entrypoint: ic.Entrypoint, Cmd: ic.Cmd, Env: ic.Env, WorkingDir: ic.WorkingDir, User: ic.User},
		PodIP:  podIP, HostIP: n.opt.HostIP})
	if err != nil {
		if ctx.Err() == nil {
			n.recordCreateError(a.UID, a.Name, a.Attempt, createErrorReason(err), err)
		}
		return fmt.Errorf("create container %s: %w", a.Name, err)
	}
	sp.mark("create")
	n.clearCreateError(a.UID, a.Name)
	imageRef := c.Image
	if len(img.RepoTags) > 0 {
		imageRef = img.RepoTags[0]
	}
	cr := containerRecord{ID: cc.ID, Name: a.Name, Attempt: a.Attempt, SandboxID: sb.ID, Image: c.Image,
		ImageRef: imageRef, ImageID: img.ImageID(), RootfsID: rid, RootfsDir: rdir, StopSignal: ic.StopSignal, Hash: a.Hash}
	if err := writeJSON(n.state.containerFile(a.UID, cc.ID), cr); err != nil {
		return err
	}
	plan := n.cgroupPlan(pod)
	if err := n.opt.Driver.StartScope(ctx, systemd.ScopeSpec{Pod: plan.PodCgroup(), ID: cc.ID,
		Description: "minikubelet container " + pod.Namespace + "/" + pod.Name + "/" + a.Name,
		PIDs:        []int{cc.PID}, Resources: plan.Containers[a.Name], StopTimeout: podGraceOf(pod),
		// A privileged container has the host's /dev: no device allowlist.
		Privileged: c.SecurityContext != nil && c.SecurityContext.Privileged != nil && *c.SecurityContext.Privileged}); err != nil {
		return fmt.Errorf("container %s: scope: %w", a.Name, err)
	}
	sp.mark("scope")
	// Count OOM kills from before the workload runs.
	n.watchOOM(a.UID, cc.ID)
	sp.mark("oomwatch")
	// In a wave (Loop.executeWave) the siblings listed before this one
	// start first; everything above ran beside them.
	if err := WaitStartTurn(ctx); err != nil {
		return fmt.Errorf("start container %s: %w", a.Name, err)
	}
	sp.mark("turn")
	if err := n.opt.Runtime.StartContainer(ctx, a.UID, cc.ID); err != nil {
		return fmt.Errorf("start container %s: %w", a.Name, err)
	}
	sp.mark("start")
	n.watchContainer(a.UID, cc.ID)
	if c.Lifecycle != nil && c.Lifecycle.PostStart != nil {
		if err := n.runHook(ctx, a.UID, cc.ID, c, c.Lifecycle.PostStart, 2*time.Minute); err != nil {
			// kubelet: a failed postStart hook kills the container, which is
			// then restarted per the restart policy.
			n.opt.Event(pod, a.Name, v1.EventTypeWarning, "FailedPostStartHook", "PostStartHook failed: "+err.Error())
			n.opt.Runtime.StopContainer(ctx, a.UID, cc.ID, podGraceOf(pod))
			return fmt.Errorf("container %s: postStart hook: %w", a.Name, err)
		}
	}
	ReleaseStartTurn(ctx)
	n.pruneExited(ctx, a.UID, a.Name)
	return nil
}

// pruneExited collects the exited instances of a container, keeping what
// the kubelet keeps: the newest exited instance whole (lastState,
// --previous). The older ones lose their overlay root, writable layer and
// cgroup at once; only their small exit records stay, up to KeepExited, so
// CrashLoopBackOff can count consecutive crashes (the kubelet counts them in
// memory, which would not survive a daemon restart). Logs are not touched.
func (n *Node) pruneExited(ctx context.Context, uid types.UID, name string) {
	cs, err := n.opt.Runtime.ListContainers(ctx, uid)
	if err != nil {
		return
	}
	var exited []mklrt.ContainerStatus
	for _, c := range cs {
		if c.Name == name && c.State == mklrt.ContainerExited {
			exited = append(exited, c)
		}
	}
	if len(exited) < 2 {
		return
	}
	sort.Slice(exited, func(i, j int) bool { return exited[i].Attempt < exited[j].Attempt })
	cut := max(0, len(exited)-n.opt.KeepExited)
	for _, c := range exited[:cut] {
		n.removeContainer(ctx, uid, c.ID)
	}
	for _, c := range exited[cut : len(exited)-1] {
		n.releaseExited(ctx, uid, c.ID)
	}
}

// releaseExited frees what an exited instance holds beyond its exit record:
// its cgroup (scope), overlay mount and writable layer. Idempotent.
func (n *Node) releaseExited(ctx context.Context, uid types.UID, id string) {
	var cr containerRecord
	f := n.state.containerFile(uid, id)
	if !readJSON(f, &cr) || cr.RootfsDir == "" {
		return
	}
	n.opt.Driver.StopScope(ctx, id, true)
	images.UnmountRootfs(filepath.Join(cr.RootfsDir, "merged"))
	n.opt.Images.ReleaseRootfs(cr.RootfsID)
	os.RemoveAll(cr.RootfsDir)
	cr.RootfsDir, cr.RootfsID = "", ""
	writeJSON(f, cr)
}

func (n *Node) killContainer(ctx context.Context, a reconciler.KillContainer, pod *v1.Pod) error {
	start := n.opt.Now()
	grace := a.Grace
	if a.RunPreStop && pod != nil {
		var cr containerRecord
		f := n.state.containerFile(a.UID, a.ID)
		readJSON(f, &cr)
		cr.PreStop = reconciler.HookRunning
		writeJSON(f, cr)
		var err error
		if c := findContainer(pod, a.Name); c != nil && c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
			err = n.runHook(ctx, a.UID, a.ID, c, c.Lifecycle.PreStop, grace)
		}
		cr.PreStop = reconciler.HookDone
		if err != nil {
			cr.PreStop = reconciler.HookFailed
			n.opt.Log.Warn("preStop hook failed", "pod", pod.Namespace+"/"+pod.Name, "container", a.Name, "err", err)
			n.opt.Event(pod, a.Name, v1.EventTypeWarning, "FailedPreStopHook", "PreStopHook failed: "+err.Error())
		}
		writeJSON(f, cr)
		grace -= n.opt.Now().Sub(start)
		if grace < a.MinGraceAfterPreStop {
			grace = a.MinGraceAfterPreStop
		}
	}
	if grace < 0 {
		grace = 0
	}
	var cr containerRecord
	readJSON(n.state.containerFile(a.UID, a.ID), &cr)
	err := n.opt.Runtime.StopContainerSignal(ctx, a.UID, a.ID, stopSignal(cr.StopSignal), grace)
	if err != nil {
		// A supervisor that is gone took its containers with it.
		if st, serr := n.opt.Runtime.ContainerStatus(ctx, a.UID, a.ID); serr == nil && st.State != mklrt.ContainerRunning && st.State != mklrt.ContainerCreated {
			err = nil
		} else if sst, serr := n.opt.Runtime.SandboxStatus(ctx, a.UID); serr == nil && sst.PID == 0 {
			err = nil
		}
	}
	if err != nil {
		return fmt.Errorf("stop container %s (%s): %w", a.Name, a.ID, err)
	}
	n.opt.Driver.StopScope(ctx, a.ID, true)
	return nil
}

// runHook runs a lifecycle hook handler of container id within timeout
// (exec runs inside the container through the runtime, like `runc exec`).
func (n *Node) runHook(ctx context.Context, uid types.UID, id string, c *v1.Container, h *v1.LifecycleHandler, timeout time.Duration) error {
	grace := timeout
	if grace <= 0 {
		grace = time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, grace)
	defer cancel()
	switch {
	case h.Sleep != nil:
		select {
		case <-time.After(time.Duration(h.Sleep.Seconds) * time.Second):
		case <-ctx.Done():
		}
		return nil
	case h.HTTPGet != nil:
		host := h.HTTPGet.Host
		if host == "" {
			if sb, ok := n.readSandbox(uid); ok && len(sb.IPs) > 0 {
				host = sb.IPs[0]
			} else {
				host = "127.0.0.1"
			}
		}
		port := h.HTTPGet.Port.String()
		if h.HTTPGet.Port.IntVal != 0 {
			port = strconv.Itoa(int(h.HTTPGet.Port.IntVal))
		} else {
			for _, p := range c.Ports {
				if p.Name == h.HTTPGet.Port.StrVal {
					port = strconv.Itoa(int(p.ContainerPort))
				}
			}
		}
		scheme := strings.ToLower(string(h.HTTPGet.Scheme))
		if scheme == "" {
			scheme = "http"
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+net.JoinHostPort(host, port)+h.HTTPGet.Path, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode >= 400 {
			return fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		return nil
	case h.Exec != nil:
		code, out, err := shellExecer{n}.exec(ctx, uid, id, h.Exec.Command)
		if err != nil {
			return err
		}
		if code != 0 {
			return fmt.Errorf("command %q exited with %d: %s", strings.Join(h.Exec.Command, " "), code, strings.TrimSpace(string(out)))
		}
	}
	return nil
}

func (n *Node) removeContainer(ctx context.Context, uid types.UID, id string) error {
	if err := n.opt.Runtime.RemoveContainer(ctx, uid, id); err != nil {
		if sst, serr := n.opt.Runtime.SandboxStatus(ctx, uid); serr == nil && sst.PID != 0 {
			return fmt.Errorf("remove container %s: %w", id, err)
		}
		// No supervisor: nothing runs; drop the records ourselves.
		os.RemoveAll(n.state.root.Pod(uid).Container(id))
	}
	n.opt.Driver.StopScope(ctx, id, true)
	var cr containerRecord
	if readJSON(n.state.containerFile(uid, id), &cr) && cr.RootfsDir != "" {
		images.UnmountRootfs(filepath.Join(cr.RootfsDir, "merged"))
		n.opt.Images.ReleaseRootfs(cr.RootfsID)
		os.RemoveAll(cr.RootfsDir)
	}
	os.Remove(n.state.oomFile(uid, id))
	return ignoreMissing(os.Remove(n.state.containerFile(uid, id)))
}

func ignoreMissing(err error) error {
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

func (n *Node) stopSandbox(ctx context.Context, uid types.UID, id string, pod *v1.Pod) error {
	if err := n.opt.Runtime.StopSandbox(ctx, uid); err != nil {
		return fmt.Errorf("stop sandbox of %s: %w", uid, err)
	}
	if err := n.teardownNetwork(ctx, uid, pod); err != nil {
		return err
	}
	// The runtime keeps the netns pin (<pod>/sandbox/netns) past
	// StopSandbox so that CNI DEL can still enter it; the next RunSandbox
	// replaces it and RemoveSandbox drops it. Once CNI DEL is done it has
	// served its purpose: unpinning here frees the dead namespace now
	// rather than when the pod is recreated or removed (a pod that is
	// never recreated would keep it).
	nsPin := n.state.root.Pod(uid).NetnsPin()
	if err := unix.Unmount(nsPin, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unpin network namespace %s: %w", nsPin, err)
	}
	os.Remove(nsPin)
	if err := n.opt.Driver.StopScope(ctx, id, true); err != nil {
		return fmt.Errorf("stop sandbox scope %s: %w", systemd.ScopeUnitName(id), err)
	}
	sb, ok := n.readSandbox(uid)
	if !ok || sb.ID != id {
		return nil
	}
	sb.Stopped = true
	return writeJSON(n.state.sandboxFile(uid), sb)
}

func (n *Node) teardownNetwork(ctx context.Context, uid types.UID, pod *v1.Pod) error {
	if n.opt.Network == nil || (pod != nil && pod.Spec.HostNetwork) {
		return nil
	}
	pn := network.PodNetwork{UID: string(uid)}
	if pod != nil {
		pn.Namespace, pn.Name = pod.Namespace, pod.Name
	}
	err := n.opt.Network.Teardown(ctx, pn)
	if err != nil {
		return fmt.Errorf("pod %s: network teardown: %w", uid, err)
	}
	return nil
}

func (n *Node) markTerminating(a reconciler.MarkTerminating) error {
	f := n.state.termFile(a.UID)
	if exists(f) {
		return nil
	}
	now := n.opt.Now().UTC()
	return writeJSON(f, reconciler.Termination{Since: now, Deadline: now.Add(a.Grace), Reason: a.Reason})
}

// removePod stops what remains of a pod (everything at once: Plan only
// asks once its containers are stopped, and an orphan has nothing to be
// graceful with) and removes its scopes, network, slice, mounts and state
// dir, in that order: the state dir goes last, so a crash in between is
// seen and finished by the next round. Logs stay.
func (n *Node) removePod(ctx context.Context, uid types.UID, pod *v1.Pod) error {
	n.mu.Lock()
	n.removing[uid] = true
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		delete(n.removing, uid)
		n.mu.Unlock()
	}()
	var scopeIDs []string
	if units, err := n.opt.Driver.List(ctx); err == nil {
		for _, u := range units {
			if u.PodUID == uid && u.ID != "" {
				scopeIDs = append(scopeIDs, u.ID)
			}
		}
	}
	if cs, err := n.opt.Runtime.ListContainers(ctx, uid); err == nil {
		for _, c := range cs {
			if c.State == mklrt.ContainerRunning || c.State == mklrt.ContainerCreated {
				n.opt.Runtime.StopContainer(ctx, uid, c.ID, 0)
			}
			scopeIDs = append(scopeIDs, c.ID)
		}
	}
	if err := n.opt.Runtime.StopSandbox(ctx, uid); err != nil {
		return fmt.Errorf("pod %s: stop sandbox: %w", uid, err)
	}
	if sb, ok := n.readSandbox(uid); ok {
		scopeIDs = append(scopeIDs, sb.ID)
	}
	if pod == nil {
		var rec podRecord
		if readJSON(n.state.podFile(uid), &rec) {
			pod = rec.Pod
		}
	}
	if err := n.teardownNetwork(ctx, uid, pod); err != nil {
		return err
	}
	for _, id := range scopeIDs {
		if err := n.opt.Driver.StopScope(ctx, id, true); err != nil {
			return fmt.Errorf("pod %s: stop scope %s: %w", uid, systemd.ScopeUnitName(id), err)
		}
	}
	dir := n.state.pod(uid)
	if recs, err := n.opt.Images.RootfsRecords(); err == nil {
		for _, r := range recs {
			if strings.HasPrefix(r.ContainerDir, dir+"/") {
				images.UnmountRootfs(filepath.Join(r.ContainerDir, "merged"))
				n.opt.Images.ReleaseRootfs(r.ID)
			}
		}
	}
	if err := n.opt.Driver.RemovePod(ctx, uid); err != nil {
		return fmt.Errorf("pod %s: remove slice: %w", uid, err)
	}
	if err := n.opt.Runtime.RemoveSandbox(ctx, uid); err != nil {
		return fmt.Errorf("pod %s: remove state: %w", uid, err)
	}
	if pod != nil && n.opt.LogDir != "" {
		// The logs' retention counts from the pod's removal.
		now := n.opt.Now()
		os.Chtimes(filepath.Join(n.opt.LogDir, podlogs.PodDirName(pod.Namespace, pod.Name, uid)), now, now)
	}
	n.forget(uid)
	return nil
}

// isMountPoint: dir is the root of a mount (its device differs from its
// parent's, or mountinfo lists it).
func isMountPoint(dir string) bool {
	for _, m := range mountPointsUnder(filepath.Dir(dir)) {
		if m == dir {
			return true
		}
	}
	return false
}

// shellExecer runs commands in containers for exec probes and hooks.
type shellExecer struct{ n *Node }

// Exec implements probe.Execer (the container ID is enough: the shell
// knows each running container's pod from its last observation).
func (e shellExecer) Exec(ctx context.Context, id string, cmd []string, timeout time.Duration) (int, []byte, error) {
	e.n.mu.Lock()
	uid := e.n.podOfContainer[id]
	e.n.mu.Unlock()
	if uid == "" {
		return 0, nil, fmt.Errorf("container %s is not running", id)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return e.exec(ctx, uid, id, cmd)
}

func (e shellExecer) exec(ctx context.Context, uid types.UID, id string, cmd []string) (int, []byte, error) {
	var out bytes.Buffer
	code, err := e.n.opt.Runtime.Exec(ctx, uid, id, mklrt.ExecConfig{Cmd: cmd, Stdout: &out, Stderr: &out})
	if ctx.Err() != nil {
		return code, out.Bytes(), fmt.Errorf("exec %q: %w", strings.Join(cmd, " "), ctx.Err())
	}
	return code, out.Bytes(), err
}

// stopSignal parses an image's StopSignal ("SIGQUIT", "QUIT", "3");
// SIGTERM when unset or unknown, as containerd does.
func stopSignal(s string) syscall.Signal {
	s = strings.ToUpper(strings.TrimSpace(s))
	if s == "" {
		return syscall.SIGTERM
	}
	if n, err := strconv.Atoi(s); err == nil && n > 0 && n < 65 {
		return syscall.Signal(n)
	}
	if !strings.HasPrefix(s, "SIG") {
		s = "SIG" + s
	}
	if sig := unix.SignalNum(s); sig != 0 {
		return sig
	}
	return syscall.SIGTERM
}
