package main

import (
	"context"
	"fmt"
	"github.com/minikubelet/minikubelet/internal/e2enode"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"syscall"
	"time"
)

// bench is the part running inside the node.
type bench struct {
	o        options
	dir      string
	rep      *reporter
	d        *daemon
	setupErr string
	deadline time.Time
	// threadsPerPod, measured by a mass start, sizes the next one against
	// kernel.pid_max (peerThreadsPerPod the kubelet peer's).
	threadsPerPod, peerThreadsPerPod float64
	// starts holds the start samples of every contender (cMKL, cFloor, ...).
	starts map[string][]startSample
	// kp is the kubelet + containerd peer, set up once by the start
	// scenario; kpErr says why it cannot run.
	kp    *kubeletPeer
	kpErr string
	// massUp and massDown are minikubelet's mass start and stop times by
	// pod count, for the kubelet's ratios.
	massUp, massDown map[int]time.Duration
}

func inside(o options, dir string) int {
	f, err := os.Create(filepath.Join(dir, "report.md"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	defer f.Close()
	b := &bench{o: o, dir: dir, rep: &reporter{out: os.Stdout, f: f, label: os.Getenv(envLabel)}, setupErr: os.Getenv(envSetup),
		deadline: time.Now().Add(o.budget), starts: map[string][]startSample{},
		massUp: map[int]time.Duration{}, massDown: map[int]time.Duration{}}
	// Whatever happens below, the peer's pods, services, mounts and folder go
	// (and with the node's teardown, anything a crash of this process left).
	defer func() { b.kp.close() }()
	b.d = newDaemon(o.binDir, dir, o.parallel)
	if b.setupErr == "" {
		if err := b.d.start(); err != nil {
			b.setupErr = "minikubelet run: " + err.Error()
		}
	}
	b.startLatency()
	b.cniStart()
	b.startSummary()
	restarts := newTable("6a. Crash-restart reaction: container SIGKILL'd → running again (first restart)",
		"measure", "n", "p50", "p90", "max")
	b.guard(restarts, func() error { return b.containerRestart(restarts) })
	t4 := newTable("4. Mass start/stop (files renamed in / removed at once, grace 0)",
		"pods", "all Running (API)", "all clients answered", "per pod", "all gone (API, processes, mounts, units)", "per pod")
	t5 := newTable("5. Steady state (pods running, idle)",
		"pods", "daemon CPU", "daemon RSS", "daemon PSS", "supervisor procs/pod", "overhead RSS/pod", "overhead PSS/pod", "supervisor CPU", "reconciles in window", "D-Bus calls/reconcile (window)", "D-Bus calls/reconcile (since start)")
	t6 := newTable("6b. Crash-restart reaction: daemon SIGKILL'd and restarted with pods running → adoption",
		"pods", "API answers", "all Running again", "restarts during adoption", "workloads replaced")
	t4b := newTable("4b. Mass start/stop — kubelet + containerd (CNI bridge: hostNetwork pods would share port 8080; requests 1m/1Mi beside the limits: see the notes), files renamed in / removed at once, grace 0",
		"pods", "all Running (kubelet /pods)", "all clients answered", "per pod", "all gone (pods, processes, shims, pod slices)", "per pod", "Running: kubelet ÷ minikubelet", "gone: kubelet ÷ minikubelet")
	t5b := newTable("5b. Steady state — kubelet + containerd with the pods idle",
		"pods", "kubelet CPU", "kubelet RSS", "containerd CPU", "containerd RSS", "kubelet + containerd RSS", "shim + pause procs/pod", "overhead RSS/pod", "overhead PSS/pod", "shims + pauses CPU")
	for _, n := range b.o.podCounts {
		b.guard(t4, func() error { return b.massPhase(n, t4, t5, t6) })
		b.guardPeer(t4b, func() error { return b.peerMass(n, t4b, t5b) })
	}
	for _, t := range []*table{t4, t4b, t5, t5b, restarts, t6} {
		b.rep.emit(t.markdown())
	}
	if b.rep.label != "" {
		b.rep.emit(b.ratioTable().markdown())
	}
	if b.d.alive() {
		b.d.removeAllManifests(2 * time.Minute)
		b.d.stop(syscall.SIGTERM)
	}
	return 0
}

// guardPeer runs one part of the kubelet peer; a failure or panic lands in
// its table.
func (b *bench) guardPeer(t *table, fn func() error) {
	defer func() {
		if r := recover(); r != nil {
			t.note("**failed (panic)**: %v\n\n```\n%s```", r, lastLines(string(debug.Stack()), 12))
		}
	}()
	switch {
	case b.kpErr != "":
		t.note("**not run**: %s", b.kpErr)
	case time.Now().After(b.deadline):
		t.note("**not run**: the run's time budget (%s) is spent", b.o.budget)
	default:
		if err := fn(); err != nil {
			t.note("**failed**: %v", err)
		}
	}
}

// guard runs one scenario part; a failure or panic lands in its table.
func (b *bench) guard(t *table, fn func() error) {
	defer func() {
		if r := recover(); r != nil {
			t.note("**failed (panic)**: %v\n\n```\n%s```", r, lastLines(string(debug.Stack()), 12))
		}
	}()
	if b.setupErr != "" {
		t.note("**not run**: %s", b.setupErr)
		return
	}
	if time.Now().After(b.deadline) {
		t.note("**not run**: the run's time budget (%s) is spent", b.o.budget)
		return
	}
	if !b.d.alive() {
		// A daemon that died in an earlier scenario is started again, so one
		// crash does not void the rest.
		if err := b.d.start(); err != nil {
			t.note("**not run**: the daemon is down and does not restart: %v", err)
			return
		}
		t.note("the daemon had exited before this part and was started again")
	}
	if err := fn(); err != nil {
		t.note("**failed**: %v", err)
	}
}

func (b *bench) outDir(parts ...string) string {
	return mustMkdir(filepath.Join(append([]string{b.dir, "out"}, parts...)...))
}

func keys(m map[string]time.Time) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func maxT(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// ---- scenario 6a: a killed container comes back ----

func (b *bench) containerRestart(t *table) error {
	var exec, api []time.Duration
	var errs []string
	for i := 0; i < b.o.restarts && time.Now().Before(b.deadline); i++ {
		e, a, err := b.restartOnce(i)
		if err != nil {
			errs = append(errs, err.Error())
			if len(exec) == 0 && len(errs) >= 2 {
				break // failing without a success: spare the time
			}
			continue
		}
		exec, api = append(exec, e), append(api, a)
	}
	for _, r := range []struct {
		name string
		s    samples
	}{{"SIGKILL → web workload exec'd again", exec}, {"SIGKILL → API: running, restartCount 1", api}} {
		t.row(r.name, strconv.Itoa(len(r.s)), ms(r.s.pct(50)), ms(r.s.pct(90)), ms(r.s.pct(100)))
	}
	t.note("one fresh pod per run (the first restart is immediate; later ones back off); the API is polled every 5 ms")
	if len(errs) > 0 {
		return fmt.Errorf("%d runs failed: %s", len(errs), errs[0])
	}
	return nil
}

func (b *bench) restartOnce(i int) (time.Duration, time.Duration, error) {
	name := "restart-" + strconv.Itoa(i)
	out := b.outDir("restart", strconv.Itoa(i))
	w, err := watchDir(out)
	if err != nil {
		return 0, 0, err
	}
	defer w.close()
	file := name + ".yaml"
	b.d.stageManifest(file, podYAML(name, out))
	if err := b.d.put(file); err != nil {
		return 0, 0, err
	}
	defer func() { b.d.remove(file); b.d.waitGone(60 * time.Second) }()
	if _, ok := w.wait(time.Now().Add(30*time.Second), "ok"); !ok {
		return 0, 0, fmt.Errorf("pod %s: client never answered within 30s", name)
	}
	var pid int
	ctx := context.Background()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		pid = workloadPIDs()[name+"/web"]
		p, err := b.d.client.GetPod(ctx, "default", name)
		if pid != 0 && err == nil && e2enode.Running(p) {
			break
		}
		if time.Now().After(deadline) {
			return 0, 0, fmt.Errorf("pod %s: web workload or Running status not found", name)
		}
	}
	w.forget("web")
	os.Remove(filepath.Join(out, "web"))
	t0 := time.Now()
	syscall.Kill(pid, syscall.SIGKILL)
	var apiAt time.Time
	deadline := t0.Add(30 * time.Second)
	for time.Now().Before(deadline) {
		p, err := b.d.client.GetPod(ctx, "default", name)
		if err == nil && e2enode.Running(p) {
			for _, cs := range p.Status.ContainerStatuses {
				if cs.Name == "web" && cs.RestartCount >= 1 {
					apiAt = time.Now()
				}
			}
		}
		if !apiAt.IsZero() {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	got, ok := w.wait(deadline, "web")
	if !ok || apiAt.IsZero() {
		return 0, 0, fmt.Errorf("pod %s: web not running again within 30s of SIGKILL (marker seen: %v, API: %v)", name, ok, !apiAt.IsZero())
	}
	return got["web"].Sub(t0), apiAt.Sub(t0), nil
}

// progress goes to stderr, so stdout stays the Markdown report.
func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}
