package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
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
	return busyboxTree(t, filepath.Join(base, "image"),
		"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n", "root:x:0:\nnobody:x:65534:\n")
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
	// A subPath that cannot be made (a file in the way) is a configuration
	// error, as with the kubelet, found before anything is created.
	os.WriteFile(filepath.Join(f.rt.emptyDirPath(pod, "shared"), "file"), nil, 0o644)
	blocked := sh("blocked", "true")
	blocked.VolumeMounts = []v1.VolumeMount{{Name: "shared", MountPath: "/sub", SubPath: "file/below"}}
	var ce *ConfigError
	if _, err := f.rt.CreateContainer(ctx, ContainerConfig{Pod: pod, Container: &blocked, Rootfs: Rootfs{Path: f.root}}); !errors.As(err, &ce) || !strings.Contains(err.Error(), `subPath "file/below"`) {
		t.Errorf("subPath below a file: %v, want a ConfigError naming the subPath", err)
	}
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

// attackerScan runs in a container with CAP_SYS_PTRACE: it looks at every
// process and thread it can see for a root that holds a path only the node
// has, and prints the identity of every executable that is not its own.
const attackerScan = `mark=$1
echo scanning
while :; do
  for t in /proc/[0-9]*/task/[0-9]*; do
    [ -d "$t/root$mark" ] && echo "ROOT $t"
    [ -d "$t/cwd$mark" ] && echo "CWD $t"
  done
  for p in /proc/[0-9]*; do
    [ "$p/exe" -ef /proc/self/exe ] && continue
    { stat -L -c "EXE $p %d:%i" /proc/self/fd/7; } 7<"$p/exe" 2>/dev/null
  done
done`

// The exec helper lives in the container's PID namespace while it sets the
// process up: with CAP_SYS_PTRACE a container process must reach neither
// the node's binary through /proc/<pid>/exe nor the node's root through
// /proc/<pid>/task/<tid>/root of any helper thread.
func TestEscapeExecHelper(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.root = busyboxImage(t, f.base)
	attacker := v1.Container{Name: "attacker", Command: []string{"sh", "-c", attackerScan, "sh", f.base},
		SecurityContext: &v1.SecurityContext{Capabilities: &v1.Capabilities{Add: []v1.Capability{"SYS_PTRACE"}}}}
	pod := testPod("exechelper", attacker)
	_, ccs := f.run(ctx, pod, nil)
	cc := ccs["attacker"]
	f.waitLog(cc, "scanning")
	exe, _ := os.Executable()
	hostExe := statDevIno(t, exe)
	for i := 0; i < 40; i++ {
		var errb strings.Builder
		if code, err := f.rt.Exec(ctx, pod.UID, cc.ID, ExecConfig{Cmd: []string{"true"}, Stderr: &errb}); err != nil || code != 0 {
			t.Fatalf("exec: %d %v %s", code, err, errb.String())
		}
	}
	if err := f.rt.StopContainer(ctx, pod.UID, cc.ID, 0); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(cc.LogPath)
	var roots, exes, foreign []string
	for _, l := range strings.Split(string(b), "\n") {
		_, rest, ok := strings.Cut(l, " stdout F ")
		switch {
		case !ok:
		case strings.HasPrefix(rest, "ROOT "), strings.HasPrefix(rest, "CWD "):
			roots = append(roots, rest)
		case strings.HasPrefix(rest, "EXE ") && strings.HasSuffix(rest, " "+hostExe):
			exes = append(exes, rest)
		case strings.HasPrefix(rest, "EXE "):
			foreign = append(foreign, rest)
		}
	}
	escapeOutcome(t, "exec-helper-thread-root", "40 execs while scanning /proc/<pid>/task/<tid>/root and cwd for a path only the node has", len(roots) > 0,
		fmt.Sprintf("node paths reached: %d %v", len(roots), first(roots, 3)))
	escapeOutcome(t, "exec-helper-exe", "40 execs while opening /proc/<pid>/exe of every process not running the image's binary", len(exes) > 0,
		fmt.Sprintf("node binary %s (%s) reached %d times %v; other executables seen: %d %v", exe, hostExe, len(exes), first(exes, 3), len(foreign), first(foreign, 3)))
}

func first(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// With a shared PID namespace the supervisor (the pause) is PID 1 of the
// pod: /proc/1/exe must not lead to the node's binary.
func TestEscapeSupervisorExe(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.root = busyboxImage(t, f.base)
	c := sh("attacker", `stat -L -c "EXE %d:%i" /proc/1/exe 2>&1; echo done; exec sleep 1000`)
	c.SecurityContext = &v1.SecurityContext{Capabilities: &v1.Capabilities{Add: []v1.Capability{"SYS_PTRACE"}}}
	pod := testPod("supexe", c)
	share := true
	pod.Spec.ShareProcessNamespace = &share
	_, ccs := f.run(ctx, pod, nil)
	log := f.waitLog(ccs["attacker"], "done")
	exe, _ := os.Executable()
	hostExe := statDevIno(t, exe)
	got, _, _ := strings.Cut(strings.TrimPrefix(log, "EXE "), "\n")
	escapeOutcome(t, "supervisor-exe", "to open /proc/1/exe (the pause) with CAP_SYS_PTRACE", got == hostExe,
		fmt.Sprintf("node binary is %s, /proc/1/exe is %s", hostExe, got))
}

// A container's terminal (tty: true, exec -t) is a pty of the container's
// own devpts instance, never one of the node's.
func TestEscapeHostDevpts(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.root = busyboxImage(t, f.base)
	const probe = `echo "fd0=$(stat -L -c %d /proc/self/fd/0) pts=$(stat -c %d /dev/pts) tty=$(tty)"`
	term := sh("term", probe+`; echo done; exec sleep 1000`)
	term.Stdin, term.TTY = true, true
	pod := testPod("devpts", term)
	_, ccs := f.run(ctx, pod, nil)
	hostPts := statDevIno(t, "/dev/pts")
	hostDev, _, _ := strings.Cut(hostPts, ":")
	check := func(how, out string) {
		var fd0, pts, tty string
		for _, w := range strings.Fields(out) {
			k, v, _ := strings.Cut(w, "=")
			switch k {
			case "fd0":
				fd0 = v
			case "pts":
				pts = v
			case "tty":
				tty = v
			}
		}
		escapeOutcome(t, "host-devpts", how, fd0 == "" || fd0 == hostDev || fd0 != pts,
			fmt.Sprintf("terminal on device %s, the container's /dev/pts is %s, the node's %s, tty %s", fd0, pts, hostDev, tty))
	}
	check("to get a terminal of the node's devpts with tty: true", f.waitLog(ccs["term"], "done"))
	var out strings.Builder
	code, err := f.rt.Exec(ctx, pod.UID, ccs["term"].ID, ExecConfig{Cmd: []string{"sh", "-c", probe}, TTY: true, Stdout: &out})
	if err != nil || code != 0 {
		t.Fatalf("exec -t: %d %v %q", code, err, out.String())
	}
	check("to get a terminal of the node's devpts with exec -t", out.String())
}

// isolationProbe tries, as root with the default capabilities and seccomp,
// the classic ways out that the mounts and capabilities close; a check
// succeeds (exit 0) only when the way out works.
const isolationProbe = `try() {
  if out=$(sh -c "$3" 2>&1); then r=OUT; else r=blocked; fi
  echo "R|$1|$2|$r|$(echo $out)"
}
try mount "to mount a tmpfs on /etc (needs CAP_SYS_ADMIN)" 'mount -t tmpfs none /etc'
try unshare-mount "to unshare a mount namespace of its own" 'unshare -m true'
try core-pattern "to set /proc/sys/kernel/core_pattern (a pipe there runs as root on the node)" 'echo "|/evil" > /proc/sys/kernel/core_pattern'
try proc-timer-list "to read /proc/timer_list (masked)" 'n=$(head -c 8 /proc/timer_list | wc -c); echo read $n bytes; [ $n -gt 0 ]'
try proc-keys "to read the node's keys in /proc/keys (masked)" 'n=$(head -c 8 /proc/keys | wc -c); echo read $n bytes; [ $n -gt 0 ]'
try proc-kmsg "to read the kernel log through /proc/kmsg" 'timeout 2 head -c 1 /proc/kmsg'
try uevent-helper "to set /sys/kernel/uevent_helper (runs as root on the node)" 'echo /evil > /sys/kernel/uevent_helper'
try cgroupfs "to make a cgroup in /sys/fs/cgroup (release_agent class)" 'mkdir /sys/fs/cgroup/escape'
try node-disk "to find a node disk in /dev" 'ls /dev/sd* /dev/vd* /dev/nvme* /dev/xvd*'
try hostname "to set the hostname" 'hostname escaped'
echo done
exec sleep 1000`

// Rules that other tests check one by one, tried here in one cheap
// container so that the suite lists them.
func TestEscapeIsolationRules(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.root = busyboxImage(t, f.base)
	pod := testPod("isolation", sh("prober", isolationProbe))
	_, ccs := f.run(ctx, pod, nil)
	log := f.waitLog(ccs["prober"], "done")
	n := 0
	for _, l := range strings.Split(log, "\n") {
		p := strings.SplitN(l, "|", 5)
		if len(p) != 5 || p[0] != "R" {
			continue
		}
		n++
		escapeOutcome(t, p[1], p[2], p[3] != "blocked", p[4])
	}
	if n != 10 {
		t.Errorf("%d of 10 attempts reported; log:\n%s", n, log)
	}
}
