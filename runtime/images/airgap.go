package images

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	"golang.org/x/sys/unix"
)

// AirgapResult is the outcome of one archive found in the airgap folder.
type AirgapResult struct {
	File    string
	Images  []Record
	Err     error
	Skipped bool // imported before (same path, size and mtime, or same content)
}

// airgapSeen is airgap.json: what was imported from where.
type airgapSeen struct {
	Files   map[string]airgapFile `json:"files"`   // by absolute path
	Digests map[string]bool       `json:"digests"` // content digests already imported
}

type airgapFile struct {
	Size    int64     `json:"size"`
	ModTime time.Time `json:"mtime"`
	Digest  string    `json:"digest"`
	Error   string    `json:"error,omitempty"` // a failed import is not retried until the file changes
}

// IsAirgapArchive says whether a file name is picked up from the airgap folder.
func IsAirgapArchive(name string) bool {
	if strings.HasPrefix(filepath.Base(name), ".") {
		return false // partial downloads, editor files
	}
	for _, ext := range []string{".tar", ".tar.gz", ".tgz", ".tar.zst", ".tar.zstd"} {
		if strings.HasSuffix(name, ext) {
			return true
		}
	}
	return false
}

// ImportAirgap imports every archive in dir not imported before. Each file
// is imported at most once: it is remembered by path, size and mtime, and by
// content digest (the same archive under another name is not imported again).
func (s *Store) ImportAirgap(ctx context.Context, dir string) []AirgapResult {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return []AirgapResult{{File: dir, Err: err}}
	}
	var names []string
	for _, e := range ents {
		if e.Type().IsRegular() && IsAirgapArchive(e.Name()) {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	var out []AirgapResult
	for _, n := range names {
		if ctx.Err() != nil {
			break
		}
		out = append(out, s.importAirgapFile(ctx, filepath.Join(dir, n)))
	}
	return out
}

func (s *Store) airgapPath() string { return filepath.Join(s.dir, "airgap.json") }

func (s *Store) readAirgap() airgapSeen {
	seen := airgapSeen{Files: map[string]airgapFile{}, Digests: map[string]bool{}}
	if b, err := os.ReadFile(s.airgapPath()); err == nil {
		_ = json.Unmarshal(b, &seen) // a damaged record only means re-checking digests
	}
	if seen.Files == nil {
		seen.Files = map[string]airgapFile{}
	}
	if seen.Digests == nil {
		seen.Digests = map[string]bool{}
	}
	return seen
}

func (s *Store) importAirgapFile(ctx context.Context, file string) AirgapResult {
	res := AirgapResult{File: file}
	abs, err := filepath.Abs(file)
	if err != nil {
		res.Err = err
		return res
	}
	fi, err := os.Stat(abs)
	if err != nil {
		res.Err = err
		return res
	}
	seen := s.readAirgap()
	if f, ok := seen.Files[abs]; ok && f.Size == fi.Size() && f.ModTime.Equal(fi.ModTime()) {
		res.Skipped = true
		if f.Error != "" {
			res.Err = errors.New(f.Error)
		}
		return res
	}
	digest, err := fileDigest(abs)
	if err != nil {
		res.Err = err
		return res
	}
	entry := airgapFile{Size: fi.Size(), ModTime: fi.ModTime(), Digest: digest}
	if seen.Digests[digest] {
		res.Skipped = true
	} else {
		res.Images, res.Err = s.Import(ctx, abs, nil)
		if res.Err != nil {
			if ctx.Err() != nil {
				return res // interrupted: try again next time
			}
			entry.Error = res.Err.Error()
		}
	}
	// Record under the metadata lock, re-reading so concurrent writers merge.
	l, err := s.lock("lock", unix.LOCK_EX)
	if err != nil {
		res.Err = errors.Join(res.Err, err)
		return res
	}
	defer unlock(l)
	seen = s.readAirgap()
	seen.Files[abs] = entry
	if entry.Error == "" {
		seen.Digests[digest] = true
	}
	b, _ := json.MarshalIndent(seen, "", "  ")
	if err := writeFileAtomic(s.airgapPath(), b, 0o600); err != nil {
		res.Err = errors.Join(res.Err, err)
	}
	return res
}

func fileDigest(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// airgapSettle is how long a file must stay unchanged before it is imported
// (a copy in progress keeps growing; an atomic rename is seen at once).
var airgapSettle = time.Second

// WatchAirgap imports what is in dir now, then every archive that appears
// or changes there until ctx ends, reporting each outcome to report (which
// may be nil). The folder is created when missing.
func (s *Store) WatchAirgap(ctx context.Context, dir string, report func(AirgapResult)) error {
	if report == nil {
		report = func(AirgapResult) {}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	defer w.Close()
	if err := w.Add(dir); err != nil {
		return fmt.Errorf("watching %s: %w", dir, err)
	}
	for _, r := range s.ImportAirgap(ctx, dir) {
		if !r.Skipped {
			report(r)
		}
	}
	pending := map[string]time.Time{} // file → last event
	tick := time.NewTicker(airgapSettle / 2)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if ev.Op&(fsnotify.Create|fsnotify.Write|fsnotify.Rename|fsnotify.Chmod) != 0 && IsAirgapArchive(ev.Name) {
				pending[ev.Name] = time.Now()
			}
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			report(AirgapResult{File: dir, Err: err})
		case now := <-tick.C:
			for f, last := range pending {
				if now.Sub(last) < airgapSettle {
					continue
				}
				delete(pending, f)
				if fi, err := os.Stat(f); err != nil || !fi.Mode().IsRegular() {
					continue // renamed away or deleted meanwhile
				}
				if r := s.importAirgapFile(ctx, f); !r.Skipped {
					report(r)
				}
			}
		}
	}
}
