package api

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The profiler answers on the unix socket only; the read-only TCP address
// (which may face the network) does not expose it, and the API still
// answers beside it.
func TestPprofOnUnixSocketOnly(t *testing.T) {
	dir, err := os.MkdirTemp("", "mkl-api-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "s.sock")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- NewServer(newTestStore(), nil, nil).ListenAndServe(ctx, sock, addr) }()
	defer func() {
		cancel()
		<-done
	}()
	unix := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	get := func(c *http.Client, url string) (int, string) {
		t.Helper()
		var resp *http.Response
		var err error
		for i := 0; i < 200; i++ {
			if resp, err = c.Get(url); err == nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 4096)
		n, _ := resp.Body.Read(buf)
		b.Write(buf[:n])
		return resp.StatusCode, b.String()
	}
	if code, body := get(unix, "http://x/debug/pprof/goroutine?debug=1"); code != 200 || !strings.Contains(body, "goroutine profile") {
		t.Errorf("unix /debug/pprof/goroutine = %d %.80q", code, body)
	}
	if code, _ := get(unix, "http://x/pods/default/web"); code != 200 {
		t.Errorf("unix /pods/default/web beside pprof = %d", code)
	}
	if code, _ := get(http.DefaultClient, "http://"+addr+"/debug/pprof/goroutine?debug=1"); code != http.StatusNotFound {
		t.Errorf("TCP /debug/pprof/goroutine = %d, want 404", code)
	}
}
