package runtime

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
)

// memOf reads VmRSS, RssAnon (private heap/stack: the per-pod cost that
// sharing the binary's pages does not hide) and Pss, in KiB.
func memOf(t *testing.T, pid int) (rss, anon, pss string) {
	st := procStatus(t, pid)
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Pss:"); ok {
			pss = strings.TrimSpace(v)
		}
	}
	return st["VmRSS"], st["RssAnon"], pss
}

// TestPerPodOverhead reports (does not assert: no timed or sized claims in
// tests) the memory of the per-pod supervisor for the binaries that can play
// it: this test binary (as big as minikubelet) and the small
// runtime/shimbin built here.
func TestPerPodOverhead(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	bins := map[string]string{"test binary (full deps)": os.Args[0]}
	if gobin, err := exec.LookPath("go"); err == nil || fileExists("/usr/local/go/bin/go") {
		if gobin == "" {
			gobin = "/usr/local/go/bin/go"
		}
		_, src, _, _ := goruntime.Caller(0)
		for label, pkg := range map[string]string{"runtime/shimbin": "./shimbin", "minikubelet (product binary)": "../cmd/minikubelet"} {
			out := filepath.Join(f.base, filepath.Base(pkg))
			build := exec.Command(gobin, "build", "-o", out, pkg)
			build.Dir = filepath.Dir(src)
			if b, err := build.CombinedOutput(); err == nil {
				bins[label] = out
			} else {
				t.Logf("cannot build %s (others' work in progress?): %v\n%s", pkg, err, b)
			}
		}
	}
	for label, exe := range bins {
		rt, err := New(Options{RootDir: f.rt.opt.RootDir, LogDir: f.rt.opt.LogDir, Exe: exe})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 3; i++ {
			pod := testPod(fmt.Sprintf("ovh%d", i), v1.Container{Name: "c", Command: []string{"sleep", "1000"}})
			sb, err := rt.RunSandbox(ctx, SandboxConfig{Pod: pod})
			if err != nil {
				t.Fatal(err)
			}
			cc, err := rt.CreateContainer(ctx, ContainerConfig{Pod: pod, Container: &pod.Spec.Containers[0], Rootfs: Rootfs{Path: f.root}})
			if err != nil {
				t.Fatal(err)
			}
			if err := rt.StartContainer(ctx, pod.UID, cc.ID); err != nil {
				t.Fatal(err)
			}
			rss, anon, pss := memOf(t, sb.PID)
			t.Logf("%-26s pod %d supervisor: VmRSS %s, RssAnon %s, Pss %s", label, i, rss, anon, pss)
		}
	}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }
