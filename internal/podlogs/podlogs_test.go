package podlogs

import (
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minikubelet/minikubelet/internal/syncbuf"
)

func TestParseLine(t *testing.T) {
	for _, tc := range []struct {
		in      string
		stream  string
		partial bool
		text    string
		bad     bool
	}{
		{in: "2024-01-01T00:00:00.123456789Z stdout F hello world", stream: "stdout", text: "hello world"},
		{in: "2024-01-01T00:00:00Z stderr P part", stream: "stderr", partial: true, text: "part"},
		{in: "2024-01-01T00:00:00+02:00 stdout F:x  two spaces", stream: "stdout", text: " two spaces"},
		{in: "2024-01-01T00:00:00Z stdout F ", stream: "stdout", text: ""},
		{in: "2024-01-01T00:00:00Z stdout F", stream: "stdout", text: ""},
		{in: "garbage", bad: true},
		{in: "2024-01-01T00:00:00Z stdin F x", bad: true},
		{in: "2024-01-01T00:00:00Z stdout X x", bad: true},
		{in: "yesterday stdout F x", bad: true},
	} {
		l, err := ParseLine([]byte(tc.in))
		if tc.bad {
			if err == nil {
				t.Errorf("ParseLine(%q) accepted", tc.in)
			}
			continue
		}
		if err != nil || l.Stream != tc.stream || l.Partial != tc.partial || string(l.Text) != tc.text {
			t.Errorf("ParseLine(%q) = %+v, %v", tc.in, l, err)
		}
	}
}

func ts(sec int) string {
	return time.Date(2024, 1, 1, 0, 0, sec, 5000, time.UTC).Format(time.RFC3339Nano)
}

func writeFile(t *testing.T, path string, lines ...string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func writeGz(t *testing.T, path string, lines ...string) {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write([]byte(strings.Join(lines, "\n") + "\n"))
	zw.Close()
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// containerDir builds one instance (restart 1) with every rotation style.
func containerDir(t *testing.T) string {
	dir := filepath.Join(t.TempDir(), "default_web-node1_uid1", "app")
	writeFile(t, filepath.Join(dir, "0.log"), ts(0)+" stdout F first instance")
	writeFile(t, filepath.Join(dir, "1.log.2"), ts(1)+" stdout F a")
	writeFile(t, filepath.Join(dir, "1.log.1"), ts(2)+" stdout F b")
	writeGz(t, filepath.Join(dir, "1.log.20240101-000003.gz"), ts(3)+" stdout F c")
	writeFile(t, filepath.Join(dir, "1.log.20240101-000004"),
		ts(4)+" stdout P d1-",
		ts(5)+" stderr F err-line",
		ts(6)+" stdout F d2")
	writeFile(t, filepath.Join(dir, "1.log"),
		ts(7)+" stdout F e",
		"not a cri line",
		ts(8)+" stderr P f1 ",
		ts(9)+" stderr P f2 ",
		ts(10)+" stderr F f3")
	writeFile(t, filepath.Join(dir, "1.log.tmp123"), ts(11)+" stdout F not a log")
	return dir
}

func read(t *testing.T, dir string, restart int, o Options) string {
	t.Helper()
	var b bytes.Buffer
	if err := Read(context.Background(), dir, restart, o, &b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestReadRotatedJoinedAndTail(t *testing.T) {
	dir := containerDir(t)
	files, _ := Files(dir, 1)
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
	}
	if got := strings.Join(names, " "); got != "1.log.2 1.log.1 1.log.20240101-000003.gz 1.log.20240101-000004 1.log" {
		t.Errorf("Files = %s", got)
	}
	if inst, _ := Instances(dir); len(inst) != 2 || inst[0] != 0 || inst[1] != 1 {
		t.Errorf("Instances = %v", inst)
	}
	all := read(t, dir, 1, Options{Tail: -1})
	if want := "a\nb\nc\nerr-line\nd1-d2\ne\nf1 f2 f3\n"; all != want {
		t.Errorf("all = %q, want %q", all, want)
	}
	if got := read(t, dir, 1, Options{Tail: 2}); got != "e\nf1 f2 f3\n" {
		t.Errorf("tail 2 = %q", got)
	}
	if got := read(t, dir, 1, Options{Tail: 0}); got != "" {
		t.Errorf("tail 0 = %q", got)
	}
	if got := read(t, dir, 1, Options{Tail: 100}); got != all {
		t.Errorf("tail 100 = %q", got)
	}
	got := read(t, dir, 1, Options{Tail: 2, Timestamps: true})
	want := ts(7) + " e\n" + ts(8) + " f1 f2 f3\n" // a joined line has its first part's time
	if got != want {
		t.Errorf("timestamps = %q, want %q", got, want)
	}
	// --previous is the instance before.
	if got := read(t, dir, 0, Options{Tail: -1}); got != "first instance\n" {
		t.Errorf("previous = %q", got)
	}
	var b bytes.Buffer
	if err := Read(context.Background(), dir, 5, Options{Tail: -1}, &b); err == nil {
		t.Error("missing instance read without error")
	}
}

func TestFindAndPickPodDirs(t *testing.T) {
	root := t.TempDir()
	old := filepath.Join(root, "default_web-node1_old", "app")
	cur := filepath.Join(root, "default_web-node1_new", "app")
	writeFile(t, filepath.Join(old, "0.log"), ts(0)+" stdout F old")
	writeFile(t, filepath.Join(cur, "0.log"), ts(0)+" stdout F new")
	writeFile(t, filepath.Join(root, "kube-system_web-node1_x", "app", "0.log"), ts(0)+" stdout F other ns")
	writeFile(t, filepath.Join(root, "default_webby-node1_y", "app", "0.log"), ts(0)+" stdout F other pod")
	past := time.Now().Add(-time.Hour)
	for _, p := range []string{old, filepath.Join(old, "0.log"), filepath.Dir(old)} {
		os.Chtimes(p, past, past)
	}
	dirs, err := FindPodDirs(root, "default", func(n string) bool { return n == "web-node1" })
	if err != nil || len(dirs) != 2 {
		t.Fatalf("FindPodDirs = %v, %v", dirs, err)
	}
	if d, _ := PickPodDir(dirs, ""); d.UID != "new" {
		t.Errorf("newest = %s", d.UID)
	}
	if d, _ := PickPodDir(dirs, "old"); d.UID != "old" {
		t.Errorf("by uid = %s", d.UID)
	}
	if d, _ := PickPodDir(dirs, "gone"); d.UID != "new" {
		t.Errorf("unknown uid falls back to newest: %s", d.UID)
	}
	if cs, _ := Containers(dirs[0].Path); len(cs) != 1 || cs[0] != "app" {
		t.Errorf("Containers = %v", cs)
	}
	if PodDirName("default", "web-node1", "u") != "default_web-node1_u" {
		t.Error("PodDirName")
	}
	if got := RotatedName("/x/0.log", time.Date(2024, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600))); got != "/x/0.log.20240102-020405" {
		t.Errorf("RotatedName = %s", got)
	}
}

func waitFor(t *testing.T, b *syncbuf.Buffer, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if b.String() == want {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("output = %q, want %q", b.String(), want)
}

func appendTo(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

// wantEnded waits up to 10 s for a Read's result on done and fails the
// test with why if it does not come, or with Read's error.
func wantEnded(t *testing.T, done <-chan error, why string) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal(why)
	}
}

func TestFollowAppendsRotationAndEnd(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "app")
	live := filepath.Join(dir, "0.log")
	writeFile(t, live, ts(0)+" stdout F one", ts(1)+" stdout F two")
	var out syncbuf.Buffer
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		done <- Read(ctx, dir, 0, Options{Follow: true, Tail: 1, PollInterval: 5 * time.Millisecond}, &out)
	}()
	waitFor(t, &out, "two\n")
	appendTo(t, live, ts(2)+" stdout F three\n")
	waitFor(t, &out, "two\nthree\n")
	// A line written in two pieces (torn write) and a partial CRI line.
	appendTo(t, live, ts(3)+" stdout P fo")
	time.Sleep(20 * time.Millisecond)
	appendTo(t, live, "ur-\n")
	appendTo(t, live, ts(4)+" stdout F done\n")
	waitFor(t, &out, "two\nthree\nfour-done\n")
	// Rotation: rename, a late write to the old file, then a new live file.
	rot := RotatedName(live, time.Date(2024, 1, 1, 0, 0, 5, 0, time.UTC))
	if err := os.Rename(live, rot); err != nil {
		t.Fatal(err)
	}
	appendTo(t, rot, ts(5)+" stdout F five\n")
	appendTo(t, live, ts(6)+" stderr F six\n")
	waitFor(t, &out, "two\nthree\nfour-done\nfive\nsix\n")
	// A new instance's log ends the follow after the last lines.
	appendTo(t, live, ts(7)+" stdout F seven\n")
	writeFile(t, filepath.Join(dir, "1.log"), ts(8)+" stdout F next instance")
	wantEnded(t, done, "follow did not end when 1.log appeared")
	if got := out.String(); got != "two\nthree\nfour-done\nfive\nsix\nseven\n" {
		t.Errorf("final = %q", got)
	}
}

func TestFollowWaitsForFileAndStops(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "app")
	os.MkdirAll(dir, 0o755)
	var out syncbuf.Buffer
	var stop sync.Mutex
	stopped := false
	done := make(chan error, 1)
	go func() {
		done <- Read(context.Background(), dir, 3, Options{Follow: true, Tail: -1, PollInterval: 5 * time.Millisecond,
			Stop: func() bool { stop.Lock(); defer stop.Unlock(); return stopped }}, &out)
	}()
	time.Sleep(20 * time.Millisecond)
	writeFile(t, filepath.Join(dir, "3.log"), ts(0)+" stdout F late")
	waitFor(t, &out, "late\n")
	appendTo(t, filepath.Join(dir, "3.log"), ts(1)+" stdout F last\n")
	stop.Lock()
	stopped = true
	stop.Unlock()
	wantEnded(t, done, "Stop did not end the follow")
	if out.String() != "late\nlast\n" {
		t.Errorf("out = %q", out.String())
	}
}

func TestFollowTruncation(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "app")
	live := filepath.Join(dir, "0.log")
	writeFile(t, live, ts(0)+" stdout F before-truncate")
	var out syncbuf.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Read(ctx, dir, 0, Options{Follow: true, Tail: -1, PollInterval: 5 * time.Millisecond}, &out)
	}()
	waitFor(t, &out, "before-truncate\n")
	if err := os.WriteFile(live, []byte(ts(1)+" stdout F x\n"), 0o644); err != nil { // copytruncate
		t.Fatal(err)
	}
	waitFor(t, &out, "before-truncate\nx\n")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
