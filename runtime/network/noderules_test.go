package network

import (
	"context"
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

	"github.com/minikubelet/minikubelet/runtime/network/nettest"
	"github.com/minikubelet/minikubelet/runtime/probe"
)

func TestNodeRulesRestoreInput(t *testing.T) {
	got := nodeRulesRestore("10.86.0.0/16", "224.0.0.0/4")
	want := `*nat
:MINIKUBELET-POD-MASQ - [0:0]
-A MINIKUBELET-POD-MASQ -d 10.86.0.0/16 -j RETURN
-A MINIKUBELET-POD-MASQ -d 224.0.0.0/4 -j RETURN
-A MINIKUBELET-POD-MASQ -j MASQUERADE
COMMIT
*filter
:MINIKUBELET-POD-FORWARD - [0:0]
-A MINIKUBELET-POD-FORWARD -s 10.86.0.0/16 -j ACCEPT
-A MINIKUBELET-POD-FORWARD -d 10.86.0.0/16 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
COMMIT
`
	if got != want {
		t.Fatalf("restore input:\n%s\nwant:\n%s", got, want)
	}
	r, err := newNodeRules("10.86.0.0/16")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if !r.due(now) {
		t.Error("never made: want due")
	}
	r.checked = now
	if r.due(now.Add(nodeRulesRecheck - time.Second)) {
		t.Error("made just now: want not due")
	}
	if !r.due(now.Add(nodeRulesRecheck)) {
		t.Error("made a recheck period ago: want due")
	}
	if _, err := newNodeRules("10.86.0.0/33"); err == nil {
		t.Error("bad CIDR accepted")
	}
}

// countIptables puts logging wrappers of iptables and ip6tables first in
// PATH (the plugins inherit it) and returns a function that reports how
// many commands ran since.
func countIptables(t *testing.T) func() []string {
	t.Helper()
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	for _, bin := range []string{"iptables", "ip6tables", "iptables-restore", "ip6tables-restore"} {
		real, err := exec.LookPath(bin)
		if err != nil {
			t.Fatal(err)
		}
		script := fmt.Sprintf("#!/bin/sh\necho \"%s $*\" >> %s\nexec %s \"$@\"\n", bin, log, real)
		if err := os.WriteFile(filepath.Join(dir, bin), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", dir+":"+os.Getenv("PATH"))
	return func() []string {
		b, _ := os.ReadFile(log)
		os.Remove(log)
		return strings.Fields(strings.ReplaceAll(strings.TrimSpace(string(b)), " ", "_"))
	}
}

// outsideHost makes a network namespace beside the node, linked to it by a
// veth (node 192.0.2.2, outside 192.0.2.1), serving GET / with the address
// the request came from: a host outside the pod network.
func outsideHost(t *testing.T) (url string) {
	t.Helper()
	ns := nettest.NewNetns(t)
	for _, args := range [][]string{
		{"ip", "link", "add", "mklout0", "type", "veth", "peer", "name", "mklout1", "netns", ns},
		{"ip", "addr", "add", "192.0.2.2/24", "dev", "mklout0"},
		{"ip", "link", "set", "mklout0", "up"},
		{"nsenter", "--net=" + ns, "ip", "addr", "add", "192.0.2.1/24", "dev", "mklout1"},
		{"nsenter", "--net=" + ns, "ip", "link", "set", "mklout1", "up"},
	} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	t.Cleanup(func() { exec.Command("ip", "link", "del", "mklout0").Run() })
	l, err := probe.ListenInNetns(ns, "tcp", "192.0.2.1:8081")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		fmt.Fprint(w, host)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return "http://192.0.2.1:8081/"
}

// getFrom GETs url from inside the network namespace netns: the caller's
// address as the server saw it.
func getFrom(netns, url string) (string, error) {
	c := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return probe.DialInNetns(ctx, netns, network, addr)
		},
	}}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// TestDefaultNetworkNodeRules: the default network masquerades traffic
// leaving the pod CIDR and leaves pod-to-pod traffic alone with node-level
// rules, so an ADD and a DEL of a pod without hostPorts run no iptables
// command; a flushed ruleset is made again by the next ADD once due.
func TestDefaultNetworkNodeRules(t *testing.T) {
	requireCNI(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	count := countIptables(t)
	n := newTestNode(t)
	m := n.manager(t)
	outside := outsideHost(t)

	podA := PodNetwork{UID: "uid-ra", Namespace: "default", Name: "a-node1", NetnsPath: nettest.NewNetns(t)}
	resA, err := m.Setup(ctx, podA)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Teardown(context.Background(), podA) })
	first := count()
	t.Logf("first ADD (makes the node rules) ran %d iptables commands: %v", len(first), first)
	save := iptablesSave(t)
	for _, want := range []string{
		"-A POSTROUTING -s 10.86.0.0/16 -m comment --comment \"minikubelet: masquerade pod traffic leaving the pod network\" -j MINIKUBELET-POD-MASQ",
		"-A MINIKUBELET-POD-MASQ -d 10.86.0.0/16 -j RETURN",
		"-A MINIKUBELET-POD-MASQ -j MASQUERADE",
		"-A FORWARD -m comment --comment \"minikubelet: accept pod traffic\" -j MINIKUBELET-POD-FORWARD",
		"-A MINIKUBELET-POD-FORWARD -s 10.86.0.0/16 -j ACCEPT",
	} {
		if !strings.Contains(save, want+"\n") {
			t.Errorf("iptables-save lacks %q:\n%s", want, save)
		}
	}
	for _, line := range strings.Split(save, "\n") {
		if strings.Contains(line, masqChainName(DefaultNetworkName, podA.UID)) || strings.Contains(line, resA.IPs[0].String()+"/32") {
			t.Errorf("per-pod rule made for the default network: %s", line)
		}
	}

	podB := PodNetwork{UID: "uid-rb", Namespace: "default", Name: "b-node1", NetnsPath: nettest.NewNetns(t)}
	resB, err := m.Setup(ctx, podB)
	if err != nil {
		t.Fatal(err)
	}
	if c := count(); len(c) != 0 {
		t.Errorf("a second pod's ADD ran iptables commands: %v", c)
	}
	// Leaving the pod network: masqueraded to the node's address on that
	// link (without it the outside host, which has no route to the pod
	// CIDR, could not answer at all).
	if from, err := getFrom(podA.NetnsPath, outside); err != nil || from != "192.0.2.2" {
		t.Errorf("GET %s from pod A (%s): seen from %q, %v; want the node's 192.0.2.2", outside, resA.IPs[0], from, err)
	}
	// Pod to pod: not masqueraded.
	serveHTTP(t, podA.NetnsPath, 8080, "a")
	if from, err := getFrom(podB.NetnsPath, fmt.Sprintf("http://%s:8080/", resA.IPs[0])); err != nil || from != "a" {
		t.Errorf("GET pod A from pod B: %q, %v", from, err)
	}

	if err := m.Teardown(ctx, podB); err != nil {
		t.Fatal(err)
	}
	if c := count(); len(c) != 0 {
		t.Errorf("a pod's DEL ran iptables commands: %v", c)
	}

	// A firewall reload flushed the rules: the next ADD once due makes them again.
	for _, args := range [][]string{{"-t", "nat", "-F", "POSTROUTING"}, {"-t", "nat", "-F", podMasqChain}, {"-F", "FORWARD"}} {
		if out, err := exec.Command("iptables", args...).CombinedOutput(); err != nil {
			t.Fatalf("iptables %v: %v: %s", args, err, out)
		}
	}
	if _, err := getFrom(podA.NetnsPath, outside); err == nil {
		t.Fatal("pod A reaches the outside host with the rules flushed: the heal below would prove nothing")
	}
	m.node.Lock()
	m.rules.checked = time.Now().Add(-nodeRulesRecheck)
	m.node.Unlock()
	if _, err := m.Setup(ctx, podB); err != nil {
		t.Fatal(err)
	}
	if from, err := getFrom(podA.NetnsPath, outside); err != nil || from != "192.0.2.2" {
		t.Errorf("after the heal, GET from pod A: %q, %v", from, err)
	}
	// Made again, not added twice: the chains the restore declares are
	// rewritten (MINIKUBELET-POD-FORWARD was not flushed above), and each
	// jump is there once.
	counts := map[string]int{}
	for _, line := range strings.Split(iptablesSave(t), "\n") {
		for _, prefix := range []string{"-A " + podMasqChain + " ", "-A " + podForwardChain + " "} {
			if strings.HasPrefix(line, prefix) {
				counts[prefix]++
			}
		}
		if strings.HasSuffix(line, "-j "+podMasqChain) || strings.HasSuffix(line, "-j "+podForwardChain) {
			counts["jumps"]++
		}
	}
	if counts["-A "+podMasqChain+" "] != 3 || counts["-A "+podForwardChain+" "] != 2 || counts["jumps"] != 2 {
		t.Errorf("after the heal: rules %v, want 3 in %s, 2 in %s and 2 jumps", counts, podMasqChain, podForwardChain)
	}
	for _, p := range []PodNetwork{podA, podB} {
		if err := m.Teardown(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	exec.Command("ip", "link", "del", "mklout0").Run()
	assertNoTrace(t, n, m, podA.UID, resA.IPs[0])
	assertNoTrace(t, n, m, podB.UID, resB.IPs[0])
}
