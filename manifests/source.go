package manifests

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Config configures a Source. Zero durations take the defaults.
type Config struct {
	Dir      string // the manifest folder (made absolute)
	NodeName string

	// Resync is the period of the full re-list (the kubelet's
	// file-check-frequency, --resync); it catches anything a watch missed.
	Resync time.Duration // default 20s
	// Settle is how long after an event a file is read, so bursts of events
	// (create, write, chmod) cost one read. Short: a file renamed into the
	// folder is complete and should start at once.
	Settle time.Duration // default 2ms
	// RemoveQuiet is how long a file must stay missing before its pods are
	// removed: an editor's save renames the file away and writes a new one,
	// which must not restart the pod.
	RemoveQuiet time.Duration // default 1s
	// BusyRecheck is how often a file still open by a writer is looked at
	// again; MaxBusy is when it is read anyway (a writer that never closes).
	BusyRecheck time.Duration // default 10ms
	MaxBusy     time.Duration // default 30s
	// DirPoll is how often a missing folder (and parent) is looked for.
	DirPoll time.Duration // default 1s

	// Now is the clock for the config.seen annotation (default time.Now).
	Now func() time.Time
	// Logger gets the source's own diagnostics (default: discard).
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.Resync, 20*time.Second)
	def(&c.Settle, 2*time.Millisecond)
	def(&c.RemoveQuiet, time.Second)
	def(&c.BusyRecheck, 10*time.Millisecond)
	def(&c.MaxBusy, 30*time.Second)
	def(&c.DirPoll, time.Second)
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(discard{}, nil))
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// DesiredPod is one static pod the folder asks for.
type DesiredPod struct {
	Pod  *v1.Pod // defaulted, validated static pod; shared: treat as read-only
	File string  // absolute path of the manifest it came from
	// Stale is true when the file currently fails to parse or conflicts
	// with another file: Pod is the last good spec, kept so the running pod
	// is not stopped by a bad edit (the error is in Snapshot.Errors).
	Stale bool
}

// Snapshot is the complete desired state at one moment. It is level
// information: a consumer that misses intermediate snapshots loses nothing.
type Snapshot struct {
	Pods   []DesiredPod // sorted by namespace/name
	Errors []*FileError // sorted by path; the folder itself is reported under Dir
	// Synced is false until the first full listing of the folder has been
	// read, so a consumer does not delete pods of files not read yet.
	Synced     bool
	Generation uint64 // increases with every published change
}

// Pod returns the desired pod with this UID, if any.
func (s Snapshot) Pod(uid types.UID) (DesiredPod, bool) {
	for _, p := range s.Pods {
		if p.Pod.UID == uid {
			return p, true
		}
	}
	return DesiredPod{}, false
}

// Source watches a manifest folder and publishes Snapshots.
//
// Use: go src.Run(ctx); then for range src.Changed() { snap := src.Snapshot(); ... }.
// Changed has room for one notification: several changes while the
// consumer is busy collapse into one, and Snapshot always returns the latest.
type Source struct {
	cfg     Config
	changed chan struct{}

	mu   sync.Mutex
	snap Snapshot

	// Owned by the Run goroutine.
	files      map[string]*fileState // by absolute path
	claims     map[string]string     // namespace/name and uid:<uid> -> file holding it
	seen       map[types.UID]time.Time
	dirErr     *FileError
	dirWatched bool
	parentSeen bool
	synced     bool
	dirty      bool
	generation uint64
	skipLogged map[string]bool
	onPublish  func(Snapshot) // tests: sees every snapshot, in order
}

type fileState struct {
	path         string
	seen         time.Time // first event since the last read (debug timing only)
	due          time.Time // next examination; zero when nothing pending
	missingSince time.Time
	busySince    time.Time
	stat         statSig  // of the last read, to skip unchanged files on resync
	unstable     statSig  // fallback without leases: last examined signature
	sum          [32]byte // content of the last read
	read         bool     // sum is valid
	good         []*v1.Pod
	candidate    []*v1.Pod // parsed and valid, waiting for a name it conflicts on
	err          *FileError
}

type statSig struct {
	size  int64
	mtime int64
	ino   uint64
	dev   uint64
	ctime int64
}

func sigOf(fi fs.FileInfo) statSig {
	s := statSig{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.ino, s.dev = st.Ino, uint64(st.Dev)
		s.ctime = st.Ctim.Sec*1e9 + st.Ctim.Nsec
	}
	return s
}

// NewSource prepares a Source for cfg.Dir; Run starts it.
func NewSource(cfg Config) (*Source, error) {
	if cfg.Dir == "" {
		return nil, errors.New("manifests: Config.Dir is empty")
	}
	if cfg.NodeName == "" {
		return nil, errors.New("manifests: Config.NodeName is empty")
	}
	abs, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("manifests: %s: %w", cfg.Dir, err)
	}
	cfg.Dir = filepath.Clean(abs)
	cfg.setDefaults()
	return &Source{
		cfg:     cfg,
		changed: make(chan struct{}, 1),
		files:   map[string]*fileState{},
		claims:  map[string]string{},
		seen:    map[types.UID]time.Time{},

		skipLogged: map[string]bool{},
	}, nil
}

// Dir is the absolute manifest folder.
func (s *Source) Dir() string { return s.cfg.Dir }

// Changed receives a value after every published change.
func (s *Source) Changed() <-chan struct{} { return s.changed }

// Snapshot returns the latest published state.
func (s *Source) Snapshot() Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.snap
	out.Pods = append([]DesiredPod(nil), s.snap.Pods...)
	out.Errors = append([]*FileError(nil), s.snap.Errors...)
	return out
}

// Run watches until ctx is done. It returns nil on cancellation and an
// error only when no watch can be set up at all (then it polls nothing).
func (s *Source) Run(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("manifests: watching %s: %w", s.cfg.Dir, err)
	}
	defer w.Close()

	log := s.cfg.Logger
	s.ensureWatch(w)
	s.relist()
	s.process() // first read now: the initial snapshot is the whole folder
	s.synced = true
	s.dirty = true
	s.publish()

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	nextResync := time.Now().Add(s.cfg.Resync)
	for {
		now := time.Now()
		next := nextResync
		if !s.dirWatched {
			if poll := now.Add(s.cfg.DirPoll); poll.Before(next) {
				next = poll
			}
		}
		for _, f := range s.files {
			if !f.due.IsZero() && f.due.Before(next) {
				next = f.due
			}
		}
		wait := time.Until(next)
		if wait < 0 {
			wait = 0
		}
		timer.Reset(wait)

		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("manifests: watcher closed")
			}
			s.handleEvent(w, ev)
			// Drain what else is queued so a burst is handled in one pass.
			for more := true; more; {
				select {
				case ev, ok = <-w.Events:
					if !ok {
						return errors.New("manifests: watcher closed")
					}
					s.handleEvent(w, ev)
				default:
					more = false
				}
			}
		case err, ok := <-w.Errors:
			if !ok {
				return errors.New("manifests: watcher closed")
			}
			// An overflowed queue loses events: re-list everything.
			log.Warn("manifest folder watch error; re-listing", "dir", s.cfg.Dir, "err", err)
			s.relist()
		case <-timer.C:
			if !time.Now().Before(nextResync) {
				nextResync = time.Now().Add(s.cfg.Resync)
				s.ensureWatch(w)
				s.relist()
			} else if !s.dirWatched {
				s.ensureWatch(w)
				if s.dirWatched {
					s.relist()
				}
			}
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		s.process()
		s.publish()
	}
}

// ensureWatch watches the folder, and its parent to see it appear or go.
func (s *Source) ensureWatch(w *fsnotify.Watcher) {
	parent := filepath.Dir(s.cfg.Dir)
	if !s.parentSeen {
		if err := w.Add(parent); err == nil {
			s.parentSeen = true
		}
	}
	if s.dirWatched {
		return
	}
	fi, err := os.Stat(s.cfg.Dir)
	switch {
	case err != nil:
		s.setDirErr(fmt.Sprintf("manifest folder does not exist (yet): %v; waiting for it", errors.Unwrap(err)))
		return
	case !fi.IsDir():
		s.setDirErr("manifest folder path is not a directory")
		return
	}
	if err := w.Add(s.cfg.Dir); err != nil {
		s.setDirErr(fmt.Sprintf("cannot watch the manifest folder: %v", err))
		return
	}
	s.dirWatched = true
	s.setDirErr("")
	s.cfg.Logger.Debug("watching manifest folder", "dir", s.cfg.Dir)
}

func (s *Source) setDirErr(msg string) {
	if msg == "" {
		if s.dirErr != nil {
			s.dirErr, s.dirty = nil, true
		}
		return
	}
	if s.dirErr != nil && s.dirErr.Errs[0].Detail == msg {
		return
	}
	s.dirErr = fileErr(s.cfg.Dir, fileProblem("%s", msg))
	s.dirty = true
}

func (s *Source) handleEvent(w *fsnotify.Watcher, ev fsnotify.Event) {
	name := filepath.Clean(ev.Name)
	if name == s.cfg.Dir {
		// The folder itself was created, removed or renamed (seen through
		// the parent's watch or its own).
		if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
			if s.dirWatched {
				_ = w.Remove(s.cfg.Dir)
			}
			s.dirWatched = false
		}
		s.ensureWatch(w)
		s.relist()
		return
	}
	if filepath.Dir(name) != s.cfg.Dir {
		return // a sibling of the folder in the parent
	}
	base := filepath.Base(name)
	if strings.HasPrefix(base, "..") {
		// Kubernetes' AtomicWriter layout (a ConfigMap mounted as the
		// folder): visible files are symlinks through ..data, and an
		// update swaps the ..data symlink. The visible names see no event,
		// so re-list: their targets' signatures changed.
		s.relist()
		return
	}
	if why := SkipReason(base); why != "" {
		if !s.skipLogged[base] && len(s.skipLogged) < 1024 {
			s.skipLogged[base] = true // once per name: editors make many events
			s.cfg.Logger.Debug("skipping file in manifest folder", "file", name, "reason", why)
		}
		return
	}
	if f := s.files[name]; f == nil || f.seen.IsZero() {
		s.schedule(name, time.Now().Add(s.cfg.Settle))
		s.files[name].seen = time.Now()
		return
	}
	s.schedule(name, time.Now().Add(s.cfg.Settle))
}

// schedule makes path due no later than at.
func (s *Source) schedule(path string, at time.Time) {
	f := s.files[path]
	if f == nil {
		f = &fileState{path: path}
		s.files[path] = f
	}
	if f.due.IsZero() || at.Before(f.due) {
		f.due = at
	}
}

// relist compares the folder with what is known and schedules every
// difference: new files, changed files, files gone.
func (s *Source) relist() {
	now := time.Now()
	entries, err := os.ReadDir(s.cfg.Dir)
	present := map[string]bool{}
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			s.setDirErr("manifest folder does not exist (yet); waiting for it")
		} else {
			s.setDirErr(fmt.Sprintf("cannot list the manifest folder: %v", err))
		}
	} else if s.dirWatched {
		s.setDirErr("")
	}
	for _, e := range entries {
		if SkipReason(e.Name()) != "" {
			continue
		}
		path := filepath.Join(s.cfg.Dir, e.Name())
		present[path] = true
		f := s.files[path]
		if f == nil {
			s.schedule(path, now)
			continue
		}
		fi, err := os.Stat(path)
		if err != nil || !f.read || sigOf(fi) != f.stat || f.err != nil {
			s.schedule(path, now)
		}
	}
	for path := range s.files {
		if !present[path] {
			s.schedule(path, now)
		}
	}
}

// process examines every due file in path order (lexical order decides
// which of two files claiming one pod name came first at start-up).
func (s *Source) process() {
	now := time.Now()
	var due []string
	for path, f := range s.files {
		if !f.due.IsZero() && !now.Before(f.due) {
			due = append(due, path)
		}
	}
	sort.Strings(due)
	for _, path := range due {
		f := s.files[path]
		f.due = time.Time{}
		s.examine(f, now)
	}
	s.resolve()
}

func (s *Source) examine(f *fileState, now time.Time) {
	log := s.cfg.Logger
	fi, err := os.Stat(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		// A writer's hold on a file that is gone says nothing about the
		// next file of that name.
		f.busySince, f.unstable = time.Time{}, statSig{}
		if f.missingSince.IsZero() {
			f.missingSince = now
		}
		if gone := now.Sub(f.missingSince); gone < s.cfg.RemoveQuiet {
			f.due = f.missingSince.Add(s.cfg.RemoveQuiet)
			return
		}
		s.forget(f)
		return
	}
	f.missingSince = time.Time{}
	if err != nil {
		s.failRead(f, err)
		return
	}
	if !fi.Mode().IsRegular() {
		s.failRead(f, fmt.Errorf("not a regular file (%s)", fi.Mode().Type()))
		return
	}
	if fi.Size() > MaxFileSize {
		s.failRead(f, errTooBig)
		f.stat = sigOf(fi)
		return
	}

	data, sig, busy, err := readWhenClosed(f.path)
	switch {
	case err != nil:
		s.failRead(f, err)
		return
	case busy == busyOpen:
		// A writer still has it open (kubeadm's WriteFile, cp, an editor
		// writing in place): a half-written file must not become a pod.
		if f.busySince.IsZero() {
			f.busySince = now
		}
		if now.Sub(f.busySince) < s.cfg.MaxBusy {
			f.due = now.Add(s.cfg.BusyRecheck)
			return
		}
		log.Warn("manifest has been open for writing too long; reading it anyway", "file", f.path, "since", f.busySince)
	case busy == busyUnknown:
		// No lease on this filesystem or file: require the file to look the
		// same on two looks a settle period apart.
		if sig != f.unstable {
			f.unstable = sig
			f.due = now.Add(max(s.cfg.Settle, 50*time.Millisecond))
			return
		}
	}
	f.busySince = time.Time{}
	f.stat = sig

	sum := sha256.Sum256(data)
	if f.read && sum == f.sum {
		return // same bytes as last time (touch, chmod, rewrite of equal content)
	}
	f.read, f.sum = true, sum
	pods, perr := Parse(f.path, data, s.cfg.NodeName)
	if perr != nil {
		var fe *FileError
		if !errors.As(perr, &fe) {
			fe = fileErr(f.path, fileProblem("%v", perr))
		}
		f.candidate = nil
		s.setFileErr(f, fe)
		return
	}
	f.candidate = pods
	s.dirty = true
	if !f.seen.IsZero() {
		log.Debug("manifest read", "file", f.path, "sinceEvent", time.Since(f.seen))
		f.seen = time.Time{}
	}
}

// failRead reports a file that could not be read. The last good spec stays
// desired; the next look reads and parses it afresh.
func (s *Source) failRead(f *fileState, err error) {
	f.read, f.candidate = false, nil
	s.setFileErr(f, fileErr(f.path, fileProblem("%v", err)))
}

func (s *Source) setFileErr(f *fileState, fe *FileError) {
	if f.err != nil && fe != nil && f.err.Error() == fe.Error() {
		return
	}
	// Logged here, once per change of the file's problems (not per resync),
	// so the daemon's stderr says what `describe` would.
	if fe != nil {
		for _, e := range fe.Errs {
			reason := strings.TrimPrefix(formatFieldError(e), e.Field+": ")
			attrs := []any{"file", fe.Path}
			if e.Field != "" {
				attrs = append(attrs, "field", e.Field)
			}
			s.cfg.Logger.Warn("invalid manifest", append(attrs, "reason", reason)...)
		}
	} else if f.err != nil {
		s.cfg.Logger.Info("manifest valid again", "file", f.path)
	}
	f.err = fe
	s.dirty = true
}

// forget drops a file that is gone: its pods are no longer desired.
func (s *Source) forget(f *fileState) {
	for _, p := range f.good {
		delete(s.claims, podKey(p))
		delete(s.claims, uidKey(p))
	}
	delete(s.files, f.path)
	s.dirty = true
}

func podKey(p *v1.Pod) string { return p.Namespace + "/" + p.Name }

// uidKey claims a pod's UID: two pods with one UID would share a pod
// directory and a slice. (A namespace never holds ':', so it cannot clash
// with a podKey.)
func uidKey(p *v1.Pod) string { return "uid:" + string(p.UID) }

// resolve accepts valid candidates whose pod names are free. A name is held
// by the file that got it first; a second file claiming it is rejected,
// both named, and keeps its own last good spec. Retried until stable, so a
// file waiting for a name gets it when the holder lets go.
func (s *Source) resolve() {
	for progress := true; progress; {
		progress = false
		var paths []string
		for path, f := range s.files {
			if f.candidate != nil {
				paths = append(paths, path)
			}
		}
		sort.Strings(paths)
		for _, path := range paths {
			f := s.files[path]
			var conflicts field.ErrorList
			for _, p := range f.candidate {
				if holder, taken := s.claims[podKey(p)]; taken && holder != path {
					fe := field.Duplicate(field.NewPath("metadata", "name"), p.Name)
					fe.Detail = fmt.Sprintf("pod %s is already defined by %s; this file (%s) is ignored until one of them changes", podKey(p), holder, path)
					conflicts = append(conflicts, fe)
				}
				if holder, taken := s.claims[uidKey(p)]; taken && holder != path {
					fe := field.Duplicate(field.NewPath("metadata", "uid"), string(p.UID))
					fe.Detail = fmt.Sprintf("uid %s is already used by a pod of %s; this file (%s) is ignored until one of them changes", p.UID, holder, path)
					conflicts = append(conflicts, fe)
				}
			}
			if len(conflicts) > 0 {
				s.setFileErr(f, &FileError{Path: path, Errs: conflicts})
				continue
			}
			for _, p := range f.good {
				delete(s.claims, podKey(p))
				delete(s.claims, uidKey(p))
			}
			for _, p := range f.candidate {
				s.claims[podKey(p)] = path
				s.claims[uidKey(p)] = path
			}
			f.good, f.candidate = f.candidate, nil
			if f.err != nil {
				s.cfg.Logger.Info("manifest valid again", "file", f.path)
			}
			f.err = nil
			s.dirty, progress = true, true
		}
	}
}

// publish builds and hands out a new snapshot when anything changed.
func (s *Source) publish() {
	if !s.dirty || !s.synced {
		return
	}
	s.dirty = false
	now := s.cfg.Now()
	var pods []DesiredPod
	var errs []*FileError
	live := map[types.UID]bool{}
	for _, f := range s.files {
		for _, p := range f.good {
			first, ok := s.seen[p.UID]
			if !ok {
				first = now
				s.seen[p.UID] = first
			}
			live[p.UID] = true
			if p.Annotations[ConfigSeenAnnotation] == "" {
				p.Annotations[ConfigSeenAnnotation] = first.Format(time.RFC3339Nano)
			}
			pods = append(pods, DesiredPod{Pod: p, File: f.path, Stale: f.err != nil})
		}
		if f.err != nil {
			errs = append(errs, f.err)
		}
	}
	for uid := range s.seen {
		if !live[uid] {
			delete(s.seen, uid)
		}
	}
	if s.dirErr != nil {
		errs = append(errs, s.dirErr)
	}
	sort.Slice(pods, func(i, j int) bool { return podKey(pods[i].Pod) < podKey(pods[j].Pod) })
	sort.Slice(errs, func(i, j int) bool { return errs[i].Path < errs[j].Path })
	s.generation++
	s.mu.Lock()
	s.snap = Snapshot{Pods: pods, Errors: errs, Synced: true, Generation: s.generation}
	s.mu.Unlock()
	if s.onPublish != nil {
		s.onPublish(s.snap)
	}
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

type busyState int

const (
	busyNo      busyState = iota // no writer has the file open
	busyOpen                     // a writer has it open
	busyUnknown                  // cannot tell (no lease support)
)

// readWhenClosed reads a file only when no process has it open for writing.
// It takes a read lease (fcntl F_SETLEASE, F_RDLCK), which the kernel
// refuses with EAGAIN while any writer holds the file open, and holds it
// while reading, so a writer that opens the file meanwhile waits for the
// read to finish: what is read is a closed, complete file. Leases need the
// caller to own the file (or CAP_LEASE) and a local filesystem; otherwise
// busyUnknown tells the caller to fall back to a stability check.
func readWhenClosed(path string) ([]byte, statSig, busyState, error) {
	// O_NONBLOCK: a FIFO named *.yaml must not hang the watcher.
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, statSig{}, busyNo, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	file := os.NewFile(uintptr(fd), path)
	defer file.Close()
	fi, err := file.Stat()
	if err != nil {
		return nil, statSig{}, busyNo, err
	}
	if !fi.Mode().IsRegular() {
		return nil, sigOf(fi), busyNo, fmt.Errorf("not a regular file (%s)", fi.Mode().Type())
	}
	busy := busyNo
	leased := false
	switch _, err := unix.FcntlInt(uintptr(fd), unix.F_SETLEASE, unix.F_RDLCK); {
	case err == nil:
		leased = true
	case errors.Is(err, unix.EAGAIN):
		return nil, sigOf(fi), busyOpen, nil
	default:
		busy = busyUnknown
	}
	data, rerr := readAllCapped(file)
	if leased {
		_, _ = unix.FcntlInt(uintptr(fd), unix.F_SETLEASE, unix.F_UNLCK)
	}
	if rerr != nil {
		return nil, sigOf(fi), busy, rerr
	}
	// Re-stat after reading: the signature must describe what was read.
	if fi2, err := file.Stat(); err == nil {
		fi = fi2
	}
	return bytes.Clone(data), sigOf(fi), busy, nil
}
