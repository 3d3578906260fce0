package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
)

// A container the runtime refuses to create shows the kubelet's waiting
// reason with the runtime's message in its status and in `get pods`
// STATUS (not only as a Warning event): runAsNonRoot with the busybox
// image's root user is a CreateContainerConfigError; a /dev/null that is
// not the null device (the container init refuses to mask with it) is a
// CreateContainerError.
func TestCreateContainerErrorsInStatus(t *testing.T) {
	n := newE2ENode(t)
	n.Start()
	n.Write("nonroot.yaml", fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: nonroot
  namespace: default
spec:
  terminationGracePeriodSeconds: 1
  securityContext:
    runAsNonRoot: true
  containers:
  - name: c
    image: %s
    command: ["sleep", "3600"]
`, testImage))
	fake := filepath.Join(n.Dir, "fake-null")
	if err := os.WriteFile(fake, []byte("not null"), 0o644); err != nil {
		t.Fatal(err)
	}
	n.Write("fakenull.yaml", fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: fakenull
  namespace: default
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: %s
    command: ["sleep", "3600"]
    volumeMounts:
    - {name: fake, mountPath: /dev/null}
  volumes:
  - name: fake
    hostPath: {path: %s, type: File}
`, testImage, fake))

	for _, tc := range []struct{ pod, reason, msg string }{
		{"nonroot-node1", "CreateContainerConfigError", "runAsNonRoot and image will run as root"},
		{"fakenull-node1", "CreateContainerError", "not the null device"},
	} {
		p := n.WaitPod(tc.pod, tc.reason, 60*time.Second, func(p *v1.Pod) bool {
			cs := p.Status.ContainerStatuses
			return len(cs) == 1 && cs[0].State.Waiting != nil && cs[0].State.Waiting.Reason == tc.reason
		})
		if w := p.Status.ContainerStatuses[0].State.Waiting; !strings.Contains(w.Message, tc.msg) {
			t.Errorf("%s: waiting message %q, want it to say %q", tc.pod, w.Message, tc.msg)
		}
		if p.Status.Phase != v1.PodPending {
			t.Errorf("%s: phase %s, want Pending", tc.pod, p.Status.Phase)
		}
	}
	out, err := n.CLI("get", "pods")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range [][2]string{{"nonroot-node1", "CreateContainerConfigError"}, {"fakenull-node1", "CreateContainerError"}} {
		found := false
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) >= 3 && f[0] == want[0] {
				found = f[2] == want[1]
			}
		}
		if !found {
			t.Errorf("get pods: %s STATUS is not %s:\n%s", want[0], want[1], out)
		}
	}
	// The Warning event stays (kubelet's "Failed").
	if ev, err := n.CLI("describe", "pod", "nonroot"); err != nil || !strings.Contains(ev, "runAsNonRoot") {
		t.Errorf("describe pod nonroot: %v\n%s", err, ev)
	}
}
