package daemon

import (
	v1 "k8s.io/api/core/v1"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minikubelet/minikubelet/internal/testnode"
	"github.com/minikubelet/minikubelet/systemd"
)

// TestDaemonCgroupfs: the same daemon with the cgroupfs driver (hosts
// without systemd): a pod runs in the kubelet's /kubepods tree and its
// cgroups go with it; a restart adopts it. The same daemon (with
// --crashloop-max 1s) also covers a hostNetwork pod probed on 127.0.0.1,
// native sidecars, activeDeadlineSeconds and the exit-record cap.
func TestDaemonCgroupfs(t *testing.T) {
	n := newE2ENode(t)
	n.Start("--cgroup-driver", "cgroupfs", "--crashloop-max", "1s", "--pod-log-retention", "3s")
	n.Write("app.yaml", podManifest("app", "Always", 1, `while true; do sleep 1; done`))
	p := n.WaitPod("app-node1", "Running", 60*time.Second, running)
	rel := systemd.PlanPod(&p, systemd.PlanOptions{}).CgroupfsPath
	var dirs []string
	// "": a pure v2 host (the make test-vm guest) has its one hierarchy at
	// /sys/fs/cgroup itself, no per-controller folders.
	for _, h := range []string{"pids", "memory", "cpu,cpuacct", "unified", ""} {
		if h == "" {
			if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err != nil {
				continue
			}
		}
		d := filepath.Join("/sys/fs/cgroup", h, rel)
		if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", h)); err != nil {
			continue
		}
		dirs = append(dirs, d)
	}
	found := false
	for _, d := range dirs {
		if _, err := os.Stat(d); err == nil {
			found = true
		}
	}
	if !found {
		t.Fatalf("pod cgroup %s found in none of %v", rel, dirs)
	}
	out, err := n.CLI("describe", "pod", "app")
	if err != nil || !strings.Contains(out, "Driver:  cgroupfs") {
		t.Fatalf("describe (%v):\n%s", err, out)
	}
	n.Stop(syscall.SIGKILL)
	n.Start("--cgroup-driver", "cgroupfs", "--crashloop-max", "1s", "--pod-log-retention", "3s")
	time.Sleep(time.Second)
	q := n.WaitPod("app-node1", "Running", 30*time.Second, running)
	if containerID(&q) != containerID(&p) {
		t.Fatalf("restart did not adopt the pod: container %s, was %s", containerID(&q), containerID(&p))
	}
	// A kubeadm-shaped pod: hostNetwork, probed on 127.0.0.1.
	n.Write("hostnet.yaml", `apiVersion: v1
kind: Pod
metadata: {name: hostnet}
spec:
  hostNetwork: true
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: `+testImage+`
    command: [sh, -c, "mkdir -p /www; echo ok > /www/healthz; exec httpd -f -p 127.0.0.1:18081 -h /www"]
    readinessProbe: {httpGet: {host: 127.0.0.1, path: /healthz, port: 18081}, periodSeconds: 1}
    livenessProbe: {httpGet: {host: 127.0.0.1, path: /healthz, port: 18081}, periodSeconds: 1}
`)
	h := n.WaitPod("hostnet-node1", "Ready", 30*time.Second, func(p *v1.Pod) bool {
		for _, c := range p.Status.Conditions {
			if c.Type == v1.PodReady && c.Status == v1.ConditionTrue {
				return true
			}
		}
		return false
	})
	if h.Status.PodIP == "" || h.Status.PodIP != h.Status.HostIP {
		t.Fatalf("hostNetwork pod IP %q, host IP %q", h.Status.PodIP, h.Status.HostIP)
	}
	n.Remove("hostnet.yaml")

	// A second daemon on the same root dir refuses to start.
	second := exec.Command(n.Bin, "run", "--node-name", "node1", "--root-dir", n.Root, "--manifest-dir", n.Manifests,
		"--log-dir", n.Logs, "--socket", filepath.Join(n.Dir, "second.sock"), "--cgroup-driver", "cgroupfs")
	secondOut, err := second.CombinedOutput()
	if err == nil || !strings.Contains(string(secondOut), "another minikubelet") {
		t.Fatalf("second daemon on the same root: err %v, output:\n%s", err, secondOut)
	}

	// Native sidecars (restartable init containers) start first and keep
	// running beside the app; activeDeadlineSeconds fails the pod. The
	// deadline grows with MKL_TEST_SLOWDOWN: under emulation the sandbox
	// alone can take 13 s, and the pod failed before it was seen Running.
	deadline := int(testnode.Scale(10*time.Second) / time.Second)
	n.Write("side.yaml", `apiVersion: v1
kind: Pod
metadata: {name: side}
spec:
  terminationGracePeriodSeconds: 1
  activeDeadlineSeconds: `+strconv.Itoa(deadline)+`
  initContainers:
  - {name: proxy, image: `+testImage+`, restartPolicy: Always, command: [sh, -c, "while true; do sleep 1; done"]}
  containers:
  - {name: app, image: `+testImage+`, command: [sh, -c, "while true; do sleep 1; done"]}
`)
	sp := n.WaitPod("side-node1", "Running with its sidecar", 30*time.Second, running)
	if len(sp.Status.InitContainerStatuses) != 1 || sp.Status.InitContainerStatuses[0].State.Running == nil {
		t.Fatalf("sidecar status: %+v", sp.Status.InitContainerStatuses)
	}
	sp = n.WaitPod("side-node1", "Failed by activeDeadlineSeconds", 20*time.Second+time.Duration(deadline)*time.Second, func(p *v1.Pod) bool { return p.Status.Phase == v1.PodFailed })
	if sp.Status.Reason != "DeadlineExceeded" {
		t.Fatalf("reason %q, want DeadlineExceeded", sp.Status.Reason)
	}
	n.Remove("side.yaml")

	// A crash loop keeps the last 8 exited instances (their exit records
	// and lastState), not one per restart.
	n.Write("loop.yaml", podManifest("loop", "Always", 1, `exit 3`))
	lp := n.WaitPod("loop-node1", "11 restarts", 60*time.Second, func(p *v1.Pod) bool {
		return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].RestartCount >= 11
	})
	if lt := lp.Status.ContainerStatuses[0].LastTerminationState.Terminated; lt == nil || lt.ExitCode != 3 {
		t.Fatalf("lastState: %+v", lp.Status.ContainerStatuses[0].LastTerminationState)
	}
	// Collection follows each restart: wait for it rather than catch the
	// instant between a new instance's record and an old one's removal.
	n.WaitFor("at most 9 container records kept", 20*time.Second, func() bool {
		ents, _ := os.ReadDir(filepath.Join(n.Root, "pods", string(lp.UID), "containers"))
		return len(ents) <= 9
	})
	n.Remove("loop.yaml")
	n.Remove("app.yaml")
	n.WaitFor("pod and its cgroups gone", 20*time.Second, func() bool {
		if _, ok := n.Pod("app-node1"); ok {
			return false
		}
		for _, d := range dirs {
			if _, err := os.Stat(d); err == nil {
				return false
			}
		}
		return true
	})
	// Its logs outlive it by --pod-log-retention (3s here), then go.
	logDir := filepath.Join(n.Logs, "default_app-node1_"+string(p.UID))
	if _, err := os.Stat(logDir); err != nil {
		t.Fatalf("logs removed with the pod: %v", err)
	}
	n.WaitFor("the gone pod's logs removed after the retention", 20*time.Second, func() bool {
		_, err := os.Stat(logDir)
		return os.IsNotExist(err)
	})
}
