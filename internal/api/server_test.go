package api

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
)

func testPod(ns, name, node string, uid types.UID, phase v1.PodPhase) v1.Pod {
	return v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-" + node, UID: uid,
			Labels: map[string]string{"app": name}},
		Spec:   v1.PodSpec{NodeName: node, Containers: []v1.Container{{Name: "c", Image: "busybox"}}},
		Status: v1.PodStatus{Phase: phase},
	}
}

// serve starts a server for src on a socket in a temp dir and returns a client.
func serve(t *testing.T, src Source, m *Metrics) (*Client, string) {
	t.Helper()
	sock := startServer(t, NewServer(src, m, nil))
	return NewClient(sock), sock
}

// startServer serves with srv on a unix socket in a temp dir until the
// test ends.
func startServer(t *testing.T, srv *Server) string {
	t.Helper()
	// Unix socket paths are limited to 108 bytes; t.TempDir can be long.
	dir, err := os.MkdirTemp("", "mkl-api")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "run", "minikubelet.sock")
	l, err := ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return sock
}

func rawGet(t *testing.T, sock, path string) (int, []byte) {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	resp, err := hc.Get("http://x" + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func newTestStore() *Store {
	s := NewStore(0)
	s.SetPod(testPod("default", "web", "node1", "uid-web", v1.PodRunning))
	s.SetPod(testPod("kube-system", "etcd", "node1", "uid-etcd", v1.PodPending))
	return s
}

func TestSocketModeAndStaleSocket(t *testing.T) {
	_, sock := serve(t, newTestStore(), nil)
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("socket mode = %v, want socket 0600", fi.Mode())
	}
	if di, _ := os.Stat(filepath.Dir(sock)); di.Mode().Perm() != 0o755 {
		t.Errorf("socket dir mode = %v, want 0755", di.Mode().Perm())
	}
	if ents, _ := os.ReadDir(filepath.Dir(sock)); len(ents) != 1 {
		t.Errorf("socket dir holds %d entries, want only the socket (no bind leftovers)", len(ents))
	}
	// A live socket must not be taken over.
	if _, err := ListenUnix(sock); err == nil || !strings.Contains(err.Error(), "another process") {
		t.Errorf("ListenUnix on a live socket: err = %v, want refusal", err)
	}
	// A stale one (nobody listening) is replaced.
	stale := filepath.Join(filepath.Dir(sock), "stale.sock")
	l, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	if _, err := os.Stat(stale); err != nil {
		t.Fatalf("stale socket should remain after close: %v", err)
	}
	l2, err := ListenUnix(stale)
	if err != nil {
		t.Fatalf("ListenUnix over a stale socket: %v", err)
	}
	l2.Close()
	// A regular file is never removed.
	reg := filepath.Join(filepath.Dir(sock), "file")
	os.WriteFile(reg, []byte("x"), 0o644)
	if _, err := ListenUnix(reg); err == nil {
		t.Error("ListenUnix over a regular file succeeded")
	}
}

func TestPodListShape(t *testing.T) {
	_, sock := serve(t, newTestStore(), nil)
	code, body := rawGet(t, sock, "/pods")
	if code != 200 {
		t.Fatalf("GET /pods = %d %s", code, body)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	if m["kind"] != "PodList" || m["apiVersion"] != "v1" {
		t.Errorf("kind/apiVersion = %v/%v, want PodList/v1", m["kind"], m["apiVersion"])
	}
	items, _ := m["items"].([]any)
	if len(items) != 2 {
		t.Fatalf("items = %d, want 2: %s", len(items), body)
	}
	first := items[0].(map[string]any)
	md := first["metadata"].(map[string]any)
	if first["kind"] != "Pod" || first["apiVersion"] != "v1" || md["name"] != "web-node1" || md["uid"] != "uid-web" || md["namespace"] != "default" {
		t.Errorf("first item = kind %v apiVersion %v metadata %v", first["kind"], first["apiVersion"], md)
	}
	if st := first["status"].(map[string]any); st["phase"] != "Running" {
		t.Errorf("status.phase = %v", st["phase"])
	}
	// Empty list still has items: [] (not null), as the API server answers.
	_, body = rawGet(t, sock, "/pods/nothing-here")
	if !strings.Contains(string(body), `"items":[]`) {
		t.Errorf("empty namespace list = %s", body)
	}
}

func TestClientListGetWithAndWithoutSuffix(t *testing.T) {
	c, _ := serve(t, newTestStore(), nil)
	ctx := context.Background()
	list, err := c.ListPods(ctx, "kube-system", "")
	if err != nil || len(list.Items) != 1 || list.Items[0].Name != "etcd-node1" {
		t.Fatalf("ListPods(kube-system) = %v, %v", list, err)
	}
	list, err = c.ListPods(ctx, "", "app=web")
	if err != nil || len(list.Items) != 1 || list.Items[0].Name != "web-node1" {
		t.Fatalf("ListPods(app=web) = %v, %v", list, err)
	}
	for _, name := range []string{"web-node1", "web"} {
		p, err := c.GetPod(ctx, "default", name)
		if err != nil {
			t.Fatalf("GetPod(%s): %v", name, err)
		}
		if p.Name != "web-node1" || p.UID != "uid-web" || p.Kind != "Pod" {
			t.Errorf("GetPod(%s) = %s %s %s", name, p.Kind, p.Name, p.UID)
		}
	}
	if _, err := c.GetPod(ctx, "kube-system", "web"); !apierrors.IsNotFound(err) {
		t.Errorf("GetPod in wrong namespace: err = %v, want NotFound", err)
	}
}

func TestNotFoundStatus(t *testing.T) {
	_, sock := serve(t, newTestStore(), nil)
	code, body := rawGet(t, sock, "/pods/default/nope")
	if code != 404 {
		t.Fatalf("code = %d", code)
	}
	var st metav1.Status
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	if st.Kind != "Status" || st.APIVersion != "v1" || st.Status != "Failure" || st.Reason != metav1.StatusReasonNotFound ||
		st.Code != 404 || st.Message != `pods "nope" not found` || st.Details == nil || st.Details.Name != "nope" {
		t.Errorf("Status = %+v", st)
	}
	code, body = rawGet(t, sock, "/pods?watch=maybe")
	if code != 400 || !strings.Contains(string(body), `"reason":"BadRequest"`) {
		t.Errorf("bad watch param = %d %s", code, body)
	}
	code, body = rawGet(t, sock, "/nodes")
	if code != 404 || !strings.Contains(string(body), `"kind":"Status"`) {
		t.Errorf("unknown path = %d %s", code, body)
	}
	code, body = rawGet(t, sock, "/pods?labelSelector=a%3D%3D%3Db")
	if code != 400 {
		t.Errorf("bad selector = %d %s", code, body)
	}
}

func TestHealthzAndMethod(t *testing.T) {
	c, sock := serve(t, newTestStore(), nil)
	if err := c.Healthz(context.Background()); err != nil {
		t.Fatal(err)
	}
	if code, body := rawGet(t, sock, "/healthz"); code != 200 || string(body) != "ok" {
		t.Errorf("healthz = %d %q", code, body)
	}
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	resp, err := hc.Post("http://x/pods", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /pods = %d, want 405", resp.StatusCode)
	}
}

func TestUnreachable(t *testing.T) {
	c := NewClient(filepath.Join(t.TempDir(), "none.sock"))
	err := c.Healthz(context.Background())
	if err == nil || !strings.Contains(err.Error(), "is the daemon running") {
		t.Errorf("err = %v", err)
	}
}

func TestExtraAndEvents(t *testing.T) {
	s := newTestStore()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s.Now = func() time.Time { return now }
	s.SetExtra("uid-web", PodExtra{Slice: "kubepods-besteffort-poduid_web.slice",
		Scopes: []ScopeInfo{{Unit: "minikubelet-abc.scope"}}})
	ref := v1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "web-node1", UID: "uid-web"}
	s.RecordEvent(v1.Event{InvolvedObject: ref, Reason: "BackOff", Type: v1.EventTypeWarning, Message: "Back-off restarting failed container c"})
	now = now.Add(time.Minute)
	s.RecordEvent(v1.Event{InvolvedObject: ref, Reason: "BackOff", Type: v1.EventTypeWarning, Message: "Back-off restarting failed container c"})
	s.RecordEvent(v1.Event{InvolvedObject: ref, Reason: "Pulled", Message: "x"})
	c, sock := serve(t, s, nil)
	ctx := context.Background()
	e, err := c.PodExtra(ctx, "default", "web")
	if err != nil || e.Slice != "kubepods-besteffort-poduid_web.slice" || len(e.Scopes) != 1 {
		t.Fatalf("PodExtra = %+v, %v", e, err)
	}
	evs, err := c.ListEvents(ctx, "default")
	if err != nil || len(evs.Items) != 2 {
		t.Fatalf("ListEvents = %+v, %v", evs, err)
	}
	bo := evs.Items[0]
	if bo.Reason != "BackOff" || bo.Count != 2 || !bo.FirstTimestamp.Time.Equal(now.Add(-time.Minute)) || !bo.LastTimestamp.Time.Equal(now) || bo.Namespace != "default" {
		t.Errorf("aggregated event = %+v", bo)
	}
	if evs.Items[1].Type != v1.EventTypeNormal {
		t.Errorf("default type = %q", evs.Items[1].Type)
	}
	if _, body := rawGet(t, sock, "/events"); !strings.Contains(string(body), `"kind":"EventList"`) {
		t.Errorf("events list = %s", body)
	}
	if evs, _ := c.ListEvents(ctx, "kube-system"); len(evs.Items) != 0 {
		t.Errorf("kube-system events = %d", len(evs.Items))
	}
}

func TestWatchPods(t *testing.T) {
	s := newTestStore()
	c, _ := serve(t, s, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w, err := c.WatchPods(ctx, "default", "", "")
	if err != nil {
		t.Fatal(err)
	}
	next := func() PodWatchEvent {
		t.Helper()
		select {
		case ev, ok := <-w.Events:
			if !ok {
				t.Fatalf("watch ended: %v", w.Err())
			}
			return ev
		case <-ctx.Done():
			t.Fatal("no watch event")
		}
		return PodWatchEvent{}
	}
	if ev := next(); ev.Type != watch.Added || ev.Pod.Name != "web-node1" {
		t.Fatalf("first = %s %s", ev.Type, ev.Pod.Name)
	}
	p := testPod("default", "web", "node1", "uid-web", v1.PodFailed)
	s.SetPod(p)
	s.SetPod(testPod("kube-system", "other", "node1", "uid-o", v1.PodRunning)) // filtered out
	s.SetPod(testPod("default", "db", "node1", "uid-db", v1.PodPending))
	s.DeletePod("default", "web-node1")
	want := []struct {
		t     watch.EventType
		name  string
		phase v1.PodPhase
	}{{watch.Modified, "web-node1", v1.PodFailed}, {watch.Added, "db-node1", v1.PodPending}, {watch.Deleted, "web-node1", v1.PodFailed}}
	for _, wv := range want {
		ev := next()
		if ev.Type != wv.t || ev.Pod.Name != wv.name || ev.Pod.Status.Phase != wv.phase || ev.Pod.Kind != "Pod" {
			t.Errorf("event = %s %s %s, want %s %s %s", ev.Type, ev.Pod.Name, ev.Pod.Status.Phase, wv.t, wv.name, wv.phase)
		}
	}
	// A new UID under the same name is another pod: DELETED, then ADDED.
	s.SetPod(testPod("default", "db", "node1", "uid-db2", v1.PodPending))
	if ev := next(); ev.Type != watch.Deleted || ev.Pod.UID != "uid-db" {
		t.Errorf("replace: first %s %s", ev.Type, ev.Pod.UID)
	}
	if ev := next(); ev.Type != watch.Added || ev.Pod.UID != "uid-db2" {
		t.Errorf("replace: second %s %s", ev.Type, ev.Pod.UID)
	}
	// Setting an unchanged pod is not a change.
	s.SetPod(testPod("default", "db", "node1", "uid-db2", v1.PodPending))
	s.SetPod(testPod("default", "db", "node1", "uid-db2", v1.PodRunning))
	if ev := next(); ev.Type != watch.Modified || ev.Pod.Status.Phase != v1.PodRunning {
		t.Errorf("after no-op set: %s %s", ev.Type, ev.Pod.Status.Phase)
	}
}

// listedSource tells when a watch has taken its initial list: a change
// made after that can only reach the watcher through the stream.
type listedSource struct {
	Source
	once   sync.Once
	listed chan struct{}
}

func (l *listedSource) Pods() []v1.Pod {
	pods := l.Source.Pods()
	l.once.Do(func() { close(l.listed) })
	return pods
}

func TestWatchOnePodBeforeItExists(t *testing.T) {
	s := NewStore(0)
	src := &listedSource{Source: s, listed: make(chan struct{})}
	c, _ := serve(t, src, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w, err := c.WatchPods(ctx, "default", "web", "")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-src.listed: // the pod below comes through the stream, not the list
	case <-ctx.Done():
		t.Fatal("the watch never listed")
	}
	s.SetPod(testPod("default", "webby", "node1", "u0", v1.PodRunning))
	s.SetPod(testPod("default", "web", "node1", "u1", v1.PodRunning))
	select {
	case ev := <-w.Events:
		if ev.Type != watch.Added || ev.Pod.Name != "web-node1" {
			t.Errorf("got %s %s", ev.Type, ev.Pod.Name)
		}
	case <-ctx.Done():
		t.Fatal("no event")
	}
	cancel()
	if err := w.Err(); err != nil {
		t.Errorf("Err after cancel = %v", err)
	}
}

func TestWatchEventsRaw(t *testing.T) {
	s := newTestStore()
	s.RecordEvent(v1.Event{InvolvedObject: v1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "web-node1"}, Reason: "Started", Message: "Started container c"})
	_, sock := serve(t, s, nil)
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET /events?watch=1 HTTP/1.0\r\nHost: x\r\n\r\n")
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var got string
	buf := make([]byte, 4096)
	readUntil := func(s string) {
		for !strings.Contains(got, s) {
			n, err := conn.Read(buf)
			if err != nil {
				t.Fatalf("read: %v (got %q)", err, got)
			}
			got += string(buf[:n])
		}
	}
	// Recorded once the listed event arrived, so it can only come through
	// the stream.
	readUntil("Started")
	s.RecordEvent(v1.Event{InvolvedObject: v1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "web-node1"}, Reason: "Killing", Message: "Stopping container c"})
	readUntil("Killing")
	_, body, _ := strings.Cut(got, "\r\n\r\n")
	lines := strings.Split(strings.TrimSpace(body), "\n")
	if len(lines) != 2 {
		t.Fatalf("lines = %q", lines)
	}
	var ev struct {
		Type   string   `json:"type"`
		Object v1.Event `json:"object"`
	}
	json.Unmarshal([]byte(lines[0]), &ev)
	if ev.Type != "ADDED" || ev.Object.Reason != "Started" || ev.Object.Kind != "Event" {
		t.Errorf("line 0 = %s", lines[0])
	}
	json.Unmarshal([]byte(lines[1]), &ev)
	if ev.Type != "ADDED" || ev.Object.Reason != "Killing" {
		t.Errorf("line 1 = %s", lines[1])
	}
}

func TestMetricsEndpoint(t *testing.T) {
	m := NewMetrics()
	m.ContainerRestarted("default", "web-node1", "c")
	m.ObservePodStart(1500 * time.Millisecond)
	m.ObserveReconcile(20*time.Millisecond, nil)
	m.ObserveDBusCall("StartTransientUnit", 2*time.Millisecond, nil)
	c, _ := serve(t, newTestStore(), m)
	text, err := c.Metrics(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`minikubelet_pods{phase="Running"} 1`,
		`minikubelet_pods{phase="Pending"} 1`,
		`minikubelet_pods{phase="Failed"} 0`,
		`minikubelet_container_restarts_total{container="c",namespace="default",pod="web-node1"} 1`,
		`minikubelet_pod_start_duration_seconds_bucket{le="2"} 1`,
		`minikubelet_pod_start_duration_seconds_bucket{le="1"} 0`,
		`minikubelet_reconcile_duration_seconds_bucket{result="success",le="0.025"} 1`,
		`minikubelet_reconcile_duration_seconds_bucket{result="success",le="0.005"} 0`,
		`minikubelet_dbus_call_duration_seconds_count{method="StartTransientUnit",result="success"} 1`,
		`go_goroutines`,
		`process_resident_memory_bytes`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	m.ForgetPod("default", "web-node1")
	text, _ = c.Metrics(context.Background())
	if strings.Contains(text, `pod="web-node1"`) {
		t.Error("ForgetPod left the pod's series")
	}
	var nilM *Metrics
	nilM.ObserveReconcile(time.Second, nil) // must not panic
}

func TestSlowWatcherIsDropped(t *testing.T) {
	s := NewStore(0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := s.Subscribe(ctx)
	for i := 0; i < subscriberBuffer+1; i++ {
		s.RecordEvent(v1.Event{Reason: "R", Message: strings.Repeat("x", i)})
	}
	n := 0
	for range ch {
		n++
	}
	if n != subscriberBuffer {
		t.Errorf("received %d before close, want %d", n, subscriberBuffer)
	}
}

func TestEventCap(t *testing.T) {
	s := NewStore(3)
	for i := 0; i < 5; i++ {
		s.RecordEvent(v1.Event{Reason: "R", Message: strings.Repeat("x", i+1)})
	}
	evs := s.Events()
	if len(evs) != 3 || evs[0].Message != "xxx" {
		t.Errorf("events = %d, first %q", len(evs), evs[0].Message)
	}
}

// listenAndServe runs ListenAndServe for a test store on a socket in a
// temp dir and on a free 127.0.0.1 port, and waits until the port answers.
// stop ends it and returns ListenAndServe's error (the test's cleanup
// stops it too).
func listenAndServe(t *testing.T) (sock, addr string, stop func() error) {
	t.Helper()
	dir, err := os.MkdirTemp("", "mkl-api")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock = filepath.Join(dir, "s.sock")
	// Find a free port, then hand it to the server.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr = l.Addr().String()
	l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- NewServer(newTestStore(), nil, nil).ListenAndServe(ctx, sock, addr) }()
	var once sync.Once
	var serveErr error
	stop = func() error {
		once.Do(func() { cancel(); serveErr = <-done })
		return serveErr
	}
	t.Cleanup(func() { stop() })
	waitUntil(t, "the read-only port", func() bool {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	return sock, addr, stop
}

func TestListenAndServeTCP(t *testing.T) {
	sock, addr, stop := listenAndServe(t)
	resp, err := http.Get("http://" + addr + "/pods/default/web")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("TCP GET = %d", resp.StatusCode)
	}
	if err := NewClient(sock).Healthz(context.Background()); err != nil {
		t.Errorf("unix healthz: %v", err)
	}
	resp, err = http.Post("http://"+addr+"/pods", "application/json", strings.NewReader("{}"))
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("TCP POST = %d", resp.StatusCode)
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket left behind: %v", err)
	}
}
