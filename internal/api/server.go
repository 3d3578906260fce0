package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/watch"
)

// DefaultSocket is where the daemon listens and clients dial unless told otherwise.
const DefaultSocket = "/run/minikubelet/minikubelet.sock"

var (
	podTypeMeta   = metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"}
	eventTypeMeta = metav1.TypeMeta{Kind: "Event", APIVersion: "v1"}
)

// MatchesName reports whether name designates pod: its metadata.name, or
// that name without the static pod suffix "-<spec.nodeName>".
func MatchesName(pod *v1.Pod, name string) bool {
	if pod.Name == name {
		return true
	}
	return pod.Spec.NodeName != "" && pod.Name == name+"-"+pod.Spec.NodeName
}

// FindPod resolves name in namespace against pods: an exact metadata.name
// wins, then a name without its -<node> suffix.
func FindPod(pods []v1.Pod, namespace, name string) (v1.Pod, bool) {
	var found *v1.Pod
	for i := range pods {
		p := &pods[i]
		if p.Namespace != namespace {
			continue
		}
		if p.Name == name {
			return *p, true
		}
		if found == nil && MatchesName(p, name) {
			found = p
		}
	}
	if found == nil {
		return v1.Pod{}, false
	}
	return *found, true
}

// Server serves a Source over HTTP. All endpoints are read-only, so the same
// handler backs the unix socket and the optional TCP listener; only the
// socket adds /debug/pprof/ (debug.go says why).
type Server struct {
	src     Source
	metrics *Metrics
	log     *slog.Logger
	config  atomic.Pointer[DaemonConfig] // /configz (configz.go)

	// WriteTimeout bounds each write to a client: a whole plain response,
	// or one event of a watch stream. A client that stops reading (on the
	// read-only TCP port anyone may be one) is dropped when it passes,
	// instead of holding its goroutine and buffers forever.
	WriteTimeout time.Duration
	watches      atomic.Int64

	// /metrics recounts the pods at most once per metricsTTL.
	metricsMu   sync.Mutex
	metricsAt   time.Time
	metricsTTL  time.Duration
	metricsNow  func() time.Time
	metricsRuns int // recounts done (tests)
}

// DefaultWriteTimeout is Server.WriteTimeout unless set.
const DefaultWriteTimeout = 30 * time.Second

// NewServer serves src; metrics may be nil (then /metrics is 404).
func NewServer(src Source, metrics *Metrics, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{src: src, metrics: metrics, log: log, WriteTimeout: DefaultWriteTimeout,
		metricsTTL: time.Second, metricsNow: time.Now}
}

// Watches is the number of watch streams being served.
func (s *Server) Watches() int { return int(s.watches.Load()) }

// refreshPodMetrics recounts pods by phase for /metrics, at most once a
// second: a scrape (or a flood of them on the read-only port) does not
// copy every pod on each request.
func (s *Server) refreshPodMetrics() {
	s.metricsMu.Lock()
	defer s.metricsMu.Unlock()
	now := s.metricsNow()
	if !s.metricsAt.IsZero() && now.Sub(s.metricsAt) < s.metricsTTL {
		return
	}
	s.metricsAt = now
	s.metricsRuns++
	s.metrics.SetPods(s.src.Pods())
}

// writeDeadline gives the next write(s) WriteTimeout to complete.
func (s *Server) writeDeadline(w http.ResponseWriter) {
	if s.WriteTimeout > 0 {
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(s.WriteTimeout))
	}
}

// ListenUnix prepares path and listens on it: the directory is created 0755,
// a socket file left by a dead daemon is removed (one that answers is not:
// another daemon owns it), and the socket is made 0600 so only root talks
// to the daemon.
func ListenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("socket directory %s: %w", filepath.Dir(path), err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("socket %s: exists and is not a socket; refusing to remove it", path)
		}
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("socket %s: another process is serving on it (is minikubelet already running?)", path)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, syscall.ENOENT) {
			return nil, fmt.Errorf("socket %s: probing the existing socket: %w", path, err)
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("socket %s: removing the stale socket: %w", path, err)
		}
	}
	// Bind in a private folder, set the mode, then move the socket into
	// place: nobody can connect before it is 0600, and the process umask
	// (shared by every goroutine of the daemon) is never touched.
	tmp, err := os.MkdirTemp(filepath.Dir(path), ".minikubelet-sock-")
	if err != nil {
		return nil, fmt.Errorf("socket %s: %w", path, err)
	}
	defer os.RemoveAll(tmp)
	l, err := net.Listen("unix", filepath.Join(tmp, "s"))
	if err != nil {
		return nil, fmt.Errorf("socket %s: %w", path, err)
	}
	ul := l.(*net.UnixListener)
	ul.SetUnlinkOnClose(false)
	if err := os.Chmod(filepath.Join(tmp, "s"), 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("socket %s: chmod 0600: %w", path, err)
	}
	if err := os.Rename(filepath.Join(tmp, "s"), path); err != nil {
		l.Close()
		return nil, fmt.Errorf("socket %s: %w", path, err)
	}
	return &unlinkListener{Listener: l, path: path}, nil
}

// unlinkListener removes the socket file when closed, as net.UnixListener
// does for the path it was bound to.
type unlinkListener struct {
	net.Listener
	path string
	once sync.Once
}

func (u *unlinkListener) Close() error {
	err := u.Listener.Close()
	u.once.Do(func() { os.Remove(u.path) })
	return err
}

// ListenAndServe serves on the unix socket and, when tcpAddr is not empty,
// also on that TCP address (read-only like every endpoint; off by default,
// as the kubelet's read-only port). It returns when ctx ends or a listener
// fails; the socket file is removed on return.
func (s *Server) ListenAndServe(ctx context.Context, socket, tcpAddr string) error {
	ul, err := ListenUnix(socket)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, 2)
	n := 1
	go func() { errs <- s.serve(ctx, ul, debugHandler(s.Handler())) }()
	if tcpAddr != "" {
		tl, err := net.Listen("tcp", tcpAddr)
		if err != nil {
			cancel()
			<-errs
			return fmt.Errorf("read-only API address %s: %w", tcpAddr, err)
		}
		s.log.Info("read-only API listening", "address", tl.Addr().String())
		n++
		go func() { errs <- s.Serve(ctx, tl) }()
	}
	var first error
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
		cancel() // one listener down stops the other
	}
	return first
}

// Serve serves on l until ctx ends, then shuts down (open watches end).
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	return s.serve(ctx, l, s.Handler())
}

func (s *Server) serve(ctx context.Context, l net.Listener, h http.Handler) error {
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
		case <-done:
		}
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
	}()
	err := hs.Serve(l)
	close(done)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Handler routes the API.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(s.route)
}

func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	s.writeDeadline(w)
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeStatus(w, http.StatusMethodNotAllowed, metav1.StatusReasonMethodNotAllowed,
			fmt.Sprintf("the server does not allow this method on the requested resource (%s %s): the local API is read-only", r.Method, r.URL.Path), nil)
		return
	}
	switch {
	case len(parts) == 1 && parts[0] == "healthz":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok"))
	case len(parts) == 1 && parts[0] == "configz" && s.configz(w):
	case len(parts) == 1 && parts[0] == "metrics" && s.metrics != nil:
		s.refreshPodMetrics()
		s.metrics.Handler().ServeHTTP(w, r)
	case parts[0] == "pods" && len(parts) <= 2:
		ns := r.URL.Query().Get("namespace")
		if len(parts) == 2 {
			ns = parts[1]
		}
		s.pods(w, r, ns)
	case parts[0] == "pods" && len(parts) == 3:
		s.pod(w, r, parts[1], parts[2])
	case parts[0] == "pods" && len(parts) == 4 && parts[3] == "extra":
		s.extra(w, parts[1], parts[2])
	case parts[0] == "events" && len(parts) <= 2:
		ns := r.URL.Query().Get("namespace")
		if len(parts) == 2 {
			ns = parts[1]
		}
		s.events(w, r, ns)
	default:
		writeStatus(w, http.StatusNotFound, metav1.StatusReasonNotFound,
			fmt.Sprintf("the server could not find the requested resource (GET %s); endpoints: /pods, /pods/<namespace>, /pods/<namespace>/<name>, /events, /healthz, /metrics, /configz", r.URL.Path), nil)
	}
}

func isWatch(r *http.Request) (bool, error) {
	v := r.URL.Query().Get("watch")
	switch v {
	case "", "0", "false":
		return false, nil
	case "1", "true":
		return true, nil
	}
	return false, fmt.Errorf("watch=%q: want 1, true, 0 or false", v)
}

func selector(r *http.Request) (labels.Selector, error) {
	sel, err := labels.Parse(r.URL.Query().Get("labelSelector"))
	if err != nil {
		return nil, fmt.Errorf("labelSelector: %w", err)
	}
	return sel, nil
}

func (s *Server) pods(w http.ResponseWriter, r *http.Request, ns string) {
	watching, err := isWatch(r)
	if err != nil {
		writeStatus(w, http.StatusBadRequest, metav1.StatusReasonBadRequest, err.Error(), nil)
		return
	}
	sel, err := selector(r)
	if err != nil {
		writeStatus(w, http.StatusBadRequest, metav1.StatusReasonBadRequest, err.Error(), nil)
		return
	}
	keep := func(p *v1.Pod) bool {
		return (ns == "" || p.Namespace == ns) && sel.Matches(labels.Set(p.Labels))
	}
	if watching {
		s.watchPods(w, r, keep)
		return
	}
	list := v1.PodList{TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"}, Items: kept(s.src.Pods(), keep, setPodMeta)}
	list.ResourceVersion = maxRV(list.Items)
	writeJSON(w, http.StatusOK, &list)
}

func (s *Server) pod(w http.ResponseWriter, r *http.Request, ns, name string) {
	watching, err := isWatch(r)
	if err != nil {
		writeStatus(w, http.StatusBadRequest, metav1.StatusReasonBadRequest, err.Error(), nil)
		return
	}
	if watching {
		// A watch on one name may start before the pod exists (wait does).
		s.watchPods(w, r, func(p *v1.Pod) bool { return p.Namespace == ns && MatchesName(p, name) })
		return
	}
	p, ok := s.lookup(ns, name)
	if !ok {
		writeNotFound(w, "pods", name)
		return
	}
	setPodMeta(&p)
	writeJSON(w, http.StatusOK, &p)
}

func (s *Server) lookup(ns, name string) (v1.Pod, bool) {
	if p, ok := s.src.Pod(ns, name); ok {
		return p, true
	}
	return FindPod(s.src.Pods(), ns, name)
}

func (s *Server) extra(w http.ResponseWriter, ns, name string) {
	p, ok := s.lookup(ns, name)
	if !ok {
		writeNotFound(w, "pods", name)
		return
	}
	e, _ := s.src.Extra(p.UID)
	writeJSON(w, http.StatusOK, &e)
}

func (s *Server) events(w http.ResponseWriter, r *http.Request, ns string) {
	watching, err := isWatch(r)
	if err != nil {
		writeStatus(w, http.StatusBadRequest, metav1.StatusReasonBadRequest, err.Error(), nil)
		return
	}
	keep := func(e *v1.Event) bool { return ns == "" || e.Namespace == ns }
	if watching {
		s.watchEvents(w, r, keep)
		return
	}
	list := v1.EventList{TypeMeta: metav1.TypeMeta{Kind: "EventList", APIVersion: "v1"}, Items: kept(s.src.Events(), keep, setEventMeta)}
	writeJSON(w, http.StatusOK, &list)
}

// kept returns the items keep accepts, each with its kind set by setMeta
// (the source's objects carry none; the API server's do). It is never nil:
// an empty list is "items": [], as the API server writes it.
func kept[T any](items []T, keep func(*T) bool, setMeta func(*T)) []T {
	out := []T{}
	for _, item := range items {
		if keep(&item) {
			setMeta(&item)
			out = append(out, item)
		}
	}
	return out
}

func setPodMeta(p *v1.Pod)     { p.TypeMeta = podTypeMeta }
func setEventMeta(e *v1.Event) { e.TypeMeta = eventTypeMeta }

// watchJSON is one line of a watch stream, as the API server writes it.
type watchJSON struct {
	Type   watch.EventType `json:"type"`
	Object any             `json:"object"`
}

// watchPods streams ADDED for every current pod, then each change, one JSON
// object per line, until the client goes away or the source drops us.
func (s *Server) watchPods(w http.ResponseWriter, r *http.Request, keep func(*v1.Pod) bool) {
	s.watches.Add(1)
	defer s.watches.Add(-1)
	serveWatch(s.newStream(w), r, s.src, s.src.Pods, func(ev WatchEvent) *v1.Pod { return ev.Pod }, keep,
		setPodMeta)
}

func (s *Server) watchEvents(w http.ResponseWriter, r *http.Request, keep func(*v1.Event) bool) {
	s.watches.Add(1)
	defer s.watches.Add(-1)
	serveWatch(s.newStream(w), r, s.src, s.src.Events, func(ev WatchEvent) *v1.Event { return ev.Event }, keep,
		setEventMeta)
}

// serveWatch is the API server's watch for one kind: subscribe first (so no
// change falls between the listing and the stream), send ADDED for what is
// kept of the current list, then every kept change of that kind.
func serveWatch[T any](stream *stream, r *http.Request, src Source, list func() []T,
	pick func(WatchEvent) *T, keep func(*T) bool, setMeta func(*T)) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	ch := src.Subscribe(ctx)
	if !stream.start() {
		return
	}
	for _, item := range kept(list(), keep, setMeta) {
		if !stream.send(watch.Added, &item) {
			return
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-ch:
			if !ok {
				return
			}
			got := pick(ev)
			if got == nil || !keep(got) {
				continue
			}
			line, err := ev.encoded(func() ([]byte, error) {
				item := *got
				setMeta(&item)
				return json.Marshal(watchJSON{Type: ev.Type, Object: &item})
			})
			if err != nil || !stream.write(line) {
				return
			}
		}
	}
}

type stream struct {
	s  *Server
	w  http.ResponseWriter
	rc *http.ResponseController
}

func (s *Server) newStream(w http.ResponseWriter) *stream {
	return &stream{s: s, w: w, rc: http.NewResponseController(w)}
}

// start sends the headers. Every write of the stream gets the server's
// WriteTimeout (the deadline is moved before each one, so an idle watch
// lives on); a write that cannot finish in time ends the watch.
func (st *stream) start() bool {
	st.w.Header().Set("Content-Type", "application/json")
	st.w.Header().Set("Transfer-Encoding", "chunked")
	st.s.writeDeadline(st.w)
	st.w.WriteHeader(http.StatusOK)
	return st.rc.Flush() == nil
}

func (st *stream) send(t watch.EventType, obj any) bool {
	line, err := json.Marshal(watchJSON{Type: t, Object: obj})
	return err == nil && st.write(line)
}

// write sends one encoded event as a line of its own.
func (st *stream) write(line []byte) bool {
	st.s.writeDeadline(st.w)
	if _, err := st.w.Write(line); err != nil {
		return false
	}
	if _, err := st.w.Write(newline); err != nil {
		return false
	}
	return st.rc.Flush() == nil
}

var newline = []byte{'\n'}

func maxRV(pods []v1.Pod) string {
	var best uint64
	for i := range pods {
		var n uint64
		if _, err := fmt.Sscan(pods[i].ResourceVersion, &n); err == nil && n > best {
			best = n
		}
	}
	if best == 0 {
		return ""
	}
	return fmt.Sprint(best)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// writeNotFound answers as the API server does: pods "x" not found.
func writeNotFound(w http.ResponseWriter, resource, name string) {
	writeStatus(w, http.StatusNotFound, metav1.StatusReasonNotFound,
		fmt.Sprintf("%s %q not found", resource, name),
		&metav1.StatusDetails{Name: name, Kind: resource})
}

func writeStatus(w http.ResponseWriter, code int, reason metav1.StatusReason, msg string, details *metav1.StatusDetails) {
	writeJSON(w, code, &metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure,
		Message:  msg,
		Reason:   reason,
		Details:  details,
		Code:     int32(code),
	})
}
