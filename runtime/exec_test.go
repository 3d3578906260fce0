package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
)

// The exec helper forks the command from a thread that already carries the
// container's seccomp filter and credentials: that must work with the
// filter loaded while still root (no no_new_privs), for a non-root user,
// for a privileged container, with a TTY, and a cancelled exec must end.
func TestExecForkedFromThePreparedThread(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.root = busyboxImage(t, f.base)
	confined := sh("confined", `exec sleep 1000`)
	confined.SecurityContext = &v1.SecurityContext{SeccompProfile: &v1.SeccompProfile{Type: v1.SeccompProfileTypeRuntimeDefault}}
	yes := true
	priv := sh("priv", `exec sleep 1000`)
	priv.SecurityContext = &v1.SecurityContext{Privileged: &yes}
	nobody := sh("nobody", `exec sleep 1000`)
	uid := int64(65534)
	nobody.SecurityContext = &v1.SecurityContext{RunAsUser: &uid, SeccompProfile: &v1.SeccompProfile{Type: v1.SeccompProfileTypeRuntimeDefault}}
	pod := testPod("execfork", confined, priv, nobody)
	_, ccs := f.run(ctx, pod, nil)
	for _, name := range []string{"confined", "priv", "nobody"} {
		for _, tty := range []bool{false, true} {
			var out, errb strings.Builder
			code, err := f.rt.Exec(ctx, pod.UID, ccs[name].ID, ExecConfig{TTY: tty, Stdout: &out, Stderr: &errb,
				Cmd: []string{"sh", "-c", `echo uid=$(id -u) $(grep -E '^(Seccomp|CapInh):' /proc/self/status | tr -s '\t\n' '  ')`}})
			got := strings.ReplaceAll(out.String(), "\r\n", "\n")
			if err != nil || code != 0 || !strings.Contains(got, "uid=") {
				t.Errorf("%s tty=%v: exec = %d %v, out %q, err %q", name, tty, code, err, got, errb.String())
				continue
			}
			t.Logf("%s tty=%v: %s", name, tty, strings.TrimSpace(got))
			wantSeccomp := map[string]string{"confined": "Seccomp: 2", "priv": "Seccomp: 0", "nobody": "Seccomp: 2"}[name]
			if !strings.Contains(got, wantSeccomp) {
				t.Errorf("%s tty=%v: want %s in %q", name, tty, wantSeccomp, got)
			}
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	var code int
	var err error
	go func() {
		defer close(done)
		code, err = f.rt.Exec(cctx, pod.UID, ccs["confined"].ID, ExecConfig{Cmd: []string{"sleep", "1000"}})
	}()
	// Wait until the command runs in the container, then cancel.
	for deadline := time.Now().Add(10 * time.Second); f.execCount(t, ccs["confined"].PID, "sleep 1000") < 2; time.Sleep(10 * time.Millisecond) {
		select {
		case <-done:
			t.Fatalf("exec ended before it was cancelled: %d %v", code, err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the exec'd command did not appear in the container within 10s")
		}
	}
	cancel()
	<-done
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled exec = %d, %v; want context.Canceled", code, err)
	}
	if n := f.execCount(t, ccs["confined"].PID, "sleep 1000"); n != 1 {
		t.Errorf("the cancelled exec's command still runs (%d sleep 1000 in the container)", n)
	}
}

// execCount counts the processes in pid's PID namespace whose command
// line is cmdline (as the node sees them).
func (f *fixture) execCount(t *testing.T, pid int, cmdline string) int {
	t.Helper()
	ns := nsInode(t, pid, "pid")
	ents, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", p))
		if err != nil || l != ns {
			continue
		}
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p))
		if strings.ReplaceAll(strings.TrimRight(string(b), "\x00"), "\x00", " ") == cmdline {
			n++
		}
	}
	return n
}
