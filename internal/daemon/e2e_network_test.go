package daemon

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/minikubelet/minikubelet/runtime/network"
)

// Issue 7's network "Done when", end to end against one daemon: the default
// conflist, the pod IP serving HTTP to the node, hostPort on 127.0.0.1, a
// refused hostPort conflict, and a teardown that leaves no veth, IP
// allocation or DNAT rule. The test binary runs in the test node's own
// network namespace (testnode), so every address dialled here is inside it.

const (
	netPodCIDR  = "10.231.0.0/24" // newE2ENode's --pod-cidr
	netHostPort = 18080
)

// webManifest is a pod serving name on containerPort 8080 with busybox
// httpd, published as hostPort when hostPort != 0.
func webManifest(name string, hostPort int) string {
	port := "{containerPort: 8080}"
	if hostPort != 0 {
		port = fmt.Sprintf("{containerPort: 8080, hostPort: %d}", hostPort)
	}
	return `apiVersion: v1
kind: Pod
metadata: {name: ` + name + `}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: ` + testImage + `
    command: [sh, -c, "mkdir -p /www; echo served-by-$HOSTNAME > /www/index.html; exec httpd -f -p 8080 -h /www"]
    ports: [` + port + `]
`
}

// httpGet fetches url from the test process (no proxy: the environment's
// proxy settings must not route node-local addresses elsewhere).
func httpGet(url string) (string, error) {
	c := http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(b), err
}

// waitHTTP polls url until it answers 200 with a body containing want.
func (n *e2eNode) waitHTTP(url, want string, timeout time.Duration) string {
	n.T.Helper()
	var body string
	var err error
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if body, err = httpGet(url); err == nil && strings.Contains(body, want) {
			return body
		}
		time.Sleep(200 * time.Millisecond)
	}
	n.T.Fatalf("GET %s: no %q within %s: body %q, err %v", url, want, timeout, body, err)
	return ""
}

// vethLinks lists the node netns' veth interfaces (`ip -br link` shows the
// host side of each pod's pair as vethXXXX@if2).
func vethLinks(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("ip", "-br", "link").CombinedOutput()
	if err != nil {
		t.Fatalf("ip -br link: %v: %s", err, out)
	}
	var veths []string
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 0 && strings.HasPrefix(f[0], "veth") {
			veths = append(veths, f[0])
		}
	}
	return veths
}

// ipamAllocations lists host-local's per-IP files under <root-dir>/cni/ipam
// (it also keeps last_reserved_ip.N and a lock file, which are not
// allocations).
func ipamAllocations(t *testing.T, root string) []string {
	t.Helper()
	var ips []string
	filepath.WalkDir(filepath.Join(root, "cni", "ipam"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && net.ParseIP(d.Name()) != nil {
			ips = append(ips, d.Name())
		}
		return nil
	})
	return ips
}

// natRulesFor returns the nat table rules mentioning port.
func natRulesFor(t *testing.T, port int) []string {
	t.Helper()
	out, err := exec.Command("iptables", "-t", "nat", "-S").CombinedOutput()
	if err != nil {
		t.Fatalf("iptables -t nat -S: %v: %s", err, out)
	}
	var rules []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, fmt.Sprint(port)) {
			rules = append(rules, l)
		}
	}
	return rules
}

// iptablesMentioning returns the rules of every table (iptables-save) that
// mention ip as a whole address: portmap's DNAT of a hostPort names the pod
// IP (and, with per-pod rules, the bridge plugin's masquerade and the
// firewall plugin's accepts).
func iptablesMentioning(t *testing.T, ip string) []string {
	t.Helper()
	out, err := exec.Command("iptables-save").CombinedOutput()
	if err != nil {
		t.Fatalf("iptables-save: %v: %s", err, out)
	}
	var rules []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, " "+ip+"/") || strings.Contains(l, " "+ip+":") || strings.HasSuffix(l, " "+ip) {
			rules = append(rules, l)
		}
	}
	return rules
}

func podEvents(n *e2eNode, pod string) string {
	out, err := n.CLI("describe", "pod", pod)
	if err != nil {
		return ""
	}
	return out
}

func TestNetworkEndToEnd(t *testing.T) {
	n := newE2ENode(t)
	if _, err := exec.LookPath("iptables"); err != nil {
		t.Skip("iptables is not installed (make deps)")
	}
	if ents, _ := os.ReadDir(n.CNIConf); len(ents) != 0 {
		t.Fatalf("--cni-conf-dir %s not empty before the daemon starts: %v", n.CNIConf, ents)
	}
	if v := vethLinks(t); len(v) != 0 {
		t.Fatalf("veths in the node netns before any pod: %v", v)
	}
	n.Start()
	_, subnet, _ := net.ParseCIDR(netPodCIDR)

	var web v1.Pod
	t.Run("default conflist gives the pod an IP that serves HTTP to the node", func(t *testing.T) {
		n.Write("web.yaml", webManifest("web", netHostPort))
		started := time.Now()
		web = n.WaitPod("web-node1", "Running", 90*time.Second, running)
		conf := network.DefaultConfPath(n.Root)
		b, err := os.ReadFile(conf)
		if err != nil {
			t.Fatalf("the daemon wrote no default conflist: %v", err)
		}
		if ents, _ := os.ReadDir(n.CNIConf); len(ents) != 0 {
			t.Fatalf("the daemon wrote into --cni-conf-dir %s: %v", n.CNIConf, ents)
		}
		var cl struct {
			Name    string `json:"name"`
			Plugins []struct {
				Type   string `json:"type"`
				Bridge string `json:"bridge"`
				IPAM   struct {
					Type    string                `json:"type"`
					Ranges  [][]map[string]string `json:"ranges"`
					DataDir string                `json:"dataDir"`
				} `json:"ipam"`
			} `json:"plugins"`
		}
		if err := json.Unmarshal(b, &cl); err != nil {
			t.Fatalf("%s: %v", conf, err)
		}
		var types []string
		for _, p := range cl.Plugins {
			types = append(types, p.Type)
		}
		br := cl.Plugins[0]
		if cl.Name != network.DefaultNetworkName || br.Type != "bridge" || br.Bridge != network.DefaultBridge ||
			br.IPAM.Type != "host-local" || len(br.IPAM.Ranges) != 1 || br.IPAM.Ranges[0][0]["subnet"] != netPodCIDR ||
			br.IPAM.DataDir != filepath.Join(n.Root, "cni", "ipam") || !strings.Contains(strings.Join(types, ","), "portmap") {
			t.Fatalf("default conflist %s is not bridge %s + host-local %s under the root dir + portmap:\n%s", conf, network.DefaultBridge, netPodCIDR, b)
		}

		ip := net.ParseIP(web.Status.PodIP)
		if ip == nil || !subnet.Contains(ip) || len(web.Status.PodIPs) == 0 || web.Status.PodIPs[0].IP != web.Status.PodIP {
			t.Fatalf("podIP %q podIPs %v: want an address of --pod-cidr %s", web.Status.PodIP, web.Status.PodIPs, netPodCIDR)
		}
		url := "http://" + net.JoinHostPort(web.Status.PodIP, "8080") + "/"
		body := n.waitHTTP(url, "served-by-web", 15*time.Second)
		t.Logf("conflist %s: plugins %v; pod IP %s (Running %s after the drop); GET %s -> %q",
			filepath.Base(conf), types, web.Status.PodIP, time.Since(started).Round(100*time.Millisecond), url, strings.TrimSpace(body))

		// What teardown must remove later is there now (so its absence then means something).
		if v := vethLinks(t); len(v) != 1 {
			t.Fatalf("want one veth for the one pod, got %v", v)
		}
		if a := ipamAllocations(t, n.Root); len(a) != 1 || a[0] != web.Status.PodIP {
			t.Fatalf("host-local allocations %v, want [%s]", a, web.Status.PodIP)
		}
		if r := iptablesMentioning(t, web.Status.PodIP); len(r) == 0 {
			t.Fatalf("no iptables rule names the pod IP %s (portmap's DNAT of its hostPort)", web.Status.PodIP)
		}
	})
	if t.Failed() {
		return
	}

	hostURL := fmt.Sprintf("http://127.0.0.1:%d/", netHostPort)
	t.Run("hostPort reaches the pod through 127.0.0.1", func(t *testing.T) {
		body := n.waitHTTP(hostURL, "served-by-web", 15*time.Second)
		rules := natRulesFor(t, netHostPort)
		var dnat bool
		for _, r := range rules {
			dnat = dnat || (strings.Contains(r, "DNAT") && strings.Contains(r, web.Status.PodIP+":8080"))
		}
		if !dnat {
			t.Fatalf("no portmap DNAT rule to %s:8080 for hostPort %d; nat rules naming it:\n%s", web.Status.PodIP, netHostPort, strings.Join(rules, "\n"))
		}
		t.Logf("GET %s -> %q; %d nat rules name %d", hostURL, strings.TrimSpace(body), len(rules), netHostPort)
	})

	t.Run("a second pod on the same hostPort is refused, the first undisturbed", func(t *testing.T) {
		pid := n.SandboxPID(string(web.UID))
		n.Write("web2.yaml", webManifest("web2", netHostPort))
		start := time.Now()
		var ev string
		n.WaitFor("a FailedCreatePodSandBox event naming the port and its holder", 20*time.Second, func() bool {
			ev = podEvents(n, "web2")
			return strings.Contains(ev, "FailedCreatePodSandBox") && strings.Contains(ev, fmt.Sprint(netHostPort)) && strings.Contains(ev, "web-node1")
		})
		took := time.Since(start)
		var line string
		for _, l := range strings.Split(ev, "\n") {
			if strings.Contains(l, "FailedCreatePodSandBox") {
				line = strings.TrimSpace(l)
			}
		}
		if !strings.Contains(line, "Warning") {
			t.Fatalf("the refusal is not a Warning event:\n%s", ev)
		}
		// Give the daemon a few retries' worth of time: the refused pod must
		// stay Pending with ContainerCreating, never Running.
		time.Sleep(4 * time.Second)
		p2, ok := n.Pod("web2-node1")
		if !ok {
			t.Fatalf("web2 is not listed")
		}
		if p2.Status.Phase != v1.PodPending || p2.Status.PodIP != "" || len(p2.Status.ContainerStatuses) != 1 ||
			p2.Status.ContainerStatuses[0].State.Waiting == nil || p2.Status.ContainerStatuses[0].State.Waiting.Reason != "ContainerCreating" {
			b, _ := json.MarshalIndent(p2.Status, "", "  ")
			t.Fatalf("refused pod's status, want Pending/ContainerCreating without an IP:\n%s", b)
		}
		get, _ := n.CLI("get", "pods")
		p1, _ := n.Pod("web-node1")
		if p1.UID != web.UID || !running(&p1) || p1.Status.ContainerStatuses[0].RestartCount != 0 ||
			n.SandboxPID(string(web.UID)) != pid || p1.Status.PodIP != web.Status.PodIP {
			t.Fatalf("the first pod was disturbed: uid %s (was %s), restarts %d, sandbox pid %d (was %d), IP %s (was %s)",
				p1.UID, web.UID, p1.Status.ContainerStatuses[0].RestartCount, n.SandboxPID(string(web.UID)), pid, p1.Status.PodIP, web.Status.PodIP)
		}
		if body, err := httpGet(hostURL); err != nil || !strings.Contains(body, "served-by-web") || strings.Contains(body, "web2") {
			t.Fatalf("hostPort %d after the refusal: %q, %v", netHostPort, body, err)
		}
		// The refused attempts leave nothing: still one veth, one IP.
		if v, a := vethLinks(t), ipamAllocations(t, n.Root); len(v) != 1 || len(a) != 1 {
			t.Fatalf("refused pod left network state: veths %v, allocations %v", v, a)
		}
		// The retries back off (kubelet-like) rather than spin: show how
		// the event stands after them.
		for _, l := range strings.Split(podEvents(n, "web2"), "\n") {
			if strings.Contains(l, "FailedCreatePodSandBox") {
				line = strings.TrimSpace(l)
			}
		}
		t.Logf("refused within %s; after 4 s more the event reads: %s\nget pods:\n%s", took.Round(100*time.Millisecond), line, get)
	})

	var web2IP string
	t.Run("deleting the holder lets the refused pod take the port", func(t *testing.T) {
		n.Remove("web.yaml")
		p2 := n.WaitPod("web2-node1", "Running", 40*time.Second, running)
		n.waitHTTP(hostURL, "served-by-web2", 15*time.Second)
		web2IP = p2.Status.PodIP
		t.Logf("web2 Running with IP %s, hostPort %d now serves it", p2.Status.PodIP, netHostPort)
	})

	t.Run("teardown leaves no veth, IP allocation or DNAT rule", func(t *testing.T) {
		n.Remove("web2.yaml")
		n.WaitFor("every pod gone", 30*time.Second, func() bool { p, err := n.Pods(); return err == nil && len(p) == 0 })
		if v := vethLinks(t); len(v) != 0 {
			t.Fatalf("veths left in the node netns: %v", v)
		}
		if a := ipamAllocations(t, n.Root); len(a) != 0 {
			t.Fatalf("host-local allocations left under %s: %v", filepath.Join(n.Root, "cni", "ipam"), a)
		}
		if r := natRulesFor(t, netHostPort); len(r) != 0 {
			t.Fatalf("nat rules naming hostPort %d left:\n%s", netHostPort, strings.Join(r, "\n"))
		}
		for _, ip := range []string{web.Status.PodIP, web2IP} {
			if r := iptablesMentioning(t, ip); ip != "" && len(r) != 0 {
				t.Fatalf("iptables rules naming the deleted pod IP %s left:\n%s", ip, strings.Join(r, "\n"))
			}
		}
		if _, err := httpGet(hostURL); err == nil {
			t.Fatalf("%s still answers after teardown", hostURL)
		}
	})
}

// TestStartupProbeDelaysLiveness: a liveness probe that fails until the
// container has started is held back by the startup probe; once started,
// liveness applies and a failure restarts the container (Unhealthy, Killing).
func TestStartupProbeDelaysLiveness(t *testing.T) {
	n := newE2ENode(t)
	n.Start()
	// Both probes look at /tmp/started, which appears ~3 s after the start:
	// with period 1 s and failureThreshold 1, an ungated liveness probe
	// would kill the container within its first second or two.
	n.Write("slow.yaml", `apiVersion: v1
kind: Pod
metadata: {name: slow}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: `+testImage+`
    command: [sh, -c, "rm -f /tmp/started; (sleep 3; touch /tmp/started) & while true; do sleep 1; done"]
    startupProbe: {exec: {command: [test, -f, /tmp/started]}, periodSeconds: 1, failureThreshold: 30}
    livenessProbe: {exec: {command: [test, -f, /tmp/started]}, periodSeconds: 1, failureThreshold: 1}
`)
	isStarted := func(p *v1.Pod) bool {
		cs := p.Status.ContainerStatuses
		return len(cs) == 1 && cs[0].Started != nil && *cs[0].Started
	}
	p := n.WaitPod("slow-node1", "Running", 30*time.Second, running)
	ranAt := p.Status.ContainerStatuses[0].State.Running.StartedAt.Time // whole seconds
	// Started this early is wrong (the file cannot exist yet); later than
	// that a slow poll may simply have missed the not-started window.
	if isStarted(&p) && time.Since(ranAt) < 2*time.Second {
		t.Fatalf("started %s after the container ran, before /tmp/started can exist: %+v", time.Since(ranAt), p.Status.ContainerStatuses[0])
	}
	p = n.WaitPod("slow-node1", "started by its startup probe", 20*time.Second, isStarted)
	startedAfter := time.Since(ranAt)
	if rc := p.Status.ContainerStatuses[0].RestartCount; rc != 0 {
		t.Fatalf("restarted %d times during startup: liveness was not gated by the startup probe", rc)
	}
	// Liveness now runs (and passes): still no restart a few periods later.
	time.Sleep(3 * time.Second)
	p, _ = n.Pod("slow-node1")
	if rc := p.Status.ContainerStatuses[0].RestartCount; rc != 0 || !running(&p) {
		t.Fatalf("after startup: restarts %d, running %v", rc, running(&p))
	}
	if ev := podEvents(n, "slow"); strings.Contains(ev, "Killing") || strings.Contains(ev, "Liveness probe failed") || strings.Contains(ev, "failed liveness probe") {
		t.Fatalf("liveness acted during startup:\n%s", ev)
	}

	// Make liveness fail: it now restarts the container.
	cmd := exec.Command(n.Bin, "exec", "--socket", n.Socket, "--root-dir", n.Root, "slow", "--", "rm", "/tmp/started")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("exec rm /tmp/started: %v: %s", err, out)
	}
	broken := time.Now()
	n.WaitPod("slow-node1", "restarted by its liveness probe", 20*time.Second, func(p *v1.Pod) bool {
		return p.Status.ContainerStatuses[0].RestartCount >= 1
	})
	restartAfter := time.Since(broken)
	ev := podEvents(n, "slow")
	if !strings.Contains(ev, "Unhealthy") || !strings.Contains(ev, "Liveness probe failed") && !strings.Contains(ev, "failed liveness probe") || !strings.Contains(ev, "Killing") {
		t.Fatalf("describe lacks Unhealthy + Killing for the liveness failure:\n%s", ev)
	}
	var lines []string
	for _, l := range strings.Split(ev, "\n") {
		if strings.Contains(l, "Unhealthy") || strings.Contains(l, "Killing") {
			lines = append(lines, strings.TrimSpace(l))
		}
	}
	t.Logf("started ~%s after the container ran (file appears at ~3 s; StartedAt has 1 s precision) with 0 restarts; liveness restart %s after the file was removed; events:\n%s",
		startedAfter.Round(100*time.Millisecond), restartAfter.Round(100*time.Millisecond), strings.Join(lines, "\n"))
	n.Remove("slow.yaml")
}
