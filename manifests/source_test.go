package manifests

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/apimachinery/pkg/types"

	"github.com/minikubelet/minikubelet/internal/syncbuf"
)

// Tests of the folder Source with the real filesystem and fsnotify. They
// wait for conditions (generous timeout, no timing assertions) and inspect
// the full history of published snapshots to prove what never happened
// (a pod removed during an editor's save, a half-written file acted on).

const waitTimeout = 20 * time.Second

// testRemoveQuiet is the Source's removal quiet period in these tests;
// editorPause is how long the editor tests leave the manifest missing
// mid-save: longer than Settle (so the Source does look at the gap), far
// shorter than testRemoveQuiet (so a loaded machine does not make it look
// like a deletion).
const (
	testRemoveQuiet = 1500 * time.Millisecond
	editorPause     = 100 * time.Millisecond
)

type harness struct {
	t    *testing.T
	dir  string
	src  *Source
	mu   sync.Mutex
	hist []Snapshot
}

func podYAML(name, image string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
spec:
  containers:
  - name: main
    image: %s
    command: ["sleep", "infinity"]
`, name, image)
}

// startSource runs a Source on dir with short test durations.
func startSource(t *testing.T, dir string, tweak func(*Config)) *harness {
	t.Helper()
	cfg := Config{
		Dir:         dir,
		NodeName:    testNode,
		Resync:      time.Hour, // tests prove the watch; TestSourceResync proves the re-list
		Settle:      5 * time.Millisecond,
		RemoveQuiet: testRemoveQuiet,
		BusyRecheck: 10 * time.Millisecond,
		MaxBusy:     time.Minute,
		DirPoll:     20 * time.Millisecond,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	src, err := NewSource(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, dir: src.Dir(), src: src}
	src.onPublish = func(s Snapshot) {
		h.mu.Lock()
		h.hist = append(h.hist, s)
		h.mu.Unlock()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	h.waitFor("first snapshot", func(s Snapshot) bool { return s.Synced })
	return h
}

// waitFor waits until the latest snapshot satisfies cond.
func (h *harness) waitFor(what string, cond func(Snapshot) bool) Snapshot {
	h.t.Helper()
	deadline := time.After(waitTimeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		s := h.src.Snapshot()
		if s.Synced && cond(s) {
			return s
		}
		select {
		case <-h.src.Changed():
		case <-tick.C:
		case <-deadline:
			h.t.Fatalf("timed out waiting for %s; last snapshot: %s", what, describe(h.src.Snapshot()))
		}
	}
}

func (h *harness) history() []Snapshot {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Snapshot(nil), h.hist...)
}

func (h *harness) path(name string) string { return filepath.Join(h.dir, name) }

func (h *harness) write(name, content string) {
	h.t.Helper()
	if err := os.WriteFile(h.path(name), []byte(content), 0o644); err != nil {
		h.t.Fatal(err)
	}
}

func describe(s Snapshot) string {
	var b strings.Builder
	fmt.Fprintf(&b, "gen %d synced %v;", s.Generation, s.Synced)
	for _, p := range s.Pods {
		fmt.Fprintf(&b, " pod %s/%s uid=%s file=%s stale=%v image=%s;", p.Pod.Namespace, p.Pod.Name, p.Pod.UID, filepath.Base(p.File), p.Stale, p.Pod.Spec.Containers[0].Image)
	}
	for _, e := range s.Errors {
		fmt.Fprintf(&b, " error %s;", e.Error())
	}
	return b.String()
}

func podNamed(s Snapshot, name string) (DesiredPod, bool) {
	for _, p := range s.Pods {
		if p.Pod.Name == name+"-"+testNode {
			return p, true
		}
	}
	return DesiredPod{}, false
}

func hasPod(name, image string) func(Snapshot) bool {
	return func(s Snapshot) bool {
		p, ok := podNamed(s, name)
		return ok && !p.Stale && p.Pod.Spec.Containers[0].Image == image
	}
}

func fileError(s Snapshot, file string) *FileError {
	for _, e := range s.Errors {
		if filepath.Base(e.Path) == file {
			return e
		}
	}
	return nil
}

// neverAbsentAfterFirst checks that once pod name appeared it stayed in
// every later snapshot, and that no snapshot showed an error for file.
func neverAbsentAfterFirst(t *testing.T, hist []Snapshot, name, file string) {
	t.Helper()
	appeared := false
	for _, s := range hist {
		_, ok := podNamed(s, name)
		if ok {
			appeared = true
		} else if appeared {
			t.Errorf("pod %s disappeared in snapshot %s", name, describe(s))
		}
		if e := fileError(s, file); e != nil {
			t.Errorf("an error was published for %s during the save: %v", file, e)
		}
	}
	if !appeared {
		t.Errorf("pod %s never appeared", name)
	}
}

// imagesSeen lists the distinct images pod name had, in order.
func imagesSeen(hist []Snapshot, name string) []string {
	var out []string
	for _, s := range hist {
		if p, ok := podNamed(s, name); ok {
			img := p.Pod.Spec.Containers[0].Image
			if len(out) == 0 || out[len(out)-1] != img {
				out = append(out, img)
			}
		}
	}
	return out
}

func TestSourceInitialListSkipsNonManifests(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("web.yaml", podYAML("web", "nginx:1"))
	// Each leftover holds a valid pod of its own: none may run.
	leftovers := []string{".web.yaml.swp", ".web.yaml.swx", "web.yaml~", "4913", "web.yaml.swp", "#web.yaml#",
		".#web.yaml", ".hidden.yaml", "web.yaml.bak", "web.yaml.orig", "web.yaml.dpkg-old", "web.yaml.dpkg-new",
		"web.yaml.dpkg-dist", "web.yaml.rpmnew", "web.yaml.rpmsave", "notes.txt"}
	for i, name := range leftovers {
		write(name, podYAML(fmt.Sprintf("leftover%d", i), "busybox"))
	}
	if err := os.Mkdir(filepath.Join(dir, "sub.yaml"), 0o755); err != nil {
		t.Fatal(err)
	}
	h := startSource(t, dir, nil)
	s := h.src.Snapshot()
	if len(s.Pods) != 1 || !hasPod("web", "nginx:1")(s) {
		t.Fatalf("first snapshot: %s", describe(s))
	}
	if s.Pods[0].File != filepath.Join(h.dir, "web.yaml") {
		t.Errorf("File = %q", s.Pods[0].File)
	}
	if s.Pods[0].Pod.Annotations[ConfigSeenAnnotation] == "" {
		t.Errorf("config.seen annotation missing")
	}
	// Only a directory named like a manifest is an error worth telling.
	if len(s.Errors) != 1 || !strings.Contains(s.Errors[0].Error(), "not a regular file") {
		t.Errorf("errors: %s", describe(s))
	}
}

func TestSourceCreateChangeDelete(t *testing.T) {
	h := startSource(t, t.TempDir(), nil)
	h.write("web.yaml", podYAML("web", "nginx:1"))
	first := h.waitFor("web added", hasPod("web", "nginx:1"))
	p1, _ := podNamed(first, "web")

	h.write("web.yaml", podYAML("web", "nginx:2"))
	second := h.waitFor("web changed", hasPod("web", "nginx:2"))
	p2, _ := podNamed(second, "web")
	if p1.Pod.UID == p2.Pod.UID {
		t.Errorf("a changed spec kept UID %s", p1.Pod.UID)
	}
	if err := os.Remove(h.path("web.yaml")); err != nil {
		t.Fatal(err)
	}
	h.waitFor("web removed", func(s Snapshot) bool { return len(s.Pods) == 0 && len(s.Errors) == 0 })
}

func TestSourceReformattingKeepsUID(t *testing.T) {
	h := startSource(t, t.TempDir(), nil)
	h.write("web.yaml", podYAML("web", "nginx:1"))
	s := h.waitFor("web added", hasPod("web", "nginx:1"))
	p, _ := podNamed(s, "web")
	gen := s.Generation
	// The same pod as JSON with extra defaults spelled out, in the same file.
	h.write("web.yaml", `{"kind":"Pod","apiVersion":"v1","metadata":{"name":"web"},
	  "spec":{"restartPolicy":"Always","containers":[{"image":"nginx:1","name":"main","command":["sleep","infinity"]}]}}`)
	// Then a real change, to know the reformatting was processed before it.
	h.write("other.yaml", podYAML("other", "busybox"))
	s = h.waitFor("other added", hasPod("other", "busybox"))
	if q, _ := podNamed(s, "web"); q.Pod.UID != p.Pod.UID {
		t.Errorf("reformatting changed the UID %s -> %s", p.Pod.UID, q.Pod.UID)
	}
	for _, hs := range h.history() {
		if hs.Generation <= gen {
			continue
		}
		if q, ok := podNamed(hs, "web"); !ok || q.Pod.UID != p.Pod.UID {
			t.Errorf("web changed during reformatting: %s", describe(hs))
		}
	}
}

// vim's default save (backupcopy=auto on a plain file): probe file 4913,
// rename the original to web.yaml~, write a new web.yaml, delete the backup.
func TestSourceVimSave(t *testing.T) {
	h := startSource(t, t.TempDir(), nil)
	h.write("web.yaml", podYAML("web", "nginx:1"))
	h.waitFor("web added", hasPod("web", "nginx:1"))

	h.write(".web.yaml.swp", "b0VIM 9.0 swap")
	h.write("4913", "")
	must(t, os.Remove(h.path("4913")))
	must(t, os.Rename(h.path("web.yaml"), h.path("web.yaml~")))
	time.Sleep(editorPause)
	h.write("web.yaml", podYAML("web", "nginx:2"))
	must(t, os.Remove(h.path("web.yaml~")))
	must(t, os.Remove(h.path(".web.yaml.swp")))
	h.waitFor("web updated", hasPod("web", "nginx:2"))
	// Let the removal quiet period pass: nothing may follow.
	time.Sleep(testRemoveQuiet + 200*time.Millisecond)
	h.waitFor("web still there", hasPod("web", "nginx:2"))
	neverAbsentAfterFirst(t, h.history(), "web", "web.yaml")
	if got := imagesSeen(h.history(), "web"); strings.Join(got, ",") != "nginx:1,nginx:2" {
		t.Errorf("images seen: %v", got)
	}
}

// emacs: a lock symlink .#web.yaml, an auto-save #web.yaml#, then a save
// that renames the original to web.yaml~ and writes the new file.
func TestSourceEmacsSave(t *testing.T) {
	h := startSource(t, t.TempDir(), nil)
	h.write("web.yaml", podYAML("web", "nginx:1"))
	h.waitFor("web added", hasPod("web", "nginx:1"))

	must(t, os.Symlink("user@host.1234:1700000000", h.path(".#web.yaml")))
	h.write("#web.yaml#", "apiVersion: v1\nkind: Pod\nmetadata: {name: web\n") // half-typed, invalid
	must(t, os.Rename(h.path("web.yaml"), h.path("web.yaml~")))
	time.Sleep(editorPause)
	h.write("web.yaml", podYAML("web", "nginx:2"))
	must(t, os.Remove(h.path("#web.yaml#")))
	must(t, os.Remove(h.path(".#web.yaml")))
	h.waitFor("web updated", hasPod("web", "nginx:2"))
	time.Sleep(testRemoveQuiet + 200*time.Millisecond)
	s := h.waitFor("web still there", hasPod("web", "nginx:2"))
	if len(s.Pods) != 1 || len(s.Errors) != 0 {
		t.Errorf("leftovers acted on: %s", describe(s))
	}
	neverAbsentAfterFirst(t, h.history(), "web", "web.yaml")
}

// kubectl/kubeadm-style atomic save: write a temporary file in the folder,
// rename it over the manifest.
func TestSourceAtomicRenameOver(t *testing.T) {
	h := startSource(t, t.TempDir(), nil)
	h.write("web.yaml", podYAML("web", "nginx:1"))
	h.waitFor("web added", hasPod("web", "nginx:1"))
	for i, tmp := range []string{".web.yaml.tmp-123", "web.yaml.tmp", "web.yaml.4711"} {
		img := fmt.Sprintf("nginx:%d", i+2)
		h.write(tmp, podYAML("web", img))
		must(t, os.Rename(h.path(tmp), h.path("web.yaml")))
		h.waitFor("web "+img, hasPod("web", img))
	}
	neverAbsentAfterFirst(t, h.history(), "web", "web.yaml")
	if got := imagesSeen(h.history(), "web"); len(got) != 4 {
		t.Errorf("images seen: %v (a temporary file was read as a manifest?)", got)
	}
	// A manifest renamed into the folder from elsewhere starts at once.
	outside := filepath.Join(t.TempDir(), "db.yaml")
	must(t, os.WriteFile(outside, []byte(podYAML("db", "postgres:16")), 0o644))
	must(t, os.Rename(outside, h.path("db.yaml")))
	h.waitFor("db added", hasPod("db", "postgres:16"))
}

// A ConfigMap mounted as the folder (Kubernetes' AtomicWriter): visible
// files are symlinks through ..data; an update writes a new timestamped
// folder and swaps the ..data symlink. No event names web.yaml.
func TestSourceAtomicWriterSymlinkSwap(t *testing.T) {
	dir := t.TempDir()
	v1dir := filepath.Join(dir, "..2026_11_28_13_00_00.1")
	must(t, os.Mkdir(v1dir, 0o755))
	must(t, os.WriteFile(filepath.Join(v1dir, "web.yaml"), []byte(podYAML("web", "nginx:1")), 0o644))
	must(t, os.Symlink(filepath.Base(v1dir), filepath.Join(dir, "..data")))
	must(t, os.Symlink("..data/web.yaml", filepath.Join(dir, "web.yaml")))
	h := startSource(t, dir, nil)
	h.waitFor("web added", hasPod("web", "nginx:1"))

	v2dir := filepath.Join(dir, "..2026_11_28_13_05_00.2")
	must(t, os.Mkdir(v2dir, 0o755))
	must(t, os.WriteFile(filepath.Join(v2dir, "web.yaml"), []byte(podYAML("web", "nginx:2")), 0o644))
	must(t, os.Symlink(filepath.Base(v2dir), filepath.Join(dir, "..data_tmp")))
	must(t, os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")))
	must(t, os.RemoveAll(v1dir))
	h.waitFor("web updated through the ..data swap", hasPod("web", "nginx:2"))
	neverAbsentAfterFirst(t, h.history(), "web", "web.yaml")
}

// cp over an existing manifest truncates it and writes in place.
func TestSourceCopyOver(t *testing.T) {
	h := startSource(t, t.TempDir(), nil)
	h.write("web.yaml", podYAML("web", "nginx:1"))
	h.waitFor("web added", hasPod("web", "nginx:1"))
	src := filepath.Join(t.TempDir(), "new.yaml")
	must(t, os.WriteFile(src, []byte(podYAML("web", "nginx:2")), 0o644))
	data, err := os.ReadFile(src)
	must(t, err)
	f, err := os.OpenFile(h.path("web.yaml"), os.O_WRONLY|os.O_TRUNC, 0)
	must(t, err)
	_, err = f.Write(data)
	must(t, err)
	must(t, f.Close())
	h.waitFor("web updated", hasPod("web", "nginx:2"))
	neverAbsentAfterFirst(t, h.history(), "web", "web.yaml")
}

// requireLeases skips when the test folder's filesystem refuses file leases
// (the Source then falls back to a stability check, which cannot make the
// strong "never acted on while open" promise these tests assert).
func requireLeases(t *testing.T, dir string) {
	t.Helper()
	p := filepath.Join(dir, ".lease-probe")
	must(t, os.WriteFile(p, nil, 0o644))
	defer os.Remove(p)
	f, err := os.Open(p)
	must(t, err)
	defer f.Close()
	if _, err := unix.FcntlInt(f.Fd(), unix.F_SETLEASE, unix.F_RDLCK); err != nil {
		t.Skipf("file leases unavailable on %s: %v", dir, err)
	}
	_, _ = unix.FcntlInt(f.Fd(), unix.F_SETLEASE, unix.F_UNLCK)
}

// A non-atomic writer (kubeadm's os.WriteFile, cp, a script) writing in
// pieces: the first piece alone is a valid pod with one container. Nothing
// may happen while the writer holds the file open.
func TestSourceHalfWrittenFile(t *testing.T) {
	dir := t.TempDir()
	requireLeases(t, dir)
	h := startSource(t, dir, nil)
	full := podYAML("web", "nginx:1") + `  - name: sidecar
    image: busybox
`
	cut := strings.Index(full, "  - name: sidecar")
	for round, mode := range []int{os.O_CREATE | os.O_EXCL, os.O_TRUNC} {
		if round == 1 {
			full = strings.Replace(full, "nginx:1", "nginx:2", 1)
		}
		f, err := os.OpenFile(h.path("web.yaml"), os.O_WRONLY|mode, 0o644)
		must(t, err)
		_, err = f.WriteString(full[:cut])
		must(t, err)
		must(t, f.Sync())
		// Far longer than Settle and BusyRecheck: the source has looked.
		time.Sleep(300 * time.Millisecond)
		s := h.src.Snapshot()
		if p, ok := podNamed(s, "web"); ok && len(p.Pod.Spec.Containers) != 2 {
			t.Errorf("round %d: the half-written file became a pod: %s", round, describe(s))
		}
		if e := fileError(s, "web.yaml"); e != nil {
			t.Errorf("round %d: error for a file still being written: %v", round, e)
		}
		_, err = f.WriteString(full[cut:])
		must(t, err)
		must(t, f.Close())
		img := fmt.Sprintf("nginx:%d", round+1)
		s = h.waitFor("complete web "+img, hasPod("web", img))
		if p, _ := podNamed(s, "web"); len(p.Pod.Spec.Containers) != 2 {
			t.Errorf("round %d: pod has %d containers", round, len(p.Pod.Spec.Containers))
		}
	}
	for _, s := range h.history() {
		if p, ok := podNamed(s, "web"); ok && len(p.Pod.Spec.Containers) != 2 {
			t.Errorf("a half-written version was published: %s", describe(s))
		}
	}
	neverAbsentAfterFirst(t, h.history(), "web", "web.yaml")
}

// An edit that breaks a running pod's file keeps the last good spec
// desired and reports the error; fixing it resumes normal updates.
func TestSourceInvalidEditKeepsLastGood(t *testing.T) {
	h := startSource(t, t.TempDir(), nil)
	h.write("web.yaml", podYAML("web", "nginx:1"))
	s := h.waitFor("web added", hasPod("web", "nginx:1"))
	good, _ := podNamed(s, "web")

	h.write("web.yaml", strings.Replace(podYAML("web", "nginx:2"), "    image:", "    imag: x\n    image:", 1))
	s = h.waitFor("error reported", func(s Snapshot) bool { return fileError(s, "web.yaml") != nil })
	p, ok := podNamed(s, "web")
	if !ok || !p.Stale || p.Pod.UID != good.Pod.UID {
		t.Fatalf("last good spec not kept: %s", describe(s))
	}
	if e := fileError(s, "web.yaml").Error(); !strings.Contains(e, "spec.containers[0].imag: unknown field") {
		t.Errorf("error does not name the field: %s", e)
	}
	// Invalid in another way (not even YAML): still the last good spec.
	h.write("web.yaml", "apiVersion: v1\nkind: Pod\nspec: [\n")
	s = h.waitFor("syntax error reported", func(s Snapshot) bool {
		e := fileError(s, "web.yaml")
		return e != nil && strings.Contains(e.Error(), "not valid YAML")
	})
	if p, ok := podNamed(s, "web"); !ok || p.Pod.UID != good.Pod.UID {
		t.Fatalf("last good spec lost: %s", describe(s))
	}
	h.write("web.yaml", podYAML("web", "nginx:3"))
	s = h.waitFor("fixed", func(s Snapshot) bool { return hasPod("web", "nginx:3")(s) && len(s.Errors) == 0 })
	for _, hs := range h.history() {
		if _, ok := podNamed(hs, "web"); !ok && hs.Generation > 1 {
			t.Errorf("web was removed by an invalid edit: %s", describe(hs))
		}
	}
	// Deleting the file is what removes the pod, even while it is invalid.
	h.write("web.yaml", "garbage: [")
	h.waitFor("error again", func(s Snapshot) bool { return fileError(s, "web.yaml") != nil })
	must(t, os.Remove(h.path("web.yaml")))
	h.waitFor("removed", func(s Snapshot) bool { return len(s.Pods) == 0 && len(s.Errors) == 0 })
}

// An invalid manifest is logged once per change (file, field path, reason),
// not again when it is re-read unchanged; its fix is logged too.
func TestSourceLogsInvalidManifestOncePerChange(t *testing.T) {
	var buf syncbuf.Buffer
	h := startSource(t, t.TempDir(), func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(&buf, nil))
	})
	h.write("web.yaml", strings.Replace(podYAML("web", "nginx:2"), "    image:", "    imag: x\n    image:", 1))
	h.waitFor("error reported", func(s Snapshot) bool { return fileError(s, "web.yaml") != nil })
	// The same bad content written again (re-read, same problems) and an
	// unrelated change: no second line.
	h.write("web.yaml", strings.Replace(podYAML("web", "nginx:2"), "    image:", "    imag: x\n    image:", 1))
	h.write("other.yaml", podYAML("other", "nginx:1"))
	h.waitFor("other added", hasPod("other", "nginx:1"))
	want := `level=WARN msg="invalid manifest" file=` + h.path("web.yaml") + ` field=spec.containers[0].imag reason="unknown field`
	if n := strings.Count(buf.String(), want); n != 1 {
		t.Fatalf("%d lines %q in the log, want 1:\n%s", n, want, buf.String())
	}
	h.write("web.yaml", podYAML("web", "nginx:3"))
	h.waitFor("fixed", func(s Snapshot) bool { return len(s.Errors) == 0 })
	if !strings.Contains(buf.String(), `msg="manifest valid again" file=`+h.path("web.yaml")) {
		t.Errorf("the fix is not logged:\n%s", buf.String())
	}
}

func TestSourceDuplicateNames(t *testing.T) {
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "b.yaml"), []byte(podYAML("web", "from-b")), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "a.yaml"), []byte(podYAML("web", "from-a")), 0o644))
	h := startSource(t, dir, nil)
	// At start-up the lexically first file wins.
	s := h.waitFor("a wins", hasPod("web", "from-a"))
	e := fileError(s, "b.yaml")
	if e == nil || !strings.Contains(e.Error(), h.path("a.yaml")) || !strings.Contains(e.Error(), h.path("b.yaml")) ||
		!strings.Contains(e.Error(), "metadata.name") {
		t.Fatalf("duplicate error must name both files: %s", describe(s))
	}
	if len(s.Pods) != 1 {
		t.Fatalf("pods: %s", describe(s))
	}
	// Later, the file that came first keeps its pod even if sorted after.
	h.write("0-new.yaml", podYAML("web", "from-0"))
	s = h.waitFor("0-new rejected", func(s Snapshot) bool { return fileError(s, "0-new.yaml") != nil })
	if !hasPod("web", "from-a")(s) {
		t.Errorf("a newcomer took the name: %s", describe(s))
	}
	// When the holder goes, a waiting file gets the name.
	must(t, os.Remove(h.path("a.yaml")))
	s = h.waitFor("a gone", func(s Snapshot) bool {
		p, ok := podNamed(s, "web")
		return ok && p.Pod.Spec.Containers[0].Image != "from-a"
	})
	if p, _ := podNamed(s, "web"); p.Pod.Spec.Containers[0].Image != "from-0" {
		t.Errorf("the next file in order should take the name: %s", describe(s))
	}
	h.waitFor("b still rejected", func(s Snapshot) bool { return fileError(s, "b.yaml") != nil && len(s.Errors) == 1 })
}

// Two files giving one metadata.uid would be one pod directory and one
// slice for two pods: the second is a duplicate, like a second name.
func TestSourceDuplicateUIDs(t *testing.T) {
	dir := t.TempDir()
	const uid = "6f3c2b1e-0d4a-4c1b-9e8f-1a2b3c4d5e6f"
	withUID := func(name string) string {
		return strings.Replace(podYAML(name, "img"), "  name: "+name+"\n", "  name: "+name+"\n  uid: "+uid+"\n", 1)
	}
	must(t, os.WriteFile(filepath.Join(dir, "a.yaml"), []byte(withUID("one")), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "b.yaml"), []byte(withUID("two")), 0o644))
	h := startSource(t, dir, nil)
	s := h.waitFor("a wins", func(s Snapshot) bool { _, ok := podNamed(s, "one"); return ok && fileError(s, "b.yaml") != nil })
	e := fileError(s, "b.yaml")
	if !strings.Contains(e.Error(), "metadata.uid") || !strings.Contains(e.Error(), h.path("a.yaml")) || !strings.Contains(e.Error(), uid) {
		t.Fatalf("duplicate uid error must name the field, the uid and the holder: %v", e)
	}
	if len(s.Pods) != 1 {
		t.Fatalf("pods: %s", describe(s))
	}
	// When the holder goes, the other file gets the UID.
	must(t, os.Remove(h.path("a.yaml")))
	h.waitFor("b takes it", func(s Snapshot) bool {
		_, ok := podNamed(s, "two")
		return ok && len(s.Errors) == 0 && len(s.Pods) == 1
	})
}

func TestSourceFolderMissingThenCreated(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "manifests")
	h := startSource(t, dir, nil)
	s := h.src.Snapshot()
	if len(s.Errors) != 1 || s.Errors[0].Path != dir || !strings.Contains(s.Errors[0].Error(), "does not exist") {
		t.Fatalf("missing folder not reported: %s", describe(s))
	}
	must(t, os.Mkdir(dir, 0o755))
	h.write("web.yaml", podYAML("web", "nginx:1"))
	h.waitFor("web added", func(s Snapshot) bool { return hasPod("web", "nginx:1")(s) && len(s.Errors) == 0 })

	// The folder renamed away and back (a config tool swapping it) within the
	// removal quiet period: the pod is never dropped.
	gen := h.src.Snapshot().Generation
	must(t, os.Rename(dir, dir+".old"))
	time.Sleep(editorPause)
	must(t, os.Rename(dir+".old", dir))
	h.write("marker.yaml", podYAML("marker", "busybox"))
	h.waitFor("marker added", hasPod("marker", "busybox"))
	for _, s := range h.history() {
		if _, ok := podNamed(s, "web"); !ok && s.Generation > gen {
			t.Errorf("web dropped while the folder was briefly renamed: %s", describe(s))
		}
	}

	// The folder goes away: its pods are no longer desired.
	must(t, os.RemoveAll(dir))
	h.waitFor("folder gone", func(s Snapshot) bool { return len(s.Pods) == 0 && len(s.Errors) == 1 })
	// And comes back (e.g. restored by configuration management).
	must(t, os.Mkdir(dir, 0o755))
	h.write("web.yaml", podYAML("web", "nginx:2"))
	h.waitFor("web back", func(s Snapshot) bool { return hasPod("web", "nginx:2")(s) && len(s.Errors) == 0 })
}

func TestSourceFolderAndParentMissing(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "etc", "kubernetes", "manifests")
	h := startSource(t, dir, nil)
	must(t, os.MkdirAll(dir, 0o755))
	h.write("web.yaml", podYAML("web", "nginx:1"))
	h.waitFor("web added (found by polling)", hasPod("web", "nginx:1"))
}

func TestSourceSizeCapAndFIFO(t *testing.T) {
	h := startSource(t, t.TempDir(), nil)
	big := podYAML("big", "busybox") + "# " + strings.Repeat("x", MaxFileSize) + "\n"
	h.write("big.yaml", big)
	must(t, syscall.Mkfifo(h.path("pipe.yaml"), 0o644))
	h.write("ok.yaml", podYAML("ok", "busybox"))
	s := h.waitFor("errors", func(s Snapshot) bool {
		return fileError(s, "big.yaml") != nil && fileError(s, "pipe.yaml") != nil && hasPod("ok", "busybox")(s)
	})
	if e := fileError(s, "big.yaml").Error(); !strings.Contains(e, "10 MiB") {
		t.Errorf("size error: %s", e)
	}
	if e := fileError(s, "pipe.yaml").Error(); !strings.Contains(e, "not a regular file") {
		t.Errorf("fifo error: %s", e)
	}
	if _, ok := podNamed(s, "big"); ok {
		t.Errorf("an oversized file became a pod")
	}
}

func TestSourcePackageManagerLeftovers(t *testing.T) {
	h := startSource(t, t.TempDir(), nil)
	h.write("web.yaml", podYAML("web", "nginx:1"))
	h.waitFor("web added", hasPod("web", "nginx:1"))
	for _, n := range []string{"web.yaml.dpkg-new", "web.yaml.dpkg-old", "web.yaml.dpkg-dist", "web.yaml.dpkg-tmp",
		"web.yaml.rpmnew", "web.yaml.rpmsave", "web.yaml.ucf-dist", "web.yaml.bak", "web.yaml.orig"} {
		h.write(n, podYAML("web", "nginx:"+n))
	}
	// A real change after the leftovers proves they were seen and skipped.
	h.write("web.yaml", podYAML("web", "nginx:2"))
	h.waitFor("web updated", hasPod("web", "nginx:2"))
	if got := imagesSeen(h.history(), "web"); strings.Join(got, ",") != "nginx:1,nginx:2" {
		t.Errorf("images seen: %v", got)
	}
}

func TestSourcePodList(t *testing.T) {
	h := startSource(t, t.TempDir(), nil)
	h.write("list.yaml", `apiVersion: v1
kind: PodList
items:
- metadata: {name: a}
  spec: {containers: [{name: a, image: busybox}]}
- metadata: {name: b}
  spec: {containers: [{name: b, image: busybox}]}
`)
	s := h.waitFor("two pods", func(s Snapshot) bool { return len(s.Pods) == 2 })
	for _, p := range s.Pods {
		if filepath.Base(p.File) != "list.yaml" {
			t.Errorf("pod %s from %s", p.Pod.Name, p.File)
		}
	}
}

// The periodic re-list finds what no event announced (here: a change made
// while the watch cannot see it, simulated by a Source that ignores events).
func TestSourceResync(t *testing.T) {
	dir := t.TempDir()
	h := startSource(t, dir, func(c *Config) { c.Resync = 100 * time.Millisecond; c.Settle = time.Hour })
	// With Settle at an hour, events never trigger a read; only the re-list does.
	h.write("web.yaml", podYAML("web", "nginx:1"))
	h.waitFor("web found by re-list", hasPod("web", "nginx:1"))
	h.write("web.yaml", podYAML("web", "nginx:2"))
	h.waitFor("change found by re-list", hasPod("web", "nginx:2"))
}

func TestSnapshotPodByUID(t *testing.T) {
	h := startSource(t, t.TempDir(), nil)
	h.write("web.yaml", podYAML("web", "nginx:1"))
	s := h.waitFor("web", hasPod("web", "nginx:1"))
	uid := s.Pods[0].Pod.UID
	if p, ok := s.Pod(uid); !ok || p.Pod.UID != uid {
		t.Errorf("Pod(%s) not found", uid)
	}
	if _, ok := s.Pod(types.UID("nope")); ok {
		t.Errorf("Pod(nope) found")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
