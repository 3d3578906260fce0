package shim

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"reflect"
	"sync"
	"syscall"
	"time"
)

// RecordCache keeps the decoded content of JSON state files so that
// reading one that did not change costs one stat(2), not an open, read,
// close and a JSON decode. The daemon reads every pod's records on every
// observation round although an idle pod's never change (issue 17: with
// 100 idle pods that re-reading was a quarter of the daemon's CPU).
//
// A cached record is served only while the file's identity is the one it
// was read under: device, inode, size, mtime and ctime (ns), from one
// stat. WriteJSONAtomic renames a new file into place (a new inode, a new
// ctime); a file rewritten in place changes its mtime and ctime. One case
// escapes the identity, as git's "racily clean" index entries: a rewrite
// within the filesystem's timestamp granularity of the read, of the same
// size, into a reused inode. So a record read less than racyWindow after
// its file's ctime is not trusted: the next Read reads it again.
//
// Callers get a copy: the clone function given to NewRecordCache, or a
// plain assignment for types that hold no pointer, slice or map. The cache
// is safe for concurrent use and bounded: a file found missing drops its
// entry, and once the entries double since the last sweep every cached
// path is stat'ed and the missing ones are dropped (pods removed while
// nobody read their files again).
type RecordCache[T any] struct {
	clone func(T) T
	racy  time.Duration

	mu      sync.Mutex
	entries map[string]*cachedRecord[T] // an entry is never modified once stored
	swept   int                         // entries left by the last sweep
	decodes int                         // files read and decoded (tests)
}

// racyWindow is how long after its ctime a file's content may still change
// without changing its identity. File times come from the kernel's coarse
// clock (one tick, at most 10 ms, behind); a second also covers filesystems
// that keep whole seconds. Only a record written within the window of the
// read is read again, once.
const racyWindow = time.Second

// sweepSlack entries are allowed beyond twice the live ones before a
// sweep, so that small caches are not swept on every new file.
const sweepSlack = 64

type fileIdentity struct {
	dev, ino     uint64
	size         int64
	mtime, ctime int64 // ns since the epoch
}

func identityOf(st *syscall.Stat_t) fileIdentity {
	return fileIdentity{dev: st.Dev, ino: st.Ino, size: st.Size, mtime: st.Mtim.Nano(), ctime: st.Ctim.Nano()}
}

type cachedRecord[T any] struct {
	id     fileIdentity
	stable bool // read more than racyWindow after the file's ctime
	val    T
}

// NewRecordCache returns an empty cache of T records. clone must return a
// copy of a record that shares nothing a caller could modify; nil means T
// holds no pointer, slice, map, channel, function or interface (time.Time
// aside), which is checked here: such a T with a nil clone panics.
func NewRecordCache[T any](clone func(T) T) *RecordCache[T] {
	if clone == nil {
		if t := reflect.TypeFor[T](); !plainValue(t) {
			panic(fmt.Sprintf("shim.NewRecordCache[%v]: the type shares memory between copies; give a clone function", t))
		}
		clone = func(v T) T { return v }
	}
	return &RecordCache[T]{clone: clone, racy: racyWindow, entries: map[string]*cachedRecord[T]{}}
}

var timeType = reflect.TypeFor[time.Time]()

// plainValue says whether an assignment of t copies all of it. time.Time's
// *Location is shared but never modified.
func plainValue(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128, reflect.String:
		return true
	case reflect.Array:
		return plainValue(t.Elem())
	case reflect.Struct:
		if t == timeType {
			return true
		}
		for i := range t.NumField() {
			if !plainValue(t.Field(i).Type) {
				return false
			}
		}
		return true
	}
	return false
}

// Read returns the record in path, as ReadJSON would decode it: a missing
// file is an error satisfying errors.Is(err, fs.ErrNotExist), a file that
// does not parse one wrapping ErrDamaged. Errors name the file.
func (c *RecordCache[T]) Read(path string) (T, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		c.dropIfMissing(path, err)
		var zero T
		return zero, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	c.mu.Lock()
	e := c.entries[path]
	c.mu.Unlock()
	if e != nil && e.stable && e.id == identityOf(&st) {
		return c.clone(e.val), nil
	}
	return c.load(path)
}

// load reads and decodes path, and caches it under the identity of the
// file it read (fstat of the open file, not the earlier stat of the path:
// a rename in between must not pair new content with an old identity).
func (c *RecordCache[T]) load(path string) (T, error) {
	var zero T
	readAt := time.Now()
	f, err := os.Open(path)
	if err != nil {
		c.dropIfMissing(path, err)
		return zero, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return zero, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return zero, fmt.Errorf("stat %s: no stat_t", path)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return zero, err // a *PathError naming the file
	}
	var v T
	if err := decodeJSON(path, b, &v); err != nil {
		c.forget(path)
		return zero, err
	}
	id := identityOf(st)
	e := &cachedRecord[T]{id: id, stable: readAt.UnixNano()-id.ctime > c.racy.Nanoseconds(), val: v}
	c.mu.Lock()
	c.decodes++
	c.entries[path] = e
	var sweep []string
	if len(c.entries) > 2*c.swept+sweepSlack {
		sweep = make([]string, 0, len(c.entries))
		for p := range c.entries {
			sweep = append(sweep, p)
		}
		c.swept = len(c.entries) // raised again below for what is dropped
	}
	c.mu.Unlock()
	if sweep != nil {
		c.sweep(sweep)
	}
	return c.clone(v), nil
}

// sweep drops the entries of paths that no longer exist.
func (c *RecordCache[T]) sweep(paths []string) {
	for _, p := range paths {
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil {
			c.dropIfMissing(p, err)
		}
	}
	c.mu.Lock()
	c.swept = len(c.entries)
	c.mu.Unlock()
}

func (c *RecordCache[T]) dropIfMissing(path string, err error) {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		c.forget(path)
	}
}

func (c *RecordCache[T]) forget(path string) {
	c.mu.Lock()
	delete(c.entries, path)
	c.mu.Unlock()
}
