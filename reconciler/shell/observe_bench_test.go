package shell

import (
	"context"
	"fmt"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/minikubelet/minikubelet/internal/procfs"
)

// BenchmarkObserveIdlePods measures one full observation round of the
// shell over pods that all run and have nothing to do (issue 17: the idle
// daemon's periodic resync). The runtime is the fake, so this is the
// shell's own part: its records on disk, the cgroup list, statuses.
func BenchmarkObserveIdlePods(b *testing.B) {
	for _, pods := range []int{100, 500} {
		b.Run(fmt.Sprint(pods), func(b *testing.B) {
			w := newWorld(b)
			var all []*v1.Pod
			for i := range pods {
				p := testPod(fmt.Sprintf("uid-%04d", i), "app")
				p.Name = fmt.Sprintf("web-%04d", i)
				all = append(all, p)
			}
			desired := desiredOf(all...)
			n := w.node()
			w.converge(n, desired)
			// An idle pod's records were written long ago; records younger
			// than the record cache's racy window (a second) are read again.
			time.Sleep(time.Second + 100*time.Millisecond)
			ctx := context.Background()
			b.ResetTimer()
			cpu := procfs.SelfCPU()
			for b.Loop() {
				if _, err := n.Observe(ctx, &desired); err != nil {
					b.Fatal(err)
				}
			}
			// Observe reads pods in parallel: its CPU, not its wall time,
			// is what an idle daemon pays.
			b.ReportMetric(float64(procfs.SelfCPU()-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}
