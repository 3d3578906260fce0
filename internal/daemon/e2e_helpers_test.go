package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	crv1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"

	"github.com/minikubelet/minikubelet/internal/procfs"
	"github.com/minikubelet/minikubelet/internal/testnode"
	"github.com/minikubelet/minikubelet/runtime/images"
	"github.com/minikubelet/minikubelet/runtime/images/imagebuild"
)

func TestMain(m *testing.M) { testnode.Main(m) }

const testImage = "localhost/busybox:e2e"

// e2eNode is one minikubelet daemon under test: its binary, folders, socket
// and process. Everything lives under t.TempDir.
type e2eNode struct {
	t                                       *testing.T
	bin, dir, root, manifests, logs, socket string
	cniConf                                 string
	cmd                                     *exec.Cmd
	exited                                  chan struct{}
	starts                                  int
	started                                 bool // the API answered at least once
	notify                                  *net.UnixConn
	notes                                   chan string
}

// buildBinaries builds minikubelet and its shim into dir. With
// MKL_E2E_BINDIR (make test-vm: the guest has no Go toolchain) it uses the
// minikubelet and minikubelet-shim already built there.
func buildBinaries(t *testing.T, dir string) string {
	t.Helper()
	if pre := os.Getenv("MKL_E2E_BINDIR"); pre != "" {
		bin := filepath.Join(pre, "minikubelet")
		for _, f := range []string{bin, filepath.Join(pre, "minikubelet-shim")} {
			if _, err := os.Stat(f); err != nil {
				t.Fatalf("MKL_E2E_BINDIR: %v", err)
			}
		}
		return bin
	}
	_, self, _, _ := goruntime.Caller(0)
	root := filepath.Join(filepath.Dir(self), "..", "..")
	bin := filepath.Join(dir, "minikubelet")
	for _, b := range [][2]string{{bin, "./cmd/minikubelet"}, {filepath.Join(dir, "minikubelet-shim"), "./runtime/shimbin"}} {
		args := []string{"build", "-o", b[0]}
		if os.Getenv("MKL_E2E_RACE") != "" && b[1] == "./cmd/minikubelet" {
			args = append(args, "-race") // daemon side only; the shim stays small
		}
		cmd := exec.Command("go", append(args, b[1])...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", b[1], err, out)
		}
	}
	return bin
}

// importBusybox builds a one-layer image of /bin/busybox with its applets
// and imports it into the node's image store.
func importBusybox(t *testing.T, root string) {
	t.Helper()
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("busybox-static is not installed (make deps)")
	}
	stage := t.TempDir()
	for _, d := range []string{"bin", "etc", "tmp", "proc", "sys", "dev", "data"} {
		os.MkdirAll(filepath.Join(stage, d), 0o755)
	}
	b, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(stage, "bin/busybox"), b, 0o755)
	for _, a := range []string{"sh", "cat", "echo", "sleep", "touch", "test", "ls", "date", "hostname", "true", "false", "kill", "httpd", "mkdir", "rm"} {
		os.Symlink("busybox", filepath.Join(stage, "bin", a))
	}
	os.WriteFile(filepath.Join(stage, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644)
	layer, err := imagebuild.LayerFromDir(stage)
	if err != nil {
		t.Fatal(err)
	}
	img, err := imagebuild.Image([]crv1.Layer{layer}, imagebuild.Config{Cmd: []string{"/bin/sh"}, Env: []string{"PATH=/bin"}})
	if err != nil {
		t.Fatal(err)
	}
	tarPath := filepath.Join(t.TempDir(), "busybox.tar")
	if err := imagebuild.WriteDockerArchive(tarPath, map[string]crv1.Image{testImage: img}, imagebuild.None); err != nil {
		t.Fatal(err)
	}
	store, err := images.Open(root, images.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Import(context.Background(), tarPath, nil); err != nil {
		t.Fatalf("import %s: %v", tarPath, err)
	}
}

func newE2ENode(t *testing.T) *e2eNode {
	t.Helper()
	testnode.Require(t)
	dir := t.TempDir()
	n := &e2eNode{t: t, dir: dir, root: filepath.Join(dir, "root"), manifests: filepath.Join(dir, "manifests"),
		logs: filepath.Join(dir, "logs"), socket: filepath.Join(dir, "mkl.sock"), cniConf: filepath.Join(dir, "cni")}
	for _, d := range []string{n.root, n.manifests, n.logs, n.cniConf} {
		os.MkdirAll(d, 0o755)
	}
	// An sd_notify socket, as systemd gives a Type=notify service.
	na, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: filepath.Join(dir, "notify.sock"), Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	n.notify, n.notes = na, make(chan string, 1000)
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := na.Read(buf)
			if err != nil {
				return
			}
			select {
			case n.notes <- string(buf[:k]):
			default:
			}
		}
	}()
	n.bin = buildBinaries(t, filepath.Join(dir, "bin"))
	importBusybox(t, n.root)
	t.Cleanup(n.cleanup)
	return n
}

// start runs the daemon (inside the test node: this binary already is).
func (n *e2eNode) start(extra ...string) {
	n.t.Helper()
	n.starts++
	logPath := filepath.Join(n.dir, fmt.Sprintf("daemon-%d.log", n.starts))
	lf, err := os.Create(logPath)
	if err != nil {
		n.t.Fatal(err)
	}
	args := append([]string{"run", "--node-name", "node1", "--root-dir", n.root, "--manifest-dir", n.manifests,
		"--log-dir", n.logs, "--socket", n.socket, "--cgroup-driver", "systemd", "--resync", "3s",
		"--crashloop-max", "4s", "--cni-conf-dir", n.cniConf, "--pod-cidr", "10.231.0.0/24", "-v", "4",
		// No logind inhibitor (nor logind.conf.d drop-in) on a host that has
		// logind, unless a test asks for graceful node shutdown.
		"--shutdown-grace-period", "0"}, extra...)
	cmd := exec.Command(n.bin, args...)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+filepath.Join(n.dir, "notify.sock"), "WATCHDOG_USEC=2000000")
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	lf.Close()
	n.cmd = cmd
	n.exited = make(chan struct{})
	go func(c *exec.Cmd, ch chan struct{}) { c.Wait(); close(ch) }(cmd, n.exited)
	// Generous: under QEMU's emulation (make test-vm) a start took > 20 s.
	n.waitFor("the API socket", 90*time.Second, func() bool {
		_, err := n.cli("get", "pods", "-A")
		return err == nil
	})
	n.started = true
}

// stop ends the daemon with sig (SIGTERM: orderly; SIGKILL: a crash).
func (n *e2eNode) stop(sig syscall.Signal) {
	n.t.Helper()
	if n.cmd == nil {
		return
	}
	n.cmd.Process.Signal(sig)
	select {
	case <-n.exited:
	case <-time.After(20 * time.Second):
		n.cmd.Process.Kill()
		<-n.exited
		n.t.Errorf("daemon did not exit within 20s of %v", sig)
	}
	n.cmd = nil
}

func (n *e2eNode) dumpLogs() {
	for i := 1; i <= n.starts; i++ {
		b, _ := os.ReadFile(filepath.Join(n.dir, fmt.Sprintf("daemon-%d.log", i)))
		if len(b) > 60000 {
			b = b[len(b)-60000:]
		}
		n.t.Logf("--- daemon run %d log ---\n%s", i, b)
	}
}

// cleanup removes every manifest, lets the daemon remove the pods, stops it
// and unmounts anything left below the test folder.
func (n *e2eNode) cleanup() {
	if n.t.Failed() || os.Getenv("MKL_E2E_LOGS") != "" {
		n.dumpLogs()
	}
	ents, _ := os.ReadDir(n.manifests)
	for _, e := range ents {
		os.Remove(filepath.Join(n.manifests, e.Name()))
	}
	if n.cmd == nil && n.started {
		n.start()
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if pods, err := n.pods(); err == nil && len(pods) == 0 && n.podDirs() == 0 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	n.stop(syscall.SIGTERM)
	n.notify.Close()
	// Defensive: nothing of ours may stay mounted.
	for _, m := range mountsUnder(n.dir) {
		unix.Unmount(m, unix.MNT_DETACH)
	}
}

func (n *e2eNode) podDirs() int {
	ents, _ := os.ReadDir(filepath.Join(n.root, "pods"))
	return len(ents)
}

func mountsUnder(dir string) []string {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			out = append(out, f[4])
		}
	}
	// Deepest first.
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// cli runs a client command against the daemon's socket.
func (n *e2eNode) cli(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return n.cliCtx(ctx, args...)
}

func (n *e2eNode) cliCtx(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, n.bin, append(args, "--socket", n.socket)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("minikubelet %s: %v: %s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

func (n *e2eNode) pods() ([]v1.Pod, error) {
	out, err := n.cli("get", "pods", "-A", "-o", "json")
	if err != nil {
		return nil, err
	}
	var list v1.PodList
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return nil, fmt.Errorf("get pods -o json: %v: %s", err, out)
	}
	if list.Kind != "PodList" || list.APIVersion != "v1" {
		return nil, fmt.Errorf("get pods -o json: kind %q apiVersion %q", list.Kind, list.APIVersion)
	}
	return list.Items, nil
}

func (n *e2eNode) pod(name string) (v1.Pod, bool) {
	pods, err := n.pods()
	if err != nil {
		n.t.Fatal(err)
	}
	for _, p := range pods {
		if p.Name == name {
			return p, true
		}
	}
	return v1.Pod{}, false
}

func (n *e2eNode) waitFor(what string, timeout time.Duration, cond func() bool) {
	n.t.Helper()
	timeout = testnode.Scale(timeout)
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			n.t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(150 * time.Millisecond)
	}
}

// waitPod waits until pod name satisfies cond and returns it.
func (n *e2eNode) waitPod(name, what string, timeout time.Duration, cond func(p *v1.Pod) bool) v1.Pod {
	n.t.Helper()
	var last v1.Pod
	timeout = testnode.Scale(timeout)
	deadline := time.Now().Add(timeout)
	for {
		if p, ok := n.pod(name); ok {
			last = p
			if cond(&p) {
				return p
			}
		}
		if time.Now().After(deadline) {
			b, _ := json.MarshalIndent(last.Status, "", "  ")
			n.t.Fatalf("timed out after %s waiting for pod %s: %s; last status:\n%s", timeout, name, what, b)
		}
		time.Sleep(150 * time.Millisecond)
	}
}

func (n *e2eNode) write(file, content string) {
	n.t.Helper()
	tmp := filepath.Join(n.dir, ".tmp-"+file)
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		n.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(n.manifests, file)); err != nil {
		n.t.Fatal(err)
	}
}

func (n *e2eNode) remove(file string) {
	n.t.Helper()
	if err := os.Remove(filepath.Join(n.manifests, file)); err != nil {
		n.t.Fatal(err)
	}
}

func running(p *v1.Pod) bool {
	if p.Status.Phase != v1.PodRunning || p.DeletionTimestamp != nil {
		return false
	}
	for _, cs := range p.Status.ContainerStatuses {
		if cs.State.Running == nil {
			return false
		}
	}
	return len(p.Status.ContainerStatuses) > 0
}

// podManifest is a pod of the busybox image running script in container c.
func podManifest(name, policy string, grace int, script string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
  namespace: default
spec:
  restartPolicy: %s
  terminationGracePeriodSeconds: %d
  containers:
  - name: c
    image: %s
    command: ["sh", "-c", %q]
`, name, policy, grace, testImage, script)
}

// units lists the node's systemd units of the pod tree.
func units(t *testing.T) string {
	out, err := exec.Command("systemctl", "list-units", "--all", "--no-legend", "--plain", "kubepods*", "minikubelet-*").CombinedOutput()
	if err != nil {
		t.Logf("systemctl list-units: %v: %s", err, out)
	}
	return string(out)
}

func procAlive(pid int) bool { return procfs.Alive(pid) }

// sandboxPID reads the supervisor PID the runtime recorded for a pod.
func (n *e2eNode) sandboxPID(uid string) int {
	var meta struct {
		PID int `json:"pid"`
	}
	b, err := os.ReadFile(filepath.Join(n.root, "pods", uid, "sandbox", "daemon.json"))
	if err != nil {
		return 0
	}
	json.Unmarshal(b, &meta)
	return meta.PID
}

func systemctl(args ...string) (string, error) {
	out, err := exec.Command("systemctl", args...).CombinedOutput()
	return string(out), err
}
