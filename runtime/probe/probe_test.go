package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/minikubelet/minikubelet/runtime/network/nettest"
)

// TestMain: as root the package runs in its own network namespace (see
// nettest), so the netns tests' "host" side is a namespace nobody else
// listens in. Unit tests use 127.0.0.1 there or on the host.
func TestMain(m *testing.M) { nettest.Main(m) }

func hostPort(t *testing.T, rawURL string) (string, int) {
	t.Helper()
	h, p, err := net.SplitHostPort(strings.TrimPrefix(strings.TrimPrefix(rawURL, "http://"), "https://"))
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return h, n
}

func TestHTTPProbeStatusCodesAndRedirects(t *testing.T) {
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer other.Close()
	_, otherPort := hostPort(t, other.URL)
	mux := http.NewServeMux()
	for _, code := range []int{200, 204, 399, 400, 404, 500, 503} {
		mux.HandleFunc(fmt.Sprintf("/code/%d", code), func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(code) })
	}
	mux.HandleFunc("/redirect-ok", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/code/200", http.StatusFound) })
	mux.HandleFunc("/redirect-bad", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/code/500", http.StatusMovedPermanently)
	})
	mux.HandleFunc("/redirect-loop", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/redirect-loop", http.StatusFound) })
	mux.HandleFunc("/redirect-away", func(w http.ResponseWriter, r *http.Request) {
		// Another host (127.0.0.2 is loopback too): not followed.
		w.Header().Set("Location", fmt.Sprintf("http://127.0.0.2:%d/", otherPort))
		w.WriteHeader(http.StatusFound)
		fmt.Fprint(w, "moved away")
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	host, port := hostPort(t, srv.URL)

	cases := []struct {
		path    string
		want    Outcome
		message string
	}{
		{"/code/200", Success, ""},
		{"/code/204", Success, ""},
		{"/code/399", Warning, "Probe terminated redirects"},
		{"/code/400", Failure, "HTTP probe failed with statuscode: 400"},
		{"/code/404", Failure, "HTTP probe failed with statuscode: 404"},
		{"/code/500", Failure, "HTTP probe failed with statuscode: 500"},
		{"/code/503", Failure, "HTTP probe failed with statuscode: 503"},
		{"/redirect-ok", Success, ""},                             // same host: followed to 200
		{"/redirect-bad", Failure, "statuscode: 500"},             // same host: followed to 500
		{"/redirect-loop", Failure, "stopped after 10 redirects"}, // same host, forever
		{"/redirect-away", Warning, "Response body: moved away"},  // other host: success with a warning
	}
	for _, c := range cases {
		r := HTTPProbe(context.Background(), HTTPRequest{Host: host, Port: port, Path: c.path}, 2*time.Second)
		if r.Outcome != c.want || !strings.Contains(r.Message, c.message) {
			t.Errorf("GET %s: %v, want %s containing %q", c.path, r, c.want, c.message)
		}
	}
}

func TestHTTPProbeTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	host, port := hostPort(t, srv.URL)
	r := HTTPProbe(context.Background(), HTTPRequest{Host: host, Port: port, Path: "/"}, 200*time.Millisecond)
	if r.Outcome != Failure || !strings.Contains(r.Message, "Timeout") {
		t.Fatalf("slow server: %v, want a timeout failure", r)
	}
}

func TestHTTPProbeHeadersUserAgentAndHTTPS(t *testing.T) {
	type seen struct{ ua, accept, custom, host, enc string }
	var mu sync.Mutex
	var got []seen
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, seen{r.UserAgent(), r.Header.Get("Accept"), r.Header.Get("X-Custom"), r.Host, r.Header.Get("Accept-Encoding")})
		mu.Unlock()
	})
	srv := httptest.NewServer(h)
	defer srv.Close()
	host, port := hostPort(t, srv.URL)
	if UserAgent() != "kube-probe/1.37" {
		t.Errorf("UserAgent = %q, want kube-probe/1.37 (k8s.io/api v0.37 in go.mod)", UserAgent())
	}
	r := HTTPProbe(context.Background(), HTTPRequest{Host: host, Port: port, Path: "/", Headers: []corev1.HTTPHeader{{Name: "X-Custom", Value: "yes"}, {Name: "Host", Value: "example.test"}}}, time.Second)
	if r.Outcome != Success {
		t.Fatal(r)
	}
	r = HTTPProbe(context.Background(), HTTPRequest{Host: host, Port: port, Path: "/", Headers: []corev1.HTTPHeader{{Name: "User-Agent", Value: "mine"}, {Name: "Accept", Value: "text/plain"}}}, time.Second)
	if r.Outcome != Success {
		t.Fatal(r)
	}
	want := []seen{{"kube-probe/1.37", "*/*", "yes", "example.test", ""}, {"mine", "text/plain", "", net.JoinHostPort(host, strconv.Itoa(port)), ""}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("server saw %+v, want %+v", got, want)
	}

	tlsSrv := httptest.NewTLSServer(h) // self-signed: must not be verified
	defer tlsSrv.Close()
	host, port = hostPort(t, tlsSrv.URL)
	if r := HTTPProbe(context.Background(), HTTPRequest{Scheme: "HTTPS", Host: host, Port: port, Path: "/"}, time.Second); r.Outcome != Success {
		t.Fatalf("HTTPS with an unverifiable certificate: %v", r)
	}
	if r := HTTPProbe(context.Background(), HTTPRequest{Scheme: "HTTP", Host: host, Port: port, Path: "/"}, time.Second); r.Outcome != Failure {
		t.Fatalf("plain HTTP to a TLS port: %v, want failure", r)
	}
}

func TestHTTPProbeBodyCap(t *testing.T) {
	written := make(chan int64, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "http://127.0.0.2:1/")
		w.WriteHeader(http.StatusFound)
		chunk := []byte(strings.Repeat("x", 1024))
		var n int64
		for i := 0; i < 64<<10; i++ { // up to 64 MiB: the probe must stop early
			m, err := w.Write(chunk)
			n += int64(m)
			if err != nil {
				break
			}
		}
		written <- n
	}))
	defer srv.Close()
	host, port := hostPort(t, srv.URL)
	r := HTTPProbe(context.Background(), HTTPRequest{Host: host, Port: port, Path: "/"}, 5*time.Second)
	prefix := "Probe terminated redirects, Response body: "
	if r.Outcome != Warning || len(r.Message) != len(prefix)+MaxBodyBytes {
		t.Fatalf("outcome %s, message length %d, want warning with a body of exactly %d bytes", r.Outcome, len(r.Message), MaxBodyBytes)
	}
	if n := <-written; n >= 64<<20 {
		t.Fatalf("the server could write its whole %d-byte body: the probe read it all", n)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

// serveTCP answers every connection to l with greeting (none when empty)
// and closes it, until l is closed.
func serveTCP(l net.Listener, greeting string) {
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			if greeting != "" {
				c.Write([]byte(greeting))
			}
			c.Close()
		}
	}()
}

func TestTCPProbe(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	serveTCP(l, "")
	if r := TCPProbe(context.Background(), "", "127.0.0.1", l.Addr().(*net.TCPAddr).Port, time.Second); r.Outcome != Success {
		t.Fatalf("open port: %v", r)
	}
	if r := TCPProbe(context.Background(), "", "127.0.0.1", freePort(t), time.Second); r.Outcome != Failure || !strings.Contains(r.Message, "refused") {
		t.Fatalf("closed port: %v, want connection refused", r)
	}
}

func TestGRPCProbe(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus("db", healthpb.HealthCheckResponse_NOT_SERVING)
	go srv.Serve(l)
	defer srv.Stop()
	port := l.Addr().(*net.TCPAddr).Port

	bare := grpc.NewServer() // no health service
	lb, _ := net.Listen("tcp", "127.0.0.1:0")
	go bare.Serve(lb)
	defer bare.Stop()

	cases := []struct {
		name    string
		port    int
		service string
		want    Outcome
		msg     string
	}{
		{"serving", port, "", Success, ""},
		{"not serving", port, "db", Failure, `service unhealthy (responded with "NOT_SERVING")`},
		{"unknown service", port, "nope", Failure, "health rpc probe failed"},
		{"no health service", lb.Addr().(*net.TCPAddr).Port, "", Failure, "does not implement the grpc health protocol"},
		{"closed port", freePort(t), "", Failure, "failed to connect"},
	}
	for _, c := range cases {
		r := GRPCProbe(context.Background(), "", "127.0.0.1", c.port, c.service, 2*time.Second)
		if r.Outcome != c.want || !strings.Contains(r.Message, c.msg) {
			t.Errorf("%s: %v, want %s containing %q", c.name, r, c.want, c.msg)
		}
	}
	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	if r := GRPCProbe(context.Background(), "", "127.0.0.1", port, "", time.Second); r.Outcome != Failure {
		t.Errorf("after NOT_SERVING: %v", r)
	}
}

type fakeExec struct {
	code int
	out  string
	err  error
	got  []string
}

func (f *fakeExec) Exec(ctx context.Context, id string, cmd []string, timeout time.Duration) (int, []byte, error) {
	f.got = append([]string{id, timeout.String()}, cmd...)
	return f.code, []byte(f.out), f.err
}

func TestProberRunDispatch(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			w.WriteHeader(404)
		}
	}))
	defer srv.Close()
	host, port := hostPort(t, srv.URL)
	tgt := Target{ContainerID: "cid", PodIP: host, Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: int32(port)}}}
	pr := &Prober{}

	httpProbe := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http")}}}
	if r := pr.Run(context.Background(), Liveness, httpProbe, tgt); r.Outcome != Success {
		t.Fatalf("httpGet on the named port, host = pod IP: %v", r)
	}
	httpProbe.HTTPGet.Port = intstr.FromString(strconv.Itoa(port)) // a number as a string
	if r := pr.Run(context.Background(), Liveness, httpProbe, tgt); r.Outcome != Success {
		t.Fatalf("httpGet on a numeric string port: %v", r)
	}
	httpProbe.HTTPGet.Port = intstr.FromString("metrics")
	if r := pr.Run(context.Background(), Liveness, httpProbe, tgt); r.Outcome != Unknown || !strings.Contains(r.Message, `"metrics"`) {
		t.Fatalf("unknown port name: %v", r)
	}
	tcpProbe := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(int32(port))}}}
	if r := pr.Run(context.Background(), Readiness, tcpProbe, tgt); r.Outcome != Success {
		t.Fatalf("tcpSocket: %v", r)
	}
	if r := pr.Run(context.Background(), Readiness, tcpProbe, Target{}); r.Outcome != Unknown {
		t.Fatalf("no pod IP and no netns: %v", r)
	}

	execProbe := &corev1.Probe{TimeoutSeconds: 4, ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"cat", "/tmp/healthy"}}}}
	if r := pr.Run(context.Background(), Liveness, execProbe, tgt); r.Outcome != Unknown {
		t.Fatalf("exec without an Execer: %v", r)
	}
	fe := &fakeExec{}
	pr.Exec = fe
	if r := pr.Run(context.Background(), Liveness, execProbe, tgt); r.Outcome != Success || fmt.Sprint(fe.got) != "[cid 4s cat /tmp/healthy]" {
		t.Fatalf("exec exit 0: %v, execer got %v", r, fe.got)
	}
	*fe = fakeExec{code: 1, out: "cat: /tmp/healthy: No such file or directory\n"}
	if r := pr.Run(context.Background(), Liveness, execProbe, tgt); r.Outcome != Failure || r.Message != fe.out {
		t.Fatalf("exec exit 1: %v", r)
	}
	*fe = fakeExec{err: fmt.Errorf("exec: %w", context.DeadlineExceeded)}
	if r := pr.Run(context.Background(), Liveness, execProbe, tgt); r.Outcome != Failure || !strings.Contains(r.Message, "timed out") {
		t.Fatalf("exec timeout: %v", r)
	}
	*fe = fakeExec{err: errors.New("container not running")}
	if r := pr.Run(context.Background(), Liveness, execProbe, tgt); r.Outcome != Unknown {
		t.Fatalf("exec error: %v", r)
	}
	if r := pr.Run(context.Background(), Startup, &corev1.Probe{}, tgt); r.Outcome != Unknown {
		t.Fatalf("no handler: %v", r)
	}
}

func TestResolvePort(t *testing.T) {
	ports := []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}
	for _, c := range []struct {
		in   intstr.IntOrString
		want int
		ok   bool
	}{
		{intstr.FromInt32(80), 80, true},
		{intstr.FromString("http"), 8080, true},
		{intstr.FromString("9090"), 9090, true},
		{intstr.FromString("grpc"), 0, false},
		{intstr.FromInt32(0), 0, false},
		{intstr.FromInt32(70000), 0, false},
	} {
		got, err := ResolvePort(c.in, ports)
		if (err == nil) != c.ok || (c.ok && got != c.want) {
			t.Errorf("ResolvePort(%v) = %d, %v", c.in.String(), got, err)
		}
	}
}
