// Package podlogs reads container logs in the kubelet's CRI layout, the
// files `minikubelet logs` prints without needing the daemon:
//
//	<log-dir>/<namespace>_<pod name>_<pod uid>/<container>/<restartCount>.log
//
// Each line is `<RFC3339Nano time> <stdout|stderr> <tags> <text>` where the
// first tag is F (a full line; the text ends it) or P (a partial line: the
// text continues in the next P/F line of the same stream).
//
// Rotation (how the runtime's writer must name files, as the kubelet's
// container log manager does): the live file `0.log` is renamed to
// `0.log.<YYYYMMDD-hhmmss>` (UTC, RotatedName) and a new `0.log` is created;
// older rotated files may be gzip-compressed (`.gz`). The reader also accepts
// logrotate-style `0.log.1`, `0.log.2` … (a higher number is older). Rotated
// files of one container instance are read oldest first, then the live file.
package podlogs

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// RotationTimeFormat is the suffix format of rotated files (the kubelet's).
const RotationTimeFormat = "20060102-150405"

// PodDirName is the pod's log folder name: <namespace>_<name>_<uid>.
func PodDirName(namespace, name string, uid types.UID) string {
	return namespace + "_" + name + "_" + string(uid)
}

// LogFileName is the live log file of one container instance.
func LogFileName(restartCount int) string { return strconv.Itoa(restartCount) + ".log" }

// RotatedName is the name a live log file gets when rotated at t.
func RotatedName(path string, t time.Time) string {
	return path + "." + t.UTC().Format(RotationTimeFormat)
}

// PodLogDir is one pod log folder.
type PodLogDir struct {
	Path      string
	Namespace string
	Name      string
	UID       types.UID
	// Newest is the latest modification time of the folder and its files,
	// to pick the live pod among replaced ones.
	Newest time.Time
}

// FindPodDirs lists the pod folders of namespace whose pod name satisfies match.
func FindPodDirs(logDir, namespace string, match func(podName string) bool) ([]PodLogDir, error) {
	ents, err := os.ReadDir(logDir)
	if err != nil {
		return nil, fmt.Errorf("log dir %s: %w", logDir, err)
	}
	var out []PodLogDir
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		parts := strings.Split(e.Name(), "_")
		if len(parts) != 3 || parts[0] != namespace || !match(parts[1]) {
			continue
		}
		d := PodLogDir{Path: filepath.Join(logDir, e.Name()), Namespace: parts[0], Name: parts[1], UID: types.UID(parts[2])}
		d.Newest = newest(d.Path)
		out = append(out, d)
	}
	return out, nil
}

func newest(dir string) time.Time {
	var t time.Time
	see := func(p string) {
		if fi, err := os.Stat(p); err == nil && fi.ModTime().After(t) {
			t = fi.ModTime()
		}
	}
	see(dir)
	cs, _ := os.ReadDir(dir)
	for _, c := range cs {
		see(filepath.Join(dir, c.Name()))
		fs, _ := os.ReadDir(filepath.Join(dir, c.Name()))
		for _, f := range fs {
			see(filepath.Join(dir, c.Name(), f.Name()))
		}
	}
	return t
}

// PickPodDir chooses among the folders of one pod name: the one with uid
// when given and present, else the most recently written.
func PickPodDir(dirs []PodLogDir, uid types.UID) (PodLogDir, bool) {
	if len(dirs) == 0 {
		return PodLogDir{}, false
	}
	if uid != "" {
		for _, d := range dirs {
			if d.UID == uid {
				return d, true
			}
		}
	}
	best := dirs[0]
	for _, d := range dirs[1:] {
		if d.Newest.After(best.Newest) {
			best = d
		}
	}
	return best, true
}

// Containers lists the container folders of a pod folder, sorted.
func Containers(podDir string) ([]string, error) {
	ents, err := os.ReadDir(podDir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// Instances lists the restart counts that have a log (live or rotated) in a
// container folder, ascending.
func Instances(containerDir string) ([]int, error) {
	ents, err := os.ReadDir(containerDir)
	if err != nil {
		return nil, err
	}
	seen := map[int]bool{}
	for _, e := range ents {
		head, _, _ := strings.Cut(e.Name(), ".log")
		if !strings.Contains(e.Name(), ".log") {
			continue
		}
		if n, err := strconv.Atoi(head); err == nil && n >= 0 {
			seen[n] = true
		}
	}
	out := make([]int, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Ints(out)
	return out, nil
}

// Files returns the log files of one container instance, oldest first; the
// live file (which may not exist) is last.
func Files(containerDir string, restartCount int) ([]string, error) {
	ents, err := os.ReadDir(containerDir)
	if err != nil {
		return nil, err
	}
	live := LogFileName(restartCount)
	type rotated struct {
		name string
		num  int       // logrotate style, higher is older; -1 if timestamped
		at   time.Time // timestamped style
	}
	var rs []rotated
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), live+".")
		if !ok || e.IsDir() {
			continue
		}
		base := strings.TrimSuffix(rest, ".gz")
		if n, err := strconv.Atoi(base); err == nil {
			rs = append(rs, rotated{name: e.Name(), num: n})
		} else if t, err := time.Parse(RotationTimeFormat, base); err == nil {
			rs = append(rs, rotated{name: e.Name(), num: -1, at: t})
		}
		// Anything else (a writer's temp file) is not a log.
	}
	sort.SliceStable(rs, func(i, j int) bool {
		a, b := rs[i], rs[j]
		switch {
		case a.num >= 0 && b.num >= 0:
			return a.num > b.num
		case a.num >= 0: // numbered files predate timestamped ones
			return true
		case b.num >= 0:
			return false
		}
		return a.at.Before(b.at)
	})
	out := make([]string, 0, len(rs)+1)
	for _, r := range rs {
		out = append(out, filepath.Join(containerDir, r.name))
	}
	return append(out, filepath.Join(containerDir, live)), nil
}

// Line is one parsed CRI log line.
type Line struct {
	Time    time.Time
	Stream  string // stdout or stderr
	Partial bool
	Text    []byte // without the trailing newline
}

// ParseLine parses one CRI log line (without its newline).
func ParseLine(b []byte) (Line, error) {
	var l Line
	ts, rest, ok := bytes.Cut(b, []byte{' '})
	if !ok {
		return l, fmt.Errorf("CRI log line %.60q: no stream field", b)
	}
	t, err := time.Parse(time.RFC3339Nano, string(ts))
	if err != nil {
		return l, fmt.Errorf("CRI log line %.60q: time: %w", b, err)
	}
	stream, rest, ok := bytes.Cut(rest, []byte{' '})
	if !ok || (string(stream) != "stdout" && string(stream) != "stderr") {
		return l, fmt.Errorf("CRI log line %.60q: stream is not stdout or stderr", b)
	}
	tags, text, ok := bytes.Cut(rest, []byte{' '})
	if !ok {
		// "<ts> stdout F" with an empty text has no trailing space in some writers.
		tags, text = rest, nil
	}
	first, _, _ := bytes.Cut(tags, []byte{':'})
	switch string(first) {
	case "F":
	case "P":
		l.Partial = true
	default:
		return l, fmt.Errorf("CRI log line %.60q: tag %q is not F or P", b, tags)
	}
	l.Time, l.Stream, l.Text = t, string(stream), text
	return l, nil
}

// Options are the `logs` flags that shape output.
type Options struct {
	Follow     bool
	Tail       int // lines from the end; < 0 for all
	Timestamps bool
	// PollInterval is how often a follow looks for new data and rotation.
	PollInterval time.Duration
	// Stop, when set, ends a follow once it returns true after the reader
	// has drained everything (e.g. "the container is no longer running").
	// Without it a follow ends when a newer instance's log appears.
	Stop func() bool
	// Stderr, when set, receives the stderr lines and w only the stdout
	// ones (kubectl attach keeps the two streams apart).
	Stderr io.Writer
}

// joiner assembles logical lines from CRI lines, per stream, and writes them.
type joiner struct {
	w          io.Writer
	stderr     io.Writer // nil: stderr lines go to w too
	timestamps bool
	partial    map[string]*pending
	// emit overrides writing (tail collects instead).
	emit func(out []byte)
}

type pending struct {
	t    time.Time
	text []byte
}

func (j *joiner) add(l Line) error {
	p := j.partial[l.Stream]
	if p == nil {
		p = &pending{t: l.Time}
		j.partial[l.Stream] = p
	}
	p.text = append(p.text, l.Text...)
	if l.Partial {
		return nil
	}
	delete(j.partial, l.Stream)
	var out []byte
	if j.timestamps {
		out = append(out, p.t.Format(time.RFC3339Nano)...)
		out = append(out, ' ')
	}
	out = append(out, p.text...)
	out = append(out, '\n')
	if j.emit != nil {
		j.emit(out)
		return nil
	}
	w := j.w
	if l.Stream == "stderr" && j.stderr != nil {
		w = j.stderr
	}
	_, err := w.Write(out)
	return err
}

// ErrNoLog means the container instance has no log file.
var ErrNoLog = errors.New("no log file")

// Read writes the logical log lines of one container instance to w: all
// rotated files and the live file, joined partial lines, optionally the
// last Tail lines only, and with Follow keeps writing what is appended
// (across rotations) until ctx ends or the instance is over.
func Read(ctx context.Context, containerDir string, restartCount int, opts Options, w io.Writer) error {
	files, err := Files(containerDir, restartCount)
	if err != nil {
		return err
	}
	live := files[len(files)-1]
	j := &joiner{w: w, stderr: opts.Stderr, timestamps: opts.Timestamps, partial: map[string]*pending{}}
	var ring [][]byte
	if opts.Tail >= 0 {
		// Collect first, print the last Tail lines, then stream the rest.
		j.emit = func(out []byte) {
			if opts.Tail == 0 {
				return
			}
			if len(ring) == opts.Tail {
				ring = append(ring[:0], ring[1:]...)
			}
			ring = append(ring, append([]byte(nil), out...))
		}
	}
	found := false
	for _, f := range files[:len(files)-1] {
		found = true
		if err := readWhole(f, j); err != nil {
			return err
		}
	}
	lf, err := os.Open(live)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err != nil && !found && !opts.Follow {
		return fmt.Errorf("%w for restart %d in %s", ErrNoLog, restartCount, containerDir)
	}
	t := &tailer{path: live, f: lf, j: j}
	defer func() {
		if t.f != nil {
			t.f.Close()
		}
	}()
	if lf != nil {
		if err := t.drain(); err != nil {
			return err
		}
	}
	if j.emit != nil {
		for _, out := range ring {
			if _, err := w.Write(out); err != nil {
				return err
			}
		}
		j.emit = nil
	}
	if !opts.Follow {
		return nil
	}
	poll := opts.PollInterval
	if poll <= 0 {
		poll = 200 * time.Millisecond
	}
	next := filepath.Join(containerDir, LogFileName(restartCount+1))
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		if err := t.follow(); err != nil {
			return err
		}
		if opts.Stop != nil {
			if opts.Stop() {
				return t.drainFinal()
			}
		} else if _, err := os.Stat(next); err == nil {
			// The instance ended and a new one writes its own file.
			return t.drainFinal()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func readWhole(path string, j *joiner) error {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) { // rotated away meanwhile
			return nil
		}
		return err
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		gz, err := gzip.NewReader(f)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		defer gz.Close()
		r = gz
	}
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		b, err := br.ReadBytes('\n')
		if len(b) > 0 && b[len(b)-1] == '\n' {
			if perr := addRaw(j, b[:len(b)-1], path); perr != nil {
				return perr
			}
		}
		if err == io.EOF {
			return nil // an unterminated last line is still being written
		}
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
}

// addRaw parses and adds one line; a malformed line is skipped (a log must
// stay readable after a torn write) unless writing fails.
func addRaw(j *joiner, raw []byte, path string) error {
	l, err := ParseLine(raw)
	if err != nil {
		return nil
	}
	return j.add(l)
}

// tailer follows the live file of one instance.
type tailer struct {
	path string
	f    *os.File
	off  int64
	buf  []byte // bytes after the last newline
	j    *joiner
}

// drain reads everything complete from the current file.
func (t *tailer) drain() error {
	chunk := make([]byte, 64<<10)
	for {
		n, err := t.f.ReadAt(chunk, t.off)
		if n > 0 {
			t.off += int64(n)
			t.buf = append(t.buf, chunk[:n]...)
			for {
				i := bytes.IndexByte(t.buf, '\n')
				if i < 0 {
					break
				}
				if err := addRaw(t.j, t.buf[:i], t.path); err != nil {
					return err
				}
				t.buf = t.buf[i+1:]
			}
		}
		if err == io.EOF || (err == nil && n == 0) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", t.path, err)
		}
	}
}

// follow reads new data, then switches to a new live file after rotation
// (another inode at the path) or after truncation (copytruncate).
func (t *tailer) follow() error {
	if t.f == nil {
		f, err := os.Open(t.path)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		t.f = f
	}
	if err := t.drain(); err != nil {
		return err
	}
	cur, err := t.f.Stat()
	if err != nil {
		return err
	}
	if cur.Size() < t.off { // truncated in place
		t.off, t.buf = 0, nil
		return t.drain()
	}
	fi, err := os.Stat(t.path)
	if err != nil || os.SameFile(fi, cur) {
		return nil // not rotated (or the new file is not there yet)
	}
	// Rotated: finish the old file, then read the new one from its start.
	if err := t.drain(); err != nil {
		return err
	}
	nf, err := os.Open(t.path)
	if err != nil {
		return nil
	}
	t.f.Close()
	t.f, t.off, t.buf = nf, 0, nil
	return t.drain()
}

func (t *tailer) drainFinal() error {
	if t.f == nil {
		return nil
	}
	return t.drain()
}
