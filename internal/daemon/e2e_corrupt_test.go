package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
)

// TestCorruptedStateIsReportedAndConverges (chaos scenario 5, short form):
// every JSON state file of one pod is truncated or turned to garbage while
// the daemon is down (a crash mid-write on a filesystem without the
// rename's guarantees, a disk error). The next start must come up, say
// which file is damaged, recreate that pod, and not touch the healthy one
// (same sandbox, same container, no restart).
func TestCorruptedStateIsReportedAndConverges(t *testing.T) {
	n := newE2ENode(t)
	n.Start()
	n.Write("keep.yaml", podManifest("keep", "Always", 1, `while true; do sleep 1; done`))
	n.Write("hurt.yaml", podManifest("hurt", "Always", 1, `while true; do sleep 1; done`))
	keep := n.WaitPod("keep-node1", "Running", 60*time.Second, running)
	hurt := n.WaitPod("hurt-node1", "Running", 60*time.Second, running)
	keepPID := n.SandboxPID(string(keep.UID))
	n.Stop(syscall.SIGKILL)

	var damaged []string
	filepath.WalkDir(filepath.Join(n.Root, "pods", string(hurt.UID)), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".json") {
			return nil
		}
		b, _ := os.ReadFile(p)
		if len(damaged)%2 == 0 {
			b = b[:len(b)/2] // truncated
		} else {
			b = []byte("\x00\xffgarbage{{")
		}
		os.WriteFile(p, b, 0o600)
		damaged = append(damaged, p)
		return nil
	})
	if len(damaged) == 0 {
		t.Fatal("no state file of the pod found")
	}
	t.Logf("damaged: %v", damaged)

	n.Start()
	n.WaitPod("hurt-node1", "Running again", 90*time.Second, func(p *v1.Pod) bool {
		return running(p) && containerID(p) != containerID(&hurt)
	})
	now := n.WaitPod("keep-node1", "Running", 30*time.Second, running)
	if containerID(&now) != containerID(&keep) || now.Status.ContainerStatuses[0].RestartCount != 0 || n.SandboxPID(string(keep.UID)) != keepPID {
		t.Errorf("the healthy pod was touched: container %s → %s, sandbox %d → %d, restarts %d",
			containerID(&keep), containerID(&now), keepPID, n.SandboxPID(string(keep.UID)), now.Status.ContainerStatuses[0].RestartCount)
	}
	// The damaged pod's earlier sandbox and container, still running
	// without records, are stopped: one of each (before the fix the pod
	// ran twice; chaos scenario 5 found it).
	n.WaitFor("one sandbox and one container scope per pod", 30*time.Second, func() bool {
		u := units(t)
		return strings.Count(u, "minikubelet sandbox default/hurt-node1") == 1 && strings.Count(u, "minikubelet container default/hurt-node1/c") == 1
	})
	n.checkConsistent(t)
	// The daemon's own records are each named once (a file only the pod's
	// supervisor reads, like spec.json, is never read again: the pod is
	// recreated from scratch).
	log, _ := os.ReadFile(filepath.Join(n.Dir, "daemon-2.log"))
	for _, p := range damaged {
		rel, _ := filepath.Rel(filepath.Join(n.Root, "pods", string(hurt.UID)), p)
		own := strings.HasPrefix(rel, "mkl/") || rel == "status.json" || rel == "sandbox/daemon.json"
		if got := strings.Count(string(log), "file="+p+" "); own && got != 1 {
			t.Errorf("the log names the damaged %s %d times, want once", rel, got)
		}
	}
}
