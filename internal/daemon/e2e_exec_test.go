package daemon

import (
	"bytes"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// `minikubelet exec` against a running daemon: the command runs inside the
// container (its hostname, its pid namespace, its root), stdin is passed with
// -i, the command's exit code becomes ours, and a missing container or pod is
// a clear error.
func TestExecIntoRunningContainer(t *testing.T) {
	n := newE2ENode(t)
	n.Start()
	n.Write("shell.yaml", podManifest("shell", "Always", 1, `echo only-in-this-root > /marker; exec sleep 3600`))
	n.WaitPod("shell-node1", "Running", 60*time.Second, running)

	run := func(stdin string, args ...string) (string, string, int) {
		cmd := exec.Command(n.Bin, append([]string{"exec", "--socket", n.Socket, "--root-dir", n.Root}, args...)...)
		var out, errb bytes.Buffer
		cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(stdin), &out, &errb
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("exec %v: %v", args, err)
		}
		return out.String(), errb.String(), code
	}

	out, errOut, code := run("", "shell", "--", "sh", "-c", `echo "$HOSTNAME"; cat /marker; echo pid1=$(cat /proc/1/comm)`)
	if code != 0 {
		t.Fatalf("exec exit %d: %s", code, errOut)
	}
	want := "shell-node1\nonly-in-this-root\npid1=sleep\n"
	if out != want {
		t.Fatalf("exec printed %q, want %q (hostname, the container's root, its pid namespace)", out, want)
	}

	out, _, code = run("from-stdin\n", "-i", "shell", "--", "cat")
	if code != 0 || out != "from-stdin\n" {
		t.Fatalf("exec -i cat: exit %d, printed %q", code, out)
	}

	_, errOut, code = run("", "shell", "--", "sh", "-c", "exit 7")
	if code != 7 || !strings.Contains(errOut, "command terminated with exit code 7") {
		t.Fatalf("exit 7: got exit %d, stderr %q", code, errOut)
	}

	_, errOut, code = run("", "shell", "-c", "nope", "--", "true")
	if code != 1 || !strings.Contains(errOut, "container nope is not valid for pod shell-node1") {
		t.Fatalf("unknown container: exit %d, stderr %q", code, errOut)
	}
	_, errOut, code = run("", "missing", "--", "true")
	if code != 1 || !strings.Contains(errOut, `"missing" not found`) {
		t.Fatalf("unknown pod: exit %d, stderr %q", code, errOut)
	}

	// The container keeps running: exec never disturbs the workload.
	p, _ := n.Pod("shell-node1")
	if !running(&p) || p.Status.ContainerStatuses[0].RestartCount != 0 {
		t.Fatalf("pod after exec: phase %s, statuses %+v", p.Status.Phase, p.Status.ContainerStatuses)
	}
}
