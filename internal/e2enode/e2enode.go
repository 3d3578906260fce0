// Package e2enode runs the real minikubelet daemon for end-to-end tests
// inside a test node (internal/testnode): its binaries built from this
// tree, its folders under t.TempDir, the busybox test image imported, its
// API read through the CLI. The daemon's e2e tests (internal/daemon) and
// the chaos suite (internal/chaos) share it; the field host's tests
// (internal/fieldtest) build their busybox image with BusyboxArchive.
package e2enode

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

	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"

	"github.com/minikubelet/minikubelet/internal/procfs"
	"github.com/minikubelet/minikubelet/internal/testnode"
	"github.com/minikubelet/minikubelet/runtime/images"
	"github.com/minikubelet/minikubelet/runtime/images/imagebuild"
)

// TestImage is the one-layer busybox image ImportBusybox makes.
const TestImage = "localhost/busybox:e2e"

// Node is one minikubelet daemon under test: its binary, folders, socket
// and process. Everything lives under t.TempDir.
type Node struct {
	T                                       *testing.T
	Bin, Dir, Root, Manifests, Logs, Socket string
	CNIConf                                 string
	Cmd                                     *exec.Cmd
	Exited                                  chan struct{}
	Starts                                  int
	Started                                 bool // the API answered at least once
	Notify                                  *net.UnixConn
	Notes                                   chan string
}

// BuildBinaries builds minikubelet and its shim into dir. With
// MKL_E2E_BINDIR (make test-vm: the guest has no Go toolchain) it uses the
// minikubelet and minikubelet-shim already built there.
func BuildBinaries(t *testing.T, dir string) string {
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
	bin, err := Build(dir)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// Build builds minikubelet and minikubelet-shim from this tree into dir
// (the daemon with -race under MKL_E2E_RACE) and returns the daemon's path.
// A package that starts many daemons builds once in its TestMain and points
// MKL_E2E_BINDIR at dir.
func Build(dir string) (string, error) {
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
			return "", fmt.Errorf("go build %s: %v\n%s", b[1], err, out)
		}
	}
	return bin, nil
}

// ImportBusybox builds a one-layer image of /bin/busybox with its applets
// and imports it into the node's image store.
func ImportBusybox(t *testing.T, root string) {
	t.Helper()
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("busybox-static is not installed (make deps)")
	}
	ImportArchive(t, root, BusyboxArchive(t, TestImage,
		[]string{"bin", "etc", "tmp", "proc", "sys", "dev", "data"},
		[]string{"sh", "cat", "echo", "sleep", "touch", "test", "ls", "date", "hostname", "true", "false", "kill", "httpd", "mkdir", "rm"}))
}

// BusyboxArchive writes a docker-archive of ref, a one-layer image of this
// host's static /bin/busybox: a symlink to it in /bin per applet, the empty
// folders dirs, an /etc/passwd with root, and /bin/sh with PATH=/bin as its
// command. It returns the archive's path. The daemon's e2e tests import it
// with ImportArchive; the field host's tests with the installed CLI.
func BusyboxArchive(t *testing.T, ref string, dirs, applets []string) string {
	t.Helper()
	stage := t.TempDir()
	for _, d := range dirs {
		os.MkdirAll(filepath.Join(stage, d), 0o755)
	}
	b, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatalf("no static busybox on this host: %v", err)
	}
	os.WriteFile(filepath.Join(stage, "bin/busybox"), b, 0o755)
	for _, a := range applets {
		os.Symlink("busybox", filepath.Join(stage, "bin", a))
	}
	os.WriteFile(filepath.Join(stage, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644)
	return ImageArchive(t, stage, ref, imagebuild.Config{Cmd: []string{"/bin/sh"}, Env: []string{"PATH=/bin"}})
}

// ImageArchive writes a docker-archive of ref, a one-layer image of the
// folder stage with the config cfg, and returns its path. The file is named
// after the image (localhost/busybox:e2e → busybox.tar), the name an import
// records as the image's source.
func ImageArchive(t *testing.T, stage, ref string, cfg imagebuild.Config) string {
	t.Helper()
	name, _, _ := strings.Cut(ref[strings.LastIndex(ref, "/")+1:], ":")
	tarPath := filepath.Join(t.TempDir(), name+".tar")
	if err := imagebuild.WriteDirArchive(tarPath, stage, ref, cfg); err != nil {
		t.Fatal(err)
	}
	return tarPath
}

// ImportArchive imports the docker-archive tarPath into the image store
// under root (the daemon's --root-dir).
func ImportArchive(t *testing.T, root, tarPath string) {
	t.Helper()
	store, err := images.Open(root, images.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Import(context.Background(), tarPath, nil); err != nil {
		t.Fatalf("import %s: %v", tarPath, err)
	}
}

// Options adjust a Node before its image is imported.
type Options struct {
	// Setup runs once the folders exist (empty), before the image import
	// and before the daemon starts: e.g. to mount a small filesystem on
	// Root or Logs. What it mounts it must unmount itself (t.Cleanup
	// registered in Setup runs after the Node's own cleanup).
	Setup func(n *Node)
}

// New prepares a daemon under test (not started: Start) and registers its
// cleanup: every manifest removed, the pods gone, the daemon stopped,
// anything left mounted below its folder unmounted.
func New(t *testing.T, opts ...Options) *Node {
	t.Helper()
	testnode.Require(t)
	dir := t.TempDir()
	n := &Node{T: t, Dir: dir, Root: filepath.Join(dir, "root"), Manifests: filepath.Join(dir, "manifests"),
		Logs: filepath.Join(dir, "logs"), Socket: filepath.Join(dir, "mkl.sock"), CNIConf: filepath.Join(dir, "cni")}
	for _, d := range []string{n.Root, n.Manifests, n.Logs, n.CNIConf} {
		os.MkdirAll(d, 0o755)
	}
	for _, o := range opts {
		if o.Setup != nil {
			o.Setup(n)
		}
	}
	// An sd_notify socket, as systemd gives a Type=notify service.
	na, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: filepath.Join(dir, "notify.sock"), Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	n.Notify, n.Notes = na, make(chan string, 1000)
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := na.Read(buf)
			if err != nil {
				return
			}
			select {
			case n.Notes <- string(buf[:k]):
			default:
			}
		}
	}()
	n.Bin = BuildBinaries(t, filepath.Join(dir, "bin"))
	ImportBusybox(t, n.Root)
	t.Cleanup(n.Cleanup)
	return n
}

// Start runs the daemon (inside the test node: this binary already is).
func (n *Node) Start(extra ...string) {
	n.T.Helper()
	n.Starts++
	logPath := filepath.Join(n.Dir, fmt.Sprintf("daemon-%d.log", n.Starts))
	lf, err := os.Create(logPath)
	if err != nil {
		n.T.Fatal(err)
	}
	args := append([]string{"run", "--node-name", "node1", "--root-dir", n.Root, "--manifest-dir", n.Manifests,
		"--log-dir", n.Logs, "--socket", n.Socket, "--cgroup-driver", "systemd", "--resync", "3s",
		"--crashloop-max", "4s", "--cni-conf-dir", n.CNIConf, "--pod-cidr", "10.231.0.0/24", "-v", "4",
		// No logind inhibitor (nor logind.conf.d drop-in) on a host that has
		// logind, unless a test asks for graceful node shutdown.
		"--shutdown-grace-period", "0"}, extra...)
	cmd := exec.Command(n.Bin, args...)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+filepath.Join(n.Dir, "notify.sock"), "WATCHDOG_USEC=2000000")
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		n.T.Fatal(err)
	}
	lf.Close()
	n.Cmd = cmd
	n.Exited = make(chan struct{})
	go func(c *exec.Cmd, ch chan struct{}) { c.Wait(); close(ch) }(cmd, n.Exited)
	// Generous: under QEMU's emulation (make test-vm) a start took > 20 s.
	n.WaitFor("the API socket", 90*time.Second, func() bool {
		_, err := n.CLI("get", "pods", "-A")
		return err == nil
	})
	n.Started = true
}

// Stop ends the daemon with sig (SIGTERM: orderly; SIGKILL: a crash).
func (n *Node) Stop(sig syscall.Signal) {
	n.T.Helper()
	if n.Cmd == nil {
		return
	}
	n.Cmd.Process.Signal(sig)
	select {
	case <-n.Exited:
	case <-time.After(20 * time.Second):
		n.Cmd.Process.Kill()
		<-n.Exited
		n.T.Errorf("daemon did not exit within 20s of %v", sig)
	}
	n.Cmd = nil
}

// DumpLogs logs the tail of every daemon run's log, and keeps the whole
// logs in $MKL_E2E_LOG_DIR (make chaos sets bin/chaos-logs) when set: the
// tail alone had lost the minutes a chaos failure happened in.
func (n *Node) DumpLogs() {
	keep := os.Getenv("MKL_E2E_LOG_DIR")
	if keep != "" {
		keep = filepath.Join(keep, strings.NewReplacer("/", "_", " ", "_").Replace(n.T.Name()))
		os.MkdirAll(keep, 0o755)
	}
	for i := 1; i <= n.Starts; i++ {
		b, _ := os.ReadFile(filepath.Join(n.Dir, fmt.Sprintf("daemon-%d.log", i)))
		if keep != "" {
			os.WriteFile(filepath.Join(keep, fmt.Sprintf("daemon-%d.log", i)), b, 0o644)
		}
		if len(b) > 60000 {
			b = b[len(b)-60000:]
		}
		n.T.Logf("--- daemon run %d log ---\n%s", i, b)
	}
}

// Cleanup removes every manifest, lets the daemon remove the pods, stops it
// and unmounts anything left below the test folder.
func (n *Node) Cleanup() {
	if n.T.Failed() || os.Getenv("MKL_E2E_LOGS") != "" {
		n.DumpLogs()
	}
	ents, _ := os.ReadDir(n.Manifests)
	for _, e := range ents {
		os.Remove(filepath.Join(n.Manifests, e.Name()))
	}
	if n.Cmd == nil && n.Started {
		n.Start()
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if pods, err := n.Pods(); err == nil && len(pods) == 0 && n.PodDirs() == 0 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	n.Stop(syscall.SIGTERM)
	n.Notify.Close()
	// Defensive: nothing of ours may stay mounted.
	for _, m := range MountsUnder(n.Dir) {
		unix.Unmount(m, unix.MNT_DETACH)
	}
}

// PodDirs counts the pod state folders under <root-dir>/pods.
func (n *Node) PodDirs() int {
	ents, _ := os.ReadDir(filepath.Join(n.Root, "pods"))
	return len(ents)
}

// MountsUnder lists the mount points below dir, deepest first.
func MountsUnder(dir string) []string {
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

// CLI runs a client command against the daemon's socket.
func (n *Node) CLI(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return n.CLICtx(ctx, args...)
}

// CLICtx is CLI bounded by ctx.
func (n *Node) CLICtx(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, n.Bin, append(args, "--socket", n.Socket)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("minikubelet %s: %v: %s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

// Pods lists every pod the daemon reports.
func (n *Node) Pods() ([]v1.Pod, error) {
	out, err := n.CLI("get", "pods", "-A", "-o", "json")
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

// Pod is the reported pod called name.
func (n *Node) Pod(name string) (v1.Pod, bool) {
	pods, err := n.Pods()
	if err != nil {
		n.T.Fatal(err)
	}
	for _, p := range pods {
		if p.Name == name {
			return p, true
		}
	}
	return v1.Pod{}, false
}

// WaitFor polls cond until it holds; the test fails after timeout
// (stretched by MKL_TEST_SLOWDOWN).
func (n *Node) WaitFor(what string, timeout time.Duration, cond func() bool) {
	n.T.Helper()
	timeout = testnode.Scale(timeout)
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			n.T.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(150 * time.Millisecond)
	}
}

// WaitPod waits until pod name satisfies cond and returns it.
func (n *Node) WaitPod(name, what string, timeout time.Duration, cond func(p *v1.Pod) bool) v1.Pod {
	n.T.Helper()
	var last v1.Pod
	timeout = testnode.Scale(timeout)
	deadline := time.Now().Add(timeout)
	for {
		if p, ok := n.Pod(name); ok {
			last = p
			if cond(&p) {
				return p
			}
		}
		if time.Now().After(deadline) {
			b, _ := json.MarshalIndent(last.Status, "", "  ")
			n.T.Fatalf("timed out after %s waiting for pod %s: %s; last status:\n%s", timeout, name, what, b)
		}
		time.Sleep(150 * time.Millisecond)
	}
}

// Write puts a manifest into the folder atomically (temp file, rename).
func (n *Node) Write(file, content string) {
	n.T.Helper()
	tmp := filepath.Join(n.Dir, ".tmp-"+file)
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		n.T.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(n.Manifests, file)); err != nil {
		n.T.Fatal(err)
	}
}

// Remove deletes a manifest from the folder.
func (n *Node) Remove(file string) {
	n.T.Helper()
	if err := os.Remove(filepath.Join(n.Manifests, file)); err != nil {
		n.T.Fatal(err)
	}
}

// Running reports whether p is Running with every container running.
func Running(p *v1.Pod) bool {
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

// PodManifest is a pod of the busybox image running script in container c.
func PodManifest(name, policy string, grace int, script string) string {
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
`, name, policy, grace, TestImage, script)
}

// Units lists the node's systemd units of the pod tree.
func Units(t *testing.T) string {
	out, err := exec.Command("systemctl", "list-units", "--all", "--no-legend", "--plain", "kubepods*", "minikubelet-*").CombinedOutput()
	if err != nil {
		t.Logf("systemctl list-units: %v: %s", err, out)
	}
	return string(out)
}

// ProcAlive reports whether pid is a living process.
func ProcAlive(pid int) bool { return procfs.Alive(pid) }

// SandboxPID reads the supervisor PID the runtime recorded for a pod.
func (n *Node) SandboxPID(uid string) int {
	var meta struct {
		PID int `json:"pid"`
	}
	b, err := os.ReadFile(filepath.Join(n.Root, "pods", uid, "sandbox", "daemon.json"))
	if err != nil {
		return 0
	}
	json.Unmarshal(b, &meta)
	return meta.PID
}

// Systemctl runs systemctl with args.
func Systemctl(args ...string) (string, error) {
	out, err := exec.Command("systemctl", args...).CombinedOutput()
	return string(out), err
}

// CheckConsistent verifies, once the node settled, that every listed pod
// has exactly one sandbox scope and one scope per running container, and
// that no state dir or pod slice exists for a pod that is not listed.
func (n *Node) CheckConsistent(t *testing.T) {
	t.Helper()
	pods, err := n.Pods()
	if err != nil {
		t.Fatal(err)
	}
	u := Units(t)
	var active []string
	for _, l := range strings.Split(u, "\n") {
		if strings.Contains(l, " active ") {
			active = append(active, l)
		}
	}
	count := func(substr string) int {
		c := 0
		for _, l := range active {
			if strings.HasSuffix(l, substr) {
				c++
			}
		}
		return c
	}
	uids := map[string]bool{}
	for _, p := range pods {
		uids[string(p.UID)] = true
		if !Running(&p) {
			continue
		}
		if c := count("minikubelet sandbox default/" + p.Name); c != 1 {
			t.Errorf("pod %s: %d sandbox scopes, want 1:\n%s", p.Name, c, u)
		}
		for _, cs := range p.Status.ContainerStatuses {
			if c := count("minikubelet container default/" + p.Name + "/" + cs.Name); c != 1 {
				t.Errorf("pod %s: %d scopes of container %s, want 1:\n%s", p.Name, c, cs.Name, u)
			}
		}
	}
	ents, _ := os.ReadDir(filepath.Join(n.Root, "pods"))
	for _, e := range ents {
		if !uids[e.Name()] {
			t.Errorf("state dir of an unknown pod left: %s", e.Name())
		}
	}
	for _, l := range active {
		if i := strings.Index(l, "-pod"); i >= 0 && strings.HasPrefix(l, "kubepods-") {
			uid := strings.TrimSuffix(strings.Fields(l[i+4:])[0], ".slice")
			if !uids[strings.ReplaceAll(uid, "_", "-")] {
				t.Errorf("pod slice of an unknown pod left: %s", l)
			}
		}
	}
}

// ContainerID is the ID of p's first container ("" when none).
func ContainerID(p *v1.Pod) string {
	if len(p.Status.ContainerStatuses) == 0 {
		return ""
	}
	return p.Status.ContainerStatuses[0].ContainerID
}
