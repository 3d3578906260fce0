package daemon

import (
	"fmt"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
)

// A manifest with a fixed metadata.uid that is edited keeps its pod: the
// container whose spec changed is restarted, the other keeps running.
func TestE2EEditWithFixedUID(t *testing.T) {
	n := newE2ENode(t)
	n.Start()
	manifest := func(aEnv string) string {
		return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: fixed
  namespace: default
  uid: 6f3c2b1e-0d4a-4c1b-9e8f-1a2b3c4d5e6f
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: a
    image: %[1]s
    command: ["sleep", "1000"]
    env: [{name: VERSION, value: %[2]q}]
  - name: b
    image: %[1]s
    command: ["sleep", "1000"]
`, testImage, aEnv)
	}
	n.Write("fixed.yaml", manifest("1"))
	p := n.WaitPod("fixed-node1", "Running", 60*time.Second, running)
	ids := func(p *v1.Pod) (a, b string) {
		for _, cs := range p.Status.ContainerStatuses {
			switch cs.Name {
			case "a":
				a = cs.ContainerID
			case "b":
				b = cs.ContainerID
			}
		}
		return
	}
	a0, b0 := ids(&p)
	if a0 == "" || b0 == "" {
		t.Fatalf("container IDs: %+v", p.Status.ContainerStatuses)
	}
	n.Write("fixed.yaml", manifest("2"))
	p = n.WaitPod("fixed-node1", "a restarted with the new spec", 60*time.Second, func(p *v1.Pod) bool {
		a, _ := ids(p)
		return running(p) && a != a0 && a != ""
	})
	if string(p.UID) != "6f3c2b1e-0d4a-4c1b-9e8f-1a2b3c4d5e6f" {
		t.Errorf("uid %s", p.UID)
	}
	if _, b := ids(&p); b != b0 {
		t.Errorf("the unchanged container b was restarted: %s -> %s", b0, b)
	}
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Name == "a" && cs.RestartCount != 1 {
			t.Errorf("a's restartCount %d, want 1", cs.RestartCount)
		}
	}
	if ev, err := n.CLI("describe", "pod", "fixed"); err != nil || !strings.Contains(ev, "Container a definition changed, will be restarted") {
		t.Errorf("describe (err %v):\n%s", err, ev)
	}
}
