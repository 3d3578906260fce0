package daemon

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
)

// checkConsistent verifies, once the node settled, that every listed pod
// has exactly one sandbox scope and one scope per running container, and
// that no state dir or pod slice exists for a pod that is not listed.
func (n *e2eNode) checkConsistent(t *testing.T) {
	t.Helper()
	pods, err := n.pods()
	if err != nil {
		t.Fatal(err)
	}
	u := units(t)
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
		if !running(&p) {
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
	ents, _ := os.ReadDir(filepath.Join(n.root, "pods"))
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

func containerID(p *v1.Pod) string {
	if len(p.Status.ContainerStatuses) == 0 {
		return ""
	}
	return p.Status.ContainerStatuses[0].ContainerID
}

// TestDaemonCrashSafety: SIGTERM leaves pods running and the next start
// adopts them; changes made while the daemon was down are reconciled; exit
// codes that happened meanwhile are reported; SIGKILL during bursts of
// creates and deletes leaves no duplicate and no orphan; after a simulated
// reboot (no processes, no units, state on disk) the pods come back.
func TestDaemonCrashSafety(t *testing.T) {
	n := newE2ENode(t)
	n.start()
	n.write("keep.yaml", podManifest("keep", "Always", 1, `while true; do sleep 1; done`))
	n.write("gone.yaml", podManifest("gone", "Always", 1, `while true; do sleep 1; done`))
	// Runs long enough to be seen Running on a slow host (the field host is
	// software-emulated: there 5 s passed before the first status said so),
	// and exits while the daemon is down below.
	n.write("exiter.yaml", podManifest("exiter", "Never", 1, `sleep 15; exit 42`))
	exiter := n.waitPod("exiter-node1", "Running", 60*time.Second, running)
	keep := n.waitPod("keep-node1", "Running", 60*time.Second, running)
	n.waitPod("gone-node1", "Running", 60*time.Second, running)
	n.write("netpod.yaml", podManifest("netpod", "Always", 1, `while true; do sleep 1; done`))
	netpod := n.waitPod("netpod-node1", "Running", 60*time.Second, running)
	keepPID := n.sandboxPID(string(keep.UID))

	t.Run("SIGTERM leaves pods running; restart adopts and reconciles", func(t *testing.T) {
		n.stop(syscall.SIGTERM)
		if !procAlive(keepPID) {
			t.Fatalf("SIGTERM of the daemon killed the pod (sandbox %d)", keepPID)
		}
		// While the daemon is down: a file goes, one comes, a container exits.
		n.remove("gone.yaml")
		// Someone breaks a pod's network meanwhile: CNI CHECK on adoption
		// finds it and the sandbox is recreated.
		netPID := n.sandboxPID(string(netpod.UID))
		if out, err := exec.Command("nsenter", "--net=/proc/"+strconv.Itoa(netPID)+"/ns/net", "ip", "link", "del", "eth0").CombinedOutput(); err != nil {
			t.Fatalf("break netpod's eth0: %v: %s", err, out)
		}
		n.write("fresh.yaml", podManifest("fresh", "Always", 1, `while true; do sleep 1; done`))
		n.waitFor("the exiter's exit recorded while the daemon is down", 45*time.Second, func() bool {
			m, _ := filepath.Glob(filepath.Join(n.root, "pods", string(exiter.UID), "containers", "*", "exit.json"))
			return len(m) > 0
		})
		n.start()
		p := n.waitPod("exiter-node1", "Failed with its exit code", 30*time.Second, func(p *v1.Pod) bool { return p.Status.Phase == v1.PodFailed })
		if st := p.Status.ContainerStatuses[0].State.Terminated; st == nil || st.ExitCode != 42 {
			t.Fatalf("exit code not kept: %+v", p.Status.ContainerStatuses[0].State)
		}
		n.waitPod("fresh-node1", "Running", 60*time.Second, running)
		n.waitFor("gone pod removed", 30*time.Second, func() bool { _, ok := n.pod("gone-node1"); return !ok })
		p, _ = n.pod("keep-node1")
		if p.UID != keep.UID || containerID(&p) != containerID(&keep) || p.Status.ContainerStatuses[0].RestartCount != 0 || n.sandboxPID(string(p.UID)) != keepPID {
			t.Fatalf("keep was not adopted: uid %s/%s container %s/%s restarts %d", p.UID, keep.UID, containerID(&p), containerID(&keep), p.Status.ContainerStatuses[0].RestartCount)
		}
		np := n.waitPod("netpod-node1", "Running in a new sandbox", 30*time.Second, func(p *v1.Pod) bool {
			return running(p) && n.sandboxPID(string(p.UID)) != netPID && p.Status.PodIP != ""
		})
		if np.UID != netpod.UID {
			t.Fatalf("netpod replaced instead of repaired")
		}
		n.checkConsistent(t)
	})

	t.Run("SIGKILL during bursts of creates and deletes", func(t *testing.T) {
		n.remove("exiter.yaml")
		for round, killAfter := range []time.Duration{150 * time.Millisecond, 400 * time.Millisecond, 900 * time.Millisecond} {
			n.write(fmt.Sprintf("exit%d.yaml", round), podManifest(fmt.Sprintf("exit%d", round), "Never", 1, `sleep 1; exit 42`))
			for i := 0; i < 6; i++ {
				n.write(fmt.Sprintf("b%d-%d.yaml", round, i), podManifest(fmt.Sprintf("b%d-%d", round, i), "Always", 1, `while true; do sleep 1; done`))
			}
			time.Sleep(killAfter / 2)
			for i := 0; i < 3; i++ {
				n.remove(fmt.Sprintf("b%d-%d.yaml", round, i))
			}
			if round > 0 {
				// Delete the previous round's survivors too.
				for i := 3; i < 6; i++ {
					n.remove(fmt.Sprintf("b%d-%d.yaml", round-1, i))
				}
			}
			time.Sleep(killAfter / 2)
			n.stop(syscall.SIGKILL)
			time.Sleep(1500 * time.Millisecond) // exit<round> exits while the daemon is dead
			n.start()
			for i := 3; i < 6; i++ {
				n.waitPod(fmt.Sprintf("b%d-%d-node1", round, i), "Running", 60*time.Second, running)
			}
			n.waitFor("deleted pods gone", 60*time.Second, func() bool {
				pods, err := n.pods()
				if err != nil {
					return false
				}
				for _, p := range pods {
					if strings.HasPrefix(p.Name, fmt.Sprintf("b%d-", round)) && p.Name < fmt.Sprintf("b%d-3", round) {
						return false
					}
					if round > 0 && strings.HasPrefix(p.Name, fmt.Sprintf("b%d-", round-1)) {
						return false
					}
				}
				return true
			})
			p := n.waitPod(fmt.Sprintf("exit%d-node1", round), "Failed", 30*time.Second, func(p *v1.Pod) bool { return p.Status.Phase == v1.PodFailed })
			if st := p.Status.ContainerStatuses[0].State.Terminated; st == nil || st.ExitCode != 42 || p.Status.ContainerStatuses[0].RestartCount != 0 {
				t.Fatalf("round %d: exit code lost or restarted: %+v", round, p.Status.ContainerStatuses[0])
			}
			n.remove(fmt.Sprintf("exit%d.yaml", round))
			pk, _ := n.pod("keep-node1")
			if pk.UID != keep.UID || containerID(&pk) != containerID(&keep) || n.sandboxPID(string(pk.UID)) != keepPID {
				t.Fatalf("round %d: keep was restarted or duplicated", round)
			}
			n.checkConsistent(t)
		}
	})

	t.Run("after a reboot pods are recreated from their manifests", func(t *testing.T) {
		n.stop(syscall.SIGKILL)
		// A reboot: no processes, no units, no mounts; the state on disk stays.
		ents, _ := os.ReadDir(filepath.Join(n.root, "pods"))
		for _, e := range ents {
			if pid := n.sandboxPID(e.Name()); pid > 0 {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		out, err := systemctl("stop", "kubepods.slice")
		if err != nil {
			t.Fatalf("systemctl stop kubepods.slice: %v: %s", err, out)
		}
		for _, m := range mountsUnder(filepath.Join(n.root, "pods")) {
			syscall.Unmount(m, syscall.MNT_DETACH)
		}
		n.start()
		p := n.waitPod("keep-node1", "Running again", 60*time.Second, func(p *v1.Pod) bool {
			return running(p) && containerID(p) != containerID(&keep)
		})
		if p.UID != keep.UID {
			t.Fatalf("keep got a new UID after reboot: %s", p.UID)
		}
		n.waitPod("fresh-node1", "Running again", 60*time.Second, running)
		n.checkConsistent(t)
	})
}
