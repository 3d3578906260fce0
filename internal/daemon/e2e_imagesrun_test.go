package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/minikubelet/minikubelet/internal/e2enode"
	"github.com/minikubelet/minikubelet/runtime/images/imagebuild"
)

const scratchImage = "localhost/scratch:e2e"

// importScratch imports a scratch image: the static busybox at /busybox
// and nothing else (no /etc, /proc, /sys, /dev, /tmp).
func importScratch(t *testing.T, root string) {
	t.Helper()
	stage := t.TempDir()
	b, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skip("busybox-static is not installed (make deps)")
	}
	if err := os.WriteFile(filepath.Join(stage, "busybox"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	e2enode.ImportArchive(t, root, e2enode.ImageArchive(t, stage, scratchImage, imagebuild.Config{Entrypoint: []string{"/busybox"}}))
}

// Through the daemon (issue 12, items 1 and 10): a scratch image runs with
// readOnlyRootFilesystem, and a sibling that cannot be created
// (runAsNonRoot with the image's root user) does not hold it back: the good
// container runs and the bad one alone waits with
// CreateContainerConfigError.
func TestScratchReadOnlyRunsBesideAFailingSibling(t *testing.T) {
	n := newE2ENode(t)
	importScratch(t, n.Root)
	n.Start()
	n.Write("scratch.yaml", fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: scratch
  namespace: default
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: good
    image: %[1]s
    args: [sh, -c, "/busybox cat /etc/hostname; /busybox sleep 3600"]
    securityContext: {readOnlyRootFilesystem: true}
  - name: bad
    image: %[1]s
    args: [sleep, "3600"]
    securityContext: {runAsNonRoot: true}
`, scratchImage))
	p := n.WaitPod("scratch-node1", "good running, bad CreateContainerConfigError", 90*time.Second, func(p *v1.Pod) bool {
		var good, bad bool
		for _, cs := range p.Status.ContainerStatuses {
			switch {
			case cs.Name == "good" && cs.State.Running != nil:
				good = true
			case cs.Name == "bad" && cs.State.Waiting != nil && cs.State.Waiting.Reason == "CreateContainerConfigError":
				bad = true
			}
		}
		return good && bad
	})
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Name == "bad" && !strings.Contains(cs.State.Waiting.Message, "runAsNonRoot") {
			t.Errorf("bad: waiting message %q", cs.State.Waiting.Message)
		}
	}
	n.Remove("scratch.yaml")
	n.WaitFor("the pod gone", 60*time.Second, func() bool { _, ok := n.Pod("scratch-node1"); return !ok })
}
