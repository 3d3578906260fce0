package api

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
)

// The profiler answers on the unix socket only; the read-only TCP address
// (which may face the network) does not expose it, and the API still
// answers beside it.
func TestPprofOnUnixSocketOnly(t *testing.T) {
	sock, addr, _ := listenAndServe(t)
	unix := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	get := func(c *http.Client, url string) (int, string) {
		t.Helper()
		resp, err := c.Get(url)
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
