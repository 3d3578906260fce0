package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minikubelet/minikubelet/systemd"
)

// TestDaemonCgroupfs: the same daemon with the cgroupfs driver (hosts
// without systemd): a pod runs in the kubelet's /kubepods tree and its
// cgroups go with it; a restart adopts it.
func TestDaemonCgroupfs(t *testing.T) {
	n := newE2ENode(t)
	n.start("--cgroup-driver", "cgroupfs")
	n.write("app.yaml", podManifest("app", "Always", 1, `while true; do sleep 1; done`))
	p := n.waitPod("app-node1", "Running", 60*time.Second, running)
	rel := systemd.PlanPod(&p, systemd.PlanOptions{}).CgroupfsPath
	var dirs []string
	for _, h := range []string{"pids", "memory", "cpu,cpuacct", "unified"} {
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
	out, err := n.cli("describe", "pod", "app")
	if err != nil || !strings.Contains(out, "Driver:  cgroupfs") {
		t.Fatalf("describe (%v):\n%s", err, out)
	}
	n.stop(syscall.SIGKILL)
	n.start("--cgroup-driver", "cgroupfs")
	time.Sleep(time.Second)
	q := n.waitPod("app-node1", "Running", 30*time.Second, running)
	if containerID(&q) != containerID(&p) {
		t.Fatalf("restart did not adopt the pod: container %s, was %s", containerID(&q), containerID(&p))
	}
	n.remove("app.yaml")
	n.waitFor("pod and its cgroups gone", 20*time.Second, func() bool {
		if _, ok := n.pod("app-node1"); ok {
			return false
		}
		for _, d := range dirs {
			if _, err := os.Stat(d); err == nil {
				return false
			}
		}
		return true
	})
}
