package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
)

// What can be tested where AppArmor is off (as on this project's CI): the
// daemon says so once, a pod that says nothing runs unconfined, and a pod
// that asks for a profile is refused with the kubelet's words. (Where it
// is on, runtime's unit tests cover the choice of profile.)
func TestE2EAppArmorAbsent(t *testing.T) {
	if b, err := os.ReadFile("/sys/module/apparmor/parameters/enabled"); err == nil && strings.HasPrefix(string(b), "Y") {
		t.Skip("AppArmor is enabled here; this test is for hosts without it")
	}
	n := newE2ENode(t)
	n.Start()
	n.Write("plain.yaml", podManifest("plain", "Always", 1, "exec sleep 1000"))
	n.Write("strict.yaml", `apiVersion: v1
kind: Pod
metadata:
  name: strict
  namespace: default
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: `+testImage+`
    command: ["sleep", "1000"]
    securityContext:
      appArmorProfile: {type: RuntimeDefault}
`)
	n.WaitPod("plain-node1", "Running", 60*time.Second, running)
	n.WaitPod("strict-node1", "refused", 60*time.Second, func(p *v1.Pod) bool {
		for _, cs := range p.Status.ContainerStatuses {
			if w := cs.State.Waiting; w != nil && w.Reason == "CreateContainerConfigError" &&
				strings.Contains(w.Message, "Cannot enforce AppArmor: AppArmor is not enabled on the host") {
				return true
			}
		}
		return false
	})
	b, _ := os.ReadFile(filepath.Join(n.Dir, "daemon-1.log"))
	if c := strings.Count(string(b), "AppArmor is not enabled on this host"); c != 1 {
		t.Errorf("the daemon said %d times that AppArmor is off, want once", c)
	}
}
