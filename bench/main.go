// Command bench (`make bench`, as root) measures minikubelet against a real
// systemd booted by the test harness (internal/testnode) and prints one
// Markdown table per scenario, also written to bench/results/latest.md:
//
//  1. pod start latency of a 2-container pod (web server + client polling it)
//  2. the floor: the same two processes with unshare + systemd-run --scope
//  3. the peers: podman kube play of the same YAML, and the kubelet v1.37.2
//     with containerd (standalone, staticPodPath); 1b. the same start with
//     the default CNI bridge network
//  4. mass start/stop of N pods
//  5. steady state with N pods: daemon CPU and RSS, per-pod overhead, D-Bus
//     calls per reconcile
//  6. crash-restart reaction: a killed container, a SIGKILL'd daemon
//
// plus the Go micro-benchmarks of manifests and reconciler, a summary table
// of every runtime's start latency and its chart (an SVG beside the report).
//
// On the host it boots the node, re-executes itself inside it (as
// testnode.RunSelf does for test binaries), then shuts the node down and
// removes its temp dir. Every comparison is interleaved (A B A B ...) and
// reported as ratios measured in the same run. It never fails for being
// slow: every wait is bounded, a scenario that cannot finish reports why in
// its table and the run goes on.
//
//	bin/mkl-bench [--quick | --large | --vm] [--runs N] [--pods N] [--steady 60s] [--out FILE]
//	              [--no-podman] [--no-kubelet | --kubelet PATH]
//
// With --vm (`make bench BENCHFLAGS=--vm`) the scenarios run instead inside
// the field host's Debian 12 guest (hack/vm/vm.sh: systemd PID 1, pure cgroup
// v2), against the guest's own systemd: see vm.go. Where QEMU has no KVM the
// guest is software-emulated (TCG): its report, bench/results/latest-vm.md,
// labels every table so and opens with the ratios between its scenarios, the
// only figures that mean something there.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/minikubelet/minikubelet/internal/e2enode"
	"github.com/minikubelet/minikubelet/internal/testnode"
)

const (
	envInside = "MKL_BENCH_INSIDE" // set in the copy re-executed inside the node: its temp dir
	envSetup  = "MKL_BENCH_SETUP_ERR"
	envCwd    = "MKL_BENCH_CWD"
	envPidMax = "MKL_BENCH_HOST_PID_MAX"
	// envKubelet is the kubelet binary for the peer; envKubeletErr why there is none.
	envKubelet    = "MKL_BENCH_KUBELET"
	envKubeletErr = "MKL_BENCH_KUBELET_ERR"
	demoRef       = "localhost/minikubelet-demo:latest"
	// envPodmanSkip says why the podman peer does not run (the guest has none).
	envPodmanSkip = "MKL_BENCH_PODMAN_SKIP"
)

// options are the sizes of one run.
type options struct {
	mode      string // quick, default, large
	startRuns int    // scenario 1-3 iterations (each: one minikubelet, one floor, one podman run)
	restarts  int    // scenario 6a iterations
	podCounts []int  // scenarios 4, 5, 6b
	steady    time.Duration
	budget    time.Duration // whole run inside the node; later scenarios are skipped past it
	binDir    string
	out       string
	noPodman  string // why the podman peer is skipped ("" runs it)
	noKubelet bool
	kubelet   string
	noGoBench bool
	parallel  int
	vm        bool          // run in the field host's guest (vm.go)
	vmTimeout time.Duration // the whole --vm run, boot included (VM_TIMEOUT)
}

func parseFlags() options {
	var o options
	quick := flag.Bool("quick", false, "tiny sizes that prove every scenario works (~1 minute)")
	large := flag.Bool("large", false, "500 pods for mass start/stop and steady state (also 100)")
	runs := flag.Int("runs", 0, "pod start iterations (default 30; quick 5)")
	pods := flag.Int("pods", 0, "pods for scenarios 4-6 (default 100; quick 10; large 100 and 500)")
	steady := flag.Duration("steady", 0, "steady-state window (default 60s; quick 10s)")
	flag.StringVar(&o.binDir, "bin-dir", "bin", "folder holding minikubelet and minikubelet-shim (make build)")
	flag.StringVar(&o.out, "out", "bench/results/latest.md", "Markdown report file")
	noPodman := flag.Bool("no-podman", false, "skip the podman peer (scenario 3)")
	flag.BoolVar(&o.vm, "vm", false, "run the scenarios in the field host's Debian 12 guest (hack/vm/vm.sh; bounded by VM_TIMEOUT, default 900 s): 10 start runs, 30 pods, 30s steady window, report bench/results/latest-vm.md")
	flag.BoolVar(&o.noKubelet, "no-kubelet", false, "skip the kubelet + containerd peer")
	flag.StringVar(&o.kubelet, "kubelet", "", "kubelet binary for the peer (default: hack/k8s/build.sh kubelet, built once and cached in ~/.cache/minikubelet/k8s)")
	flag.BoolVar(&o.noGoBench, "no-gobench", false, "skip the Go micro-benchmarks")
	flag.IntVar(&o.parallel, "parallel-pods", 0, "passed to minikubelet run (0: its default)")
	flag.Parse()
	o.mode, o.startRuns, o.restarts, o.podCounts, o.steady, o.budget = "default", 30, 5, []int{100}, 60*time.Second, 25*time.Minute
	switch {
	case o.vm:
		o.vmTimeout = vmTimeout(os.Getenv("VM_TIMEOUT"))
		o.mode, o.startRuns, o.restarts, o.podCounts, o.steady, o.budget = "vm", 10, 2, []int{30}, 30*time.Second, vmBudget(o.vmTimeout)
		outSet := false
		flag.Visit(func(f *flag.Flag) { outSet = outSet || f.Name == "out" })
		if !outSet {
			o.out = "bench/results/latest-vm.md"
		}
	case *quick:
		o.mode, o.startRuns, o.restarts, o.podCounts, o.steady, o.budget = "quick", 5, 2, []int{10}, 10*time.Second, 8*time.Minute
	case *large:
		o.mode, o.podCounts, o.budget = "large", []int{100, 500}, 60*time.Minute
	}
	if *noPodman {
		o.noPodman = "skipped (--no-podman)"
	}
	if why := os.Getenv(envPodmanSkip); why != "" {
		o.noPodman = why
	}
	if *runs > 0 {
		o.startRuns = *runs
	}
	if *pods > 0 {
		o.podCounts = []int{*pods}
	}
	if *steady > 0 {
		o.steady = *steady
	}
	if abs, err := filepath.Abs(o.binDir); err == nil {
		o.binDir = abs
	}
	return o
}

func main() {
	// nsenter -m resets the working directory: the inside copy goes back
	// to the repository before resolving relative paths.
	if wd := os.Getenv(envCwd); wd != "" {
		os.Chdir(wd)
	}
	o := parseFlags()
	switch {
	case os.Getenv(envInside) != "":
		os.Exit(inside(o, os.Getenv(envInside)))
	case os.Getenv(envVMGuest) != "":
		os.Exit(vmGuest(o, os.Getenv(envVMGuest)))
	case o.vm:
		os.Exit(vmHost(o))
	}
	os.Exit(host(o))
}

// host prepares the temp dir and image, boots the node, runs the benchmark
// inside it, then tears everything down and writes the report file.
func host(o options) int {
	header, err := beginReport(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "mkl-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	defer cleanupDir(dir)
	body := ""
	if os.Geteuid() != 0 {
		body = "**Scenarios 1-6 skipped: not running as root** (they boot a systemd in namespaces).\n\n"
		fmt.Print(body)
	} else {
		body = runNode(o, dir)
	}
	var gb string
	if !o.noGoBench {
		gb = goBench()
		fmt.Print(gb)
	}
	// The load at the end tells how shared the machine was during the run.
	footer := fmt.Sprintf("Finished %s; load average at the end %s.\n", time.Now().UTC().Format("15:04 MST"), loadAvg())
	fmt.Print(footer)
	if err := os.WriteFile(o.out, []byte(header+body+gb+footer), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	fmt.Printf("\nreport written to %s\n", o.out)
	if err := copyFile(filepath.Join(dir, "chart.svg"), chartName(o.out)); err == nil {
		fmt.Printf("chart written to %s\n", chartName(o.out))
	}
	return 0
}

// runNode boots the node and runs this program inside it; it returns the
// Markdown the inside part wrote (what it printed).
func runNode(o options, dir string) string {
	setupErr := ""
	// The demo image, built exactly as `make run` builds it, imported into
	// the benchmark's own root dir (podman and containerd load the same
	// tarball, the floor mounts it).
	cmd := exec.Command("hack/build-demo-image.sh", "--root-dir", filepath.Join(dir, "root"), "--tar", filepath.Join(dir, "demo.tar"))
	if out, err := cmd.CombinedOutput(); err != nil {
		setupErr = fmt.Sprintf("hack/build-demo-image.sh failed: %v: %s", err, lastLines(string(out), 5))
	}
	kubelet, kubeletErr := prepareKubelet(o, dir)
	node, err := testnode.Boot()
	if err != nil {
		s := fmt.Sprintf("**Scenarios 1-6 not run: the test node did not boot:** %v\n\n", err)
		fmt.Print(s)
		return s
	}
	defer func() {
		if err := node.Shutdown(); err != nil {
			fmt.Fprintln(os.Stderr, "bench: node teardown:", err)
		}
	}()
	self, _ := os.Executable()
	in := node.Command(self, os.Args[1:]...)
	in.Env = append(in.Env, envInside+"="+dir, envSetup+"="+setupErr, envKubelet+"="+kubelet, envKubeletErr+"="+kubeletErr, "PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	cwd, _ := os.Getwd()
	in.Dir = cwd
	in.Env = append(in.Env, envCwd+"="+cwd, envPidMax+"="+readTrim("/proc/sys/kernel/pid_max"))
	in.Stdout, in.Stderr = os.Stdout, os.Stderr
	if err := in.Start(); err != nil {
		return fmt.Sprintf("**Scenarios 1-6 not run: cannot start inside the node:** %v\n\n", err)
	}
	runErr := waitBounded(in, o.budget+3*time.Minute, syscall.SIGKILL)
	body, _ := os.ReadFile(filepath.Join(dir, "report.md"))
	if runErr != nil {
		s := fmt.Sprintf("**The benchmark inside the node ended early: %v** (tables above are complete).\n\n", runErr)
		fmt.Print(s)
		body = append(body, s...)
	}
	return string(body)
}

// beginReport prints the report's header and makes its folder.
func beginReport(o options) (string, error) {
	header := reportHeader(o)
	fmt.Print(header)
	return header, os.MkdirAll(filepath.Dir(o.out), 0o755)
}

func reportHeader(o options) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# minikubelet benchmark — %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	commit, _ := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	kernel, _ := exec.Command("uname", "-r").Output()
	fmt.Fprintf(&b, "Mode **%s** (%d start runs, pods %v, steady window %s). Machine: %s, %d cores, %s RAM, kernel %s, %s, commit %s.\n\n",
		o.mode, o.startRuns, o.podCounts, o.steady, cpuModel(), runtime.NumCPU(), memTotal(), strings.TrimSpace(string(kernel)),
		runtime.Version(), strings.TrimSpace(string(commit)))
	built := "missing"
	if fi, err := os.Stat(filepath.Join(o.binDir, "minikubelet")); err == nil {
		built = "built " + fi.ModTime().UTC().Format("15:04:05 MST")
	}
	fmt.Fprintf(&b, "%s/minikubelet %s; load average at start %s (the machine is shared: compare ratios, not absolute times).\n\n",
		o.binDir, built, loadAvg())
	return b.String()
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "model name") {
			if i := strings.IndexByte(l, ':'); i > 0 {
				return strings.TrimSpace(l[i+1:])
			}
		}
	}
	return runtime.GOARCH
}

func memTotal() string {
	b, _ := os.ReadFile("/proc/meminfo")
	var kb int64
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "MemTotal:") {
			fmt.Sscanf(strings.TrimPrefix(l, "MemTotal:"), "%d", &kb)
		}
	}
	return fmt.Sprintf("%.0f GiB", float64(kb)/(1<<20))
}

func copyFile(from, to string) error { return copyMode(from, to, 0o644) }

func copyExe(from, to string) error { return copyMode(from, to, 0o755) }

func copyMode(from, to string, mode os.FileMode) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, mode)
}

// loadAvg is the 1, 5 and 15 minute load average: how shared the machine is.
func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, " / ")
}

// cleanupDir unmounts whatever is still mounted below dir (nothing, normally:
// the node's mounts die with its mount namespace) and removes it.
func cleanupDir(dir string) {
	for _, m := range mountsUnder(dir) {
		syscall.Unmount(m, syscall.MNT_DETACH)
	}
	if err := os.RemoveAll(dir); err != nil {
		fmt.Fprintln(os.Stderr, "bench: remove", dir+":", err)
	}
}

// mountsUnder lists mount points below dir in this mount namespace, deepest first.
var mountsUnder = e2enode.MountsUnder

// goBench runs the existing Go micro-benchmarks and summarises them.
func goBench() string {
	t := newTable("Go micro-benchmarks (go test -bench, 200 iterations)", "benchmark", "package", "ns/op", "B/op", "allocs/op")
	cmd := exec.Command("go", "test", "-run", "^$", "-bench", ".", "-benchtime", "200x", "-benchmem", "./manifests", "./reconciler")
	cmd.Env = append(os.Environ(), "MKL_SKIP_INTEGRATION=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	err := runCtx(ctx, cmd)
	pkg := ""
	for _, l := range strings.Split(out.String(), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && f[0] == "pkg:" {
			pkg = strings.TrimPrefix(f[1], "github.com/minikubelet/minikubelet/")
		}
		if len(f) >= 4 && strings.HasPrefix(f[0], "Benchmark") && f[3] == "ns/op" {
			row := []string{f[0], pkg, f[2], "", ""}
			for i := 4; i+1 < len(f); i += 2 {
				switch f[i+1] {
				case "B/op":
					row[3] = f[i]
				case "allocs/op":
					row[4] = f[i]
				}
			}
			t.row(row...)
		}
	}
	if err != nil {
		t.note("go test failed: %v: %s", err, lastLines(out.String(), 8))
	}
	return t.markdown()
}

// waitBounded waits for the started cmd; past limit, or on Ctrl-C or
// SIGTERM, it sends cmd stop (SIGKILL, or SIGTERM to a script that tears
// down what it started) and waits for it to exit. Its error says which.
func waitBounded(cmd *exec.Cmd, limit time.Duration, stop syscall.Signal) error {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	select {
	case err := <-done:
		return err
	case <-timer.C:
		cmd.Process.Signal(stop)
		<-done
		return fmt.Errorf("stopped after the time budget %s", limit)
	case s := <-sigs:
		cmd.Process.Signal(stop)
		<-done
		return fmt.Errorf("interrupted by %v", s)
	}
}

// runCtx runs cmd, killing it when ctx ends.
func runCtx(ctx context.Context, cmd *exec.Cmd) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		cmd.Process.Kill()
		<-done
		return ctx.Err()
	}
}
