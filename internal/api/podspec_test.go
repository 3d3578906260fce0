package api

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/minikubelet/minikubelet/internal/testwait"
)

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testwait.Until(t, what, 20*time.Second, 10*time.Millisecond, cond)
}

// A watcher that stops reading is dropped once a write to it has waited
// WriteTimeout: its goroutine and buffers are not held forever.
func TestWatchWriteTimeoutDropsStalledReader(t *testing.T) {
	store := newTestStore()
	srv := NewServer(store, nil, nil)
	srv.WriteTimeout = 300 * time.Millisecond
	sock := startServer(t, srv)
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := fmt.Fprint(c, "GET /pods?watch=1 HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the watch to be served", func() bool { return srv.Watches() == 1 })
	// Never read; send more than the socket buffers hold (the store's
	// subscriber buffer of 64 events is not exceeded, so only the write
	// timeout can end the stream).
	big := strings.Repeat("x", 256<<10)
	for i := 0; i < 40; i++ {
		p := testPod("default", "web", "node1", "uid-web", v1.PodRunning)
		p.Annotations = map[string]string{"big": big, "n": fmt.Sprint(i)}
		store.SetPod(p)
	}
	waitUntil(t, "the stalled watch to be dropped", func() bool { return srv.Watches() == 0 })
	// An idle watch that reads is not cut by the timeout: it lives past
	// several timeouts and still gets the next change.
	c2, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	fmt.Fprint(c2, "GET /events?watch=1 HTTP/1.1\r\nHost: x\r\n\r\n")
	waitUntil(t, "the second watch", func() bool { return srv.Watches() == 1 })
	idleUntil := time.Now().Add(4 * srv.WriteTimeout)
	waitUntil(t, "idle time to pass", func() bool { return time.Now().After(idleUntil) })
	store.RecordEvent(v1.Event{Reason: "AfterIdle", Message: "m"})
	c2.SetReadDeadline(time.Now().Add(20 * time.Second))
	var got strings.Builder
	buf := make([]byte, 4096)
	for !strings.Contains(got.String(), "AfterIdle") {
		n, err := c2.Read(buf)
		if err != nil {
			t.Fatalf("idle watch: %v; got %q", err, got.String())
		}
		got.Write(buf[:n])
	}
}

func recounts(s *Server) int {
	s.metricsMu.Lock()
	defer s.metricsMu.Unlock()
	return s.metricsRuns
}

// /metrics recounts pods at most once a second, however often it is asked.
func TestMetricsNotRecomputedPerRequest(t *testing.T) {
	srv := NewServer(newTestStore(), NewMetrics(), nil)
	now := time.Unix(1000, 0)
	srv.metricsNow = func() time.Time { return now }
	sock := startServer(t, srv)
	for i := 0; i < 5; i++ {
		if code, b := rawGet(t, sock, "/metrics"); code != 200 || !strings.Contains(string(b), `minikubelet_pods{phase="Running"} 1`) {
			t.Fatalf("GET /metrics = %d:\n%s", code, b)
		}
	}
	if n := recounts(srv); n != 1 {
		t.Errorf("pods recounted %d times for 5 scrapes within a second, want 1", n)
	}
	srv.metricsMu.Lock()
	now = now.Add(2 * time.Second)
	srv.metricsMu.Unlock()
	rawGet(t, sock, "/metrics")
	if n := recounts(srv); n != 2 {
		t.Errorf("pods recounted %d times after a second passed, want 2", n)
	}
}

// The read-only port binds to the address it is given only: with
// 127.0.0.1 it is not reachable on another address of the host.
func TestReadOnlyPortBindAddress(t *testing.T) {
	_, addr, _ := listenAndServe(t)
	_, port, _ := net.SplitHostPort(addr)
	// 127.0.0.2 is this host too (all of 127/8 is loopback), but not the
	// bound address.
	c, err := net.DialTimeout("tcp", "127.0.0.2:"+port, 5*time.Second)
	if err == nil {
		c.Close()
		t.Fatal("the read-only port answered on 127.0.0.2 although bound to 127.0.0.1")
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Logf("dial 127.0.0.2: %v", err)
	}
}
