package daemon

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	statsv1alpha1 "k8s.io/kubelet/pkg/apis/stats/v1alpha1"

	"github.com/minikubelet/minikubelet/internal/cluster"
	"github.com/minikubelet/minikubelet/internal/cluster/clustertest"
)

// TestClusterMode runs the daemon against a real kube-apiserver + etcd
// (Node authorizer, NodeRestriction) with the node's own certificate.
//
// The outage step keeps the API server down for MKL_CLUSTER_OUTAGE (default
// a minute) and the Node is watched, in the background of the other steps,
// for MKL_CLUSTER_READY_FOR (default 2m): the figures, at the cost of
// about half a minute over the steps themselves.
func TestClusterMode(t *testing.T) {
	n := newE2ENode(t)
	c := clustertest.Start(t)
	ctx := context.Background()
	admin := c.Admin
	const node = "node1"
	// The kubelet configuration kubeadm writes, trimmed: webhook
	// authentication and authorization of the kubelet API, the cluster CA
	// for client certificates, and fields read but not implemented yet.
	cfg := filepath.Join(n.Dir, "config.yaml")
	os.WriteFile(cfg, []byte(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous:
    enabled: false
  webhook:
    cacheTTL: 0s
    enabled: true
  x509:
    clientCAFile: `+c.CAFile+`
authorization:
  mode: Webhook
cgroupDriver: systemd
clusterDNS:
- 10.96.0.10
clusterDomain: cluster.local
healthzBindAddress: 127.0.0.1
healthzPort: 10248
rotateCertificates: true
staticPodPath: /etc/kubernetes/manifests
`), 0o644)
	// The API server proxies to nodes only at addresses that are not
	// loopback: the node gets one on a dummy link of the test node's own
	// network namespace (a veth pair: kernels without the dummy driver have
	// it; removed at the end).
	nodeIP := "127.0.0.1"
	if out, err := exec.Command("ip", "link", "add", "mkl-node0", "type", "veth", "peer", "name", "mkl-node1").CombinedOutput(); err == nil {
		t.Cleanup(func() { exec.Command("ip", "link", "del", "mkl-node0").Run() })
		if out, err := exec.Command("sh", "-c", "ip addr add 10.233.233.1/32 dev mkl-node0 && ip link set mkl-node1 up && ip link set mkl-node0 up").CombinedOutput(); err != nil {
			t.Fatalf("dummy link: %v: %s", err, out)
		}
		nodeIP = "10.233.233.1"
	} else {
		t.Logf("no veth link (%v: %s): the node proxy checks are skipped", err, out)
	}
	startArgs := []string{"--kubeconfig", c.NodeKubeconfig(node), "--config", cfg, "--node-ip", nodeIP,
		"--node-labels", "example.com/role=edge", "--register-with-taints", "example.com/dedicated=edge:NoSchedule"}
	n.Start(startArgs...)
	// httpd (busybox's, backgrounded) listens on the pod's loopback only:
	// kubectl port-forward reaches it through the API server and the
	// kubelet API's dial inside the pod's network namespace.
	n.Write("web.yaml", podManifest("web", "Always", 2, `mkdir -p /tmp/www; echo pf-ok > /tmp/www/index.html; httpd -p 127.0.0.1:18090 -h /tmp/www; echo "hello from $HOSTNAME"; i=0; while true; do i=$((i+1)); echo tick $i; sleep 1; done`))
	const web = "web-node1"
	n.WaitPod(web, "Running", 60*time.Second, running)

	var nodeObj *v1.Node
	t.Run("Node registers and turns Ready", func(t *testing.T) {
		n.WaitFor("Node Ready", 60*time.Second, func() bool {
			got, err := admin.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
			if err != nil {
				return false
			}
			nodeObj = got
			return nodeReady(got)
		})
		l := nodeObj.Labels
		if l["kubernetes.io/hostname"] != node || l["kubernetes.io/os"] != "linux" || l["kubernetes.io/arch"] == "" ||
			l["beta.kubernetes.io/os"] != "linux" || l["example.com/role"] != "edge" {
			t.Errorf("labels: %v", l)
		}
		// (The TaintNodesByCondition admission adds node.kubernetes.io/not-ready
		// at creation; the node lifecycle controller, not running here, removes it.)
		tainted := false
		for _, tn := range nodeObj.Spec.Taints {
			tainted = tainted || tn.Key == "example.com/dedicated" && tn.Value == "edge" && tn.Effect == v1.TaintEffectNoSchedule
		}
		if !tainted {
			t.Errorf("taints: %v", nodeObj.Spec.Taints)
		}
		var internal string
		for _, a := range nodeObj.Status.Addresses {
			if a.Type == v1.NodeInternalIP {
				internal = a.Address
			}
		}
		if internal != nodeIP {
			t.Errorf("InternalIP %q, addresses %v", internal, nodeObj.Status.Addresses)
		}
		if nodeObj.Status.DaemonEndpoints.KubeletEndpoint.Port != 10250 {
			t.Errorf("kubelet endpoint port %d", nodeObj.Status.DaemonEndpoints.KubeletEndpoint.Port)
		}
		for _, r := range []v1.ResourceName{v1.ResourceCPU, v1.ResourceMemory, v1.ResourceEphemeralStorage, v1.ResourcePods} {
			if q, ok := nodeObj.Status.Capacity[r]; !ok || q.IsZero() {
				t.Errorf("capacity %s: %v", r, nodeObj.Status.Capacity)
			}
			if _, ok := nodeObj.Status.Allocatable[r]; !ok {
				t.Errorf("allocatable %s missing", r)
			}
		}
		ni := nodeObj.Status.NodeInfo
		if ni.KubeletVersion != cluster.KubernetesVersion || !strings.HasPrefix(ni.ContainerRuntimeVersion, "minikubelet://") || ni.KernelVersion == "" {
			t.Errorf("nodeInfo: %+v", ni)
		}
		for _, ct := range []v1.NodeConditionType{v1.NodeMemoryPressure, v1.NodeDiskPressure, v1.NodePIDPressure} {
			if cond := condition(nodeObj, ct); cond == nil || cond.Status != v1.ConditionFalse || cond.LastHeartbeatTime.IsZero() {
				t.Errorf("condition %s: %+v", ct, cond)
			}
		}
	})
	if t.Failed() {
		t.FailNow()
	}

	// The Node stays Ready and its lease is renewed for readyFor (the
	// issue's 2 minutes; MKL_CLUSTER_READY_FOR to change), watched in the
	// background while the other subtests run; the API server outage below
	// is a gap in what can be seen, not a failure.
	readyFor := 2 * time.Minute
	if d, err := time.ParseDuration(os.Getenv("MKL_CLUSTER_READY_FOR")); err == nil {
		readyFor = d
	}
	readyWatch := watchNodeReady(ctx, admin, node, nodeObj.UID)

	t.Run("Lease owned by the Node and renewed", func(t *testing.T) {
		n.WaitFor("a lease renewal", 30*time.Second, func() bool { return readyWatch.snapshot().renewals >= 1 })
		l, err := admin.CoordinationV1().Leases(cluster.LeaseNamespace).Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if *l.Spec.HolderIdentity != node || *l.Spec.LeaseDurationSeconds != 40 {
			t.Fatalf("lease spec: %+v", l.Spec)
		}
		// The first lease may predate the Node; a renewal sets the owner.
		if len(l.OwnerReferences) != 1 || l.OwnerReferences[0].Kind != "Node" || l.OwnerReferences[0].UID != nodeObj.UID {
			t.Fatalf("lease owners %+v, node uid %s", l.OwnerReferences, nodeObj.UID)
		}
	})

	var mirrorUID types.UID
	t.Run("mirror pod with the kubelet's annotations and status", func(t *testing.T) {
		mp := waitMirror(t, n, admin, web, "", 30*time.Second)
		mirrorUID = mp.UID
		local, _ := n.Pod(web)
		a := mp.Annotations
		if a[cluster.ConfigMirrorAnnotationKey] == "" || a[cluster.ConfigMirrorAnnotationKey] != a[cluster.ConfigHashAnnotationKey] ||
			a[cluster.ConfigHashAnnotationKey] != string(local.UID) || a[cluster.ConfigSourceAnnotationKey] != "file" || a[cluster.ConfigSeenAnnotationKey] == "" {
			t.Errorf("annotations: %v (static uid %s)", a, local.UID)
		}
		if len(mp.OwnerReferences) != 1 {
			t.Fatalf("ownerReferences: %+v", mp.OwnerReferences)
		}
		o := mp.OwnerReferences[0]
		if o.Kind != "Node" || o.APIVersion != "v1" || o.Name != node || o.UID != nodeObj.UID || o.Controller == nil || !*o.Controller {
			t.Errorf("ownerReference: %+v", o)
		}
		if mp.Spec.NodeName != node {
			t.Errorf("spec.nodeName %q", mp.Spec.NodeName)
		}
		waitMirrorStatus(t, n, admin, web)
	})

	t.Run("events reach the API server with the node as source", func(t *testing.T) {
		n.WaitFor("pod events in the API", 30*time.Second, func() bool {
			evs, err := admin.CoreV1().Events("default").List(ctx, metav1.ListOptions{})
			if err != nil {
				return false
			}
			for _, e := range evs.Items {
				if e.InvolvedObject.Name == web && e.Source.Component == "kubelet" && e.Source.Host == node {
					return true
				}
			}
			return false
		})
	})

	t.Run("a deleted mirror pod comes back", func(t *testing.T) {
		if err := admin.CoreV1().Pods("default").Delete(ctx, web, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		mp := waitMirror(t, n, admin, web, mirrorUID, 30*time.Second)
		mirrorUID = mp.UID
		waitMirrorStatus(t, n, admin, web)
	})

	t.Run("--config: one warning names what is not implemented; flags win", func(t *testing.T) {
		b, _ := os.ReadFile(filepath.Join(n.Dir, "daemon-1.log"))
		var warn []string
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "not implemented yet") {
				warn = append(warn, l)
			}
		}
		// clusterDNS, clusterDomain and resolvConf are applied (not named).
		if len(warn) != 1 || strings.Contains(warn[0], "clusterDNS") || !strings.Contains(warn[0], "rotateCertificates") {
			t.Errorf("want one warning naming rotateCertificates and not clusterDNS, got %q", warn)
		}
		// --manifest-dir (a flag) overrode staticPodPath: web runs from n.Manifests.
	})

	t.Run("kubectl logs and the node proxy go through the API server to the kubelet API", func(t *testing.T) {
		tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		out, err := c.Kubectl(tctx, "logs", "-n", "default", web)
		if err != nil || !strings.Contains(out, "hello from web") || !strings.Contains(out, "tick 1\n") {
			t.Fatalf("kubectl logs: %v\n%s", err, out)
		}
		out, err = c.Kubectl(tctx, "logs", "-n", "default", web, "-c", "c", "--tail", "2", "--timestamps")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if err != nil || len(lines) != 2 || !strings.Contains(lines[1], " tick ") {
			t.Fatalf("kubectl logs --tail 2 --timestamps: %v\n%s", err, out)
		}
		if _, err := time.Parse(time.RFC3339Nano, strings.Fields(lines[1])[0]); err != nil {
			t.Errorf("no timestamp on %q", lines[1])
		}
		out, err = c.Kubectl(tctx, "logs", "-n", "default", web, "--limit-bytes", "5")
		if err != nil || out != "hello" {
			t.Errorf("kubectl logs --limit-bytes 5: %v %q", err, out)
		}
		if nodeIP == "127.0.0.1" {
			return
		}
		out, err = c.Kubectl(tctx, "get", "--raw", "/api/v1/nodes/"+node+"/proxy/pods")
		var list v1.PodList
		if err != nil || json.Unmarshal([]byte(out), &list) != nil || len(list.Items) != 1 || list.Items[0].Name != web {
			t.Errorf("node proxy /pods: %v\n%.500s", err, out)
		}
		out, err = c.Kubectl(tctx, "get", "--raw", "/api/v1/nodes/"+node+"/proxy/stats/summary")
		var sum statsv1alpha1.Summary
		if err != nil || json.Unmarshal([]byte(out), &sum) != nil || sum.Node.NodeName != node || len(sum.Pods) != 1 ||
			sum.Pods[0].PodRef.Name != web || len(sum.Pods[0].Containers) != 1 {
			t.Errorf("node proxy /stats/summary: %v\n%.800s", err, out)
		}
		// Without a client certificate or token: 401.
		tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
		resp, err := (&http.Client{Transport: tr}).Get("https://127.0.0.1:10250/pods")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("anonymous /pods: %d, want 401", resp.StatusCode)
		}
	})

	t.Run("kubectl exec, attach and port-forward go through the API server to the kubelet API", func(t *testing.T) {
		if nodeIP == "127.0.0.1" {
			t.Skip("the API server does not stream to a node on loopback; no veth link here")
		}
		tctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		// stdout, stderr and the exit code come back apart.
		cmd := c.KubectlCmd(tctx, "exec", "-n", "default", web, "--", "sh", "-c", "echo out $HOSTNAME; echo err >&2; exit 3")
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 3 || out.String() != "out "+web+"\n" || !strings.Contains(errb.String(), "err\n") {
			t.Fatalf("kubectl exec: %v, stdout %q, stderr %q", err, out.String(), errb.String())
		}
		// -i: stdin reaches the command; the session ends with the command.
		cmd = c.KubectlCmd(tctx, "exec", "-i", "-n", "default", web, "-c", "c", "--", "sh", "-c", "read l; echo got $l")
		cmd.Stdin = strings.NewReader("line1\n")
		b, err := cmd.CombinedOutput()
		if err != nil || string(b) != "got line1\n" {
			t.Fatalf("kubectl exec -i: %v %q", err, b)
		}
		// attach shows what the container writes from now on.
		cmd = c.KubectlCmd(tctx, "attach", "-n", "default", web, "-c", "c")
		pr, pw := io.Pipe()
		cmd.Stdout, cmd.Stderr = pw, pw
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cmd.Process.Kill(); cmd.Wait() }()
		line, err := readLineMatching(pr, func(l string) bool { return strings.HasPrefix(l, "tick ") })
		if err != nil {
			t.Fatalf("kubectl attach: %v (last line %q)", err, line)
		}
		pw.Close()
		// port-forward to a port on the pod's loopback.
		pf := c.KubectlCmd(tctx, "port-forward", "-n", "default", "pod/"+web, ":18090")
		pr, pw = io.Pipe()
		pf.Stdout, pf.Stderr = pw, pw
		if err := pf.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { pf.Process.Kill(); pf.Wait() }()
		// "Forwarding from 127.0.0.1:PORT -> 18090"
		line, err = readLineMatching(pr, func(l string) bool { return strings.HasPrefix(l, "Forwarding from 127.0.0.1:") })
		if err != nil {
			t.Fatalf("kubectl port-forward: %v (last line %q)", err, line)
		}
		go io.Copy(io.Discard, pr)
		local := strings.Fields(strings.TrimPrefix(line, "Forwarding from "))[0]
		resp, err := (&http.Client{Timeout: 30 * time.Second}).Get("http://" + local + "/index.html")
		if err != nil {
			t.Fatalf("GET through port-forward: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "pf-ok\n" {
			t.Fatalf("GET through port-forward: %d %q", resp.StatusCode, body)
		}
	})

	t.Run("healthz", func(t *testing.T) {
		resp, err := http.Get("http://127.0.0.1:10248/healthz")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "ok" {
			t.Fatalf("healthz: %d %q", resp.StatusCode, b)
		}
	})

	t.Run("an API server outage changes nothing for the pods; the node catches up", func(t *testing.T) {
		outage := time.Minute
		if d, err := time.ParseDuration(os.Getenv("MKL_CLUSTER_OUTAGE")); err == nil {
			outage = d
		}
		before, _ := n.Pod(web)
		c.StopAPIServer()
		down := time.Now()
		// A pod added during the outage starts as fast as ever.
		n.Write("web2.yaml", podManifest("web2", "Always", 2, `while true; do sleep 1; done`))
		n.WaitPod("web2-node1", "Running while the API server is down", 30*time.Second, running)
		for time.Since(down) < outage {
			now, ok := n.Pod(web)
			if !ok || !running(&now) || now.UID != before.UID ||
				now.Status.ContainerStatuses[0].ContainerID != before.Status.ContainerStatuses[0].ContainerID ||
				now.Status.ContainerStatuses[0].RestartCount != before.Status.ContainerStatuses[0].RestartCount {
				t.Fatalf("pod %s changed during the outage: %+v", web, now.Status)
			}
			time.Sleep(500 * time.Millisecond)
		}
		c.StartAPIServer()
		waitMirror(t, n, admin, "web2-node1", "", 60*time.Second)
		waitMirrorStatus(t, n, admin, "web2-node1")
		waitMirrorStatus(t, n, admin, web)
		n.WaitFor("Node Ready after the outage", 30*time.Second, func() bool {
			got, err := admin.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
			return err == nil && nodeReady(got)
		})
	})

	t.Run("removing a manifest removes its mirror pod", func(t *testing.T) {
		n.Remove("web2.yaml")
		n.WaitFor("mirror pod web2-node1 gone", 60*time.Second, func() bool {
			_, err := admin.CoreV1().Pods("default").Get(ctx, "web2-node1", metav1.GetOptions{})
			return apierrors.IsNotFound(err)
		})
	})

	t.Run("the Node stayed Ready with its lease renewed", func(t *testing.T) {
		n.WaitFor(fmt.Sprintf("%s of watching the Node", readyFor), readyFor+30*time.Second, func() bool {
			return readyWatch.snapshot().span >= readyFor
		})
		w := readyWatch.stop()
		t.Logf("watched %s: %d lease renewals, %d samples Ready, %d unreachable", w.span.Round(time.Second), w.renewals, w.ready, w.unreachable)
		if w.notReady != "" {
			t.Errorf("the Node was not Ready: %s", w.notReady)
		}
		// Every 10 s while the API server could be reached (a sample a second).
		if min := w.ready/10 - 1; w.renewals < min || w.renewals == 0 {
			t.Errorf("%d lease renewals in %d s of reachable API server, want at least %d", w.renewals, w.ready, min)
		}
	})

	// Last: a restarted daemon reports its Node NotReady ("no reconcile
	// round completed yet") until its first round, which the 2-minute
	// Ready watch above would count.
	//
	// The kubelet deletes orphaned mirror pods only once its sources are
	// ready; a restarted daemon's store is empty for a moment, and the
	// mirror pods must not look orphaned then (found by the kubeadm e2e:
	// every control-plane mirror pod was deleted and recreated).
	t.Run("a daemon restart keeps the mirror pods", func(t *testing.T) {
		w, err := admin.CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + web})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
		before, err := admin.CoreV1().Pods("default").Get(ctx, web, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		n.Stop(syscall.SIGTERM)
		n.Start(startArgs...)
		// A pod written after the restart gets its mirror pod from the same
		// sync that would delete orphans.
		n.Write("after.yaml", podManifest("after", "Always", 0, `while true; do sleep 1; done`))
		waitMirror(t, n, admin, "after-node1", "", 60*time.Second)
		n.Remove("after.yaml")
		n.WaitFor("after-node1 gone", 60*time.Second, func() bool { _, ok := n.Pod("after-node1"); return !ok })
		mp, err := admin.CoreV1().Pods("default").Get(ctx, web, metav1.GetOptions{})
		if err != nil || mp.UID != before.UID {
			t.Fatalf("mirror pod %s after the restart: %v, uid %s (was %s)", web, err, mp.UID, before.UID)
		}
		for {
			select {
			case ev := <-w.ResultChan():
				if ev.Type == watch.Deleted {
					t.Fatalf("the restarted daemon deleted mirror pod %s", web)
				}
				continue
			default:
			}
			break
		}
	})
}

func nodeReady(n *v1.Node) bool {
	c := condition(n, v1.NodeReady)
	return c != nil && c.Status == v1.ConditionTrue
}

func condition(n *v1.Node, t v1.NodeConditionType) *v1.NodeCondition {
	for i := range n.Status.Conditions {
		if n.Status.Conditions[i].Type == t {
			return &n.Status.Conditions[i]
		}
	}
	return nil
}

// waitMirror waits for the mirror pod name whose UID is not notUID.
func waitMirror(t *testing.T, n *e2eNode, admin kubernetes.Interface, name string, notUID types.UID, timeout time.Duration) *v1.Pod {
	t.Helper()
	var mp *v1.Pod
	n.WaitFor("mirror pod "+name, timeout, func() bool {
		got, err := admin.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
		if err != nil || got.UID == notUID || got.DeletionTimestamp != nil {
			return false
		}
		mp = got
		return true
	})
	return mp
}

// waitMirrorStatus waits until the mirror pod's status is the daemon's
// (as `minikubelet get pods -o json` shows it, times to the second).
func waitMirrorStatus(t *testing.T, n *e2eNode, admin kubernetes.Interface, name string) {
	t.Helper()
	var last, want string
	deadline := time.Now().Add(30 * time.Second)
	for {
		local, ok := n.Pod(name)
		mp, err := admin.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
		if ok && err == nil {
			lb, _ := json.Marshal(local.Status)
			var norm v1.PodStatus
			json.Unmarshal(lb, &norm)
			if equality.Semantic.DeepEqual(norm, mp.Status) && running(mp) {
				return
			}
			mb, _ := json.Marshal(mp.Status)
			last, want = string(mb), string(lb)
		}
		if time.Now().After(deadline) {
			t.Fatalf("mirror pod %s status never matched the daemon's:\nmirror: %s\ndaemon: %s", name, last, want)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// readyWatcher samples a Node's Ready condition and its lease every second.
type readyWatcher struct {
	mu     sync.Mutex
	w      readyWatch
	cancel context.CancelFunc
	done   chan struct{}
}

type readyWatch struct {
	span                         time.Duration
	renewals, ready, unreachable int
	notReady                     string // the first sample that was not Ready
}

func watchNodeReady(ctx context.Context, admin kubernetes.Interface, node string, _ types.UID) *readyWatcher {
	ctx, cancel := context.WithCancel(ctx)
	rw := &readyWatcher{cancel: cancel, done: make(chan struct{})}
	start := time.Now()
	go func() {
		defer close(rw.done)
		var last *metav1.MicroTime
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			got, err := admin.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
			l, lerr := admin.CoordinationV1().Leases(cluster.LeaseNamespace).Get(ctx, node, metav1.GetOptions{})
			rw.mu.Lock()
			rw.w.span = time.Since(start)
			switch {
			case err != nil:
				rw.w.unreachable++
			case nodeReady(got):
				rw.w.ready++
			case rw.w.notReady == "":
				rw.w.notReady = fmt.Sprintf("at %s: %+v", time.Since(start).Round(time.Second), condition(got, v1.NodeReady))
			}
			if lerr == nil && l.Spec.RenewTime != nil {
				if last != nil && !l.Spec.RenewTime.Equal(last) {
					rw.w.renewals++
				}
				last = l.Spec.RenewTime
			}
			rw.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return rw
}

func (rw *readyWatcher) snapshot() readyWatch {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	return rw.w
}

func (rw *readyWatcher) stop() readyWatch {
	rw.cancel()
	<-rw.done
	return rw.snapshot()
}

// readLineMatching reads lines until one matches (returned) or r ends.
func readLineMatching(r io.Reader, match func(string) bool) (string, error) {
	sc := bufio.NewScanner(r)
	last := ""
	for sc.Scan() {
		last = sc.Text()
		if match(last) {
			return last, nil
		}
	}
	if sc.Err() != nil {
		return last, sc.Err()
	}
	return last, io.ErrUnexpectedEOF
}
