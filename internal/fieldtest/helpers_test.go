//go:build fieldtest

package fieldtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/minikubelet/minikubelet/internal/e2enode"
)

const (
	image     = "localhost/busybox:field"
	manifests = "/etc/kubernetes/manifests"
	rootDir   = "/var/lib/minikubelet"
	bin       = "/usr/local/bin/minikubelet"
	service   = "minikubelet.service"
	// stateDir is on the guest's disk: it outlives the reboot between boots.
	stateDir = "/var/lib/mkl-fieldtest"
	cgroot   = "/sys/fs/cgroup"
)

// TestMain refuses to run anywhere but on the field host: it installs a
// service and writes /etc/kubernetes/manifests.
func TestMain(m *testing.M) {
	if os.Getenv("MKL_TESTNODE_HOST") == "" || os.Getenv("VMCTL") == "" {
		fmt.Fprintln(os.Stderr, "fieldtest: runs only in the make test-vm guest (MKL_TESTNODE_HOST and VMCTL unset)")
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// repo is the source tree shared into the guest (make install runs there).
func repo(t *testing.T) string {
	r := os.Getenv("MKL_REPO")
	if r == "" {
		t.Fatal("MKL_REPO is not set (guest-tests.sh sets it)")
	}
	return r
}

// run runs a command and returns its combined output; a failure fails t.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := try(name, args...)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return out
}

func try(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, &b
	if err := cmd.Run(); err != nil {
		return b.String(), fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, b.String())
	}
	return b.String(), nil
}

// show returns systemd's view of unit: the properties asked for.
func show(t *testing.T, unit string, props ...string) map[string]string {
	t.Helper()
	out := run(t, "systemctl", "show", unit, "-p", strings.Join(props, ","))
	m := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		k, v, _ := strings.Cut(l, "=")
		m[k] = v
	}
	return m
}

// cgfile reads a cgroup file of unit (its ControlGroup under /sys/fs/cgroup).
func cgfile(t *testing.T, unit, file string) string {
	t.Helper()
	cg := show(t, unit, "ControlGroup")["ControlGroup"]
	if cg == "" {
		t.Fatalf("%s has no ControlGroup (not active?)", unit)
	}
	b, err := os.ReadFile(filepath.Join(cgroot, cg, file))
	if err != nil {
		t.Fatalf("%s: %v", unit, err)
	}
	return strings.TrimSpace(string(b))
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func pods() ([]v1.Pod, error) {
	out, err := try(bin, "get", "pods", "-A", "-o", "json")
	if err != nil {
		return nil, err
	}
	var list v1.PodList
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return nil, fmt.Errorf("get pods -o json: %v: %s", err, out)
	}
	return list.Items, nil
}

func pod(name string) (v1.Pod, bool) {
	ps, _ := pods()
	for _, p := range ps {
		if p.Name == name {
			return p, true
		}
	}
	return v1.Pod{}, false
}

// waitPod waits until the static pod name (with its -vm node suffix) meets cond.
func waitPod(t *testing.T, name, what string, timeout time.Duration, cond func(p *v1.Pod) bool) v1.Pod {
	t.Helper()
	var last v1.Pod
	deadline := time.Now().Add(timeout)
	for {
		if p, ok := pod(name); ok {
			last = p
			if cond(&p) {
				return p
			}
		}
		if time.Now().After(deadline) {
			b, _ := json.MarshalIndent(last.Status, "", "  ")
			t.Fatalf("timed out after %s waiting for pod %s: %s; last status:\n%s", timeout, name, what, b)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// running: every container running and ready.
func running(p *v1.Pod) bool {
	if p.Status.Phase != v1.PodRunning || len(p.Status.ContainerStatuses) != len(p.Spec.Containers) {
		return false
	}
	for _, cs := range p.Status.ContainerStatuses {
		if cs.State.Running == nil {
			return false
		}
	}
	return true
}

// scope is the systemd scope unit of a container status.
func scope(cs v1.ContainerStatus) string {
	return "minikubelet-" + strings.TrimPrefix(cs.ContainerID, "minikubelet://") + ".scope"
}

func status(t *testing.T, p v1.Pod, container string) v1.ContainerStatus {
	t.Helper()
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Name == container {
			return cs
		}
	}
	t.Fatalf("pod %s has no status for container %s", p.Name, container)
	return v1.ContainerStatus{}
}

// procs are the PIDs in a unit's cgroup (the workload of a container scope).
func procs(t *testing.T, unit string) []int {
	t.Helper()
	var out []int
	for _, f := range strings.Fields(cgfile(t, unit, "cgroup.procs")) {
		n, _ := strconv.Atoi(f)
		out = append(out, n)
	}
	return out
}

// writeManifest drops a pod manifest into /etc/kubernetes/manifests (atomic
// rename, as an editor or config manager would).
func writeManifest(t *testing.T, file, body string) {
	t.Helper()
	tmp := filepath.Join(manifests, "."+file+".tmp")
	if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(manifests, file)); err != nil {
		t.Fatal(err)
	}
}

// importImage builds a one-layer image of the guest's static busybox and
// imports it with the installed CLI.
func importImage(t *testing.T) {
	t.Helper()
	tar := e2enode.BusyboxArchive(t, image,
		[]string{"bin", "etc", "tmp", "proc", "sys", "dev", "host"},
		[]string{"sh", "cat", "echo", "sleep", "head", "tail", "mknod", "touch", "test", "ls",
			"mkdir", "rm", "true", "false", "kill", "grep", "date", "hostname"})
	run(t, bin, "image", "import", "--root-dir", rootDir, tar)
}

// journal is the service's log, for failures.
func journal(t *testing.T) {
	t.Helper()
	if t.Failed() {
		out, _ := try("journalctl", "-u", service, "--no-pager", "-n", "150", "-o", "short-monotonic")
		t.Logf("journalctl -u %s:\n%s", service, out)
	}
}

// daemonFlag reports whether the installed daemon has a `run` flag (checks
// that depend on work merged from other branches are gated on it).
func daemonFlag(t *testing.T, flag string) bool {
	t.Helper()
	out := run(t, bin, "run", "--help")
	return strings.Contains(out, "--"+flag)
}

// saveState/loadState keep facts of boot 1 for boot 2 on the guest's disk.
func saveState(t *testing.T, v any) {
	t.Helper()
	os.MkdirAll(stateDir, 0o755)
	b, _ := json.MarshalIndent(v, "", "  ")
	if err := os.WriteFile(filepath.Join(stateDir, "boot1.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func loadState(t *testing.T, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(stateDir, "boot1.json"))
	if err != nil {
		t.Fatalf("boot 1 left no state (did it run to its end?): %v", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}
