package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The daemon runs with --resolv-conf pointing at systemd-resolved's stub
// (nameserver 127.0.0.53, unreachable from a pod's network namespace) and
// the pods see the upstream list of /run/systemd/resolve/resolv.conf, as a
// kubeadm-configured kubelet gives them; ClusterFirst pods get --cluster-dns
// with the cluster's search list. (/run is the test node's own tmpfs.)
func TestE2EResolvConfStubAndClusterDNS(t *testing.T) {
	n := newE2ENode(t)
	upstream := "/run/systemd/resolve/resolv.conf" // runtime.SystemdResolvedUpstream
	if _, err := os.Stat(upstream); err == nil {
		t.Skipf("%s exists in the test node (systemd-resolved runs?); not overwriting it", upstream)
	}
	if err := os.MkdirAll(filepath.Dir(upstream), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(upstream) })
	if err := os.WriteFile(upstream, []byte("# upstream\nnameserver 192.0.2.53\nnameserver 192.0.2.54\nsearch lan.example\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	stub := filepath.Join(n.Dir, "stub-resolv.conf")
	if err := os.WriteFile(stub, []byte("nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan.example\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	n.Start("--resolv-conf", stub, "--cluster-dns", "10.96.0.10", "--cluster-domain", "cluster.local")

	pod := func(name, policy string) string {
		return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
  namespace: kube-system
spec:
  dnsPolicy: %s
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: %s
    command: ["sh", "-c", "cat /etc/resolv.conf; echo END; exec sleep 1000"]
`, name, policy, testImage)
	}
	n.Write("default.yaml", pod("dns-default", "Default"))
	n.Write("cluster.yaml", pod("dns-cluster", "ClusterFirst"))
	resolv := func(name string) string {
		var out string
		n.WaitFor(name+"'s resolv.conf", 60*time.Second, func() bool {
			var err error
			out, err = n.CLI("logs", name+"-node1", "-n", "kube-system", "--log-dir", n.Logs)
			return err == nil && strings.Contains(out, "END")
		})
		return strings.TrimSuffix(out, "END\n")
	}
	if got, want := resolv("dns-default"), "search lan.example\nnameserver 192.0.2.53\nnameserver 192.0.2.54\n"; got != want {
		t.Errorf("dnsPolicy Default with the stub as --resolv-conf:\n%s\nwant the upstream list:\n%s", got, want)
	}
	if got, want := resolv("dns-cluster"), "search kube-system.svc.cluster.local svc.cluster.local cluster.local lan.example\nnameserver 10.96.0.10\noptions ndots:5\n"; got != want {
		t.Errorf("dnsPolicy ClusterFirst:\n%s\nwant:\n%s", got, want)
	}
}
