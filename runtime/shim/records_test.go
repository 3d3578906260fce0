package shim

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

type testRecord struct {
	Name string    `json:"name"`
	N    int       `json:"n"`
	At   time.Time `json:"at"`
}

// trusting returns a cache that trusts a record at once (no racy window),
// so that tests see hits on files they just wrote.
func trusting[T any](clone func(T) T) *RecordCache[T] {
	c := NewRecordCache(clone)
	c.racy = -time.Hour
	return c
}

func (c *RecordCache[T]) decoded() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.decodes
}

func (c *RecordCache[T]) size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

func mustRead[T any](t *testing.T, c *RecordCache[T], path string) T {
	t.Helper()
	v, err := c.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestRecordCacheServesUnchangedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	if err := WriteJSONAtomic(path, testRecord{Name: "a", N: 1}); err != nil {
		t.Fatal(err)
	}
	c := trusting[testRecord](nil)
	for range 3 {
		if v := mustRead(t, c, path); v.Name != "a" || v.N != 1 {
			t.Fatalf("read %+v", v)
		}
	}
	if d := c.decoded(); d != 1 {
		t.Fatalf("decoded %d times, want 1", d)
	}
}

func TestRecordCacheSeesAtomicRewrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	c := trusting[testRecord](nil)
	for i := range 5 {
		// Same size every time: only the inode and times differ.
		if err := WriteJSONAtomic(path, testRecord{Name: "a", N: i}); err != nil {
			t.Fatal(err)
		}
		if v := mustRead(t, c, path); v.N != i {
			t.Fatalf("write %d: read %+v", i, v)
		}
	}
}

func TestRecordCacheSeesInPlaceRewrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	if err := os.WriteFile(path, []byte(`{"name":"a","n":1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	c := trusting[testRecord](nil)
	mustRead(t, c, path)
	// Same inode and size; the write moves ctime, set apart from the
	// first one here because both may fall in one clock tick.
	if err := os.WriteFile(path, []byte(`{"name":"a","n":2}`), 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Minute)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	if v := mustRead(t, c, path); v.N != 2 {
		t.Fatalf("read %+v after rewrite in place", v)
	}
}

// A record read within the racy window of its file's change is read again:
// a rewrite in the same clock tick would not change the identity.
func TestRecordCacheRereadsRacyRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	if err := WriteJSONAtomic(path, testRecord{Name: "a"}); err != nil {
		t.Fatal(err)
	}
	c := NewRecordCache[testRecord](nil)
	mustRead(t, c, path)
	mustRead(t, c, path)
	if d := c.decoded(); d != 2 {
		t.Fatalf("a file written just now decoded %d times in 2 reads, want 2", d)
	}
}

func TestRecordCacheCallersGetCopies(t *testing.T) {
	type withSlice struct {
		IPs []string `json:"ips"`
	}
	path := filepath.Join(t.TempDir(), "sandbox.json")
	if err := WriteJSONAtomic(path, withSlice{IPs: []string{"10.0.0.1"}}); err != nil {
		t.Fatal(err)
	}
	c := trusting(func(v withSlice) withSlice { v.IPs = slices.Clone(v.IPs); return v })
	v := mustRead(t, c, path)
	v.IPs[0] = "changed"
	if again := mustRead(t, c, path); again.IPs[0] != "10.0.0.1" {
		t.Fatalf("a caller's change reached the cache: %v", again.IPs)
	}
	if c.decoded() != 1 {
		t.Fatal("the second read was not served from the cache")
	}
}

func TestRecordCacheRefusesSharedTypeWithoutClone(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("NewRecordCache of a type with a slice and no clone did not panic")
		}
	}()
	NewRecordCache[struct{ IPs []string }](nil)
}

func TestRecordCacheErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	c := trusting[testRecord](nil)
	missing := filepath.Join(dir, "missing.json")
	if _, err := c.Read(missing); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Fatalf("missing file: %v", err)
	}
	damaged := filepath.Join(dir, "damaged.json")
	if err := os.WriteFile(damaged, []byte(`{"name":`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(damaged); !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), damaged) {
		t.Fatalf("damaged file: %v", err)
	}
	if c.size() != 0 {
		t.Fatalf("%d entries cached for no record", c.size())
	}
}

func TestRecordCacheDropsRemovedFiles(t *testing.T) {
	dir := t.TempDir()
	c := trusting[testRecord](nil)
	write := func(name string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(`{"name":"`+name+`"}`), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	// A file found missing by Read drops its entry.
	gone := write("gone.json")
	mustRead(t, c, gone)
	os.Remove(gone)
	if _, err := c.Read(gone); err == nil {
		t.Fatal("read a removed file")
	}
	if c.size() != 0 {
		t.Fatalf("%d entries left after the only file went", c.size())
	}
	// Files removed behind its back (a pod's folder) go at the next sweep,
	// so the entries stay within twice the live files and the slack.
	for round := range 10 {
		var paths []string
		for i := range 50 {
			paths = append(paths, write(fmt.Sprintf("r%d-%d.json", round, i)))
		}
		for _, p := range paths {
			mustRead(t, c, p)
		}
		for _, p := range paths {
			os.Remove(p)
		}
		if n := c.size(); n > 2*50+sweepSlack {
			t.Fatalf("round %d: %d entries for 50 live files", round, n)
		}
	}
}

func TestRecordCacheConcurrentReadersAndWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	if err := WriteJSONAtomic(path, testRecord{Name: "a"}); err != nil {
		t.Fatal(err)
	}
	// The real window: with none, an inode reused within one clock tick
	// could pair an old record with a new file (the race it closes).
	c := NewRecordCache[testRecord](nil)
	const writes = 50
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			last := -1
			for last < writes-1 {
				v, err := c.Read(path)
				if err != nil {
					t.Error(err)
					return
				}
				if v.N < last {
					t.Errorf("read %d after %d", v.N, last)
					return
				}
				last = v.N
			}
		})
	}
	for i := 1; i < writes; i++ {
		if err := WriteJSONAtomic(path, testRecord{Name: "a", N: i}); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
}
