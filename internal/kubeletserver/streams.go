package kubeletserver

// streams.go: /exec, /attach and /portForward, what `kubectl exec`,
// `kubectl attach` and `kubectl port-forward` reach through the API server
// (kubelet: pkg/kubelet/server/server.go getExec, getAttach, getPortForward).
// The kubelet hands these to the CRI runtime's streaming server; minikubelet
// is its own runtime, so the same streaming protocols (SPDY and WebSocket,
// from k8s.io/cri-streaming) are served here, straight onto runtime.Exec,
// runtime.Attach and a dial inside the pod's network namespace.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/cri-streaming/pkg/streaming/portforward"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"

	"github.com/minikubelet/minikubelet/internal/api/kubectl"
	"github.com/minikubelet/minikubelet/internal/podlogs"
	"github.com/minikubelet/minikubelet/runtime"
	"github.com/minikubelet/minikubelet/runtime/probe"
)

// Runtime is what the streaming endpoints need of the container runtime
// (*runtime.Runtime has these methods).
type Runtime interface {
	Exec(ctx context.Context, uid types.UID, containerID string, cfg runtime.ExecConfig) (int, error)
	Attach(ctx context.Context, uid types.UID, containerID string, stdin io.Reader) error
	ResizeTerminal(ctx context.Context, uid types.UID, containerID string, ws runtime.WindowSize) error
	SandboxStatus(ctx context.Context, uid types.UID) (runtime.SandboxStatus, error)
}

const (
	// kubelet: KubeletConfiguration streamingConnectionIdleTimeout default.
	streamIdleTimeout = 4 * time.Hour
	// kubelet: remotecommandconsts.DefaultStreamCreationTimeout.
	streamCreationTimeout = 30 * time.Second
	// kubelet: api.ExecCommandParam.
	execCommandParam = "command"
)

// streamTarget parses /{verb}/{namespace}/{pod}[/{uid}]/{container} (or,
// for portForward, without the container) and finds the pod; on failure it
// has written the kubelet's error.
func (s *Server) streamTarget(w http.ResponseWriter, r *http.Request, verb string, withContainer bool) (*v1.Pod, string, bool) {
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/"+verb+"/"), "/")
	want := "/" + verb + "/{podNamespace}/{podID}[/{uid}]"
	min := 2
	if withContainer {
		want += "/{containerName}"
		min = 3
	}
	if len(parts) < min || len(parts) > min+1 {
		http.Error(w, "want "+want, http.StatusNotFound)
		return nil, "", false
	}
	for _, p := range parts {
		if p == "" {
			http.Error(w, "want "+want, http.StatusNotFound)
			return nil, "", false
		}
	}
	ns, name := parts[0], parts[1]
	var uid, container string
	if withContainer {
		container = parts[len(parts)-1]
		parts = parts[:len(parts)-1]
	}
	if len(parts) == 3 {
		uid = parts[2]
	}
	if s.o.Runtime == nil {
		http.Error(w, verb+" is not served by this node", http.StatusNotImplemented)
		return nil, "", false
	}
	pod, ok := s.o.Source.Pod(ns, name)
	// kubelet: "pod does not exist" (404), also when a uid is given and
	// names another instance of the pod.
	if !ok || (uid != "" && string(pod.UID) != uid) {
		http.Error(w, "pod does not exist", http.StatusNotFound)
		return nil, "", false
	}
	return &pod, container, true
}

func (s *Server) exec(w http.ResponseWriter, r *http.Request) {
	opts, err := remotecommand.NewOptions(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	pod, container, ok := s.streamTarget(w, r, "exec", true)
	if !ok {
		return
	}
	cmd := r.URL.Query()[execCommandParam]
	remotecommand.ServeExec(w, r, podStreams{s, pod}, pod.Name, string(pod.UID), container, cmd, opts,
		streamIdleTimeout, streamCreationTimeout, remotecommand.SupportedStreamingProtocols)
}

func (s *Server) attach(w http.ResponseWriter, r *http.Request) {
	opts, err := remotecommand.NewOptions(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	pod, container, ok := s.streamTarget(w, r, "attach", true)
	if !ok {
		return
	}
	remotecommand.ServeAttach(w, r, podStreams{s, pod}, pod.Name, string(pod.UID), container, opts,
		streamIdleTimeout, streamCreationTimeout, remotecommand.SupportedStreamingProtocols)
}

func (s *Server) portForward(w http.ResponseWriter, r *http.Request) {
	pod, _, ok := s.streamTarget(w, r, "portForward", false)
	if !ok {
		return
	}
	// Ports come in the WebSocket request's query; SPDY names them per stream.
	var opts *portforward.V4Options
	if isWebSocket(r) {
		var err error
		if opts, err = portforward.NewV4Options(r); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	}
	portforward.ServePortForward(w, r, podStreams{s, pod}, pod.Name, string(pod.UID), opts,
		streamIdleTimeout, streamCreationTimeout, portforward.SupportedProtocols)
}

func isWebSocket(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket") &&
		strings.Contains(strings.ToLower(r.Header.Get("Connection")), "upgrade")
}

// podStreams serves one request's streams for one pod: it is the
// remotecommand.Executor, remotecommand.Attacher and
// portforward.PortForwarder of k8s.io/cri-streaming.
type podStreams struct {
	s   *Server
	pod *v1.Pod
}

func (p podStreams) container(name, what string) (v1.ContainerStatus, error) {
	return kubectl.RunningContainer(p.pod, name, what)
}

// ExecInContainer runs cmd in the container; a non-zero exit is an
// utilexec.ExitError, which the protocol carries to kubectl as the exit code.
func (p podStreams) ExecInContainer(ctx context.Context, _, _, container string, cmd []string, in io.Reader,
	out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize, timeout time.Duration) error {
	st, err := p.container(container, "exec into")
	if err != nil {
		return err
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	cfg := runtime.ExecConfig{Cmd: cmd, TTY: tty, Resize: windowSizes(ctx, resize)}
	// Interfaces, not typed nils: a stream not asked for stays nil.
	if in != nil {
		cfg.Stdin = in
	}
	if out != nil {
		cfg.Stdout = out
	}
	if errw != nil {
		cfg.Stderr = errw
	}
	code, err := p.s.o.Runtime.Exec(ctx, p.pod.UID, kubectl.ContainerIDOf(st), cfg)
	if err != nil {
		return err
	}
	if code != 0 {
		return utilexec.CodeExitError{Err: fmt.Errorf("command terminated with exit code %d", code), Code: code}
	}
	return nil
}

// AttachContainer streams stdin into the container (when it has stdin) and
// its output, from now on, out of its log: minikubelet's containers write
// their stdout and stderr to the CRI log file, as the kubelet's runtimes do.
// It returns when the container's instance ends or the caller goes.
func (p podStreams) AttachContainer(ctx context.Context, _, _, container string, in io.Reader,
	out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	st, err := p.container(container, "attach to")
	if err != nil {
		return err
	}
	id := kubectl.ContainerIDOf(st)
	var spec *v1.Container
	for i := range p.pod.Spec.Containers {
		if p.pod.Spec.Containers[i].Name == container {
			spec = &p.pod.Spec.Containers[i]
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if tty && resize != nil {
		go func() {
			for ws := range windowSizes(ctx, resize) {
				p.s.o.Runtime.ResizeTerminal(ctx, p.pod.UID, id, ws)
			}
		}()
	}
	stdinDone := make(chan error, 1)
	// A container without stdin: true has nothing to write to; its output
	// can still be watched (containerd does the same).
	if in != nil && spec != nil && spec.Stdin {
		go func() { stdinDone <- p.s.o.Runtime.Attach(ctx, p.pod.UID, id, in) }()
	} else {
		in = nil
	}
	if out == nil && errw == nil {
		if in == nil {
			return nil
		}
		return <-stdinDone
	}
	dir := filepath.Join(p.s.o.LogDir, podlogs.PodDirName(p.pod.Namespace, p.pod.Name, p.pod.UID), container)
	lo := podlogs.Options{Follow: true, Tail: 0}
	var w io.Writer = discard{}
	if out != nil {
		w = out
	}
	if errw != nil && !tty {
		lo.Stderr = errw
	}
	// Tail 0 skips what is in the log already: attach shows what comes next.
	err = podlogs.Read(ctx, dir, int(st.RestartCount), lo, w)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// PortForward copies between stream and the port on the pod's loopback,
// dialled inside the pod's network namespace (the host's with hostNetwork),
// as containerd's portforward does.
func (p podStreams) PortForward(ctx context.Context, _, _ string, port int32, stream io.ReadWriteCloser) error {
	defer stream.Close()
	netns := ""
	if !p.pod.Spec.HostNetwork {
		sb, err := p.s.o.Runtime.SandboxStatus(ctx, p.pod.UID)
		if err != nil {
			return fmt.Errorf("pod %s/%s sandbox: %w", p.pod.Namespace, p.pod.Name, err)
		}
		if sb.NetNSPath == "" {
			return fmt.Errorf("pod %s/%s has no network namespace (its sandbox is not running)", p.pod.Namespace, p.pod.Name)
		}
		netns = sb.NetNSPath
	}
	port_ := strconv.Itoa(int(port))
	conn, err := probe.DialInNetns(ctx, netns, "tcp4", net.JoinHostPort("127.0.0.1", port_))
	if err != nil {
		var err6 error
		if conn, err6 = probe.DialInNetns(ctx, netns, "tcp6", net.JoinHostPort("::1", port_)); err6 != nil {
			return fmt.Errorf("failed to connect to localhost:%d inside pod %s/%s: %w", port, p.pod.Namespace, p.pod.Name, err)
		}
	}
	defer conn.Close()
	// The client's end closing half-closes the pod's; the pod's end closing
	// ends the forward (the deferred closes stop the other copy).
	go func() {
		io.Copy(conn, stream)
		if c, ok := conn.(interface{ CloseWrite() error }); ok {
			c.CloseWrite()
		}
	}()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if _, err := io.Copy(stream, conn); err != nil && ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

// windowSizes converts the protocol's resize events to the runtime's.
func windowSizes(ctx context.Context, in <-chan remotecommand.TerminalSize) <-chan runtime.WindowSize {
	if in == nil {
		return nil
	}
	out := make(chan runtime.WindowSize, 1)
	go func() {
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case ts, ok := <-in:
				if !ok {
					return
				}
				select {
				case out <- runtime.WindowSize{Rows: ts.Height, Cols: ts.Width}:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}
