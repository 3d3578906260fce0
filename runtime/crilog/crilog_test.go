package crilog

import (
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var line = regexp.MustCompile(`^(\S+) (stdout|stderr) (F|P) (.*)$`)

func readRecords(t *testing.T, path string) [][]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]string
	for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if l == "" {
			continue
		}
		m := line.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("not a CRI line: %q", l)
		}
		if _, err := time.Parse(time.RFC3339Nano, m[1]); err != nil {
			t.Fatalf("timestamp %q: %v", m[1], err)
		}
		out = append(out, m[2:])
	}
	return out
}

func TestFormatStreamsAndPartialLines(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c", "0.log")
	w, err := Open(path, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, _ := os.Pipe()
	errR, errW, _ := os.Pipe()
	w.Follow("stdout", outR)
	w.Follow("stderr", errR)
	long := strings.Repeat("x", maxLine+10)
	io.WriteString(outW, "hello\n"+long+"\nno newline at the end")
	outW.Close()
	io.WriteString(errW, "oops\n")
	errW.Close()
	w.Close(5 * time.Second)
	recs := readRecords(t, path)
	var stdout []string
	var stderr []string
	for _, r := range recs {
		if r[0] == "stdout" {
			stdout = append(stdout, r[1]+":"+strings.TrimLeft(r[2], "x")+":"+string(rune('0'+len(r[2])/maxLine)))
		} else {
			stderr = append(stderr, r[1]+":"+r[2])
		}
	}
	want := []string{"F:hello:0", "P::1", "F::0", "F:no newline at the end:0"}
	if strings.Join(stdout, "|") != strings.Join(want, "|") {
		t.Errorf("stdout records = %v, want %v", stdout, want)
	}
	if strings.Join(stderr, "|") != "F:oops" {
		t.Errorf("stderr records = %v", stderr)
	}
}

func TestRotationKeepsMaxFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "0.log")
	w, err := Open(path, 1000, 3)
	if err != nil {
		t.Fatal(err)
	}
	// A clock that moves 1 ms per reading, read by the stream reader and
	// the writer goroutines alike.
	var mu sync.Mutex
	tick := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	w.now = func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		tick = tick.Add(time.Millisecond)
		return tick
	}
	r, pw, _ := os.Pipe()
	w.Follow("stdout", r)
	for i := 0; i < 200; i++ {
		io.WriteString(pw, strings.Repeat("y", 40)+"\n")
	}
	pw.Close()
	w.Close(5 * time.Second)
	files, _ := filepath.Glob(filepath.Join(dir, "0.log*"))
	if len(files) != 3 {
		t.Fatalf("files after rotation = %v, want the current one and 2 rotated", files)
	}
	for _, f := range files {
		st, _ := os.Stat(f)
		if st.Size() > 1000 {
			t.Errorf("%s has %d bytes, above the 1000 limit", f, st.Size())
		}
		readRecords(t, f)
	}
}

// A log file nobody drains (a FIFO whose reader never reads) stands for a
// disk that stopped: the container's writes must still complete, and the
// lost lines be counted.
func TestSlowDiskDropsInsteadOfBlocking(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "0.log")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Skip(err)
	}
	rd, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	w, err := Open(path, 1<<40, 5)
	if err != nil {
		t.Fatal(err)
	}
	r, pw, _ := os.Pipe()
	w.Follow("stdout", r)
	done := make(chan struct{})
	go func() {
		for i := 0; i < 3*queueLines+20000; i++ {
			io.WriteString(pw, "a line that nobody will ever read from this stuck disk\n")
		}
		pw.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("the container blocked on its log (deadlock guard)")
	}
	w.Close(100 * time.Millisecond)
	if w.Dropped() == 0 {
		t.Error("no line counted as dropped")
	}
}
