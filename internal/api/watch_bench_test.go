package api

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// benchPod is a pod the size the daemon publishes: two containers with
// resources, probes and statuses.
func benchPod(i int) v1.Pod {
	p := testPod("default", "web", "node1", types.UID(fmt.Sprintf("uid-%d", i)), v1.PodRunning)
	c := v1.Container{Name: "app", Image: "registry.example/app:1.0", Command: []string{"/app", "--serve"},
		Resources:      v1.ResourceRequirements{Limits: v1.ResourceList{v1.ResourceCPU: resource.MustParse("500m"), v1.ResourceMemory: resource.MustParse("128Mi")}},
		ReadinessProbe: &v1.Probe{ProbeHandler: v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{"cat", "/tmp/ready"}}}, PeriodSeconds: 1}}
	p.Spec.Containers = []v1.Container{c, c}
	p.Spec.Containers[1].Name = "sidecar"
	now := metav1.Now()
	p.Status.ContainerStatuses = []v1.ContainerStatus{
		{Name: "app", Ready: true, ContainerID: "minikubelet://0123456789abcdef", State: v1.ContainerState{Running: &v1.ContainerStateRunning{StartedAt: now}}},
		{Name: "sidecar", Ready: true, ContainerID: "minikubelet://fedcba9876543210", State: v1.ContainerState{Running: &v1.ContainerStateRunning{StartedAt: now}}},
	}
	p.Status.Conditions = []v1.PodCondition{{Type: v1.PodReady, Status: v1.ConditionTrue, LastTransitionTime: now}}
	p.Status.PodIP = "10.88.0.7"
	return p
}

// BenchmarkWatchFanOut is the cost of one pod change reaching many open
// watches (chaos scenario 7 holds a thousand): per op, one change is
// published and read by every watcher.
func BenchmarkWatchFanOut(b *testing.B) {
	for _, watchers := range []int{1, 100, 1000} {
		b.Run(fmt.Sprint(watchers), func(b *testing.B) {
			s := NewStore(100)
			sock := startServer(&testing.T{}, NewServer(s, nil, nil))
			lines := make(chan int, watchers)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			for w := 0; w < watchers; w++ {
				c, err := net.Dial("unix", sock)
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				fmt.Fprintf(c, "GET /pods?watch=1 HTTP/1.1\r\nHost: mkl\r\n\r\n")
				go func() {
					r := bufio.NewReaderSize(c, 1<<16)
					n := 0
					for ctx.Err() == nil {
						line, err := r.ReadSlice('\n')
						if err != nil && err != bufio.ErrBufferFull {
							return
						}
						if len(line) > 20 && string(line[:9]) == `{"type":"` {
							n++
							lines <- n
						}
					}
				}()
			}
			// Each watcher's first line: the initial ADDED of pod 0.
			s.SetPod(benchPod(0))
			await := func(k int) {
				deadline := time.After(60 * time.Second)
				for i := 0; i < k; i++ {
					select {
					case <-lines:
					case <-deadline:
						b.Fatalf("%d of %d lines", i, k)
					}
				}
			}
			await(watchers)
			p := benchPod(0)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				p.Status.Message = fmt.Sprint(i)
				s.SetPod(p)
				await(watchers)
			}
		})
	}
}
