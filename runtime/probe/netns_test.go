package probe

import (
	"context"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/minikubelet/minikubelet/internal/testnode"
	"github.com/minikubelet/minikubelet/runtime/network/nettest"
)

func requireNetns(t *testing.T) {
	t.Helper()
	testnode.RequireRoot(t)
	if !nettest.Inside() {
		t.Skip("netns test skipped: not inside the private test netns")
	}
}

// startNetns is the test process's netns, read before any test could
// have moved a thread elsewhere.
var startNetns, _ = os.Readlink("/proc/thread-self/ns/net")

func threadNetns(t *testing.T) string {
	t.Helper()
	s, err := os.Readlink("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// listenInPod is a fresh pod netns with only lo, and a TCP listener on
// 127.0.0.1 inside it (closed at the end).
func listenInPod(t *testing.T) (pod string, l net.Listener) {
	t.Helper()
	pod = nettest.NewNetns(t)
	l, err := ListenInNetns(pod, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return pod, l
}

// A pod netns with only lo: a listener inside answers the helper's dial;
// the same address dialled from the test's own netns does not.
func TestDialInNetns(t *testing.T) {
	requireNetns(t)
	pod, l := listenInPod(t)
	serveTCP(l, "inside")
	addr := l.Addr().String()
	c, err := DialInNetns(context.Background(), pod, "tcp", addr)
	if err != nil {
		t.Fatalf("dial %s inside the pod netns: %v", addr, err)
	}
	buf := make([]byte, 6)
	if _, err := c.Read(buf); err != nil || string(buf) != "inside" {
		t.Fatalf("read %q, %v", buf, err)
	}
	c.Close()
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatalf("%s answered from outside the pod netns", addr)
	}
	_, port := hostPort(t, "http://"+addr)
	if r := TCPProbe(context.Background(), pod, "127.0.0.1", port, time.Second); r.Outcome != Success {
		t.Fatalf("tcp probe in netns: %v", r)
	}
	if r := TCPProbe(context.Background(), "", "127.0.0.1", port, time.Second); r.Outcome != Failure {
		t.Fatalf("tcp probe from outside: %v, want failure", r)
	}
	if err := InNetns(t.TempDir(), func() error { return nil }); err == nil || !strings.Contains(err.Error(), "not a network namespace") {
		t.Fatalf("InNetns on a plain folder: %v", err)
	}
}

// The threads that entered a pod netns must never serve other goroutines:
// after many dials, every thread of the pool is still in the test's netns.
func TestNetnsThreadsDoNotLeakIntoThePool(t *testing.T) {
	requireNetns(t)
	pod, l := listenInPod(t)
	serveTCP(l, "")
	home := startNetns
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if c, err := DialInNetns(context.Background(), pod, "tcp", l.Addr().String()); err == nil {
				c.Close()
			} else {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	podNS := ""
	InNetns(pod, func() error { podNS = threadNetns(t); return nil })
	if podNS == home {
		t.Fatal("the pod netns is the test's netns: the test proves nothing")
	}
	results := make(chan string, 200)
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			results <- threadNetns(t)
			time.Sleep(time.Millisecond) // hold the thread so others need more
		}()
	}
	wg.Wait()
	close(results)
	for ns := range results {
		if ns != home {
			t.Fatalf("a pool thread is in %s, not the test's %s", ns, home)
		}
	}
}

// A loopback-only pod: no pod IP, probes run inside its netns against
// 127.0.0.1.
func TestProberLoopbackOnlyPod(t *testing.T) {
	requireNetns(t)
	pod, l := listenInPod(t)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})}
	go srv.Serve(l)
	defer srv.Close()
	port := l.Addr().(*net.TCPAddr).Port
	p := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromInt32(int32(port))}}}
	if r := (&Prober{}).Run(context.Background(), Readiness, p, Target{ContainerID: "c", NetnsPath: pod}); r.Outcome != Success {
		t.Fatalf("httpGet inside the loopback-only pod: %v", r)
	}
	if r := HTTPProbe(context.Background(), HTTPRequest{Host: "127.0.0.1", Port: port, Path: "/"}, time.Second); r.Outcome != Failure {
		t.Fatalf("same URL from outside the pod: %v, want failure", r)
	}
}
