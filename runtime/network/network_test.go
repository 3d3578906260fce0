package network

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minikubelet/minikubelet/internal/testnode"
	"github.com/minikubelet/minikubelet/runtime/network/nettest"
	"github.com/minikubelet/minikubelet/runtime/probe"
)

// TestMain runs the package in a network and mount namespace of its own
// (see nettest): the "node" of these tests. Pod netnses are made inside it.
func TestMain(m *testing.M) { nettest.Main(m) }

const systemPlugins = "/usr/lib/cni"

// requireCNI skips unless root inside the private node netns with the
// Debian plugins installed (hack/install-deps.sh installs them).
func requireCNI(t *testing.T) {
	t.Helper()
	testnode.RequireRoot(t)
	if !nettest.Inside() {
		t.Skip("network integration test skipped: not inside the private test netns")
	}
	for _, p := range []string{"bridge", "host-local", "portmap", "firewall", "tuning"} {
		if _, err := os.Stat(filepath.Join(systemPlugins, p)); err != nil {
			t.Skipf("network integration test skipped: CNI plugin %s missing in %s (run hack/install-deps.sh)", p, systemPlugins)
		}
	}
	if _, err := exec.LookPath("iptables-save"); err != nil {
		t.Skip("network integration test skipped: iptables not installed")
	}
}

type testNode struct {
	cfg Config
}

func newTestNode(t *testing.T) testNode {
	root := t.TempDir()
	return testNode{cfg: Config{ConfDir: filepath.Join(root, "net.d"), RootDir: root, BinDirs: []string{systemPlugins}}}
}

func (n testNode) manager(t *testing.T) *Manager {
	t.Helper()
	m, err := New(n.cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// serveHTTP answers GET / with body inside the netns at path, on :port.
func serveHTTP(t *testing.T, netnsPath string, port int, body string) {
	t.Helper()
	l, err := probe.ListenInNetns(netnsPath, "tcp", fmt.Sprintf(":%d", port))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) })}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
}

func httpGet(url string) (string, error) {
	// A fresh connection each time: a kept-alive one would reach an old pod.
	c := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// hostVeths lists the veth links of the node netns.
func hostVeths(t *testing.T) []string {
	t.Helper()
	links, err := listLinks()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range links {
		if l.kind == "veth" {
			out = append(out, l.name)
		}
	}
	return out
}

// hostVethOf is the host end of the veth whose other end is eth0 in netns.
func hostVethOf(t *testing.T, netns string) string {
	t.Helper()
	// "2: eth0@if17: <...": the peer's index on the host.
	out, err := exec.Command("nsenter", "--net="+netns, "ip", "-o", "link", "show", "eth0").Output()
	if err != nil {
		t.Fatalf("eth0 in %s: %v", netns, err)
	}
	_, after, _ := strings.Cut(string(out), "@if")
	num, _, _ := strings.Cut(after, ":")
	idx, err := strconv.Atoi(num)
	if err != nil {
		t.Fatalf("eth0's peer in %q: %v", out, err)
	}
	iface, err := net.InterfaceByIndex(idx)
	if err != nil {
		t.Fatalf("host end (index %d): %v", idx, err)
	}
	return iface.Name
}

func iptablesSave(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("iptables-save").CombinedOutput()
	if err != nil {
		t.Fatalf("iptables-save: %v: %s", err, out)
	}
	return string(out)
}

// assertNoTrace checks that nothing of pod uid with ip is left on the
// node: no IP allocation file, no veth, no iptables line naming it, no
// cache entry.
func assertNoTrace(t *testing.T, n testNode, m *Manager, uid string, ip net.IP) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(n.cfg.ipamDir(), DefaultNetworkName, ip.String())); !os.IsNotExist(err) {
		t.Errorf("host-local still holds %s (stat err %v)", ip, err)
	}
	ents, _ := os.ReadDir(filepath.Join(n.cfg.ipamDir(), DefaultNetworkName))
	for _, e := range ents {
		if net.ParseIP(e.Name()) != nil {
			t.Errorf("IP allocation left in IPAM dir: %s", e.Name())
		}
	}
	if v := hostVeths(t); len(v) != 0 {
		t.Errorf("veth left on the node: %v", v)
	}
	ipRE := regexp.MustCompile(regexp.QuoteMeta(ip.String()) + `\b`)
	for _, line := range strings.Split(iptablesSave(t), "\n") {
		if strings.Contains(line, uid) || ipRE.MatchString(line) || strings.Contains(line, masqChainName(DefaultNetworkName, uid)) || strings.Contains(line, "CNI-DN-") {
			t.Errorf("iptables rule left: %s", line)
		}
	}
	if atts, _ := m.cni.GetCachedAttachments(uid); len(atts) != 0 {
		t.Errorf("CNI cache still holds %d attachment(s) of %s", len(atts), uid)
	}
	if hp := m.HostPorts()[uid]; len(hp) != 0 {
		t.Errorf("hostPort registry still holds %v for %s", hp, uid)
	}
}

func TestPodNetworkDefaultConflistHostPortCrashTeardown(t *testing.T) {
	requireCNI(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	n := newTestNode(t)
	m := n.manager(t)

	st := m.Status()
	if st.LoopbackOnly || !st.WroteDefault || st.Network != DefaultNetworkName || st.ConfFile != DefaultConfPath(n.cfg.RootDir) {
		t.Fatalf("status = %+v, want the default conflist under the root dir in use", st)
	}
	if ents, _ := os.ReadDir(n.cfg.ConfDir); len(ents) != 0 {
		t.Fatalf("the CNI conf dir %s was written: %v", n.cfg.ConfDir, ents)
	}

	podA := PodNetwork{UID: "uid-a", Namespace: "default", Name: "web-node1", NetnsPath: nettest.NewNetns(t),
		PortMappings: []HostPort{{HostPort: 18080, ContainerPort: 8080, Protocol: "TCP"}, {ContainerPort: 9090}}}
	start := time.Now()
	resA, err := m.Setup(ctx, podA)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Setup (bridge+host-local+portmap ADD, first pod: creates the bridge and the node rules) took %v", time.Since(start))
	t.Cleanup(func() { m.Teardown(context.Background(), podA) })
	_, cidr, _ := net.ParseCIDR(DefaultPodCIDR)
	if len(resA.IPs) != 1 || !cidr.Contains(resA.IPs[0]) || resA.Interface != "eth0" || !resA.Gateway.Equal(net.ParseIP("10.86.0.1")) || resA.LoopbackOnly {
		t.Fatalf("Setup result = %+v, want one IP in %s on eth0 via 10.86.0.1", resA, cidr)
	}
	ipA := resA.IPs[0]
	t.Logf("pod A got %s", ipA)

	serveHTTP(t, podA.NetnsPath, 8080, "hello from pod A")
	if body, err := httpGet(fmt.Sprintf("http://%s:8080/", ipA)); err != nil || body != "hello from pod A" {
		t.Fatalf("GET pod IP from the node: %q, %v", body, err)
	}
	if body, err := httpGet("http://127.0.0.1:18080/"); err != nil || body != "hello from pod A" {
		t.Fatalf("GET hostPort on 127.0.0.1: %q, %v", body, err)
	}
	// How 127.0.0.1 works: portmap (snat: true) sets route_localnet on the
	// bridge, DNATs locally generated packets in OUTPUT and masquerades
	// 127.0.0.0/8 sources, so the pod can answer.
	if b, err := os.ReadFile("/proc/sys/net/ipv4/conf/" + DefaultBridge + "/route_localnet"); err != nil || strings.TrimSpace(string(b)) != "1" {
		t.Errorf("route_localnet on %s = %q, %v; want 1 (set by portmap)", DefaultBridge, b, err)
	}
	if body, err := httpGet("http://10.86.0.1:18080/"); err != nil || body != "hello from pod A" {
		t.Fatalf("GET hostPort on the node's bridge address: %q, %v", body, err)
	}

	// A second pod asking for the same hostPort is refused, naming pod A,
	// and gets nothing allocated.
	podB := PodNetwork{UID: "uid-b", Namespace: "kube-system", Name: "other-node1", NetnsPath: nettest.NewNetns(t),
		PortMappings: []HostPort{{HostPort: 18080, ContainerPort: 80, HostIP: "127.0.0.1"}}}
	_, err = m.Setup(ctx, podB)
	var conflict *HostPortConflictError
	if !errors.As(err, &conflict) || conflict.Holder.UID != "uid-a" || !strings.Contains(err.Error(), "default/web-node1") {
		t.Fatalf("second pod with hostPort 18080: err = %v, want a conflict naming default/web-node1", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(n.cfg.ipamDir(), DefaultNetworkName)); countIPs(ents) != 1 {
		t.Fatalf("refused pod got an IP: IPAM dir holds %d IPs", countIPs(ents))
	}

	// Adoption after a daemon crash: a new Manager knows pod A from the
	// cache alone (its hostPort, its IP) and CHECK passes.
	m2 := n.manager(t)
	if hp := m2.HostPorts()["uid-a"]; len(hp) != 1 || hp[0].HostPort != 18080 {
		t.Fatalf("registry rebuilt from the cache: %v, want pod A holding 18080", m2.HostPorts())
	}
	if _, err := m2.Setup(ctx, podB); !errors.As(err, &conflict) {
		t.Fatalf("after restart, second pod must still be refused: %v", err)
	}
	left, err := m2.Leftovers(ctx)
	if err != nil || len(left) != 1 || left[0].Pod != (PodRef{"default", "web-node1", "uid-a"}) || len(left[0].IPs) != 1 || !left[0].IPs[0].Equal(ipA) {
		t.Fatalf("Leftovers = %+v, %v; want pod A with %s", left, err, ipA)
	}
	chk, err := m2.Check(ctx, PodNetwork{UID: "uid-a", NetnsPath: podA.NetnsPath})
	if err != nil || !chk.IPs[0].Equal(ipA) {
		t.Fatalf("Check = %+v, %v", chk, err)
	}

	// Teardown by the new Manager with only UID + netns.
	start = time.Now()
	if err := m2.Teardown(ctx, PodNetwork{UID: "uid-a", NetnsPath: podA.NetnsPath}); err != nil {
		t.Fatal(err)
	}
	t.Logf("Teardown from the cache took %v", time.Since(start))
	assertNoTrace(t, n, m2, "uid-a", ipA)
	t0 := time.Now()
	_, err = httpGet("http://127.0.0.1:18080/")
	t.Logf("GET after teardown: %v after %v", err, time.Since(t0))
	if err == nil {
		t.Error("hostPort still answers after teardown")
	}
	if err := m2.Teardown(ctx, PodNetwork{UID: "uid-a", NetnsPath: podA.NetnsPath}); err != nil {
		t.Errorf("second Teardown must be a no-op: %v", err)
	}

	// Now pod B may take the port; then it is torn down with no netns
	// known while its netns still lives (the veth must still go).
	start = time.Now()
	resB, err := m2.Setup(ctx, podB)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Setup of a second pod (bridge exists) took %v", time.Since(start))
	serveHTTP(t, podB.NetnsPath, 80, "hello from pod B")
	if body, err := httpGet("http://127.0.0.1:18080/"); err != nil || body != "hello from pod B" {
		t.Fatalf("GET pod B's hostPort on 127.0.0.1: %q, %v", body, err)
	}
	m3 := n.manager(t)
	if err := m3.Teardown(ctx, PodNetwork{UID: "uid-b"}); err != nil {
		t.Fatal(err)
	}
	assertNoTrace(t, n, m3, "uid-b", resB.IPs[0])
	if left, _ := m3.Leftovers(ctx); len(left) != 0 {
		t.Errorf("Leftovers after teardown: %+v", left)
	}
}

func countIPs(ents []os.DirEntry) int {
	c := 0
	for _, e := range ents {
		if net.ParseIP(e.Name()) != nil {
			c++
		}
	}
	return c
}

// usePerPodRulesConflist writes into the test node's conf dir a conflist of
// the shape podman writes and the default was until 2026-12-03: the
// default's network, bridge and IPAM, but per-pod iptables rules (the
// bridge plugin's ipMasq chain, the firewall plugin's FORWARD accepts).
// Users bring such configs; their DEL after a crash needs cleanup.go.
func usePerPodRulesConflist(t *testing.T, n testNode) {
	t.Helper()
	conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":%q,"plugins":[
	  {"type":"bridge","bridge":%q,"isGateway":true,"ipMasq":true,"hairpinMode":true,
	   "ipam":{"type":"host-local","ranges":[[{"subnet":%q}]],"routes":[{"dst":"0.0.0.0/0"}],"dataDir":%q}},
	  {"type":"firewall","backend":"iptables"},
	  {"type":"portmap","capabilities":{"portMappings":true},"snat":true}]}`,
		DefaultNetworkName, DefaultBridge, DefaultPodCIDR, n.cfg.ipamDir())
	if err := os.MkdirAll(n.cfg.ConfDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(n.cfg.ConfDir, "87-podman-style.conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
}

// The pause process died and its netns with it; the daemon tears down
// with the stale path: the IP and the bridge plugin's masquerade chain
// (of a config with ipMasq) must still go.
func TestTeardownAfterNetnsIsGone(t *testing.T) {
	requireCNI(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n := newTestNode(t)
	usePerPodRulesConflist(t, n)
	m := n.manager(t)
	pod := PodNetwork{UID: "uid-gone", Namespace: "default", Name: "gone-node1", NetnsPath: nettest.NewNetns(t)}
	res, err := m.Setup(ctx, pod)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(iptablesSave(t), masqChainName(DefaultNetworkName, pod.UID)) {
		t.Fatal("masquerade chain of the pod not found after Setup: the test would prove nothing")
	}
	if err := exec.Command("umount", pod.NetnsPath).Run(); err != nil {
		t.Fatal(err)
	}
	// The kernel removes the veth pair when the netns is destroyed (async).
	for deadline := time.Now().Add(10 * time.Second); len(hostVeths(t)) != 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if err := n.manager(t).Teardown(ctx, pod); err != nil {
		t.Fatal(err)
	}
	assertNoTrace(t, n, m, pod.UID, res.IPs[0])
}

func TestLoopbackOnlyWithoutPlugins(t *testing.T) {
	testnode.RequireRoot(t)
	if !nettest.Inside() {
		t.Skip("not inside the private test netns")
	}
	n := newTestNode(t)
	n.cfg.BinDirs = []string{t.TempDir()}
	m := n.manager(t)
	st := m.Status()
	if !st.LoopbackOnly || !strings.Contains(st.Reason, "bridge") || !strings.Contains(st.Reason, n.cfg.BinDirs[0]) {
		t.Fatalf("status = %+v, want loopback-only naming the missing bridge plugin and the bin dir", st)
	}
	pod := PodNetwork{UID: "uid-lo", Namespace: "default", Name: "lo-node1", NetnsPath: nettest.NewNetns(t)}
	res, err := m.Setup(context.Background(), pod)
	if err != nil || !res.LoopbackOnly || len(res.IPs) != 0 {
		t.Fatalf("Setup = %+v, %v; want loopback only", res, err)
	}
	if v := hostVeths(t); len(v) != 0 {
		t.Fatalf("loopback-only pod got a veth: %v", v)
	}
	// The pod still has a working lo (the sandbox's job; here nettest's).
	l, err := probe.ListenInNetns(pod.NetnsPath, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := probe.DialInNetns(context.Background(), pod.NetnsPath, "tcp", l.Addr().String())
	if err != nil {
		t.Fatalf("dial lo inside the loopback-only pod: %v", err)
	}
	c.Close()
	if err := m.Teardown(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
}

// Several pods at once get distinct IPs and all reach the node; a Setup
// for a UID still cached (a recreated sandbox) releases the old attachment;
// Check notices a broken attachment.
func TestParallelPodsResetupAndBrokenCheck(t *testing.T) {
	requireCNI(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	n := newTestNode(t)
	m := n.manager(t)
	const N = 6
	pods := make([]PodNetwork, N)
	for i := range pods {
		pods[i] = PodNetwork{UID: fmt.Sprintf("uid-p%d", i), Namespace: "default", Name: fmt.Sprintf("p%d-node1", i), NetnsPath: nettest.NewNetns(t)}
	}
	ips := make([]net.IP, N)
	errs := make(chan error, N)
	for i := range pods {
		go func(i int) {
			r, err := m.Setup(ctx, pods[i])
			if err == nil {
				ips[i] = r.IPs[0]
			}
			errs <- err
		}(i)
	}
	for range pods {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	for i, ip := range ips {
		if seen[ip.String()] {
			t.Fatalf("IP %s given twice", ip)
		}
		seen[ip.String()] = true
		serveHTTP(t, pods[i].NetnsPath, 8080, pods[i].Name)
		if body, err := httpGet(fmt.Sprintf("http://%s:8080/", ip)); err != nil || body != pods[i].Name {
			t.Fatalf("GET %s: %q, %v", ip, body, err)
		}
	}

	// Pod 0's sandbox is recreated: a new netns, same UID.
	old := pods[0]
	pods[0].NetnsPath = nettest.NewNetns(t)
	r, err := m.Setup(ctx, pods[0])
	if err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(filepath.Join(n.cfg.ipamDir(), DefaultNetworkName)); countIPs(ents) != N {
		t.Fatalf("after re-Setup the IPAM dir holds %d IPs, want %d (old one released)", countIPs(ents), N)
	}
	if got := len(hostVeths(t)); got != N {
		t.Fatalf("%d veths on the node, want %d (the old sandbox's removed)", got, N)
	}
	if atts, _ := m.cni.GetCachedAttachments(old.UID); len(atts) != 1 || atts[0].NetNS != pods[0].NetnsPath {
		t.Fatalf("cache of %s: %+v, want one attachment in the new netns", old.UID, atts)
	}
	ips[0] = r.IPs[0]

	// Break pod 1: delete eth0 inside its netns; CHECK must say so.
	if _, err := m.Check(ctx, pods[1]); err != nil {
		t.Fatalf("Check of a healthy pod: %v", err)
	}
	// What systemd-udevd does on a Debian 12 host (MACAddressPolicy=
	// persistent) a moment after ADD: the host end of pod 2's veth gets
	// another MAC. The pod's network is fine; CHECK must say so (it failed
	// there and every adopted pod was recreated after a daemon restart).
	if atts, err := m.cni.GetCachedAttachments(pods[2].UID); err != nil || len(atts) != 1 {
		t.Fatalf("cache of pod 2: %v %v", atts, err)
	}
	hostEnd := hostVethOf(t, pods[2].NetnsPath)
	if out, err := exec.Command("ip", "link", "set", hostEnd, "address", "02:42:de:ad:be:ef").CombinedOutput(); err != nil {
		t.Fatalf("set the MAC of %s: %v: %s", hostEnd, err, out)
	}
	if _, err := m.Check(ctx, pods[2]); err != nil {
		t.Fatalf("Check after udev's MAC change of the host veth: %v", err)
	}
	if _, err := m.Check(ctx, pods[2]); err != nil {
		t.Fatalf("second Check after the MAC change: %v", err)
	}
	if out, err := exec.Command("nsenter", "--net="+pods[1].NetnsPath, "ip", "link", "del", "eth0").CombinedOutput(); err != nil {
		t.Fatalf("delete eth0 in the pod: %v: %s", err, out)
	}
	if _, err := m.Check(ctx, pods[1]); err == nil {
		t.Fatal("Check passed for a pod without eth0")
	}
	if _, err := m.Check(ctx, PodNetwork{UID: "uid-never", NetnsPath: pods[1].NetnsPath}); err == nil {
		t.Fatal("Check passed for a pod that was never set up")
	}

	for i := range pods {
		if err := m.Teardown(ctx, pods[i]); err != nil {
			t.Fatal(err)
		}
	}
	for i := range pods {
		assertNoTrace(t, n, m, pods[i].UID, ips[i])
	}
}

// A config dropped into the folder later, first in lexical order, is used
// from the next call on (kubelet re-reads its CNI config too).
func TestConfigReload(t *testing.T) {
	n := newTestNode(t)
	n.cfg.BinDirs = []string{t.TempDir()}
	m := n.manager(t)
	if st := m.Status(); !st.WroteDefault {
		t.Fatalf("status %+v", st)
	}
	other := filepath.Join(n.cfg.ConfDir, "10-other.conflist")
	if err := os.MkdirAll(n.cfg.ConfDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other, []byte(`{"cniVersion":"1.0.0","name":"other","plugins":[{"type":"ptp"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if st := m.Status(); st.ConfFile != other || st.Network != "other" || st.WroteDefault {
		t.Fatalf("after dropping %s: status %+v", other, st)
	}
}

// An ADD that fails in its last plugin (tuning, asked for a sysctl that
// does not exist) is undone: no IP, veth, chain or
// cache entry stays, and the error names the plugin.
func TestFailedAddIsUndone(t *testing.T) {
	requireCNI(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n := newTestNode(t)
	ipam := filepath.Join(n.cfg.RootDir, "ipam-failing")
	conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"failing","plugins":[
	  {"type":"bridge","bridge":"mkl9","isGateway":true,"ipMasq":true,
	   "ipam":{"type":"host-local","ranges":[[{"subnet":"10.99.0.0/24"}]],"dataDir":%q}},
	  {"type":"tuning","sysctl":{"net.ipv4.conf.eth0.no_such_knob":"1"}}]}`, ipam)
	if err := os.MkdirAll(n.cfg.ConfDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(n.cfg.ConfDir, "10-failing.conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	m := n.manager(t)
	pod := PodNetwork{UID: "uid-fail", Namespace: "default", Name: "fail-node1", NetnsPath: nettest.NewNetns(t)}
	t.Cleanup(func() { m.Teardown(context.Background(), pod) })
	_, err := m.Setup(ctx, pod)
	if err == nil || !strings.Contains(err.Error(), "tuning") || !strings.Contains(err.Error(), "default/fail-node1") {
		t.Fatalf("Setup = %v, want an error naming the tuning plugin and the pod", err)
	}
	t.Log(err)
	ents, _ := os.ReadDir(filepath.Join(ipam, "failing"))
	if c := countIPs(ents); c != 0 {
		t.Errorf("%d IP(s) left allocated after a failed ADD", c)
	}
	if v := hostVeths(t); len(v) != 0 {
		t.Errorf("veth left after a failed ADD: %v", v)
	}
	if save := iptablesSave(t); strings.Contains(save, "uid-fail") || strings.Contains(save, masqChainName("failing", pod.UID)) {
		t.Errorf("rules left after a failed ADD:\n%s", save)
	}
	if atts, _ := m.cni.GetCachedAttachments(pod.UID); len(atts) != 0 {
		t.Errorf("cache entry after a failed ADD: %+v", atts)
	}
}
