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

// ---- scenarios 1-3: pod start, interleaved minikubelet / floor / podman / kubelet ----

// startSample is one start run: rename (or launch) → both workloads exec'd,
// → the client's first successful request, the launching command's return
// (podman), delete → all gone (minikubelet, kubelet) and the pod IP (CNI).
type startSample struct {
	exec, first, ret, gone time.Duration
}

// The contenders of the start comparison, keys of bench.starts.
const (
	cMKL       = "minikubelet"
	cFloor     = "floor"
	cPodman    = "podman"
	cKubelet   = "kubelet"
	cMKLCNI    = "minikubelet-cni"
	cKubeletCN = "kubelet-cni"
)

// contender is one side of an interleaved start comparison.
type contender struct {
	key    string
	t      *table
	run    func(i int) (startSample, error)
	off    bool // not run (set up failed, or given up)
	errs   []string
	inARow int // failures since the last success
}

// interleave runs every contender once per round (A B C A B C ...), round -1
// an uncounted warm-up, and keeps the samples in b.starts.
func (b *bench) interleave(what string, cs []*contender) {
	for i := -1; i < b.o.startRuns && time.Now().Before(b.deadline); i++ {
		if i >= 0 && i%10 == 0 {
			progress("%s runs %d/%d", what, i, b.o.startRuns)
		}
		for _, c := range cs {
			if c.off {
				continue
			}
			s, err := c.run(i)
			if err != nil {
				c.errs = append(c.errs, fmt.Sprintf("run %d: %v", i, err))
				c.inARow++
				// A contender that starts no pod would cost its whole
				// timeout every round: give up after three failures in a
				// row.
				if c.inARow >= 3 {
					c.t.note("%s failed 3 times in a row (%d successes before): skipped for the remaining runs", c.key, len(b.starts[c.key]))
					c.off = true
				}
			} else {
				c.inARow = 0
				if i >= 0 {
					b.starts[c.key] = append(b.starts[c.key], s)
				}
			}
		}
	}
	if time.Now().After(b.deadline) {
		cs[0].t.note("the run's time budget (%s) ran out during these runs", b.o.budget)
	}
	for _, c := range cs {
		if len(c.errs) > 0 {
			shown := c.errs
			if len(shown) > 3 {
				shown = shown[:3]
			}
			c.t.note("**%s: %d failed runs**: %s", c.key, len(c.errs), strings.Join(shown, "; "))
		}
	}
}

// pick is one measure of a contender's samples.
func (b *bench) pick(key string, f func(startSample) time.Duration) []time.Duration {
	var out []time.Duration
	for _, s := range b.starts[key] {
		out = append(out, f(s))
	}
	return out
}

var (
	mExec  = func(s startSample) time.Duration { return s.exec }
	mFirst = func(s startSample) time.Duration { return s.first }
	mGone  = func(s startSample) time.Duration { return s.gone }
	mRet   = func(s startSample) time.Duration { return s.ret }
)

type measure struct {
	name string
	f    func(startSample) time.Duration
}

var startMeasures = []measure{{"(a) rename → both workloads exec'd", mExec}, {"(b) rename → client's first successful request", mFirst}}

// peerRows adds a peer's rows with its ratios to minikubelet (key base).
func (b *bench) peerRows(t *table, key, base, verb string, measures []measure) {
	for _, m := range measures {
		s := samples(b.pick(key, m.f))
		t.row(strings.Replace(m.name, "rename", verb, 1), strconv.Itoa(len(s)), ms(s.pct(50)), ms(s.pct(90)), ms(s.pct(99)),
			ratio(s.median(), samples(b.pick(base, m.f)).median()), pairedRatio(b.pick(key, m.f), b.pick(base, m.f)))
	}
}

func (b *bench) startLatency() {
	t1 := newTable(fmt.Sprintf("1. Pod start latency — minikubelet (2 containers: httpd + wget client, %s/%s each)", memLimit, cpuLimit),
		"measure", "n", "p50", "p90", "p99", "min", "max")
	t2 := newTable("2. Floor — unshare + one systemd-run --scope per container, same limits, no minikubelet",
		"measure", "n", "p50", "p90", "p99", "minikubelet ÷ floor (p50)", "paired median ratio")
	t3 := newTable("3. Peer — podman kube play of the same YAML (runc, cgroupfs, --network none)",
		"measure", "n", "p50", "p90", "p99", "podman ÷ minikubelet (p50)", "paired median ratio")
	t3b := newTable("3b. Peer — kubelet v1.37.2 + containerd, standalone (staticPodPath, no API server), same YAML with hostNetwork: true",
		"measure", "n", "p50", "p90", "p99", "kubelet ÷ minikubelet (p50)", "paired median ratio")
	tables := []*table{t1, t2, t3, t3b}
	// A panic anywhere below still prints the tables with the reason.
	defer func() {
		if r := recover(); r != nil {
			t1.note("**failed (panic)**: %v\n\n```\n%s```", r, lastLines(string(debug.Stack()), 12))
			for _, t := range tables {
				b.rep.emit(t.markdown())
			}
		}
	}()
	tarPath := filepath.Join(b.dir, "demo.tar")
	mkl := &contender{key: cMKL, t: t1, run: func(i int) (startSample, error) { return b.mklStart("start", i, false) }}
	if b.setupErr != "" {
		t1.note("**not run**: %s", b.setupErr)
		mkl.off = true
	}
	fl := &contender{key: cFloor, t: t2}
	if f, err := newFloor(b.dir, tarPath); err != nil {
		t2.note("**not run**: %v", err)
		fl.off = true
	} else {
		defer f.close()
		fl.run = func(i int) (startSample, error) { return b.floorStart(f, i) }
	}
	pm := &contender{key: cPodman, t: t3, off: true}
	if b.o.noPodman != "" {
		t3.note("%s", b.o.noPodman)
	} else if p, err := startPodman(filepath.Join(b.dir, "podman"), tarPath); err != nil {
		t3.note("**podman cannot run here**: %v", err)
	} else {
		defer p.close()
		pm.off = false
		pm.run = func(i int) (startSample, error) { return b.podmanStart(p, i) }
	}
	kl := &contender{key: cKubelet, t: t3b, off: true}
	b.setupKubelet()
	if b.kpErr != "" {
		t3b.note("**kubelet + containerd cannot run here**: %s", b.kpErr)
	} else {
		kl.off = false
		kl.run = func(i int) (startSample, error) { return b.kubeletStart(i, true) }
		t3b.note("used: %s; kubelet binary %s (built by hack/k8s/build.sh from k8s.io/kubernetes, cached outside the repository)", b.kp.versions, os.Getenv(envKubelet))
	}
	b.interleave("pod start", []*contender{mkl, fl, pm, kl})

	for _, m := range startMeasures {
		s := samples(b.pick(cMKL, m.f))
		t1.row(m.name, strconv.Itoa(len(s)), ms(s.pct(50)), ms(s.pct(90)), ms(s.pct(99)), ms(s.pct(0)), ms(s.pct(100)))
	}
	s := samples(b.pick(cMKL, mGone))
	t1.row("(c) delete → all gone (API, processes, mounts, pod dir, units)", strconv.Itoa(len(s)), ms(s.pct(50)), ms(s.pct(90)), ms(s.pct(99)), ms(s.pct(0)), ms(s.pct(100)))
	for _, m := range startMeasures {
		s := samples(b.pick(cFloor, m.f))
		t2.row(strings.Replace(m.name, "rename", "start", 1), strconv.Itoa(len(s)), ms(s.pct(50)), ms(s.pct(90)), ms(s.pct(99)),
			ratio(samples(b.pick(cMKL, m.f)).median(), s.median()), pairedRatio(b.pick(cMKL, m.f), b.pick(cFloor, m.f)))
	}
	b.peerRows(t3, cPodman, cMKL, "kube play start", startMeasures)
	if len(b.starts[cPodman]) > 0 {
		s := samples(b.pick(cPodman, mRet))
		t3.row("kube play command returned", strconv.Itoa(len(s)), ms(s.pct(50)), ms(s.pct(90)), ms(s.pct(99)), "", "")
	}
	b.peerRows(t3b, cKubelet, cMKL, "rename", append(startMeasures, measure{"(c) delete → all gone (processes, shims, pod slice)", mGone}))
	t1.note("%d runs plus one uncounted warm-up, interleaved with the floor, podman and the kubelet (minikubelet, floor, podman, kubelet, minikubelet, ...); each pod is deleted and gone before the next run", b.o.startRuns)
	t1.note("times from the rename into the manifest folder to the inotify events of the marker files the workloads touch first thing (web, client) and after the first successful wget (ok) in a hostPath folder; loopback networking only (no CNI); the daemon runs with --cgroup-root %s (the kubelet peer owns kubepods.slice)", mklRoot)
	t1.note("(c) includes the second a removed manifest must stay missing before its pod is removed (manifests' RemoveQuiet: an editor's save renames the file away and back, which must not restart the pod)")
	t2.note("timed from the first fork (pause); the image's layers are mounted once as an overlay (runtime/images, as the daemon mounts a container's root) and chrooted into (no per-container overlay, no /proc, /dev mounts)")
	t3.note("timed from the start of `podman kube play` (run through nsenter into podman's mount namespace) to the same markers; `podman pod rm -f -t 0` between runs")
	t3b.note("timed from the rename into the kubelet's staticPodPath (fileCheckFrequency 1s; the kubelet also watches it with inotify) to the same markers. hostNetwork: true because containerd's CRI has no loopback-only pod network (a pod outside the host network needs a CNI result with an address): no network namespace is made at all, which favours the kubelet slightly; the bridge comparison is table 1b")
	t3b.note("gone = the kubelet lists no pod on its read-only port, no process is left in its pod slices, no containerd shim runs and the pod slice is stopped (the kubelet removes pod cgroups in its housekeeping, every 2 s); containerd, the kubelet and minikubelet all run during every contender's runs")
	for _, t := range tables {
		b.rep.emit(t.markdown())
	}
}

// setupKubelet starts the kubelet peer once (b.kp), or records why it
// cannot run (b.kpErr), for every scenario that uses it.
func (b *bench) setupKubelet() {
	if b.kp != nil || b.kpErr != "" {
		return
	}
	switch {
	case b.o.noKubelet:
		b.kpErr = "skipped (--no-kubelet)"
	case os.Getenv(envKubeletErr) != "":
		b.kpErr = os.Getenv(envKubeletErr)
	default:
		progress("starting the kubelet peer (containerd, image import, kubelet)")
		k, err := startKubeletPeer(filepath.Join(b.dir, "kubelet"), os.Getenv(envKubelet), filepath.Join(b.dir, "demo.tar"), filepath.Join(b.dir, "pause.tar"))
		if err != nil {
			b.kpErr = err.Error()
			return
		}
		b.kp = k
	}
}

func (b *bench) mklStart(prefix string, i int, wantIP bool) (startSample, error) {
	if !b.d.alive() {
		if err := b.d.start(); err != nil {
			return startSample{}, fmt.Errorf("the daemon is down and does not restart: %v", err)
		}
	}
	name := prefix + "-" + strconv.Itoa(i+1)
	out := b.outDir(prefix, strconv.Itoa(i+1))
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
	ip := ""
	if ok && wantIP {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		for ctx.Err() == nil && ip == "" {
			if p, err := b.d.client.GetPod(ctx, "default", name); err == nil {
				ip = p.Status.PodIP
			}
			if ip == "" {
				time.Sleep(20 * time.Millisecond)
			}
		}
		cancel()
	}
	t1 := time.Now()
	b.d.remove(file)
	gone := b.d.waitGone(60 * time.Second)
	goneAfter := time.Since(t1)
	if !ok {
		return startSample{}, fmt.Errorf("markers after 30s: %v (daemon log: %s)", keys(got), b.d.logTail(3))
	}
	if gone != nil {
		return startSample{}, fmt.Errorf("deleting the pod: %v", gone)
	}
	if wantIP && (ip == "" || strings.HasPrefix(ip, "127.")) {
		return startSample{}, fmt.Errorf("the pod ran without a pod IP (%q): the bridge network was not set up (daemon log: %s)", ip, b.d.logTail(3))
	}
	return startSample{exec: maxT(got["web"], got["client"]).Sub(t0), first: got["ok"].Sub(t0), gone: goneAfter}, nil
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

// kubeletStart is one run of the kubelet peer: the manifest renamed into its
// staticPodPath, the markers, then the file removed and everything gone.
func (b *bench) kubeletStart(i int, hostNet bool) (startSample, error) {
	k := b.kp
	if err := k.check(); err != nil {
		return startSample{}, err
	}
	prefix := "kl-start"
	if !hostNet {
		prefix = "kl-cni"
	}
	name := prefix + "-" + strconv.Itoa(i+1)
	out := b.outDir(prefix, strconv.Itoa(i+1))
	w, err := watchDir(out)
	if err != nil {
		return startSample{}, err
	}
	defer w.close()
	file := name + ".yaml"
	if err := k.stageManifest(file, peerPodYAML(name, out, hostNet, false)); err != nil {
		return startSample{}, err
	}
	t0 := time.Now()
	if err := k.put(file); err != nil {
		return startSample{}, err
	}
	got, ok := w.wait(t0.Add(60*time.Second), "web", "client", "ok")
	ip := ""
	if ok && !hostNet {
		for deadline := time.Now().Add(5 * time.Second); ip == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			pods, _ := k.pods()
			for _, p := range pods {
				if strings.HasPrefix(p.Name, name+"-") {
					ip = p.Status.PodIP
				}
			}
		}
	}
	t1 := time.Now()
	k.remove(file)
	gone := k.waitGone(90*time.Second, 20*time.Millisecond)
	goneAfter := time.Since(t1)
	if !ok {
		return startSample{}, fmt.Errorf("markers after 60s: %v (kubelet log: %s)", keys(got), k.logTail("kubelet", 3))
	}
	if gone != nil {
		return startSample{}, fmt.Errorf("deleting the pod: %v", gone)
	}
	if !hostNet && ip == "" {
		return startSample{}, fmt.Errorf("the kubelet reports no pod IP for %s", name)
	}
	return startSample{exec: maxT(got["web"], got["client"]).Sub(t0), first: got["ok"].Sub(t0), gone: goneAfter}, nil
}

// ---- scenario 1b: the same start with the default bridge network ----

// cniStart restarts the daemon with CNI (Debian's plugins, its default
// bridge conflist) and interleaves it with the kubelet on its bridge; the
// daemon goes back to loopback afterwards for the later scenarios.
func (b *bench) cniStart() {
	t := newTable("1b. Pod start with CNI bridge networking (pod IP; CNI ADD before the containers), next to loopback",
		"runtime, networking", "measure", "n", "p50", "p90", "p99", "÷ same runtime without CNI (p50)", "÷ minikubelet with CNI (p50)", "paired")
	defer func() { b.rep.emit(t.markdown()) }()
	mkl := &contender{key: cMKLCNI, t: t, run: func(i int) (startSample, error) { return b.mklStart("cni", i, true) }}
	kl := &contender{key: cKubeletCN, t: t, run: func(i int) (startSample, error) { return b.kubeletStart(i, false) }}
	switch {
	case b.setupErr != "":
		t.note("**minikubelet not run**: %s", b.setupErr)
		mkl.off = true
	case time.Now().After(b.deadline):
		t.note("**not run**: the run's time budget (%s) is spent", b.o.budget)
		return
	default:
		b.d.stop(syscall.SIGTERM)
		b.d.cni = true
		if err := b.d.start(); err != nil {
			t.note("**minikubelet with CNI did not start**: %v", err)
			mkl.off = true
		}
		defer func() {
			b.d.stop(syscall.SIGTERM)
			b.d.cni = false
			if err := b.d.start(); err != nil {
				t.note("the daemon did not start again on loopback after this scenario: %v", err)
			}
		}()
	}
	if b.kpErr != "" {
		t.note("**kubelet + containerd not run**: %s", b.kpErr)
		kl.off = true
	}
	b.interleave("CNI pod start", []*contender{mkl, kl})
	type rowDef struct {
		label, key, noCNI string
	}
	all := append(startMeasures, measure{"(c) delete → all gone", mGone})
	for _, r := range []rowDef{{"minikubelet, loopback", cMKL, ""}, {"minikubelet, bridge", cMKLCNI, cMKL},
		{"kubelet + containerd, hostNetwork", cKubelet, ""}, {"kubelet + containerd, bridge", cKubeletCN, cKubelet}} {
		for _, m := range all {
			s := samples(b.pick(r.key, m.f))
			if len(s) == 0 {
				continue
			}
			vsLoop, vsMKL, paired := "", "", ""
			if r.noCNI != "" {
				vsLoop = ratio(s.median(), samples(b.pick(r.noCNI, m.f)).median())
			}
			if r.key == cKubeletCN {
				vsMKL = ratio(s.median(), samples(b.pick(cMKLCNI, m.f)).median())
				paired = pairedRatio(b.pick(cKubeletCN, m.f), b.pick(cMKLCNI, m.f))
			}
			t.row(r.label, m.name, strconv.Itoa(len(s)), ms(s.pct(50)), ms(s.pct(90)), ms(s.pct(99)), vsLoop, vsMKL, paired)
		}
	}
	t.note("the bridge runs are interleaved minikubelet, kubelet, minikubelet, ... after the loopback runs of tables 1-3b (whose figures are repeated here); each pod is checked for a pod IP (API / the kubelet's /pods) so a silent fall-back to loopback fails the run")
	t.note("minikubelet: restarted with --cni-bin-dir %s and an empty --cni-conf-dir, so it uses its default conflist (bridge %s, host-local, firewall, portmap); the kubelet: containerd's CRI with the same conflist under another name, bridge %s and subnet %s", cniBinDir, "mkl0", peerBridge, peerCIDR)
}

// ---- the summary: every contender in one table, and the chart ----

func (b *bench) startSummary() {
	t := newTable("Start latency, every runtime side by side (rename or launch → both workloads exec'd)",
		"runtime", "networking", "n", "p50", "p90", "p99", "÷ minikubelet, same networking (p50)", "paired median ratio", "first request p50")
	rows := []struct{ label, net, key, base string }{
		{"minikubelet", "loopback", cMKL, cMKL},
		{"floor (unshare + systemd-run)", "loopback", cFloor, cMKL},
		{"podman kube play", "none (loopback)", cPodman, cMKL},
		{"kubelet + containerd", "hostNetwork", cKubelet, cMKL},
		{"minikubelet", "CNI bridge", cMKLCNI, cMKLCNI},
		{"kubelet + containerd", "CNI bridge", cKubeletCN, cMKLCNI},
	}
	var series []chartSeries
	for _, r := range rows {
		s := samples(b.pick(r.key, mExec))
		if len(s) == 0 {
			t.row(r.label, r.net, "0", "–", "–", "–", "–", "–", "–")
			continue
		}
		t.row(r.label, r.net, strconv.Itoa(len(s)), ms(s.pct(50)), ms(s.pct(90)), ms(s.pct(99)),
			ratio(s.median(), samples(b.pick(r.base, mExec)).median()), pairedRatio(b.pick(r.key, mExec), b.pick(r.base, mExec)),
			ms(samples(b.pick(r.key, mFirst)).median()))
		series = append(series, chartSeries{label: r.label + ", " + r.net, s: s})
	}
	t.note("ratios below 1 mean faster than minikubelet; the floor's ratio is the floor over minikubelet (minikubelet ÷ floor is in table 2)")
	if len(series) > 0 {
		title := fmt.Sprintf("Pod start, rename → both workloads exec'd (%s)", time.Now().UTC().Format("2006-01-02 15:04 MST"))
		if b.rep.label != "" {
			title += " — " + b.rep.label
		}
		svg := startChart(title, series)
		if err := os.WriteFile(filepath.Join(b.dir, "chart.svg"), []byte(svg), 0o644); err != nil {
			t.note("chart not written: %v", err)
		} else {
			t.note("chart of these distributions: %s (each dot one run; bar p10–p90, mark p50; log scale)", chartName(b.o.out))
		}
	}
	b.rep.emit(t.markdown())
}
