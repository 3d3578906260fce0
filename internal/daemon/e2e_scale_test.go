package daemon

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// TestDaemonScale (opt-in: MKL_E2E_SCALE=1; make bench measures for real):
// 50 pods dropped at once all run, then all go; the times are logged.
func TestDaemonScale(t *testing.T) {
	if os.Getenv("MKL_E2E_SCALE") == "" {
		t.Skip("opt-in scale test: set MKL_E2E_SCALE=1")
	}
	n := newE2ENode(t)
	n.Start("--parallel-pods", "8")
	const N = 50
	start := time.Now()
	for i := 0; i < N; i++ {
		n.Write(fmt.Sprintf("s%d.yaml", i), podManifest(fmt.Sprintf("s%d", i), "Always", 1, `while true; do sleep 5; done`))
	}
	n.WaitFor("all running", 120*time.Second, func() bool {
		pods, err := n.Pods()
		if err != nil {
			return false
		}
		c := 0
		for i := range pods {
			if running(&pods[i]) {
				c++
			}
		}
		return c == N
	})
	t.Logf("%d pods Running after %s", N, time.Since(start))
	start = time.Now()
	ents, _ := os.ReadDir(n.Manifests)
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".yaml") {
			os.Remove(n.Manifests + "/" + e.Name())
		}
	}
	n.WaitFor("all gone", 120*time.Second, func() bool { p, err := n.Pods(); return err == nil && len(p) == 0 && n.PodDirs() == 0 })
	t.Logf("%d pods removed after %s (grace 1s, sh ignores SIGTERM)", N, time.Since(start))
}
