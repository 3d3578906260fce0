package main

// --vm: the scenarios in the field host's guest (hack/vm/vm.sh), a Debian 12
// whose PID 1 is systemd on pure cgroup v2, instead of a lab node.
//
// On the host (vmHost) the demo image's archive and the binaries are put in
// bin/vmbench/, the only folder shared with the guest, and the guest is
// booted once with `vm.sh run bin/vmbench -- env ... mkl-bench ARGS`,
// bounded by VM_TIMEOUT. In the guest (vmGuest) the binaries and the image
// go onto the guest's own disk (a binary paged in over 9p under load can
// stall for minutes: hack/vm/guest-tests.sh), and the ordinary inside part
// runs there against the guest's systemd. Its report comes back through the
// share; the host writes it to bench/results/latest-vm.md. The guest has
// no podman and no containerd (vm.sh's GUEST_PKGS): those peers are listed
// as skipped with that reason, as are the Go micro-benchmarks (no Go in the
// guest; they belong to the host's report).
//
// Under TCG every figure is inflated unevenly: each table is labelled, and
// the report opens with the ratios between scenarios of the same guest.

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	// envVMGuest is set in the guest's command: the shared folder.
	envVMGuest = "MKL_BENCH_VM_GUEST"
	// envLabel is the label of every table the inside part prints.
	envLabel    = "MKL_BENCH_LABEL"
	vmScript    = "hack/vm/vm.sh"
	vmGuestPkgs = "hack/vm/vm.sh GUEST_PKGS"
	ratioTitle  = "Ratios between scenarios in this guest (the figures to read)"
)

// ratiosFirst moves the ratio table (printed last, when every scenario is
// done) to the top of a guest's report body, before the tables it sums up.
func ratiosFirst(body string) string {
	i := strings.Index(body, "### "+ratioTitle)
	if i < 0 {
		return body
	}
	end := len(body)
	for _, next := range []string{"\n### ", "\n**"} {
		if j := strings.Index(body[i:], next); j >= 0 && i+j+1 < end {
			end = i + j + 1
		}
	}
	return body[i:end] + body[:i] + body[end:]
}

// vmTimeout is the whole --vm run (boot, scenarios, power-off): VM_TIMEOUT
// seconds, vm.sh's own default 900 when unset or not a number.
func vmTimeout(env string) time.Duration {
	if s, err := strconv.Atoi(strings.TrimSpace(env)); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	return 900 * time.Second
}

// vmBudget is the scenarios' share of the timeout: the guest's boot, the
// image import and the power-off get 4 minutes, the inside part's own
// overrun allowance (vmGuest) 2 of them; never under 3 minutes.
func vmBudget(timeout time.Duration) time.Duration {
	return max(timeout-4*time.Minute, 3*time.Minute)
}

// vmLabel is the label of a guest's tables, from systemd-detect-virt:
// "qemu" is QEMU without KVM, i.e. software emulation.
func vmLabel(virt string) string {
	switch virt = strings.TrimSpace(virt); virt {
	case "qemu":
		return "emulated (TCG) guest: compare ratios only"
	case "kvm":
		return "KVM guest: compare ratios only"
	case "", "none":
		return "guest (no virtualisation detected): compare ratios only"
	default:
		return virt + " guest: compare ratios only"
	}
}

// guestLine picks vm.sh's description of the guest out of its stderr.
func guestLine(stderr string) string {
	line := ""
	for _, l := range strings.Split(stderr, "\n") {
		if s, ok := strings.CutPrefix(l, "vm.sh: guest: "); ok {
			line = strings.TrimSpace(s)
		}
	}
	return line
}

// vmHost builds what the guest needs, boots it once and writes the report.
func vmHost(o options) int {
	header, err := beginReport(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	t0 := time.Now()
	body, guest := vmRun(o)
	note := fmt.Sprintf("**Every table below was measured inside the guest %s, booted once by %s with VM_TIMEOUT=%d (scenarios' budget %s).** "+
		"Where it is software-emulated (TCG) its times are inflated unevenly and are no absolute figures: compare ratios between scenarios of this report only "+
		"(the first table). The Go micro-benchmarks are left out (no Go toolchain in the guest; they are in the host's `make bench` report).\n\n",
		orUnknown(guest), vmScript, int(o.vmTimeout.Seconds()), o.budget)
	footer := fmt.Sprintf("Finished %s after %s of wall time on the host (boot and power-off included); host load average at the end %s.\n",
		time.Now().UTC().Format("15:04 MST"), time.Since(t0).Round(time.Second), loadAvg())
	fmt.Print(footer)
	if err := os.WriteFile(o.out, []byte(header+note+ratiosFirst(body)+footer), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	fmt.Printf("\nreport written to %s\n", o.out)
	return 0
}

func orUnknown(s string) string {
	if s == "" {
		return "(vm.sh did not describe it)"
	}
	return "(" + s + ")"
}

// vmRun prepares bin/vmbench, runs the guest and returns the report's
// body (what the guest wrote, or why there is none) and vm.sh's guest line.
func vmRun(o options) (body, guest string) {
	if os.Geteuid() != 0 {
		return "**Not run: not root** (QEMU and the guest image need root).\n\n", ""
	}
	if out, err := exec.Command(vmScript, "image").CombinedOutput(); err != nil {
		return fmt.Sprintf("**Not run: `%s image` failed:** %v: %s\n\n", vmScript, err, lastLines(string(out), 5)), ""
	}
	share, err := filepath.Abs(filepath.Join("bin", "vmbench"))
	if err != nil {
		return fmt.Sprintf("**Not run:** %v\n\n", err), ""
	}
	os.RemoveAll(share)
	defer os.RemoveAll(share)
	setupErr := ""
	if err := os.MkdirAll(filepath.Join(share, "bin"), 0o755); err != nil {
		return fmt.Sprintf("**Not run:** %v\n\n", err), ""
	}
	self, _ := os.Executable()
	for from, to := range map[string]string{self: "mkl-bench", filepath.Join(o.binDir, "minikubelet"): "bin/minikubelet",
		filepath.Join(o.binDir, "minikubelet-shim"): "bin/minikubelet-shim"} {
		if err := copyExe(from, filepath.Join(share, to)); err != nil && to == "mkl-bench" {
			return fmt.Sprintf("**Not run:** %v\n\n", err), ""
		} else if err != nil && setupErr == "" {
			setupErr = fmt.Sprintf("%v (make build)", err)
		}
	}
	// The demo image's archive, built as `make bench` builds it; the guest
	// imports it into its own root dir.
	if setupErr == "" {
		tmp, err := os.MkdirTemp("", "mkl-bench-img-")
		if err != nil {
			return fmt.Sprintf("**Not run:** %v\n\n", err), ""
		}
		cmd := exec.Command("hack/build-demo-image.sh", "--root-dir", tmp, "--tar", filepath.Join(share, "demo.tar"))
		cmd.Env = append(os.Environ(), "MKL_DEMO_BIN="+filepath.Join(share, "bin", "minikubelet"))
		if out, err := cmd.CombinedOutput(); err != nil {
			setupErr = fmt.Sprintf("hack/build-demo-image.sh failed: %v: %s", err, lastLines(string(out), 5))
		}
		cleanupDir(tmp)
	}
	args := []string{"run", share, "--", "env", envVMGuest + "=" + share, envSetup + "=" + setupErr,
		"VM_TIMEOUT=" + strconv.Itoa(int(o.vmTimeout.Seconds())), filepath.Join(share, "mkl-bench")}
	args = append(append(args, os.Args[1:]...), "--bin-dir", filepath.Join(share, "bin"))
	cmd := exec.Command(vmScript, args...)
	cmd.Env = append(os.Environ(), "VM_TIMEOUT="+strconv.Itoa(int(o.vmTimeout.Seconds())))
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = os.Stdout, io.MultiWriter(os.Stderr, &stderr)
	progress("booting the guest (%s run, VM_TIMEOUT=%d s)", vmScript, int(o.vmTimeout.Seconds()))
	var runErr error
	if err := cmd.Start(); err != nil {
		runErr = err
	} else {
		// vm.sh bounds itself (VM_TIMEOUT, then QEMU is killed); the extra
		// minute only guards against vm.sh itself hanging. SIGTERM lets its
		// trap power QEMU off.
		runErr = waitBounded(cmd, o.vmTimeout+time.Minute, syscall.SIGTERM)
	}
	b, _ := os.ReadFile(filepath.Join(share, "report.md"))
	body = string(b)
	if runErr != nil {
		why := runErr.Error()
		if ee, ok := runErr.(*exec.ExitError); ok && ee.ExitCode() == 124 {
			why = fmt.Sprintf("the guest ran out of VM_TIMEOUT (%s) and was powered off", o.vmTimeout)
		}
		s := fmt.Sprintf("**The guest run ended early: %s** (tables above are complete): %s\n\n", why, lastLines(stderr.String(), 3))
		fmt.Print(s)
		body += s
	}
	if err := copyFile(filepath.Join(share, "chart.svg"), chartName(o.out)); err == nil {
		fmt.Printf("chart written to %s\n", chartName(o.out))
	}
	return body, guestLine(stderr.String())
}

// vmGuest runs in the guest: it moves the binaries and the image onto the
// guest's disk, runs the inside part against the guest's systemd, bounded
// by the budget, and leaves its report and chart in the shared folder.
func vmGuest(o options, share string) int {
	dir, err := os.MkdirTemp("/var/tmp", "mkl-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	defer cleanupDir(dir)
	bin := filepath.Join(dir, "bin")
	os.MkdirAll(bin, 0o755)
	setupErr := os.Getenv(envSetup)
	for _, f := range []string{filepath.Join(share, "mkl-bench"), filepath.Join(o.binDir, "minikubelet"), filepath.Join(o.binDir, "minikubelet-shim")} {
		if err := copyExe(f, filepath.Join(bin, filepath.Base(f))); err != nil && setupErr == "" {
			setupErr = "copying the binaries onto the guest's disk: " + err.Error()
		}
	}
	if setupErr == "" {
		tar := filepath.Join(dir, "demo.tar")
		if err := copyFile(filepath.Join(share, "demo.tar"), tar); err != nil {
			setupErr = "the demo image: " + err.Error()
		} else if out, err := exec.Command(filepath.Join(bin, "minikubelet"), "image", "import", "--root-dir", filepath.Join(dir, "root"), tar).CombinedOutput(); err != nil {
			setupErr = fmt.Sprintf("minikubelet image import: %v: %s", err, lastLines(string(out), 3))
		}
	}
	virt, _ := exec.Command("systemd-detect-virt").Output()
	in := exec.Command(filepath.Join(bin, "mkl-bench"), append(os.Args[1:], "--bin-dir", bin)...)
	cwd, _ := os.Getwd()
	in.Env = append(os.Environ(), envInside+"="+dir, envSetup+"="+setupErr, envCwd+"="+cwd,
		envKubeletErr+"="+guestMissing("containerd", "the kubelet peer"), envLabel+"="+vmLabel(string(virt)),
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	if why := guestMissing("podman", "the podman peer"); why != "" {
		in.Env = append(in.Env, envPodmanSkip+"="+why)
	}
	in.Stdout, in.Stderr = os.Stdout, os.Stderr
	var runErr error
	if err := in.Start(); err != nil {
		runErr = err
	} else {
		runErr = waitBounded(in, o.budget+2*time.Minute, syscall.SIGKILL)
	}
	report, _ := os.ReadFile(filepath.Join(dir, "report.md"))
	if runErr != nil {
		report = append(report, fmt.Sprintf("**The benchmark inside the guest ended early: %v** (tables above are complete).\n\n", runErr)...)
	}
	if err := os.WriteFile(filepath.Join(share, "report.md"), report, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	copyFile(filepath.Join(dir, "chart.svg"), filepath.Join(share, "chart.svg"))
	return 0
}

// guestMissing says why a peer cannot run in the guest ("" when its
// binary is there; the kubelet peer also needs its kubelet binary, which
// --vm does not bring, so it always has a reason).
func guestMissing(bin, peer string) string {
	if _, err := exec.LookPath(bin); err != nil {
		return fmt.Sprintf("skipped in the guest: %s is not installed in the guest image (%s); %s needs it", bin, vmGuestPkgs, peer)
	}
	if bin == "containerd" {
		return "skipped in the guest: --vm does not bring the kubelet binary into the guest"
	}
	return ""
}

// ratioTable is the headline of a guest run: ratios between scenarios
// measured in the same guest (p50 over p50, and the median of the per-run
// ratios of interleaved runs).
func (b *bench) ratioTable() *table {
	t := newTable(ratioTitle,
		"ratio", "measure", "n", "p50 ÷ p50", "paired median ratio")
	pair := func(label, x, y string, ms []measure) {
		for _, m := range ms {
			a, c := b.pick(x, m.f), b.pick(y, m.f)
			t.row(label, m.name, fmt.Sprintf("%d / %d", len(a), len(c)), ratio(samples(a).median(), samples(c).median()), pairedRatio(a, c))
		}
	}
	pair("minikubelet ÷ floor (1 ÷ 2)", cMKL, cFloor, startMeasures)
	pair("CNI bridge ÷ loopback, minikubelet (1b ÷ 1)", cMKLCNI, cMKL, append(startMeasures, measure{"(c) delete → all gone", mGone}))
	var ns []int
	for n := range b.massUp {
		ns = append(ns, n)
	}
	sort.Ints(ns)
	one, gone := samples(b.pick(cMKL, mExec)).median(), samples(b.pick(cMKL, mGone)).median()
	runs := fmt.Sprintf("1 / %d", len(b.starts[cMKL]))
	for _, n := range ns {
		t.row("mass start per pod ÷ one pod's start (4 ÷ 1a)", fmt.Sprintf("%d pods: all Running ÷ %d", n, n), runs, ratio(b.massUp[n]/time.Duration(n), one), "")
		if d, ok := b.massDown[n]; ok {
			t.row("mass stop per pod ÷ one pod's delete (4 ÷ 1c)", fmt.Sprintf("%d pods: all gone ÷ %d", n, n), runs, ratio(d/time.Duration(n), gone), "")
		}
	}
	if len(ns) == 0 {
		t.note("no mass start finished: no per-pod ratio (table 4 says why)")
	}
	t.note("n: the runs on each side (a mass start or stop is one run over all its pods)")
	t.note("below 1 = the first is faster; the start runs of 1 and 2 are interleaved one by one (1b's after them), so the paired ratio cancels the drift of the guest and the host best; a mass ratio under 1 means pods started together cost less each than one alone (parallel workers)")
	t.note("table 5's memory figures (RSS, PSS) are not times and hold under emulation; its CPU percentages are emulated")
	return t
}
