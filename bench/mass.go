package main

import (
	"bufio"
	"context"
	"fmt"
	"github.com/minikubelet/minikubelet/internal/e2enode"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// massPhase runs scenarios 4, 5 and 6b on n pods: all files renamed in at
// once → all Running (4); the steady-state window (5); the daemon SIGKILL'd
// and restarted → every pod adopted (6b); all files removed → everything
// gone (4).
func (b *bench) massPhase(n int, t4, t5, t6 *table) error {
	runningT, answeredT, goneT := "–", "–", "–"
	perUp, perDown := "–", "–"
	defer func() { t4.row(strconv.Itoa(n), runningT, answeredT, perUp, goneT, perDown) }()
	files := make([]string, n)
	outs := make([]string, n)
	for i := range files {
		name := fmt.Sprintf("mass-%03d", i)
		files[i] = name + ".yaml"
		outs[i] = b.outDir(fmt.Sprintf("mass-%d", n), strconv.Itoa(i))
		if err := b.d.stageManifest(files[i], podYAML(name, outs[i])); err != nil {
			return err
		}
	}
	// kernel.pid_max counts threads: a size that would not fit is skipped,
	// judged by the threads per pod a smaller size measured.
	threads0 := totalThreads()
	if b.threadsPerPod > 0 {
		if need := threads0 + int(b.threadsPerPod*float64(n)); need > pidMax()*8/10 {
			return fmt.Errorf("%d pods skipped: about %d threads needed (%.1f per pod measured), over 80%% of kernel.pid_max %d", n, need, b.threadsPerPod, pidMax())
		}
	}
	// Every wait is bounded: half a second per pod on top of a minute.
	limit := time.Minute + time.Duration(n)*500*time.Millisecond
	progress("mass start of %d pods", n)
	// Listing n pods costs the daemon work: poll every n ms (at least 50).
	every := max(50*time.Millisecond, time.Duration(n)*time.Millisecond)
	t0 := time.Now()
	for _, f := range files {
		if err := b.d.put(f); err != nil {
			return err
		}
	}
	var allRunning, allAnswered time.Time
	deadline := t0.Add(limit)
	ctx := context.Background()
	lastCount := 0
	for time.Now().Before(deadline) && (allRunning.IsZero() || allAnswered.IsZero()) {
		if allAnswered.IsZero() {
			if answered(outs) == n {
				allAnswered = time.Now()
			}
		}
		if allRunning.IsZero() {
			if pods, err := b.d.pods(ctx); err == nil {
				c := 0
				for i := range pods {
					if e2enode.Running(&pods[i]) {
						c++
					}
				}
				lastCount = c
				if c == n {
					allRunning = time.Now()
				}
			}
		}
		time.Sleep(every)
	}
	if !allRunning.IsZero() {
		b.threadsPerPod = float64(totalThreads()-threads0) / float64(n)
		runningT = secs(allRunning.Sub(t0))
		b.massUp[n] = allRunning.Sub(t0)
		perUp = ms(allRunning.Sub(t0) / time.Duration(n))
	}
	if !allAnswered.IsZero() {
		answeredT = secs(allAnswered.Sub(t0))
	}
	var errs []string
	if allRunning.IsZero() {
		errs = append(errs, fmt.Sprintf("%d pods: only %d Running after %s (daemon log: %s)", n, lastCount, limit, b.d.logTail(3)))
	} else {
		b.guard(t5, func() error { return b.steady(n, t5) })
		b.guard(t6, func() error { return b.adoption(n, t6) })
	}
	// Stop: every file removed at once.
	progress("mass stop of %d pods", n)
	t1 := time.Now()
	for _, f := range files {
		os.Remove(filepath.Join(b.d.manifests, f))
	}
	if !b.d.alive() {
		if err := b.d.start(); err != nil {
			return fmt.Errorf("daemon down before the mass stop and does not restart: %v", err)
		}
	}
	if err := b.d.waitGoneEvery(limit, every); err != nil {
		errs = append(errs, fmt.Sprintf("%d pods: stop: %v", n, err))
	} else {
		goneT = secs(time.Since(t1))
		b.massDown[n] = time.Since(t1)
		perDown = ms(time.Since(t1) / time.Duration(n))
	}
	t4.note("%d pods: started and stopped by %s parallel workers (--parallel-pods); polled every %s (API list, marker files, /proc, mountinfo, systemctl list-units)", n, parallelName(b.o.parallel), every)
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

func parallelName(p int) string {
	if p == 0 {
		return "the default number of"
	}
	return strconv.Itoa(p)
}

// steady measures the daemon and the per-pod supervisors over the window
// with n pods idle.
func (b *bench) steady(n int, t *table) error {
	settle := 5 * time.Second
	if b.o.mode == "quick" {
		settle = 2 * time.Second
	}
	time.Sleep(settle)
	ctx := context.Background()
	pid := b.d.pid()
	m0, err0 := b.d.client.Metrics(ctx)
	sup0 := supervisors()
	ticks0 := cpuTicks(pid)
	var supTicks0 int64
	for _, p := range sup0 {
		supTicks0 += cpuTicks(p)
	}
	t0 := time.Now()
	progress("steady state with %d pods for %s", n, b.o.steady)
	time.Sleep(b.o.steady)
	ticks1 := cpuTicks(pid)
	wall := time.Since(t0)
	var supTicks1 int64
	for _, p := range sup0 {
		supTicks1 += cpuTicks(p)
	}
	m1, err1 := b.d.client.Metrics(ctx)
	if ticks0 < 0 || ticks1 < 0 {
		return fmt.Errorf("daemon PID %d vanished during the window", pid)
	}
	cpu := float64(ticks1-ticks0) / 100 / wall.Seconds() * 100
	supCPU := float64(supTicks1-supTicks0) / 100 / wall.Seconds() * 100
	drss, dpss := memOf(pid)
	sup := supervisors()
	var rss, pss int64
	for _, p := range sup {
		r, s := memOf(p)
		rss, pss = rss+r, pss+s
	}
	exes := map[string]int{}
	for _, p := range sup {
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", p))
		exes[filepath.Base(strings.TrimSuffix(exe, " (deleted)"))]++
	}
	var exeList []string
	for e, c := range exes {
		exeList = append(exeList, fmt.Sprintf("%s ×%d", e, c))
	}
	sort.Strings(exeList)
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	threads, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	t.note("%d pods: supervisor processes: %s; the daemon holds %d fds (nofile hard limit 20000) and %d threads; the machine runs %d threads in all (kernel.pid_max %d)",
		n, strings.Join(exeList, ", "), len(fds), len(threads), totalThreads(), pidMax())
	t.note("%d pods: the daemon's threads by the syscall they sit in at the end of the window: %s", n, threadSyscalls(pid))
	window, total, reconciles := "–", "–", "–"
	if err0 == nil && err1 == nil {
		d0, r0 := metricCount(m0, "minikubelet_dbus_call_duration_seconds_count"), metricCount(m0, "minikubelet_reconcile_duration_seconds_count")
		d1, r1 := metricCount(m1, "minikubelet_dbus_call_duration_seconds_count"), metricCount(m1, "minikubelet_reconcile_duration_seconds_count")
		reconciles = fmt.Sprintf("%.0f (%.2f/s)", r1-r0, (r1-r0)/wall.Seconds())
		if d1 == 0 {
			window, total = "not exported", "not exported"
			t.note("D-Bus calls per reconcile: the daemon's /metrics has %.0f reconciles but counts no %s sample (the systemd driver does not report its calls yet)", r1, "minikubelet_dbus_call_duration_seconds")
		} else if r1 > r0 {
			window = fmt.Sprintf("%.2f (%.0f calls / %.0f reconciles)", (d1-d0)/(r1-r0), d1-d0, r1-r0)
		} else {
			window = fmt.Sprintf("no reconcile (%.0f calls)", d1-d0)
		}
		if r1 > 0 && d1 > 0 {
			total = fmt.Sprintf("%.2f (%.0f / %.0f)", d1/r1, d1, r1)
		}
	} else {
		t.note("/metrics unreadable: %v %v", err0, err1)
	}
	t.row(strconv.Itoa(n), fmt.Sprintf("%.2f %%", cpu), mib(drss), mib(dpss),
		fmt.Sprintf("%.2f", float64(len(sup))/float64(n)), mib(rss/int64(n)), mib(pss/int64(n)), fmt.Sprintf("%.2f %% (all)", supCPU), reconciles, window, total)
	t.note("%d pods: window %s after %s settling; CPU = utime+stime of the process over wall time (100 %% = one core); overhead = every process in the daemon's pod tree (%s.slice) that is not a workload (the image's busybox), summed and divided by the pod count; PSS shares a binary's pages among the processes mapping it; the kubelet peer and containerd, when they run, idle beside it with no pod", n, wall.Round(time.Second), settle, mklRoot)
	return nil
}

// supervisors lists the pod tree's processes that are not workloads.
func supervisors() []int {
	var out []int
	for _, p := range podProcesses() {
		if !isWorkload(p) {
			out = append(out, p)
		}
	}
	return out
}

// metricCount sums every series of a Prometheus counter (or histogram
// _count) in a text exposition.
func metricCount(text, name string) float64 {
	var sum float64
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, name) {
			continue
		}
		rest := l[len(name):]
		if rest != "" && rest[0] != '{' && rest[0] != ' ' {
			continue
		}
		f := strings.Fields(l)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			sum += v
		}
	}
	return sum
}

// adoption kills the daemon with SIGKILL and measures the restarted one
// taking every pod back.
func (b *bench) adoption(n int, t *table) error {
	ctx := context.Background()
	before, err := b.d.pods(ctx)
	if err != nil {
		return err
	}
	restartsBefore := 0
	for i := range before {
		restartsBefore += restartsOf(&before[i])
	}
	pidsBefore := workloadPIDs()
	if err := b.d.stop(syscall.SIGKILL); err != nil {
		return err
	}
	t0 := time.Now()
	if err := b.d.start(); err != nil {
		t.row(strconv.Itoa(n), "–", "–", "–", "–")
		return fmt.Errorf("restart after SIGKILL: %v", err)
	}
	apiAt := time.Since(t0)
	limit := time.Minute + time.Duration(n)*200*time.Millisecond
	var allAt time.Duration
	restartsAfter := -1
	last := 0
	for deadline := t0.Add(limit); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		pods, err := b.d.pods(ctx)
		if err != nil {
			continue
		}
		c, r := 0, 0
		for i := range pods {
			if e2enode.Running(&pods[i]) {
				c++
			}
			r += restartsOf(&pods[i])
		}
		last = c
		if c == n && len(pods) == n {
			allAt, restartsAfter = time.Since(t0), r
			break
		}
	}
	replaced := 0
	after := workloadPIDs()
	for id, pid := range pidsBefore {
		if after[id] != pid {
			replaced++
		}
	}
	all := "–"
	if allAt > 0 {
		all = ms(allAt)
	}
	rs := "–"
	if restartsAfter >= 0 {
		rs = strconv.Itoa(restartsAfter - restartsBefore)
	}
	t.row(strconv.Itoa(n), ms(apiAt), all, rs, fmt.Sprintf("%d of %d", replaced, len(pidsBefore)))
	t.note("%d pods: timed from the exec of the new daemon; restarts = change of the summed restartCount; workloads replaced = workload PIDs (by BENCH_ID) that differ after adoption", n)
	if allAt == 0 {
		return fmt.Errorf("%d pods: only %d Running %s after the restart", n, last, limit)
	}
	return nil
}

// totalThreads is the number of tasks in the node's PID namespace (what
// kernel.pid_max bounds), from /proc/loadavg.
func totalThreads() int {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 4 {
		return 0
	}
	i := strings.IndexByte(f[3], '/')
	n, _ := strconv.Atoi(f[3][i+1:])
	return n
}

// pidMax is the smaller of the node's and the host's kernel.pid_max (newer
// kernels keep one per PID namespace; the host's bounds the machine).
func pidMax() int {
	n := 0
	for _, s := range []string{readTrim("/proc/sys/kernel/pid_max"), os.Getenv(envPidMax)} {
		if v, err := strconv.Atoi(s); err == nil && v > 0 && (n == 0 || v < n) {
			n = v
		}
	}
	if n == 0 {
		n = 32768
	}
	return n
}

func readTrim(p string) string {
	b, _ := os.ReadFile(p)
	return strings.TrimSpace(string(b))
}

// syscallNames are the x86-64 numbers a Go daemon's threads usually sit in.
var syscallNames = map[string]string{"0": "read", "1": "write", "7": "poll", "17": "pread64", "23": "select", "35": "nanosleep",
	"45": "recvfrom", "47": "recvmsg", "61": "wait4", "202": "futex", "230": "clock_nanosleep", "232": "epoll_wait",
	"247": "waitid", "270": "pselect6", "271": "ppoll", "281": "epoll_pwait", "-1": "running (no syscall)", "running": "running"}

// threadSyscalls is a histogram of the current syscall of every thread of
// pid (/proc/<pid>/task/*/syscall): a thread per pod blocked in read, say,
// points at a blocking per-pod watcher.
func threadSyscalls(pid int) string {
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	hist := map[string]int{}
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/syscall", pid, t.Name()))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			continue
		}
		name, ok := syscallNames[f[0]]
		if !ok {
			name = "syscall " + f[0]
		}
		hist[name]++
	}
	var parts []string
	for k, v := range hist {
		parts = append(parts, fmt.Sprintf("%s ×%d", k, v))
	}
	sort.Slice(parts, func(i, j int) bool {
		return hist[strings.SplitN(parts[i], " ×", 2)[0]] > hist[strings.SplitN(parts[j], " ×", 2)[0]]
	})
	return strings.Join(parts, ", ")
}

// answered counts the pods whose workload wrote its "ok" file into its
// output folder (the first request it served).
func answered(outs []string) int {
	n := 0
	for _, o := range outs {
		if _, err := os.Stat(filepath.Join(o, "ok")); err == nil {
			n++
		}
	}
	return n
}
