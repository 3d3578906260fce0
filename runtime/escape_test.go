package runtime

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
)

// The escape suite: `go test -run Escape ./...`. Each test tries one way
// out of a container and logs one line per attempt:
//
//	escape <name>: attempted <how>: blocked (<what happened>)
//
// A way out that works is a test failure with "GOT OUT".

func escapeOutcome(t *testing.T, name, how string, escaped bool, detail string) {
	t.Helper()
	if escaped {
		t.Errorf("escape %s: attempted %s: GOT OUT (%s)", name, how, detail)
	} else {
		t.Logf("escape %s: attempted %s: blocked (%s)", name, how, detail)
	}
}

// busyboxImage is the shape of docker.io/library/busybox: /bin with the
// applets, /etc/passwd and /etc/group, and nothing the runtime should
// create itself (no /proc, /dev, /sys, /tmp).
func busyboxImage(t *testing.T, base string) string {
	t.Helper()
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("busybox-static is not installed (hack/install-deps.sh installs it)")
	}
	root := filepath.Join(base, "image")
	if err := os.MkdirAll(filepath.Join(root, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	b, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin/busybox"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bb, "--list").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, applet := range strings.Fields(string(out)) {
		if applet != "busybox" {
			os.Symlink("busybox", filepath.Join(root, "bin", applet))
		}
	}
	os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/group"), []byte("root:x:0:\nnobody:x:65534:\n"), 0o644)
	return root
}

func statDevIno(t *testing.T, p string) string {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		t.Fatalf("stat %s: %v", p, err)
	}
	return fmt.Sprintf("%d:%d", st.Dev, st.Ino)
}

// CVE-2022-24769: a process that execs a file with inheritable file
// capabilities gains them when its inheritable set holds them.
func TestEscapeInheritableCapabilities(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.root = busyboxImage(t, f.base)
	c := sh("app", `grep -E '^Cap(Inh|Amb):' /proc/self/status; echo done; exec sleep 1000`)
	add := sh("added", `grep -E '^Cap(Inh|Amb):' /proc/self/status; echo done; exec sleep 1000`)
	add.SecurityContext = &v1.SecurityContext{Capabilities: &v1.Capabilities{Add: []v1.Capability{"NET_ADMIN", "SYS_PTRACE"}}}
	pod := testPod("inhcaps", c, add)
	_, ccs := f.run(ctx, pod, nil)
	const zero = "CapInh:\t0000000000000000\nCapAmb:\t0000000000000000\n"
	for _, name := range []string{"app", "added"} {
		log := f.waitLog(ccs[name], "done")
		escapeOutcome(t, "inheritable-capabilities", "to keep inheritable/ambient capabilities in container "+name+" (/proc/self/status)",
			!strings.Contains(log, zero), strings.ReplaceAll(strings.TrimSuffix(strings.TrimSuffix(log, "done\n"), "\n"), "\n", ", "))
		var out, errb strings.Builder
		code, err := f.rt.Exec(ctx, pod.UID, ccs[name].ID, ExecConfig{Cmd: []string{"grep", "-E", "^Cap(Inh|Amb):", "/proc/self/status"}, Stdout: &out, Stderr: &errb})
		if err != nil || code != 0 {
			t.Fatalf("exec in %s: %d %v %s", name, code, err, errb.String())
		}
		escapeOutcome(t, "inheritable-capabilities", "to keep inheritable/ambient capabilities in an exec'd process of "+name,
			out.String() != zero, strings.ReplaceAll(strings.TrimSuffix(out.String(), "\n"), "\n", ", "))
	}
}

// Another container of the pod swaps a subPath component for a symlink to
// / while the pod's other container is created again and again
// (CVE-2017-1002101, CVE-2021-25741): the victim must never get the node's
// root mounted.
func TestEscapeSubPathSymlinkSwap(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.root = busyboxImage(t, f.base)
	swapper := sh("swapper", `cd /shared && echo swapping && while :; do rmdir x; ln -s / x; rm x; mkdir x; done 2>/dev/null`)
	swapper.VolumeMounts = []v1.VolumeMount{{Name: "shared", MountPath: "/shared"}}
	pod := testPod("subpathrace", swapper)
	pod.Spec.Volumes = []v1.Volume{{Name: "shared", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}}}
	_, ccs := f.run(ctx, pod, nil)
	f.waitLog(ccs["swapper"], "swapping")
	host := statDevIno(t, "/")
	vol := statDevIno(t, f.rt.emptyDirPath(pod, "shared"))
	victim := sh("victim", `exec sleep 1000`)
	victim.VolumeMounts = []v1.VolumeMount{{Name: "shared", MountPath: "/sub", SubPath: "x"}}
	var attempts, created, escapes int
	for deadline := time.Now().Add(4 * time.Second); time.Now().Before(deadline); {
		attempts++
		cc, err := f.rt.CreateContainer(ctx, ContainerConfig{Pod: pod, Container: &victim, Rootfs: Rootfs{Path: f.root}})
		if err != nil {
			escapeOutcome(t, "subpath-symlink-swap", fmt.Sprintf("#%d to mount subPath x while x flips between a dir and a symlink to /", attempts), false, "create failed: "+err.Error())
			continue
		}
		created++
		got := statDevIno(t, fmt.Sprintf("/proc/%d/root/sub", cc.PID))
		what := "a directory inside the volume"
		if got == vol {
			what = "the volume's root (the symlink resolved inside the volume)"
		}
		if got == host {
			escapes++
			what = "the node's root filesystem"
		}
		escapeOutcome(t, "subpath-symlink-swap", fmt.Sprintf("#%d to mount subPath x while x flips between a dir and a symlink to /", attempts), got == host, "/sub is "+what)
		if err := f.rt.RemoveContainer(ctx, pod.UID, cc.ID); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d attempts, %d created, %d got the node's root", attempts, created, escapes)
	if created == 0 {
		t.Errorf("no victim was ever created: the race was not tried")
	}
}
