package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
)

// peerMass is scenarios 4 and 5 for the kubelet peer: n manifests renamed
// into its staticPodPath at once → all Running (its /pods) and every client
// answered; the idle window (the kubelet's and containerd's CPU and memory,
// the shims' and pauses' per pod); every file removed → all gone.
func (b *bench) peerMass(n int, t4, t5 *table) error {
	k := b.kp
	if err := k.check(); err != nil {
		return err
	}
	runningT, answeredT, goneT, perUp, perDown, rUp, rDown := "–", "–", "–", "–", "–", "–", "–"
	defer func() { t4.row(strconv.Itoa(n), runningT, answeredT, perUp, goneT, perDown, rUp, rDown) }()
	files := make([]string, n)
	outs := make([]string, n)
	for i := range files {
		name := fmt.Sprintf("kl-mass-%03d", i)
		files[i] = name + ".yaml"
		outs[i] = b.outDir(fmt.Sprintf("kl-mass-%d", n), strconv.Itoa(i))
		if err := k.stageManifest(files[i], peerPodYAML(name, outs[i], false, true)); err != nil {
			return err
		}
	}
	threads0 := totalThreads()
	if b.peerThreadsPerPod > 0 {
		if need := threads0 + int(b.peerThreadsPerPod*float64(n)); need > pidMax()*8/10 {
			return fmt.Errorf("%d pods skipped: about %d threads needed (%.1f per pod measured), over 80%% of kernel.pid_max %d", n, need, b.peerThreadsPerPod, pidMax())
		}
	}
	// The kubelet starts a pod in about a second on an idle 2-core node and
	// several when the machine is shared: three seconds a pod on top of two
	// minutes (minikubelet gets half a second a pod on top of one).
	limit := 2*time.Minute + time.Duration(n)*3*time.Second
	every := max(50*time.Millisecond, time.Duration(n)*time.Millisecond)
	progress("kubelet peer: mass start of %d pods", n)
	t0 := time.Now()
	for _, f := range files {
		if err := k.put(f); err != nil {
			return err
		}
	}
	var allRunning, allAnswered time.Time
	lastCount := 0
	for deadline := t0.Add(limit); time.Now().Before(deadline) && (allRunning.IsZero() || allAnswered.IsZero()); time.Sleep(every) {
		if allAnswered.IsZero() {
			if answered(outs) == n {
				allAnswered = time.Now()
			}
		}
		if allRunning.IsZero() {
			if pods, err := k.pods(); err == nil {
				c := 0
				for i := range pods {
					if peerPodRunning(&pods[i]) {
						c++
					}
				}
				lastCount = c
				if c == n {
					allRunning = time.Now()
				}
			}
		}
	}
	var errs []string
	if !allRunning.IsZero() {
		b.peerThreadsPerPod = float64(totalThreads()-threads0) / float64(n)
		runningT, perUp = secs(allRunning.Sub(t0)), ms(allRunning.Sub(t0)/time.Duration(n))
		rUp = ratio(allRunning.Sub(t0), b.massUp[n])
		if err := b.peerSteady(n, t5); err != nil {
			t5.note("**failed**: %v", err)
		}
	} else {
		errs = append(errs, fmt.Sprintf("%d pods: only %d Running after %s; the others: %s", n, lastCount, limit, k.notRunning()))
		t5.note("%d pods: not measured (not every pod ran)", n)
	}
	if !allAnswered.IsZero() {
		answeredT = secs(allAnswered.Sub(t0))
	}
	progress("kubelet peer: mass stop of %d pods", n)
	t1 := time.Now()
	for _, f := range files {
		k.remove(f)
	}
	if err := k.waitGone(limit, every); err != nil {
		errs = append(errs, fmt.Sprintf("%d pods: stop: %v", n, err))
	} else {
		goneT, perDown = secs(time.Since(t1)), ms(time.Since(t1)/time.Duration(n))
		rDown = ratio(time.Since(t1), b.massDown[n])
	}
	t4.note("%d pods: the same YAML with requests of 1m CPU and 1Mi memory beside each container's limits (Burstable instead of Guaranteed): with requests = limits every pod asks for 1 CPU and the kubelet's admission takes two of them on this 2-core node and rejects the rest (OutOfcpu; minikubelet does not check requests against the node's allocatable)", n)
	t4.note("%d pods: the kubelet's own pod workers (no parallelism knob); polled every %s (its /pods on the read-only port, marker files, /proc, systemctl list-units); ratios against table 4's minikubelet figures for the same count, which run on loopback (the bridge adds CNI ADD and DEL per pod to the kubelet's side: see table 1b for what it costs one pod)", n, every)
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// notRunning summarises the pods the kubelet does not report Running: their
// phase and their containers' waiting or terminated reasons (a few of them).
func (k *kubeletPeer) notRunning() string {
	pods, err := k.pods()
	if err != nil {
		return err.Error()
	}
	var out []string
	for i := range pods {
		p := &pods[i]
		if peerPodRunning(p) {
			continue
		}
		d := fmt.Sprintf("%s %s", p.Name, p.Status.Phase)
		for _, cs := range p.Status.ContainerStatuses {
			switch {
			case cs.State.Waiting != nil:
				d += fmt.Sprintf(" %s waiting %s %s", cs.Name, cs.State.Waiting.Reason, cs.State.Waiting.Message)
			case cs.State.Terminated != nil:
				d += fmt.Sprintf(" %s terminated %s (exit %d)", cs.Name, cs.State.Terminated.Reason, cs.State.Terminated.ExitCode)
			}
		}
		for _, c := range p.Status.Conditions {
			if c.Status != v1.ConditionTrue && c.Message != "" {
				d += fmt.Sprintf(" %s: %s", c.Type, c.Message)
			}
		}
		if p.Status.Message != "" {
			d += " " + p.Status.Message
		}
		out = append(out, d)
		if len(out) == 3 {
			break
		}
	}
	return strings.Join(out, "; ") + " (kubelet log: " + k.logTail("kubelet", 2) + ")"
}

// peerPodRunning: Running, and every container running, in the status the
// kubelet reports on /pods.
func peerPodRunning(p *v1.Pod) bool {
	if p.Status.Phase != v1.PodRunning || len(p.Status.ContainerStatuses) != len(p.Spec.Containers) {
		return false
	}
	for _, cs := range p.Status.ContainerStatuses {
		if cs.State.Running == nil {
			return false
		}
	}
	return true
}

// peerSteady measures the kubelet, containerd and the per-pod processes
// (shims, pauses) over the steady window with n pods idle.
func (b *bench) peerSteady(n int, t *table) error {
	k := b.kp
	settle := 5 * time.Second
	if b.o.mode == "quick" {
		settle = 2 * time.Second
	}
	time.Sleep(settle)
	kpid, cpid := k.mainPID("kubelet"), k.mainPID("containerd")
	if kpid == 0 || cpid == 0 {
		return fmt.Errorf("kubelet (PID %d) or containerd (PID %d) not running", kpid, cpid)
	}
	perPod := func() []int {
		out := shims()
		for _, p := range peerPodProcesses() {
			if !isWorkload(p) {
				out = append(out, p)
			}
		}
		return out
	}
	procs := perPod()
	k0, c0 := cpuTicks(kpid), cpuTicks(cpid)
	var p0 int64
	for _, p := range procs {
		p0 += cpuTicks(p)
	}
	t0 := time.Now()
	progress("kubelet peer: steady state with %d pods for %s", n, b.o.steady)
	time.Sleep(b.o.steady)
	k1, c1 := cpuTicks(kpid), cpuTicks(cpid)
	var p1 int64
	for _, p := range procs {
		p1 += cpuTicks(p)
	}
	wall := time.Since(t0).Seconds()
	if k0 < 0 || k1 < 0 || c0 < 0 || c1 < 0 {
		return fmt.Errorf("the kubelet or containerd exited during the window")
	}
	pct := func(a, b int64) string { return fmt.Sprintf("%.2f %%", float64(b-a)/100/wall*100) }
	krss, _ := memOf(kpid)
	crss, _ := memOf(cpid)
	var rss, pss int64
	procs = perPod()
	nShims := len(shims())
	for _, p := range procs {
		r, s := memOf(p)
		rss, pss = rss+r, pss+s
	}
	t.row(strconv.Itoa(n), pct(k0, k1), mib(krss), pct(c0, c1), mib(crss), mib(krss+crss),
		fmt.Sprintf("%.2f", float64(len(procs))/float64(n)), mib(rss/int64(n)), mib(pss/int64(n)), pct(p0, p1)+" (all)")
	t.note("%d pods (CNI bridge): %d containerd shims; window %s after %s settling; CPU = utime+stime over wall time (100 %% = one core); overhead = the containerd-shim-runc-v2 processes plus every non-workload process in the kubelet's pod slices (the pause, here hack/pause: a static Go binary, larger than upstream's C pause), divided by the pod count — compare with table 5's supervisor overhead", n, nShims, time.Duration(wall*float64(time.Second)).Round(time.Second), settle)
	return nil
}
