package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
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
	// kernel.pid_max.
	threadsPerPod float64
}

func inside(o options, dir string) int {
	f, err := os.Create(filepath.Join(dir, "report.md"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	defer f.Close()
	b := &bench{o: o, dir: dir, rep: &reporter{out: os.Stdout, f: f}, setupErr: os.Getenv(envSetup),
		deadline: time.Now().Add(o.budget)}
	b.d = newDaemon(o.binDir, dir, o.parallel)
	if b.setupErr == "" {
		if err := b.d.start(); err != nil {
			b.setupErr = "minikubelet run: " + err.Error()
		}
	}
	b.startLatency()
	restarts := newTable("6a. Crash-restart reaction: container SIGKILL'd → running again (first restart)",
		"measure", "n", "p50", "p90", "max")
	b.guard(restarts, func() error { return b.containerRestart(restarts) })
	t4 := newTable("4. Mass start/stop (files renamed in / removed at once, grace 0)",
		"pods", "all Running (API)", "all clients answered", "per pod", "all gone (API, processes, mounts, units)", "per pod")
	t5 := newTable("5. Steady state (pods running, idle)",
		"pods", "daemon CPU", "daemon RSS", "daemon PSS", "supervisor procs/pod", "overhead RSS/pod", "overhead PSS/pod", "supervisor CPU", "reconciles in window", "D-Bus calls/reconcile (window)", "D-Bus calls/reconcile (since start)")
	t6 := newTable("6b. Crash-restart reaction: daemon SIGKILL'd and restarted with pods running → adoption",
		"pods", "API answers", "all Running again", "restarts during adoption", "workloads replaced")
	for _, n := range b.o.podCounts {
		b.guard(t4, func() error { return b.massPhase(n, t4, t5, t6) })
	}
	for _, t := range []*table{t4, t5, restarts, t6} {
		b.rep.emit(t.markdown())
	}
	if b.d.alive() {
		b.d.removeAllManifests(2 * time.Minute)
		b.d.stop(syscall.SIGTERM)
	}
	return 0
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

// ---- scenarios 1-3: pod start, interleaved minikubelet / floor / podman ----

type startSample struct{ exec, first, ret time.Duration }

func (b *bench) startLatency() {
	t1 := newTable(fmt.Sprintf("1. Pod start latency — minikubelet (2 containers: httpd + wget client, %s/%s each)", memLimit, cpuLimit),
		"measure", "n", "p50", "p90", "p99", "min", "max")
	t2 := newTable("2. Floor — unshare + one systemd-run --scope per container, same limits, no minikubelet",
		"measure", "n", "p50", "p90", "p99", "minikubelet ÷ floor (p50)", "paired median ratio")
	t3 := newTable("3. Peer — podman kube play of the same YAML (runc, cgroupfs, --network none)",
		"measure", "n", "p50", "p90", "p99", "podman ÷ minikubelet (p50)", "paired median ratio")
	var mkl, fl, pm []startSample
	var mklErr, flErr, pmErr []string
	runs := b.o.startRuns
	// Setup of the floor and podman; a peer that cannot run is reported and skipped.
	var fr *floor
	var pp *podmanPeer
	tarPath := filepath.Join(b.dir, "demo.tar")
	if b.setupErr != "" {
		t1.note("**not run**: %s", b.setupErr)
	}
	if f, err := newFloor(b.dir, tarPath); err != nil {
		t2.note("**not run**: %v", err)
	} else {
		fr = f
		defer fr.close()
	}
	if b.o.noPodman {
		t3.note("skipped (--no-podman)")
	} else if p, err := startPodman(filepath.Join(b.dir, "podman"), tarPath); err != nil {
		t3.note("**podman cannot run here**: %v", err)
	} else {
		pp = p
		defer pp.close()
	}
	// A panic anywhere below still prints the three tables with the reason.
	defer func() {
		if r := recover(); r != nil {
			t1.note("**failed (panic)**: %v\n\n```\n%s```", r, lastLines(string(debug.Stack()), 12))
			for _, t := range []*table{t1, t2, t3} {
				b.rep.emit(t.markdown())
			}
		}
	}()
	mklOK := b.setupErr == ""
	// Run -1 warms every path up (podman builds its infra image then) and is not counted.
	for i := -1; i < runs && time.Now().Before(b.deadline); i++ {
		if i >= 0 && i%10 == 0 {
			progress("pod start runs %d/%d", i, runs)
		}
		if mklOK {
			s, err := b.mklStart(i)
			if err != nil {
				mklErr = append(mklErr, fmt.Sprintf("run %d: %v", i, err))
				if !b.d.alive() {
					mklOK = b.d.start() == nil
				}
				// A daemon that starts no pod would cost 30 s a run: give up
				// after three failures without any success.
				if len(mklErr) >= 3 && len(mkl) == 0 && mklOK {
					t1.note("minikubelet failed 3 times without a success: skipped for the remaining runs")
					mklOK = false
				}
			} else if i >= 0 {
				mkl = append(mkl, s)
			}
		}
		if fr != nil {
			s, err := b.floorStart(fr, i)
			if err != nil {
				flErr = append(flErr, fmt.Sprintf("run %d: %v", i, err))
			} else if i >= 0 {
				fl = append(fl, s)
			}
		}
		if pp != nil {
			s, err := b.podmanStart(pp, i)
			if err != nil {
				pmErr = append(pmErr, fmt.Sprintf("run %d: %v", i, err))
				if len(pmErr) >= 3 && len(pm) == 0 {
					t3.note("podman failed 3 times in a row: skipped for the remaining runs")
					pp.close()
					pp = nil
				}
			} else if i >= 0 {
				pm = append(pm, s)
			}
		}
	}
	pick := func(ss []startSample, f func(startSample) time.Duration) []time.Duration {
		var out []time.Duration
		for _, s := range ss {
			out = append(out, f(s))
		}
		return out
	}
	ex := func(s startSample) time.Duration { return s.exec }
	fi := func(s startSample) time.Duration { return s.first }
	measures := []struct {
		name string
		f    func(startSample) time.Duration
	}{{"(a) rename → both workloads exec'd", ex}, {"(b) rename → client's first successful request", fi}}
	for _, m := range measures {
		s := samples(pick(mkl, m.f))
		t1.row(m.name, strconv.Itoa(len(s)), ms(s.pct(50)), ms(s.pct(90)), ms(s.pct(99)), ms(s.pct(0)), ms(s.pct(100)))
	}
	for _, m := range measures {
		s := samples(pick(fl, m.f))
		t2.row(strings.Replace(m.name, "rename", "start", 1), strconv.Itoa(len(s)), ms(s.pct(50)), ms(s.pct(90)), ms(s.pct(99)),
			ratio(samples(pick(mkl, m.f)).median(), s.median()), pairedRatio(pick(mkl, m.f), pick(fl, m.f)))
	}
	for _, m := range measures {
		s := samples(pick(pm, m.f))
		t3.row(strings.Replace(m.name, "rename", "kube play start", 1), strconv.Itoa(len(s)), ms(s.pct(50)), ms(s.pct(90)), ms(s.pct(99)),
			ratio(s.median(), samples(pick(mkl, m.f)).median()), pairedRatio(pick(pm, m.f), pick(mkl, m.f)))
	}
	if len(pm) > 0 {
		s := samples(pick(pm, func(s startSample) time.Duration { return s.ret }))
		t3.row("kube play command returned", strconv.Itoa(len(s)), ms(s.pct(50)), ms(s.pct(90)), ms(s.pct(99)), "", "")
	}
	t1.note("%d runs plus one uncounted warm-up, interleaved with the floor and podman (minikubelet, floor, podman, minikubelet, ...); each pod is deleted and gone before the next run", runs)
	t1.note("times from the rename into the manifest folder to the inotify events of the marker files the workloads touch first thing (web, client) and after the first successful wget (ok) in a hostPath folder; loopback networking only (no CNI)")
	t2.note("timed from the first fork (pause); the image's layers are mounted once as an overlay (runtime/images, as the daemon mounts a container's root) and chrooted into (no per-container overlay, no /proc, /dev mounts)")
	t3.note("timed from the start of `podman kube play` (run through nsenter into podman's mount namespace) to the same markers; `podman pod rm -f -t 0` between runs")
	for _, e := range []struct {
		t    *table
		errs []string
	}{{t1, mklErr}, {t2, flErr}, {t3, pmErr}} {
		if len(e.errs) > 0 {
			shown := e.errs
			if len(shown) > 3 {
				shown = shown[:3]
			}
			e.t.note("**%d failed runs**: %s", len(e.errs), strings.Join(shown, "; "))
		}
	}
	for _, t := range []*table{t1, t2, t3} {
		b.rep.emit(t.markdown())
	}
}

func (b *bench) mklStart(i int) (startSample, error) {
	name := "start-" + strconv.Itoa(i+1)
	out := b.outDir("mkl", strconv.Itoa(i+1))
	w, err := watchDir(out)
	if err != nil {
		return startSample{}, err
	}
	defer w.close()
	file := name + ".yaml"
	if err := b.d.stageManifest(file, podYAML(name, out)); err != nil {
		return startSample{}, err
	}
	t0 := time.Now()
	if err := b.d.put(file); err != nil {
		return startSample{}, err
	}
	got, ok := w.wait(t0.Add(30*time.Second), "web", "client", "ok")
	b.d.remove(file)
	gone := b.d.waitGone(60 * time.Second)
	if !ok {
		return startSample{}, fmt.Errorf("markers after 30s: %v (daemon log: %s)", keys(got), b.d.logTail(3))
	}
	if gone != nil {
		return startSample{}, fmt.Errorf("deleting the pod: %v", gone)
	}
	return startSample{exec: maxT(got["web"], got["client"]).Sub(t0), first: got["ok"].Sub(t0)}, nil
}

func (b *bench) floorStart(f *floor, i int) (startSample, error) {
	out := mustMkdir(filepath.Join(f.rootfs, "out", strconv.Itoa(i+1)))
	defer os.RemoveAll(out)
	w, err := watchDir(out)
	if err != nil {
		return startSample{}, err
	}
	defer w.close()
	t0 := time.Now()
	r, err := f.start(i + 1)
	var got map[string]time.Time
	ok := false
	if err == nil {
		got, ok = w.wait(t0.Add(30*time.Second), "web", "client", "ok")
	}
	if serr := r.stop(); err == nil {
		err = serr
	}
	if err != nil {
		return startSample{}, err
	}
	if !ok {
		return startSample{}, fmt.Errorf("markers after 30s: %v", keys(got))
	}
	return startSample{exec: maxT(got["web"], got["client"]).Sub(t0), first: got["ok"].Sub(t0)}, nil
}

func (b *bench) podmanStart(p *podmanPeer, i int) (startSample, error) {
	name := "pm-start-" + strconv.Itoa(i+1)
	out := b.outDir("podman", strconv.Itoa(i+1))
	w, err := watchDir(out)
	if err != nil {
		return startSample{}, err
	}
	defer w.close()
	yaml := podYAML(name, out)
	t0 := time.Now()
	o, err := p.play(name, yaml)
	ret := time.Since(t0)
	var got map[string]time.Time
	ok := false
	if err == nil {
		got, ok = w.wait(t0.Add(30*time.Second), "web", "client", "ok")
	}
	derr := p.down(name)
	if err != nil {
		return startSample{}, fmt.Errorf("podman kube play: %v: %s", err, lastLines(o, 4))
	}
	if !ok {
		return startSample{}, fmt.Errorf("markers after 30s: %v", keys(got))
	}
	if derr != nil {
		return startSample{}, derr
	}
	return startSample{exec: maxT(got["web"], got["client"]).Sub(t0), first: got["ok"].Sub(t0), ret: ret}, nil
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
		if pid != 0 && err == nil && podRunning(p) {
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
		if err == nil && podRunning(p) {
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
