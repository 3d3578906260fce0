package chaos

import (
	"fmt"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/minikubelet/minikubelet/internal/e2enode"
)

const pidsLimit = 64

// bombManifest is one pod with a fork bomb and a memory hog, each under
// limits (and the node's --pod-pids-limit).
var bombManifest = fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: bomb
  namespace: default
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: fork
    image: %[1]s
    command: ["sh", "-c", "while true; do sleep 1000 & done"]
    resources: {limits: {cpu: 200m, memory: 64Mi}}
  - name: hog
    image: %[1]s
    command: ["sh", "-c", "x=0123456789abcdef; while true; do x=$x$x; done"]
    resources: {limits: {cpu: 200m, memory: 32Mi}}
`, e2enode.TestImage)

// TestChaosPodExhaustion (scenario 8): a fork bomb and a memory hog in one
// pod. Its limits contain them (the bomb's scope never holds more than the
// pod's pids limit, the hog is OOMKilled and restarted), the other pods'
// probes stay green and they are not restarted, the daemon answers, and
// once the pod is removed nothing of it is left.
func TestChaosPodExhaustion(t *testing.T) {
	n := e2enode.New(t)
	hold := pick(3*time.Second, 60*time.Second)
	var total tally
	var worst time.Duration
	var health latencies
	peak, ooms := 0, int32(0)
	defer func() {
		results.Add(Row{Scenario: "8 fork bomb + memory hog in one pod", Load: fmt.Sprintf("2 pods with exec probes beside it for %s", hold),
			Faults: fmt.Sprintf("fork bomb (pod pids limit %d; peak %d processes in its scope), memory hog (32Mi; %d OOM kills); %s",
				pidsLimit, peak, ooms, health),
			Lost: total.lost, Duplicated: total.duplicated, Leaked: total.leaked, Restarted: total.restarted, Converge: worst})
	}()
	n.Start("--pod-pids-limit", fmt.Sprint(pidsLimit))
	desired := map[string]*want{}
	if startStable(t, n, desired, "keep", 2) == nil {
		return
	}
	stop := make(chan struct{})
	healthCh := healthzProbe(t, n, stop)
	n.Write("bomb.yaml", bombManifest)
	n.WaitPod("bomb-node1", "the memory hog OOMKilled and restarted", 60*time.Second, func(p *v1.Pod) bool {
		for _, cs := range p.Status.ContainerStatuses {
			if cs.Name == "hog" && cs.RestartCount > 0 && cs.LastTerminationState.Terminated != nil &&
				cs.LastTerminationState.Terminated.Reason == "OOMKilled" {
				return true
			}
		}
		return false
	})
	end := time.Now().Add(hold)
	var tl tally
	bad := map[string]string{} // pod → the first thing seen wrong with it
	for time.Now().Before(end) {
		s, err := observe(n)
		if err != nil {
			t.Fatalf("the daemon stopped answering under the bomb: %v", err)
		}
		for _, c := range scopeProcs() {
			peak = max(peak, c)
		}
		for _, w := range desired {
			p := s.pods[w.podName()]
			if _, seen := bad[w.podName()]; !seen && (len(p.Status.ContainerStatuses) != 1 || !p.Status.ContainerStatuses[0].Ready) {
				bad[w.podName()] = fmt.Sprintf("probes not green beside the bomb: %+v", p.Status.ContainerStatuses)
			}
		}
		if bp := s.pods["bomb-node1"]; len(s.sandboxes["bomb-node1"]) != 1 || len(bp.Status.ContainerStatuses) != 2 {
			if _, seen := bad["bomb-node1"]; !seen {
				bad["bomb-node1"] = fmt.Sprintf("%d sandboxes, %d container statuses", len(s.sandboxes["bomb-node1"]), len(bp.Status.ContainerStatuses))
			}
		}
		time.Sleep(500 * time.Millisecond) // sampling interval, not a wait
	}
	for pod, what := range bad {
		tl.problem(&tl.lost, "pod %s: %s", pod, what)
	}
	close(stop)
	health = <-healthCh
	if peak > pidsLimit {
		tl.problem(&tl.duplicated, "a scope held %d processes, above the pod's pids limit %d", peak, pidsLimit)
	}
	p, _ := n.Pod("bomb-node1")
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Name == "hog" {
			ooms = cs.RestartCount
		}
	}
	desired["bomb"] = &want{name: "bomb", kind: own}
	_, tl2, _ := converge(n, desired, nil, nil, 30*time.Second)
	delete(desired, "bomb")
	tl.add(tl2)
	total.add(tl)
	report(t, "beside the bomb", tl)
	if health.quantile(1) >= 2*time.Second {
		t.Errorf("healthz did not answer within 2 s beside the bomb: %s", health)
	}
	start := time.Now()
	n.Remove("bomb.yaml")
	d, tl, _ := converge(n, desired, nil, func(s *snapshot) bool { _, ok := s.pods["bomb-node1"]; return !ok }, 60*time.Second)
	worst = max(worst, d, time.Since(start))
	total.add(tl)
	report(t, "bomb removed", tl)
	worst = max(worst, removeAll(t, n, desired, &total))
}
