package kubeletserver

// The streaming endpoints with client-go's own SPDY clients (what the API
// server and kubectl speak) against a fake runtime; the real runtime behind
// the real API server is in internal/daemon's TestClusterMode.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport/spdy"
	utilexec "k8s.io/utils/exec"

	"github.com/minikubelet/minikubelet/internal/api"
	"github.com/minikubelet/minikubelet/runtime"
)

type fakeRuntime struct{ execs []string }

func (f *fakeRuntime) Exec(ctx context.Context, uid types.UID, id string, cfg runtime.ExecConfig) (int, error) {
	f.execs = append(f.execs, string(uid)+"/"+id+":"+strings.Join(cfg.Cmd, " "))
	fmt.Fprintf(cfg.Stdout, "ran %s\n", strings.Join(cfg.Cmd, " "))
	if cfg.Stdin != nil {
		io.Copy(cfg.Stdout, cfg.Stdin)
	}
	if cfg.Stderr != nil {
		fmt.Fprintln(cfg.Stderr, "to stderr")
	}
	if cfg.Cmd[0] == "fail" {
		return 3, nil
	}
	return 0, nil
}
func (f *fakeRuntime) Attach(ctx context.Context, uid types.UID, id string, stdin io.Reader) error {
	return nil
}
func (f *fakeRuntime) ResizeTerminal(ctx context.Context, uid types.UID, id string, ws runtime.WindowSize) error {
	return nil
}
func (f *fakeRuntime) SandboxStatus(ctx context.Context, uid types.UID) (runtime.SandboxStatus, error) {
	return runtime.SandboxStatus{}, nil
}

func streamServer(t *testing.T) (*httptest.Server, *fakeRuntime) {
	store := api.NewStore(10)
	running := v1.ContainerState{Running: &v1.ContainerStateRunning{}}
	store.SetPod(v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-n1", Namespace: "default", UID: "u1"},
		Spec: v1.PodSpec{HostNetwork: true, Containers: []v1.Container{{Name: "c"}, {Name: "done"}}},
		Status: v1.PodStatus{ContainerStatuses: []v1.ContainerStatus{
			{Name: "c", ContainerID: "minikubelet://abc", State: running},
			{Name: "done", ContainerID: "minikubelet://def", State: v1.ContainerState{Terminated: &v1.ContainerStateTerminated{Reason: "Completed"}}},
		}}})
	rt := &fakeRuntime{}
	s := New(Options{Source: store, Runtime: rt})
	mux := http.NewServeMux()
	mux.HandleFunc("/exec/", s.exec)
	mux.HandleFunc("/portForward/", s.portForward)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, rt
}

func execStream(t *testing.T, srv *httptest.Server, path string, cmd []string, stdin string) (string, string, error) {
	q := url.Values{"command": cmd, "output": {"1"}, "error": {"1"}}
	if stdin != "" {
		q.Set("input", "1")
	}
	u, _ := url.Parse(srv.URL + path + "?" + q.Encode())
	ex, err := remotecommand.NewSPDYExecutor(&rest.Config{Host: srv.URL}, "POST", u)
	if err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	so := remotecommand.StreamOptions{Stdout: &out, Stderr: &errb}
	if stdin != "" {
		so.Stdin = strings.NewReader(stdin)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = ex.StreamWithContext(ctx, so)
	return out.String(), errb.String(), err
}

func TestExecOverSPDY(t *testing.T) {
	srv, rt := streamServer(t)
	out, errOut, err := execStream(t, srv, "/exec/default/web-n1/c", []string{"echo", "hi"}, "from stdin\n")
	if err != nil || out != "ran echo hi\nfrom stdin\n" || errOut != "to stderr\n" {
		t.Fatalf("exec: %v out %q err %q", err, out, errOut)
	}
	if len(rt.execs) != 1 || rt.execs[0] != "u1/abc:echo hi" {
		t.Fatalf("runtime saw %q", rt.execs)
	}
	// A non-zero exit reaches the client as its exit code (kubectl exits with it).
	_, _, err = execStream(t, srv, "/exec/default/web-n1/u1/c", []string{"fail"}, "")
	var ee utilexec.ExitError
	if !asExit(err, &ee) || ee.ExitStatus() != 3 {
		t.Fatalf("exit: %v", err)
	}
	// A terminated container, another pod instance, a missing pod: errors
	// that name what is wrong, nothing run.
	for path, want := range map[string]string{
		"/exec/default/web-n1/done":        "terminated (Completed), not running",
		"/exec/default/web-n1/other-uid/c": "pod does not exist",
		"/exec/default/nope/c":             "pod does not exist",
	} {
		_, _, err := execStream(t, srv, path, []string{"true"}, "")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", path, err, want)
		}
	}
	if len(rt.execs) != 2 {
		t.Fatalf("runtime saw %q", rt.execs)
	}
}

func asExit(err error, ee *utilexec.ExitError) bool {
	e, ok := err.(utilexec.ExitError)
	if ok {
		*ee = e
	}
	return ok
}

func TestPortForwardOverSPDY(t *testing.T) {
	srv, _ := streamServer(t)
	// The pod has hostNetwork: its loopback is this one.
	backend, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer backend.Close()
	go func() {
		for {
			c, err := backend.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				line, _ := io.ReadAll(io.LimitReader(c, 5))
				fmt.Fprintf(c, "echo:%s", line)
			}()
		}
	}()
	port := backend.Addr().(*net.TCPAddr).Port
	rt, upgrader, err := spdy.RoundTripperFor(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(srv.URL + "/portForward/default/web-n1")
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: rt}, "POST", u)
	stop, ready := make(chan struct{}), make(chan struct{})
	defer close(stop)
	pf, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{"0:" + strconv.Itoa(port)}, stop, ready, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- pf.ForwardPorts() }()
	select {
	case <-ready:
	case err := <-errc:
		t.Fatalf("port-forward: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("port-forward not ready in 20s")
	}
	ports, err := pf.GetPorts()
	if err != nil || len(ports) != 1 {
		t.Fatalf("ports %v %v", ports, err)
	}
	c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(ports[0].Local))))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	io.WriteString(c, "hello")
	got, err := io.ReadAll(c)
	if string(got) != "echo:hello" {
		t.Fatalf("through the forward: %q %v", got, err)
	}
}
