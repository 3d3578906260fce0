package probe

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
)

// MaxBodyBytes caps how much of an HTTP probe's response body is read
// (kubelet's maxRespBodyLength); the rest is left unread.
const MaxBodyBytes = 10 << 10

// fallbackKubeVersion is used when build info is unavailable (tests built
// without module info); it matches k8s.io/api v0.37 in go.mod.
const fallbackKubeVersion = "1.37"

// UserAgent is "kube-probe/<major>.<minor>", the Kubernetes release whose
// API (k8s.io/api v0.<minor>) this binary is built with, like kubelet's.
var UserAgent = sync.OnceValue(func() string {
	v := fallbackKubeVersion
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "k8s.io/api" {
				// v0.37.2 -> 1.37
				parts := strings.Split(strings.TrimPrefix(d.Version, "v"), ".")
				if len(parts) >= 2 && parts[0] == "0" {
					v = "1." + parts[1]
				}
			}
		}
	}
	return "kube-probe/" + v
})

// dialer returns the dial function for probes of a pod: inside its netns
// when netnsPath is set (pods without a reachable IP), else from here.
func dialer(netnsPath string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		return DialInNetns(ctx, netnsPath, network, addr)
	}
}

// HTTPRequest is an httpGet probe, resolved to a host and port.
type HTTPRequest struct {
	Scheme    string // HTTP (default) or HTTPS; TLS is not verified
	Host      string
	Port      int
	Path      string
	Headers   []corev1.HTTPHeader
	NetnsPath string // dial from inside this netns ("" = from here)
}

// URL is the probed URL, built as kubelet builds it.
func (r HTTPRequest) URL() *url.URL {
	u, err := url.Parse(r.Path)
	if err != nil {
		u = &url.URL{Path: r.Path} // too late to reject a bad path: pass it as is
	}
	scheme := strings.ToLower(r.Scheme)
	if scheme == "" {
		scheme = "http"
	}
	u.Scheme = scheme
	u.Host = net.JoinHostPort(r.Host, strconv.Itoa(r.Port))
	return u
}

// HTTPProbe runs an httpGet probe: 200-399 is success, a redirect to the
// same host is followed (up to 10), one to another host is not and counts
// as a Warning (success), anything else fails. The body is read up to
// MaxBodyBytes; failure messages never carry it (kubernetes #99425).
func HTTPProbe(ctx context.Context, r HTTPRequest, timeout time.Duration) Result {
	u := r.URL()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return Result{Failure, err.Error()}
	}
	for _, h := range r.Headers {
		req.Header.Add(h.Name, h.Value)
	}
	if _, ok := req.Header["User-Agent"]; !ok {
		req.Header.Set("User-Agent", UserAgent())
	}
	if _, ok := req.Header["Accept"]; !ok {
		req.Header.Set("Accept", "*/*")
	}
	if host := req.Header.Get("Host"); host != "" {
		req.Host = host
	}
	tr := &http.Transport{
		DialContext:        dialer(r.NetnsPath),
		TLSClientConfig:    &tls.Config{InsecureSkipVerify: true},
		DisableKeepAlives:  true,
		DisableCompression: true,
		Proxy:              nil,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: timeout, CheckRedirect: redirectChecker}
	resp, err := client.Do(req)
	if err != nil {
		return Result{Failure, err.Error()}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxBodyBytes))
	if err != nil {
		return Result{Failure, err.Error()}
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 400 {
		if resp.StatusCode >= 300 {
			return Result{Warning, fmt.Sprintf("Probe terminated redirects, Response body: %s", body)}
		}
		return Result{Success, ""}
	}
	return Result{Failure, fmt.Sprintf("HTTP probe failed with statuscode: %d", resp.StatusCode)}
}

// redirectChecker follows redirects on the same host only (kubelet's
// followNonLocalRedirects=false).
func redirectChecker(req *http.Request, via []*http.Request) error {
	if req.URL.Hostname() != via[0].URL.Hostname() {
		return http.ErrUseLastResponse
	}
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	return nil
}

// TCPProbe succeeds when a TCP connection to host:port opens.
func TCPProbe(ctx context.Context, netnsPath, host string, port int, timeout time.Duration) Result {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := DialInNetns(ctx, netnsPath, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return Result{Failure, err.Error()}
	}
	conn.Close()
	return Result{Success, ""}
}

// GRPCProbe calls grpc.health.v1.Health/Check for service on host:port
// (plaintext, as kubelet) and succeeds on SERVING.
func GRPCProbe(ctx context.Context, netnsPath, host string, port int, service string, timeout time.Duration) Result {
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// passthrough: the address is dialled as is (no resolver goroutines,
	// which would not run inside the pod's netns).
	conn, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUserAgent(UserAgent()),
		grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) {
			return DialInNetns(ctx, netnsPath, "tcp", a)
		}))
	if err != nil {
		return Result{Failure, fmt.Sprintf("failed to connect service %q: %v", addr, err)}
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		st, _ := status.FromError(err)
		switch st.Code() {
		case codes.Unimplemented:
			return Result{Failure, fmt.Sprintf("this server does not implement the grpc health protocol (grpc.health.v1.Health): %s", st.Message())}
		case codes.Unavailable:
			// Not WaitForReady: a refused connection fails now, not at the timeout.
			return Result{Failure, fmt.Sprintf("failed to connect service %q: %s", addr, st.Message())}
		case codes.DeadlineExceeded:
			return Result{Failure, fmt.Sprintf("timeout: health rpc did not complete within %v", timeout)}
		default:
			return Result{Failure, fmt.Sprintf("error: health rpc probe failed: %v", err)}
		}
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return Result{Failure, fmt.Sprintf("service unhealthy (responded with %q)", resp.GetStatus().String())}
	}
	return Result{Success, ""}
}

// Execer runs a command inside a running container (implemented by the pod
// runtime, like `minikubelet exec`). On timeout it must stop the command
// and return an error wrapping context.DeadlineExceeded. exitCode is the
// command's exit status when it ran; output is its combined stdout+stderr.
type Execer interface {
	Exec(ctx context.Context, containerID string, cmd []string, timeout time.Duration) (exitCode int, output []byte, err error)
}

// ExecProbe succeeds when cmd exits 0; the output (capped at MaxBodyBytes)
// is the message, as kubelet reports it.
func ExecProbe(ctx context.Context, e Execer, containerID string, cmd []string, timeout time.Duration) Result {
	if e == nil {
		return Result{Unknown, "exec probes are not supported: no Execer"}
	}
	code, out, err := e.Exec(ctx, containerID, cmd, timeout)
	if len(out) > MaxBodyBytes {
		out = out[:MaxBodyBytes]
	}
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return Result{Failure, fmt.Sprintf("command %q timed out", strings.Join(cmd, " "))}
		}
		return Result{Unknown, fmt.Sprintf("exec %q in container %s: %v", strings.Join(cmd, " "), containerID, err)}
	}
	if code != 0 {
		return Result{Failure, string(out)}
	}
	return Result{Success, string(out)}
}
