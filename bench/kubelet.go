package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/minikubelet/minikubelet/runtime/network"
)

// The real anchor (issue 17): the kubelet v1.37.2 in standalone mode
// (staticPodPath, no API server; built by hack/k8s/build.sh, cached outside
// the repository) with Debian's containerd and runc, on the same test node,
// fed the same YAML and the same image (imported with ctr).
//
// What it takes on these machines (../shared/kubelet-peer/README.md):
//   - containerd's CRI needs restrict_oom_score_adj (no CAP_SYS_RESOURCE);
//   - the kubelet needs failCgroupV1: false and failSwapOn: false;
//   - both write to fixed host paths: they run in a mount namespace of their
//     own (a helper process holds it) where /etc, /opt and /usr/libexec are
//     overlays with a tmpfs upper layer and /var/lib, /var/log and
//     /run/containerd are tmpfs, and the kernel sysctls the kubelet would
//     set (they are not namespaced) are files bound over /proc/sys holding
//     the values it wants, so it never writes the host's;
//   - transient services in the test systemd need DefaultDependencies=no.
//
// The kubelet owns kubepods.slice (its default); the daemon under test runs
// with --cgroup-root mklbench beside it, so neither ever sees the other's pod
// slices (each would collect the other's pods as orphans). minikubelet also
// refuses to start while a process named "kubelet" runs (its guard against
// two agents on one cgroup root): the peer's binary is hard-linked as
// peer-kubelet, which is safe here only because the two roots differ.
type kubeletPeer struct {
	base, static, stage, sock string
	helper                    *exec.Cmd
	ns                        string   // /proc/<helper>/ns/mnt
	units                     []string // services started, stopped in close
	versions                  string
	http                      *http.Client
}

const (
	peerPauseRef   = "registry.k8s.io/pause:3.10.2"
	peerROPort     = 10355 // the kubelet's read-only port: /healthz and /pods, no TLS
	peerPort       = 10350
	peerBridge     = "kpeer0"
	peerCIDR       = "10.89.0.0/16"
	peerNet        = "kubelet-peer"
	cniBinDir      = "/usr/lib/cni" // Debian's containernetworking-plugins
	peerUnitPrefix = "mkl-bench-peer-"
)

// peerHelperScript prepares the peer's mount namespace, then sleeps in it.
const peerHelperScript = `set -e
B="$PEER_BASE"
mount -t tmpfs -o mode=755 tmpfs "$B/shadow"
for d in /etc /opt /usr/libexec; do
  [ -d "$d" ] || continue
  n=$(echo "$d" | tr / _)
  mkdir -p "$B/shadow/$n/upper" "$B/shadow/$n/work"
  mount -t overlay overlay -o "lowerdir=$d,upperdir=$B/shadow/$n/upper,workdir=$B/shadow/$n/work" "$d"
done
mount -t tmpfs -o mode=755 tmpfs /var/lib
mount -t tmpfs -o mode=755 tmpfs /var/log
mkdir -p /run/containerd && mount -t tmpfs -o mode=711 tmpfs /run/containerd
mkdir -p /etc/kubernetes /etc/cni/net.d /var/lib/kubelet /var/lib/containerd /var/lib/cni
mkdir -p "$B/sysctl"
for kv in vm/overcommit_memory=1 vm/panic_on_oom=0 kernel/panic=10 kernel/panic_on_oops=1 kernel/keys/root_maxkeys=1000000 kernel/keys/root_maxbytes=25000000; do
  k=${kv%%=*}; f="$B/sysctl/$(echo "$k" | tr / _)"
  echo "${kv#*=}" > "$f"
  if [ -e "/proc/sys/$k" ]; then mount --bind "$f" "/proc/sys/$k"; fi
done
echo ready
exec sleep 1000000
`

func containerdConfig(b string) string {
	return fmt.Sprintf(`# minikubelet benchmark: containerd's own config (../shared/kubelet-peer/containerd.toml)
version = 2
root = "%[1]s/containerd/root"
state = "%[1]s/containerd/state"
[grpc]
  address = "%[1]s/containerd/containerd.sock"
[ttrpc]
  address = "%[1]s/containerd/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "%[1]s/containerd/opt"
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "%[2]s"
    restrict_oom_score_adj = true
    [plugins."io.containerd.grpc.v1.cri".containerd]
      default_runtime_name = "runc"
      snapshotter = "overlayfs"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          SystemdCgroup = true
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "%[3]s"
      conf_dir = "%[1]s/cni/conf"
`, b, peerPauseRef, cniBinDir)
}

func kubeletConfig(b string) string {
	return fmt.Sprintf(`# minikubelet benchmark: the kubelet in standalone mode (../shared/kubelet-peer/kubelet.yaml)
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
staticPodPath: %[1]s/static
fileCheckFrequency: 1s
cgroupDriver: systemd
failCgroupV1: false
failSwapOn: false
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization: {mode: AlwaysAllow}
readOnlyPort: %[2]d
healthzPort: 0
port: %[3]d
address: 127.0.0.1
containerRuntimeEndpoint: unix://%[1]s/containerd/containerd.sock
imageServiceEndpoint: unix://%[1]s/containerd/containerd.sock
cgroupsPerQOS: true
enforceNodeAllocatable: []
podLogsDir: %[1]s/logs/pods
volumePluginDir: %[1]s/volume-plugins
resolvConf: ""
maxPods: 1100
evictionHard: {"memory.available": "1Mi", "nodefs.available": "1%%", "imagefs.available": "1%%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
`, b, peerROPort, peerPort)
}

// peerConflist is minikubelet's default conflist (bridge, host-local,
// firewall, portmap) with its own bridge, subnet, name and IPAM folder.
func peerConflist(b string) ([]byte, error) {
	raw, err := network.DefaultConflist(peerCIDR, filepath.Join(b, "cni", "ipam"))
	if err != nil {
		return nil, err
	}
	var conf map[string]any
	if err := json.Unmarshal(raw, &conf); err != nil {
		return nil, err
	}
	conf["name"] = peerNet
	if plugins, ok := conf["plugins"].([]any); ok && len(plugins) > 0 {
		if br, ok := plugins[0].(map[string]any); ok {
			br["bridge"] = peerBridge
		}
	}
	return json.MarshalIndent(conf, "", "  ")
}

// startKubeletPeer sets the peer up: mount namespace, containerd, the two
// images, the kubelet. On error everything started is stopped again.
func startKubeletPeer(base, kubeletBin, demoTar, pauseTar string) (k *kubeletPeer, err error) {
	for _, bin := range []string{"containerd", "containerd-shim-runc-v2", "ctr", "runc"} {
		if _, err := exec.LookPath(bin); err != nil {
			return nil, fmt.Errorf("%s is not installed (run `make bench-deps`: Debian's containerd and runc)", bin)
		}
	}
	if _, err := os.Stat(filepath.Join(cniBinDir, "bridge")); err != nil {
		return nil, fmt.Errorf("CNI plugins missing in %s (run `make deps`: containernetworking-plugins)", cniBinDir)
	}
	k = &kubeletPeer{base: base, static: filepath.Join(base, "static"), stage: filepath.Join(base, "stage"),
		sock: filepath.Join(base, "containerd", "containerd.sock"), http: &http.Client{Timeout: 10 * time.Second}}
	defer func() {
		if err != nil {
			k.close()
			k = nil
		}
	}()
	for _, d := range []string{"static", "stage", "shadow", "bin", "containerd", "cni/conf", "cni/ipam", "logs/pods", "kubelet", "volume-plugins"} {
		if err := os.MkdirAll(filepath.Join(base, d), 0o755); err != nil {
			return k, err
		}
	}
	conflist, err := peerConflist(base)
	if err != nil {
		return k, err
	}
	for f, c := range map[string][]byte{"containerd.toml": []byte(containerdConfig(base)), "kubelet.yaml": []byte(kubeletConfig(base)),
		"cni/conf/10-kubelet-peer.conflist": conflist} {
		if err := os.WriteFile(filepath.Join(base, f), c, 0o644); err != nil {
			return k, err
		}
	}
	// The peer's binary under another name (see kubeletPeer).
	peerBin := filepath.Join(base, "bin", "peer-kubelet")
	if err := os.Link(kubeletBin, peerBin); err != nil {
		if err := copyExec(kubeletBin, peerBin); err != nil {
			return k, fmt.Errorf("copy the kubelet: %w", err)
		}
	}
	k.versions = strings.Join([]string{
		kubeletVersion(kubeletBin),
		firstLine(exec.Command("containerd", "--version").Output()),
		firstLine(exec.Command("runc", "--version").Output())}, "; ")
	// The mount namespace.
	h, ns, err := mountNamespaceHelper(peerHelperScript, []string{"PEER_BASE=" + base}, "the peer")
	if err != nil {
		return k, err
	}
	k.helper, k.ns = h, ns
	// containerd, then the images, then the kubelet.
	if err := k.service("containerd", "/usr/bin/containerd", "--config", filepath.Join(base, "containerd.toml")); err != nil {
		return k, err
	}
	if err := k.waitFor(30*time.Second, "containerd", func() error {
		_, err := k.ctr(5*time.Second, "version")
		return err
	}); err != nil {
		return k, err
	}
	for _, tar := range []string{demoTar, pauseTar} {
		if out, err := k.ctr(3*time.Minute, "-n", "k8s.io", "images", "import", tar); err != nil {
			return k, fmt.Errorf("ctr images import %s: %v: %s", filepath.Base(tar), err, lastLines(out, 3))
		}
	}
	list, _ := k.ctr(30*time.Second, "-n", "k8s.io", "images", "ls", "-q")
	for _, ref := range []string{demoRef, peerPauseRef} {
		if !strings.Contains(list, ref) {
			return k, fmt.Errorf("containerd does not list %s after the import (it lists: %s)", ref, strings.Join(strings.Fields(list), " "))
		}
	}
	if err := k.service("kubelet", peerBin, "--config", filepath.Join(base, "kubelet.yaml"), "--root-dir", filepath.Join(base, "kubelet"),
		"--cert-dir", filepath.Join(base, "kubelet", "pki"), "--hostname-override", "bench-peer"); err != nil {
		return k, err
	}
	if err := k.waitFor(90*time.Second, "kubelet", func() error {
		_, err := k.get("/healthz")
		return err
	}); err != nil {
		return k, err
	}
	return k, nil
}

func copyExec(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// kubeletVersion names the module the kubelet was built from (its
// --version says v0.0.0-master: hack/k8s/build.sh stamps no version).
func kubeletVersion(bin string) string {
	out, err := exec.Command("go", "version", "-m", bin).Output()
	if err != nil {
		return "kubelet (version unknown: " + err.Error() + ")"
	}
	goV, mod := "", ""
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) == 2 && strings.HasSuffix(f[0], ":") {
			goV = f[1]
		}
		if len(f) >= 3 && (f[0] == "mod" || f[0] == "dep") && f[1] == "k8s.io/kubernetes" {
			mod = f[2]
		}
	}
	return fmt.Sprintf("kubelet %s (k8s.io/kubernetes/cmd/kubelet, %s)", mod, goV)
}

func firstLine(b []byte, err error) string {
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0])
}

// service runs argv as a transient service of the node's systemd, in the
// peer's mount namespace, its output in <base>/<name>.log.
func (k *kubeletPeer) service(name string, argv ...string) error {
	unit := peerUnitPrefix + name + ".service"
	log := filepath.Join(k.base, name+".log")
	args := []string{"--unit", unit, "--quiet", "-p", "DefaultDependencies=no", "-p", "CollectMode=inactive-or-failed",
		"-p", "TimeoutStopSec=20", "-p", "StandardOutput=append:" + log, "-p", "StandardError=append:" + log,
		"--", "nsenter", "--mount=" + k.ns, "--"}
	out, err := exec.Command("systemd-run", append(args, argv...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("systemd-run %s: %v: %s", name, err, strings.TrimSpace(string(out)))
	}
	k.units = append(k.units, unit)
	return nil
}

// waitFor polls ok until it succeeds, the service dies or timeout passes.
func (k *kubeletPeer) waitFor(timeout time.Duration, name string, ok func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := ok()
		if err == nil {
			return nil
		}
		if k.mainPID(name) == 0 {
			return fmt.Errorf("%s exited at start: %s", name, k.logTail(name, 6))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready within %s: %v; log: %s", name, timeout, err, k.logTail(name, 6))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// logTail is the end of a service's log, without the kubelet's repeated
// node-status complaint (this node has no default route to take an address
// from; nothing here needs one).
func (k *kubeletPeer) logTail(name string, n int) string {
	b, _ := os.ReadFile(filepath.Join(k.base, name+".log"))
	var keep []string
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.Contains(l, "Failed to set some node status fields") {
			keep = append(keep, l)
		}
	}
	return lastLines(strings.Join(keep, "\n"), n)
}

// mainPID is the service's main process (nsenter exec'd it), 0 when not running.
func (k *kubeletPeer) mainPID(name string) int {
	out, _ := exec.Command("systemctl", "show", "-p", "MainPID", "--value", peerUnitPrefix+name+".service").Output()
	pid, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	return pid
}

// check says whether the kubelet and containerd still run.
func (k *kubeletPeer) check() error {
	for _, name := range []string{"containerd", "kubelet"} {
		if k.mainPID(name) == 0 {
			return fmt.Errorf("%s is not running any more: %s", name, k.logTail(name, 3))
		}
	}
	return nil
}

func (k *kubeletPeer) ctr(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ctr", append([]string{"--address", k.sock}, args...)...).CombinedOutput()
	return string(out), err
}

// get reads a path of the kubelet's read-only port.
func (k *kubeletPeer) get(path string) ([]byte, error) {
	resp, err := k.http.Get(fmt.Sprintf("http://127.0.0.1:%d%s", peerROPort, path))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", path, resp.Status, lastLines(string(b), 2))
	}
	return b, nil
}

// pods are the pods the kubelet runs, with the status its status manager
// holds (GET /pods on the read-only port).
func (k *kubeletPeer) pods() ([]v1.Pod, error) {
	b, err := k.get("/pods")
	if err != nil {
		return nil, err
	}
	var l v1.PodList
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("GET /pods: %w", err)
	}
	return l.Items, nil
}

func (k *kubeletPeer) stageManifest(file, content string) error {
	return os.WriteFile(filepath.Join(k.stage, file), []byte(content), 0o644)
}

func (k *kubeletPeer) put(file string) error {
	return os.Rename(filepath.Join(k.stage, file), filepath.Join(k.static, file))
}

func (k *kubeletPeer) remove(file string) error { return os.Remove(filepath.Join(k.static, file)) }

// peerPodProcesses are the processes in the kubelet's pod slices (pause and
// workloads; the shims stay in containerd's service).
func peerPodProcesses() []int { return processesUnder("/kubepods.slice/") }

// shims are the containerd-shim processes (comm is cut at 15 characters).
func shims() []int {
	var out []int
	for _, pid := range allPIDs() {
		if readTrim(fmt.Sprintf("/proc/%d/comm", pid)) == "containerd-shim" {
			out = append(out, pid)
		}
	}
	return out
}

// leftovers names what of the peer's pods still exists: pods the kubelet
// lists, processes in its pod slices, shims, pod slices.
func (k *kubeletPeer) leftovers() string {
	if pods, err := k.pods(); err != nil {
		return "kubelet: " + err.Error()
	} else if len(pods) > 0 {
		return fmt.Sprintf("%d pods listed by the kubelet", len(pods))
	}
	if n := len(peerPodProcesses()); n > 0 {
		return fmt.Sprintf("%d processes in the kubelet's pod slices", n)
	}
	if n := len(shims()); n > 0 {
		return fmt.Sprintf("%d containerd shims", n)
	}
	// A stopped slice systemd still has loaded (inactive) is gone.
	out, _ := exec.Command("systemctl", "list-units", "--all", "--no-legend", "--plain", "kubepods-*pod*.slice").Output()
	n := 0
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) >= 3 && f[2] != "inactive" {
			n++
		}
	}
	if n > 0 {
		return fmt.Sprintf("%d pod slices", n)
	}
	return ""
}

func (k *kubeletPeer) waitGone(timeout, every time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		why := k.leftovers()
		if why == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s still present: %s", timeout, why)
		}
		time.Sleep(every)
	}
}

// close removes every static pod and waits (bounded) for them to go, stops
// the kubelet and containerd (and with containerd's service its shims),
// stops kubepods.slice (whatever a shim left running), ends the helper (its
// mount namespace and every mount in it go with it) and removes the folder.
// Everything it signals is its own: the services and slice of the node's
// systemd that it started, and the helper's PID.
func (k *kubeletPeer) close() {
	if k == nil {
		return
	}
	if len(k.units) == 2 {
		ents, _ := os.ReadDir(k.static)
		for _, e := range ents {
			os.Remove(filepath.Join(k.static, e.Name()))
		}
		if len(ents) > 0 {
			k.waitGone(2*time.Minute, 200*time.Millisecond)
		}
	}
	for i := len(k.units) - 1; i >= 0; i-- {
		exec.Command("systemctl", "stop", k.units[i]).Run()
	}
	k.units = nil
	exec.Command("systemctl", "stop", "kubepods.slice").Run()
	if k.helper != nil {
		k.helper.Process.Kill()
		k.helper.Wait()
		k.helper = nil
	}
	// MKL_BENCH_KEEP_LOGS=DIR keeps the kubelet's and containerd's logs.
	if keep := os.Getenv("MKL_BENCH_KEEP_LOGS"); keep != "" {
		for _, name := range []string{"kubelet", "containerd"} {
			copyFile(filepath.Join(k.base, name+".log"), filepath.Join(keep, "peer-"+name+".log"))
		}
	}
	for _, m := range mountsUnder(k.base) { // none: they lived in the helper's namespace
		exec.Command("umount", "-l", m).Run()
	}
	os.RemoveAll(k.base)
}

// peerPodYAML is the benchmark pod for the kubelet: the same YAML, with
// hostNetwork when the run is the loopback comparison (the kubelet with
// containerd has no loopback-only pod network: CRI wants a CNI result with
// an address, so a pod without the host network needs the bridge), and with
// tiny requests beside the limits for the mass scenarios: with requests =
// limits each pod asks the kubelet's admission for 1 CPU, and on a 2-core
// node it admits two of them and rejects the rest (minikubelet does not
// check requests against the node's allocatable). The pods are Burstable
// then instead of Guaranteed.
func peerPodYAML(name, out string, hostNetwork, smallRequests bool) string {
	y := podYAML(name, out)
	if hostNetwork {
		y = strings.Replace(y, "spec:\n", "spec:\n  hostNetwork: true\n", 1)
	}
	if smallRequests {
		y = strings.ReplaceAll(y, "      limits: {", "      requests: {cpu: 1m, memory: 1Mi}\n      limits: {")
	}
	return y
}
