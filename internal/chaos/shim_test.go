package chaos

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/minikubelet/minikubelet/internal/e2enode"
)

// TestChaosShimKill (scenario 3): a pod's supervisor (its pause, the
// parent of its containers) is SIGKILL'd at random, sometimes two pods'
// at once. As with the kubelet when a sandbox dies, the pod keeps its UID
// and gets a new sandbox, and its container comes back as the next attempt
// (restartCount + 1); no other pod is touched and nothing of the old
// sandbox stays (scope, mount, netns pin, veth, IPAM address).
func TestChaosShimKill(t *testing.T) {
	r := rng(t)
	kills := rounds(t, 2, 20)
	n := e2enode.New(t)
	npods := pick(4, 12)
	desired := map[string]*want{}
	var total tally
	var worst time.Duration
	done := 0
	defer func() {
		results.Add(Row{Scenario: "3 pod supervisor SIGKILL", Load: fmt.Sprintf("%d pods with exec probes", npods),
			Faults: fmt.Sprintf("%d supervisor SIGKILLs", done), Lost: total.lost, Duplicated: total.duplicated,
			Leaked: total.leaked, Restarted: total.restarted, Converge: worst})
	}()
	n.Start()
	snap := startStable(t, n, desired, "s", npods)
	if snap == nil {
		return
	}
	names := (&churn{desired: desired}).names()
	for k := 0; k < kills; k++ {
		victims := map[string]bool{names[r.Intn(len(names))]: true}
		if r.Intn(3) == 0 {
			victims[names[r.Intn(len(names))]] = true
		}
		killed := map[string]int{}
		before := map[string]int32{}
		for name := range victims {
			w := desired[name]
			pid := snap.sandboxPID[w.podName()]
			if pid <= 0 {
				t.Fatalf("pod %s: no supervisor PID in its sandbox/daemon.json", w.podName())
			}
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatalf("kill supervisor %d of pod %s: %v", pid, w.podName(), err)
			}
			killed[w.podName()], before[w.podName()] = pid, w.restarts
			done++
		}
		d, tl, s := converge(n, desired, victims, func(s *snapshot) bool {
			for pod, pid := range killed {
				if s.sandboxPID[pod] == pid || e2enode.ProcAlive(pid) {
					return false
				}
			}
			return true
		}, 120*time.Second)
		worst = max(worst, d)
		for pod, old := range before {
			p := s.pods[pod]
			if len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].RestartCount != old+1 {
				tl.problem(&tl.restarted, "pod %s: restartCount %d after its sandbox died, want %d", pod, p.Status.ContainerStatuses[0].RestartCount, old+1)
			}
			if string(p.UID) != desired[pod[:len(pod)-len("-node1")]].uid {
				tl.problem(&tl.lost, "pod %s: a new UID %s after its sandbox died", pod, p.UID)
			}
		}
		total.add(tl)
		report(t, fmt.Sprintf("supervisor kill %d (%v)", k+1, killed), tl)
		if !tl.ok() {
			return
		}
		t.Logf("supervisor kill %d %v: repaired in %s", k+1, killed, d.Round(time.Millisecond))
		for name := range victims {
			desired[name].uid = ""
		}
		baseline(s, desired)
		snap = s
	}
	worst = max(worst, removeAll(t, n, desired, &total))
}
