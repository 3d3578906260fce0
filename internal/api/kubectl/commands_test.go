package kubectl

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/minikubelet/minikubelet/internal/api"
	"github.com/minikubelet/minikubelet/internal/syncbuf"
	"github.com/minikubelet/minikubelet/internal/testwait"
)

// serve runs the real server for store on a socket in a temp dir.
func serve(t *testing.T, store *api.Store) *api.Client {
	t.Helper()
	dir, err := os.MkdirTemp("", "mkl-kubectl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "mkl.sock")
	l, err := api.ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { api.NewServer(store, nil, nil).Serve(ctx, l); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return api.NewClient(sock)
}

func storeWith(pods ...v1.Pod) *api.Store {
	s := api.NewStore(0)
	s.Now = func() time.Time { return now }
	for _, p := range pods {
		s.SetPod(p)
	}
	return s
}

func fixedNow() time.Time { return now }

func TestParsePodArgs(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
		bad  bool
	}{
		{args: []string{"pods"}, want: ""},
		{args: []string{"po", "a", "b"}, want: "a,b"},
		{args: []string{"pod/a", "pods/b"}, want: "a,b"},
		{args: []string{"nodes"}, bad: true},
		{args: []string{"svc/a"}, bad: true},
		{args: []string{"pod", "pod/a"}, bad: true},
		{args: []string{"pod/"}, bad: true},
		{args: nil, bad: true},
	} {
		got, err := ParsePodArgs(tc.args)
		if tc.bad != (err != nil) || strings.Join(got, ",") != tc.want {
			t.Errorf("ParsePodArgs(%v) = %v, %v", tc.args, got, err)
		}
	}
}

func TestGetCommand(t *testing.T) {
	c := serve(t, storeWith(runningPod(), crashPod(), initPod()))
	ctx := context.Background()
	run := func(o GetOptions, names ...string) (string, string, error) {
		var out, errOut bytes.Buffer
		o.Now = fixedNow
		err := Get(ctx, c, o, names, &out, &errOut)
		return out.String(), errOut.String(), err
	}
	out, _, err := run(GetOptions{Namespace: "default"})
	want := "NAME          READY     STATUS             RESTARTS       AGE\ncrash-node1   0/1       CrashLoopBackOff   12 (60s ago)   3h\nweb-node1     1/1       Running            3 (2m ago)     5m\n"
	if err != nil || out != want {
		t.Errorf("get pods = %q, %v\nwant %q", out, err, want)
	}
	out, _, _ = run(GetOptions{AllNamespaces: true, Output: "name"})
	if out != "pod/crash-node1\npod/web-node1\npod/setup-node1\n" {
		t.Errorf("-A -o name = %q", out)
	}
	out, _, _ = run(GetOptions{Namespace: "default", Output: "json"}, "web")
	if !strings.HasPrefix(out, "{\n    \"apiVersion\": \"v1\",\n    \"kind\": \"Pod\",\n    \"metadata\": {") || !strings.Contains(out, `"name": "web-node1"`) {
		t.Errorf("get pod web -o json:\n%.300s", out)
	}
	out, _, _ = run(GetOptions{Namespace: "kube-system", Output: "yaml"})
	if !strings.HasPrefix(out, "apiVersion: v1\nitems:\n- apiVersion: v1\n  kind: Pod\n") || !strings.Contains(out, "kind: PodList\n") {
		t.Errorf("-o yaml:\n%s", out)
	}
	_, errOut, err := run(GetOptions{Namespace: "empty"})
	if err != nil || errOut != "No resources found in empty namespace.\n" {
		t.Errorf("empty ns: %q %v", errOut, err)
	}
	out, errOut, err = run(GetOptions{Namespace: "default"}, "nope", "web")
	var rep *ReportedError
	if !errors.As(err, &rep) || !apierrors.IsNotFound(err) || errOut != "Error from server (NotFound): pods \"nope\" not found\n" || !strings.Contains(out, "web-node1") {
		t.Errorf("partial not found: out %q err %q %v", out, errOut, err)
	}
	if _, _, err := run(GetOptions{Output: "table"}); err == nil || !strings.Contains(err.Error(), "allowed formats are: custom-columns,json,jsonpath,name,wide,yaml") {
		t.Errorf("-o table: %v", err)
	}
	if got := FormatError(err); !strings.HasPrefix(got, "Error from server (NotFound): ") {
		t.Errorf("FormatError = %q", got)
	}
}

// -o jsonpath and -o custom-columns, with kubectl's semantics: the template
// on the list (or the one named pod), missing keys empty, columns joined
// by commas, <none> where a path finds nothing.
func TestGetTemplates(t *testing.T) {
	c := serve(t, storeWith(runningPod(), crashPod(), initPod()))
	run := func(o GetOptions, names ...string) (string, error) {
		var out, errOut bytes.Buffer
		o.Now = fixedNow
		err := Get(context.Background(), c, o, names, &out, &errOut)
		return out.String(), err
	}
	for _, tc := range []struct {
		o     GetOptions
		names []string
		want  string
	}{
		{GetOptions{Namespace: "default", Output: `jsonpath={.items[*].metadata.name}`}, nil, "crash-node1 web-node1"},
		{GetOptions{Namespace: "default", Output: `jsonpath={.kind}`}, nil, "PodList"},
		{GetOptions{Namespace: "default", Output: `jsonpath={.status.podIP}{"\n"}`}, []string{"web"}, "10.88.0.5\n"},
		{GetOptions{Namespace: "default", Output: `jsonpath={.metadata.nope}`}, []string{"web"}, ""},
		{GetOptions{Namespace: "default", Output: `jsonpath={range .items[*]}{.metadata.name}:{.spec.containers[*].name}{"\n"}{end}`}, nil, "crash-node1:c\nweb-node1:app\n"},
		{GetOptions{Namespace: "default", Output: "custom-columns=NAME:.metadata.name,IP:status.podIP,IMAGES:{.spec.containers[*].image}"}, nil,
			"NAME          IP          IMAGES\ncrash-node1   <none>      busybox\nweb-node1     10.88.0.5   busybox:1.36\n"},
		{GetOptions{Namespace: "default", Output: "custom-columns=NAME:.metadata.name", NoHeaders: true}, []string{"web"}, "web-node1\n"},
	} {
		got, err := run(tc.o, tc.names...)
		if err != nil || got != tc.want {
			t.Errorf("-o %s %v = %q, %v; want %q", tc.o.Output, tc.names, got, err, tc.want)
		}
	}
	for _, bad := range []string{"jsonpath={.items[", "custom-columns=NAME", "jsonpath="} {
		if _, err := run(GetOptions{Namespace: "default", Output: bad}); err == nil {
			t.Errorf("-o %s: no error", bad)
		}
	}
}

func eventually(t *testing.T, what string, f func() bool) {
	t.Helper()
	testwait.Until(t, what, 10*time.Second, 5*time.Millisecond, f)
}

func TestGetWatch(t *testing.T) {
	s := storeWith(runningPod())
	c := serve(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	var out syncbuf.Buffer
	done := make(chan error, 1)
	go func() {
		done <- Get(ctx, c, GetOptions{Namespace: "default", Watch: true, Now: fixedNow}, nil, &out, &out)
	}()
	eventually(t, "initial row", func() bool { return strings.Contains(out.String(), "web-node1") })
	p := runningPod()
	p.Status.ContainerStatuses[0].Ready = false
	p.Status.Conditions[1].Status = v1.ConditionFalse
	s.SetPod(p)
	eventually(t, "modified row", func() bool { return strings.Contains(out.String(), "0/1") })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want := "NAME        READY     STATUS    RESTARTS     AGE\nweb-node1   1/1       Running   3 (2m ago)   5m\nweb-node1   0/1       Running   3 (2m ago)   5m\n"
	if out.String() != want {
		t.Errorf("watch output = %q, want %q", out.String(), want)
	}
}

func TestDescribeCommand(t *testing.T) {
	s := storeWith(runningPod())
	s.SetExtra("0a1b2c3d-uid", api.PodExtra{Slice: "kubepods-burstable-pod0a1b2c3d_uid.slice"})
	s.RecordEvent(v1.Event{InvolvedObject: v1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "web-node1", UID: "0a1b2c3d-uid"},
		Type: "Warning", Reason: "InvalidManifest", Message: "web.yaml: spec.containers[0].image: Required value", Source: v1.EventSource{Component: "minikubelet"}})
	c := serve(t, s)
	var out bytes.Buffer
	if err := DescribePods(context.Background(), c, "default", []string{"web"}, fixedNow, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Name:         web-node1\n", "  Slice:  kubepods-burstable-pod0a1b2c3d_uid.slice\n",
		"  Warning  InvalidManifest  0s    minikubelet  web.yaml: spec.containers[0].image: Required value\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("describe lacks %q:\n%s", want, out.String())
		}
	}
	err := DescribePods(context.Background(), c, "default", []string{"nope"}, fixedNow, &out)
	if !apierrors.IsNotFound(err) {
		t.Errorf("describe nope: %v", err)
	}
}

func readyPod(ready bool) v1.Pod {
	p := runningPod()
	st := v1.ConditionFalse
	if ready {
		st = v1.ConditionTrue
	}
	p.Status.Conditions = []v1.PodCondition{{Type: v1.PodInitialized, Status: v1.ConditionTrue}, {Type: v1.PodReady, Status: st}}
	return p
}

func TestWaitCommand(t *testing.T) {
	ready, _ := ParseFor("condition=Ready")
	del, _ := ParseFor("delete")
	ctx := context.Background()

	t.Run("met at once", func(t *testing.T) {
		c := serve(t, storeWith(readyPod(true)))
		var out, errOut bytes.Buffer
		if err := Wait(ctx, c, "default", "web", ready, 5*time.Second, &out, &errOut); err != nil || out.String() != "pod/web-node1 condition met\n" {
			t.Errorf("out %q err %v", out.String(), err)
		}
	})
	t.Run("met after a change, pod created later", func(t *testing.T) {
		s := storeWith()
		c := serve(t, s)
		go func() {
			time.Sleep(50 * time.Millisecond)
			s.SetPod(readyPod(false))
			time.Sleep(50 * time.Millisecond)
			s.SetPod(readyPod(true))
		}()
		var out, errOut bytes.Buffer
		if err := Wait(ctx, c, "default", "web", ready, 10*time.Second, &out, &errOut); err != nil || out.String() != "pod/web-node1 condition met\n" {
			t.Errorf("out %q err %v", out.String(), err)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		c := serve(t, storeWith(readyPod(false)))
		var out, errOut bytes.Buffer
		if err := Wait(ctx, c, "default", "web", ready, 0, &out, &errOut); err == nil {
			t.Error("timeout 0 on an unready pod succeeded")
		}
		c2 := serve(t, storeWith(readyPod(true)))
		if err := Wait(ctx, c2, "default", "web", ready, 0, &out, &errOut); err != nil || out.String() != "pod/web-node1 condition met\n" {
			t.Errorf("timeout 0 on a ready pod: %v %q", err, out.String())
		}
		out.Reset()
		err := Wait(ctx, c, "default", "web", ready, 100*time.Millisecond, &out, &errOut)
		var te *ErrWaitTimeout
		if !errors.As(err, &te) || FormatError(err) != "error: timed out waiting for the condition on pods/web-node1" || out.Len() != 0 {
			t.Errorf("err %v (%q) out %q", err, FormatError(err), out.String())
		}
		// --timeout=0 checks once.
		if err := Wait(ctx, c, "default", "web", ready, 0, &out, &errOut); !errors.As(err, &te) || te.Name != "web-node1" {
			t.Errorf("timeout 0: %v", err)
		}
	})
	t.Run("delete", func(t *testing.T) {
		s := storeWith(readyPod(true))
		c := serve(t, s)
		go func() { time.Sleep(50 * time.Millisecond); s.DeletePod("default", "web-node1") }()
		var out, errOut bytes.Buffer
		if err := Wait(ctx, c, "default", "web", del, 10*time.Second, &out, &errOut); err != nil || out.String() != "pod/web-node1 condition met\n" {
			t.Errorf("out %q err %v", out.String(), err)
		}
		out.Reset()
		if err := Wait(ctx, c, "default", "gone", del, time.Second, &out, &errOut); err != nil || out.String() != "pod/gone condition met\n" {
			t.Errorf("absent: out %q err %v", out.String(), err)
		}
	})
	t.Run("daemon unreachable", func(t *testing.T) {
		c := api.NewClient(filepath.Join(t.TempDir(), "none.sock"))
		var out, errOut bytes.Buffer
		err := Wait(ctx, c, "default", "web", ready, 300*time.Millisecond, &out, &errOut)
		var te *ErrWaitTimeout
		if !errors.As(err, &te) || !strings.Contains(errOut.String(), "is the daemon running") {
			t.Errorf("err %v stderr %q", err, errOut.String())
		}
	})
}

func writeLog(t *testing.T, path string, lines ...string) {
	t.Helper()
	os.MkdirAll(filepath.Dir(path), 0o755)
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func line(sec int, stream, text string) string {
	return time.Date(2026, 3, 1, 11, 0, sec, 0, time.UTC).Format(time.RFC3339Nano) + " " + stream + " F " + text
}

func TestLogsCommand(t *testing.T) {
	logDir := t.TempDir()
	// An older pod with the same name (replaced, other UID), written later on
	// purpose so "newest" alone would pick the wrong one.
	writeLog(t, filepath.Join(logDir, "default_web-node1_0a1b2c3d-uid", "app", "2.log"), line(0, "stdout", "prev instance"))
	writeLog(t, filepath.Join(logDir, "default_web-node1_0a1b2c3d-uid", "app", "3.log"), line(1, "stdout", "current"), line(2, "stderr", "oops"))
	time.Sleep(10 * time.Millisecond)
	writeLog(t, filepath.Join(logDir, "default_web-node1_old-uid", "app", "0.log"), line(0, "stdout", "old pod"))

	s := storeWith(runningPod()) // restartCount 3, uid 0a1b2c3d-uid
	c := serve(t, s)
	ctx := context.Background()
	run := func(c *api.Client, o LogsOptions) (string, error) {
		var out bytes.Buffer
		o.LogDir, o.Namespace, o.Tail = logDir, "default", -1
		if o.NodeName == "" {
			o.NodeName = "node1"
		}
		err := Logs(ctx, c, o, &out)
		return out.String(), err
	}
	if out, err := run(c, LogsOptions{Pod: "web"}); err != nil || out != "current\noops\n" {
		t.Errorf("logs web (daemon) = %q, %v", out, err)
	}
	if out, err := run(c, LogsOptions{Pod: "web-node1", Previous: true, Timestamps: true}); err != nil || out != line(0, "", "")[:20]+" prev instance\n" {
		t.Errorf("logs -p --timestamps = %q, %v", out, err)
	}
	// Without the daemon: the newest folder for the name wins.
	if out, err := run(nil, LogsOptions{Pod: "web"}); err != nil || out != "old pod\n" {
		t.Errorf("logs web (no daemon) = %q, %v", out, err)
	}
	unreach := api.NewClient(filepath.Join(t.TempDir(), "none.sock"))
	if out, err := run(unreach, LogsOptions{Pod: "web", NodeName: "node1"}); err != nil || out != "old pod\n" {
		t.Errorf("logs web (daemon down) = %q, %v", out, err)
	}
	if _, err := run(nil, LogsOptions{Pod: "web", NodeName: "other"}); err == nil || !strings.Contains(err.Error(), `pods "web" not found`) {
		t.Errorf("wrong node suffix: %v", err)
	}
	if _, err := run(c, LogsOptions{Pod: "missing"}); !apierrors.IsNotFound(err) {
		t.Errorf("missing pod: %v", err)
	}
	if _, err := run(nil, LogsOptions{Pod: "web", Previous: true}); err == nil || err.Error() != `previous terminated container "app" in pod "web-node1" not found` {
		t.Errorf("no previous: %v", err)
	}
	if _, err := run(c, LogsOptions{Pod: "web", Container: "nope"}); err == nil || err.Error() != "container nope is not valid for pod web-node1" {
		t.Errorf("bad -c: %v", err)
	}
}

func TestLogsContainerChoice(t *testing.T) {
	logDir := t.TempDir()
	p := runningPod()
	p.Name, p.UID = "multi-node1", "uid-multi"
	p.Spec.InitContainers = []v1.Container{{Name: "init"}}
	p.Spec.Containers = []v1.Container{{Name: "a"}, {Name: "b"}}
	p.Status.ContainerStatuses = []v1.ContainerStatus{{Name: "a"}, {Name: "b", RestartCount: 1}}
	p.Status.InitContainerStatuses = []v1.ContainerStatus{{Name: "init"}}
	for _, f := range []string{"a/0.log", "b/0.log", "b/1.log", "init/0.log"} {
		writeLog(t, filepath.Join(logDir, "default_multi-node1_uid-multi", f), line(0, "stdout", f))
	}
	s := storeWith(p)
	c := serve(t, s)
	var warn bytes.Buffer
	run := func(c *api.Client, o LogsOptions) (string, error) {
		var out bytes.Buffer
		warn.Reset()
		o.LogDir, o.Namespace, o.Tail, o.NodeName, o.Warn = logDir, "default", -1, "node1", &warn
		err := Logs(context.Background(), c, o, &out)
		return out.String(), err
	}
	// Without -c: the first container, and kubectl's notice on stderr.
	if out, err := run(c, LogsOptions{Pod: "multi"}); err != nil || out != "a/0.log\n" || warn.String() != "Defaulted container \"a\" out of: a, b, init (init)\n" {
		t.Errorf("no -c: %q %v, notice %q", out, err, warn.String())
	}
	if _, err := run(nil, LogsOptions{Pod: "multi"}); err == nil || !strings.Contains(err.Error(), "choose one of: [a b init]") {
		t.Errorf("no -c, no daemon: %v", err)
	}
	if out, err := run(c, LogsOptions{Pod: "multi", Container: "b"}); err != nil || out != "b/1.log\n" {
		t.Errorf("-c b = %q %v", out, err)
	}
	if out, err := run(c, LogsOptions{Pod: "multi", Container: "init"}); err != nil || out != "init/0.log\n" {
		t.Errorf("-c init = %q %v", out, err)
	}
	p.Annotations = map[string]string{DefaultContainerAnnotation: "b"}
	s.SetPod(p)
	if out, err := run(c, LogsOptions{Pod: "multi", Previous: true}); err != nil || out != "b/0.log\n" || warn.Len() != 0 {
		t.Errorf("default container, previous = %q %v (notice %q: none wanted with the annotation)", out, err, warn.String())
	}
}

func TestLogsFollowEndsWhenContainerTerminates(t *testing.T) {
	logDir := t.TempDir()
	p := runningPod()
	p.Status.ContainerStatuses[0].RestartCount = 0
	live := filepath.Join(logDir, "default_web-node1_0a1b2c3d-uid", "app", "0.log")
	writeLog(t, live, line(0, "stdout", "hello"))
	s := storeWith(p)
	c := serve(t, s)
	var out syncbuf.Buffer
	done := make(chan error, 1)
	go func() {
		done <- Logs(context.Background(), c, LogsOptions{Namespace: "default", Pod: "web", LogDir: logDir, Tail: -1, Follow: true,
			PollInterval: 5 * time.Millisecond}, &out)
	}()
	eventually(t, "first line", func() bool { return out.String() == "hello\n" })
	f, _ := os.OpenFile(live, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(line(1, "stdout", "bye") + "\n")
	f.Close()
	eventually(t, "appended line", func() bool { return out.String() == "hello\nbye\n" })
	p.Status.ContainerStatuses[0].State = v1.ContainerState{Terminated: &v1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed", FinishedAt: metav1.NewTime(now)}}
	s.SetPod(p)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("follow did not end after the container terminated")
	}
}
