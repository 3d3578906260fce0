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

// TestDaemonCrashSafety: SIGTERM leaves pods running and the next start
// adopts them; changes made while the daemon was down are reconciled; exit
// codes that happened meanwhile are reported; SIGKILL during bursts of
// creates and deletes leaves no duplicate and no orphan; after a simulated
// reboot (no processes, no units, state on disk) the pods come back.
func TestDaemonCrashSafety(t *testing.T) {
	n := newE2ENode(t)
	n.Start()
	n.Write("keep.yaml", podManifest("keep", "Always", 1, `while true; do sleep 1; done`))
	n.Write("gone.yaml", podManifest("gone", "Always", 1, `while true; do sleep 1; done`))
	// Runs long enough to be seen Running on a slow host (the field host is
	// software-emulated: there 5 s passed before the first status said so),
	// and exits while the daemon is down below.
	n.Write("exiter.yaml", podManifest("exiter", "Never", 1, `sleep 15; exit 42`))
	exiter := n.WaitPod("exiter-node1", "Running", 60*time.Second, running)
	keep := n.WaitPod("keep-node1", "Running", 60*time.Second, running)
	n.WaitPod("gone-node1", "Running", 60*time.Second, running)
	n.Write("netpod.yaml", podManifest("netpod", "Always", 1, `while true; do sleep 1; done`))
	netpod := n.WaitPod("netpod-node1", "Running", 60*time.Second, running)
	keepPID := n.SandboxPID(string(keep.UID))

	t.Run("SIGTERM leaves pods running; restart adopts and reconciles", func(t *testing.T) {
		n.Stop(syscall.SIGTERM)
		if !procAlive(keepPID) {
			t.Fatalf("SIGTERM of the daemon killed the pod (sandbox %d)", keepPID)
		}
		// While the daemon is down: a file goes, one comes, a container exits.
		n.Remove("gone.yaml")
		// Someone breaks a pod's network meanwhile: CNI CHECK on adoption
		// finds it and the sandbox is recreated.
		netPID := n.SandboxPID(string(netpod.UID))
		if out, err := exec.Command("nsenter", "--net=/proc/"+strconv.Itoa(netPID)+"/ns/net", "ip", "link", "del", "eth0").CombinedOutput(); err != nil {
			t.Fatalf("break netpod's eth0: %v: %s", err, out)
		}
		n.Write("fresh.yaml", podManifest("fresh", "Always", 1, `while true; do sleep 1; done`))
		n.WaitFor("the exiter's exit recorded while the daemon is down", 45*time.Second, func() bool {
			m, _ := filepath.Glob(filepath.Join(n.Root, "pods", string(exiter.UID), "containers", "*", "exit.json"))
			return len(m) > 0
		})
		n.Start()
		p := n.WaitPod("exiter-node1", "Failed with its exit code", 30*time.Second, func(p *v1.Pod) bool { return p.Status.Phase == v1.PodFailed })
		if st := p.Status.ContainerStatuses[0].State.Terminated; st == nil || st.ExitCode != 42 {
			t.Fatalf("exit code not kept: %+v", p.Status.ContainerStatuses[0].State)
		}
		n.WaitPod("fresh-node1", "Running", 60*time.Second, running)
		n.WaitFor("gone pod removed", 30*time.Second, func() bool { _, ok := n.Pod("gone-node1"); return !ok })
		p, _ = n.Pod("keep-node1")
		if p.UID != keep.UID || containerID(&p) != containerID(&keep) || p.Status.ContainerStatuses[0].RestartCount != 0 || n.SandboxPID(string(p.UID)) != keepPID {
			t.Fatalf("keep was not adopted: uid %s/%s container %s/%s restarts %d", p.UID, keep.UID, containerID(&p), containerID(&keep), p.Status.ContainerStatuses[0].RestartCount)
		}
		np := n.WaitPod("netpod-node1", "Running in a new sandbox", 30*time.Second, func(p *v1.Pod) bool {
			return running(p) && n.SandboxPID(string(p.UID)) != netPID && p.Status.PodIP != ""
		})
		if np.UID != netpod.UID {
			t.Fatalf("netpod replaced instead of repaired")
		}
		n.checkConsistent(t)
	})

	t.Run("SIGKILL during bursts of creates and deletes", func(t *testing.T) {
		n.Remove("exiter.yaml")
		for round, killAfter := range []time.Duration{150 * time.Millisecond, 400 * time.Millisecond, 900 * time.Millisecond} {
			n.Write(fmt.Sprintf("exit%d.yaml", round), podManifest(fmt.Sprintf("exit%d", round), "Never", 1, `sleep 1; exit 42`))
			for i := 0; i < 6; i++ {
				n.Write(fmt.Sprintf("b%d-%d.yaml", round, i), podManifest(fmt.Sprintf("b%d-%d", round, i), "Always", 1, `while true; do sleep 1; done`))
			}
			time.Sleep(killAfter / 2)
			for i := 0; i < 3; i++ {
				n.Remove(fmt.Sprintf("b%d-%d.yaml", round, i))
			}
			if round > 0 {
				// Delete the previous round's survivors too.
				for i := 3; i < 6; i++ {
					n.Remove(fmt.Sprintf("b%d-%d.yaml", round-1, i))
				}
			}
			time.Sleep(killAfter / 2)
			n.Stop(syscall.SIGKILL)
			time.Sleep(1500 * time.Millisecond) // exit<round> exits while the daemon is dead
			n.Start()
			for i := 3; i < 6; i++ {
				n.WaitPod(fmt.Sprintf("b%d-%d-node1", round, i), "Running", 60*time.Second, running)
			}
			n.WaitFor("deleted pods gone", 60*time.Second, func() bool {
				pods, err := n.Pods()
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
			p := n.WaitPod(fmt.Sprintf("exit%d-node1", round), "Failed", 30*time.Second, func(p *v1.Pod) bool { return p.Status.Phase == v1.PodFailed })
			if st := p.Status.ContainerStatuses[0].State.Terminated; st == nil || st.ExitCode != 42 || p.Status.ContainerStatuses[0].RestartCount != 0 {
				t.Fatalf("round %d: exit code lost or restarted: %+v", round, p.Status.ContainerStatuses[0])
			}
			n.Remove(fmt.Sprintf("exit%d.yaml", round))
			pk, _ := n.Pod("keep-node1")
			if pk.UID != keep.UID || containerID(&pk) != containerID(&keep) || n.SandboxPID(string(pk.UID)) != keepPID {
				t.Fatalf("round %d: keep was restarted or duplicated", round)
			}
			n.checkConsistent(t)
		}
	})

	t.Run("after a reboot pods are recreated from their manifests", func(t *testing.T) {
		n.Stop(syscall.SIGKILL)
		// A reboot: no processes, no units, no mounts; the state on disk stays.
		ents, _ := os.ReadDir(filepath.Join(n.Root, "pods"))
		for _, e := range ents {
			if pid := n.SandboxPID(e.Name()); pid > 0 {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		out, err := systemctl("stop", "kubepods.slice")
		if err != nil {
			t.Fatalf("systemctl stop kubepods.slice: %v: %s", err, out)
		}
		for _, m := range mountsUnder(filepath.Join(n.Root, "pods")) {
			syscall.Unmount(m, syscall.MNT_DETACH)
		}
		n.Start()
		p := n.WaitPod("keep-node1", "Running again", 60*time.Second, func(p *v1.Pod) bool {
			return running(p) && containerID(p) != containerID(&keep)
		})
		if p.UID != keep.UID {
			t.Fatalf("keep got a new UID after reboot: %s", p.UID)
		}
		n.WaitPod("fresh-node1", "Running again", 60*time.Second, running)
		n.checkConsistent(t)
	})
}
