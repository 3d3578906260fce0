// Package crilog writes container output in the CRI log format that the
// kubelet and `kubectl logs` read:
//
//	2026-11-28T13:40:00.123456789Z stdout F a complete line
//	2026-11-28T13:40:00.123456789Z stderr P the first part of a long line
//
// Lines are written as they arrive (no buffering beyond one line) and the
// file is rotated by size. Writing never blocks the container: each stream
// is read by its own goroutine into a bounded queue, and when the queue is
// full or the disk refuses a write the line is dropped and counted.
package crilog

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults as the kubelet's containerLogMaxSize / containerLogMaxFiles.
const (
	DefaultMaxSize  = 10 << 20
	DefaultMaxFiles = 5
	// maxLine is the longest piece written as one record; longer lines are
	// split into P(artial) records, as containerd does (16 KiB).
	maxLine    = 16 << 10
	queueLines = 4096
)

type record struct {
	t      time.Time
	stream string
	full   bool
	line   []byte
}

// Writer is one container instance's log file.
type Writer struct {
	path     string
	maxSize  int64
	maxFiles int

	queue   chan record
	dropped atomic.Uint64
	readers sync.WaitGroup
	done    chan struct{}

	f    *os.File
	size int64
	now  func() time.Time
}

// Open creates (or appends to) path and starts the writer goroutine.
func Open(path string, maxSize int64, maxFiles int) (*Writer, error) {
	if maxSize <= 0 {
		maxSize = DefaultMaxSize
	}
	if maxFiles < 1 {
		maxFiles = DefaultMaxFiles
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("log dir for %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open log %s: %w", path, err)
	}
	st, _ := f.Stat()
	w := &Writer{path: path, maxSize: maxSize, maxFiles: maxFiles, queue: make(chan record, queueLines),
		done: make(chan struct{}), f: f, now: time.Now}
	if st != nil {
		w.size = st.Size()
	}
	go w.writeLoop()
	return w, nil
}

// Follow reads r (a container's stdout or stderr pipe) until EOF.
func (w *Writer) Follow(stream string, r io.Reader) {
	w.readers.Add(1)
	go func() {
		defer w.readers.Done()
		br := bufio.NewReaderSize(r, maxLine)
		for {
			line, err := br.ReadSlice('\n')
			if len(line) > 0 {
				full := line[len(line)-1] == '\n'
				if full {
					line = line[:len(line)-1]
				}
				w.enqueue(record{t: w.now(), stream: stream, full: full || err == io.EOF, line: append([]byte(nil), line...)})
			}
			if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
				return
			}
		}
	}()
}

func (w *Writer) enqueue(r record) {
	select {
	case w.queue <- r:
	default:
		w.dropped.Add(1) // never block the container on a slow disk
	}
}

// Dropped is how many lines were lost to a full queue or a failing disk.
func (w *Writer) Dropped() uint64 { return w.dropped.Load() }

// Close waits (at most timeout) for the streams to reach EOF and the queue to
// drain, then closes the file.
func (w *Writer) Close(timeout time.Duration) {
	readersDone := make(chan struct{})
	go func() { w.readers.Wait(); close(readersDone) }()
	select {
	case <-readersDone:
		close(w.queue)
		select {
		case <-w.done:
		case <-time.After(timeout):
		}
	case <-time.After(timeout):
		// A grandchild still holds the pipe: stop here, the writer keeps
		// draining until the pipe closes but we do not wait for it.
	}
}

func (w *Writer) writeLoop() {
	defer close(w.done)
	defer w.f.Close()
	var buf []byte
	for r := range w.queue {
		buf = buf[:0]
		buf = r.t.UTC().AppendFormat(buf, time.RFC3339Nano)
		buf = append(buf, ' ')
		buf = append(buf, r.stream...)
		if r.full {
			buf = append(buf, " F "...)
		} else {
			buf = append(buf, " P "...)
		}
		buf = append(buf, r.line...)
		buf = append(buf, '\n')
		if w.size > 0 && w.size+int64(len(buf)) > w.maxSize {
			w.rotate()
		}
		n, err := w.f.Write(buf)
		w.size += int64(n)
		if err != nil {
			w.dropped.Add(1)
		}
	}
}

// rotate renames the current file to <path>.<timestamp> (kubelet's naming)
// and keeps at most maxFiles files in all.
func (w *Writer) rotate() {
	rotated := w.path + "." + w.now().UTC().Format("20060102-150405.000000000")
	if err := os.Rename(w.path, rotated); err != nil {
		return // keep writing to the current file rather than lose lines
	}
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		os.Rename(rotated, w.path)
		return
	}
	w.f.Close()
	w.f, w.size = f, 0
	old, _ := filepath.Glob(w.path + ".*")
	var keep []string
	for _, o := range old {
		if !strings.Contains(filepath.Base(o), ".tmp") {
			keep = append(keep, o)
		}
	}
	sort.Strings(keep)
	for len(keep) > w.maxFiles-1 {
		os.Remove(keep[0])
		keep = keep[1:]
	}
}
