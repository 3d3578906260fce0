package images

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/singleflight"
	"golang.org/x/sys/unix"

	"github.com/minikubelet/minikubelet/internal/layout"
)

// ImageConfig is the part of an image's config a container runtime needs.
type ImageConfig struct {
	Entrypoint   []string          `json:"entrypoint,omitempty"`
	Cmd          []string          `json:"cmd,omitempty"`
	Env          []string          `json:"env,omitempty"`
	WorkingDir   string            `json:"workingDir,omitempty"`
	User         string            `json:"user,omitempty"`
	ExposedPorts []string          `json:"exposedPorts,omitempty"`
	StopSignal   string            `json:"stopSignal,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
}

// LayerInfo is one layer of an image, bottom first in Record.Layers.
type LayerInfo struct {
	DiffID string `json:"diffID"`           // sha256 of the uncompressed tar; names the layer dir
	Digest string `json:"digest,omitempty"` // the blob digest in the manifest, when there is one
	Size   int64  `json:"size"`             // bytes of the (compressed) blob as distributed
}

// Record is one image in the store.
type Record struct {
	ID             string      `json:"id"`                       // config digest, like Docker's image ID
	RepoTags       []string    `json:"repoTags,omitempty"`       // normalised, e.g. docker.io/library/busybox:latest
	RepoDigests    []string    `json:"repoDigests,omitempty"`    // repo@sha256:... as the registry/archive named it
	ManifestDigest string      `json:"manifestDigest,omitempty"` // the platform manifest ("" for docker archives)
	IndexDigest    string      `json:"indexDigest,omitempty"`    // the multi-platform index it came from, if any
	Platform       string      `json:"platform"`                 // os/arch[/variant]
	Config         ImageConfig `json:"config"`
	Layers         []LayerInfo `json:"layers"`
	Size           int64       `json:"size"`             // sum of the layers' blob sizes
	Created        time.Time   `json:"created,omitzero"` // from the image config
	Stored         time.Time   `json:"stored"`           // when this store got it
	Source         string      `json:"source,omitempty"` // "pull" or the archive it was imported from
}

// Digest is the digest to show and to report as imageID: the repo digest when
// the image came with one, else the image ID.
func (r Record) Digest() string {
	if len(r.RepoDigests) > 0 {
		if i := strings.LastIndex(r.RepoDigests[0], "@"); i >= 0 {
			return r.RepoDigests[0][i+1:]
		}
	}
	return r.ID
}

// ImageID is what kubelet reports as a container's imageID: the repo digest
// (docker.io/library/busybox@sha256:...) when known, else the image ID.
func (r Record) ImageID() string {
	if len(r.RepoDigests) > 0 {
		return r.RepoDigests[0]
	}
	return r.ID
}

// Options tune a Store. The zero value is usable.
type Options struct {
	// InsecureRegistries are host[:port] values reached over plain HTTP.
	InsecureRegistries []string
	// CredentialFiles overrides the config.json search list (see package doc).
	CredentialFiles []string
	// Keychain, when set, replaces the config.json files altogether.
	Keychain authn.Keychain
	// Transport for registry requests (default: http.DefaultTransport, system CAs).
	Transport http.RoundTripper
	// Platform overrides the host platform for multi-platform images.
	Platform *v1.Platform
	// Clock for the pull backoff (tests); default time.Now.
	Clock func() time.Time
}

// Store is an image store under <root-dir>/images. Safe for concurrent use,
// also across processes (see the package doc).
type Store struct {
	rootDir string // the --root-dir
	dir     string // <root-dir>/images
	opts    Options
	plat    v1.Platform
	pulls   singleflight.Group
	backoff *Backoff

	// fetches counts registry pulls actually performed (not shared ones); for tests and metrics.
	mu      sync.Mutex
	fetches int
	// pullers is how many Pull calls are waiting on a fetch now (shared or
	// not): what a test waits on to know every caller has joined.
	pullers int
}

// Open creates (if needed) and opens the store under rootDir/images.
func Open(rootDir string, opts Options) (*Store, error) {
	if rootDir == "" {
		return nil, errors.New("images: empty root dir")
	}
	abs, err := filepath.Abs(rootDir)
	if err != nil {
		return nil, err
	}
	s := &Store{rootDir: abs, dir: layout.Root(abs).Images(), opts: opts}
	for _, d := range []string{"", "blobs/sha256", "layers/sha256", "rootfs", "import", "empty", "tmp"} {
		if err := os.MkdirAll(filepath.Join(s.dir, d), 0o700); err != nil {
			return nil, fmt.Errorf("images: %w", err)
		}
	}
	// Layer dirs are overlay lowerdirs read by containers running as any
	// user: the path down to them must be traversable.
	for _, d := range []string{"", "layers", "layers/sha256", "empty"} {
		if err := os.Chmod(filepath.Join(s.dir, d), 0o711); err != nil {
			return nil, fmt.Errorf("images: %w", err)
		}
	}
	if opts.Platform != nil {
		s.plat = *opts.Platform
	} else {
		s.plat = HostPlatform()
	}
	clock := opts.Clock
	if clock == nil {
		clock = time.Now
	}
	s.backoff = NewBackoff(clock)
	return s, nil
}

// Dir is <root-dir>/images.
func (s *Store) Dir() string { return s.dir }

// ImportDir is the default airgap folder, <root-dir>/images/import.
func (s *Store) ImportDir() string { return filepath.Join(s.dir, "import") }

// HostPlatform is the platform images are resolved to on this host.
func HostPlatform() v1.Platform {
	p := v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	switch runtime.GOARCH {
	case "arm64":
		p.Variant = "v8"
	case "arm":
		p.Variant = "v7"
	}
	return p
}

func platformString(p v1.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// ---- metadata ----

type database struct {
	Images map[string]*Record `json:"images"`
}

func (s *Store) dbPath() string { return filepath.Join(s.dir, "images.json") }

func (s *Store) readDB() (*database, error) {
	db := &database{Images: map[string]*Record{}}
	b, err := os.ReadFile(s.dbPath())
	if errors.Is(err, fs.ErrNotExist) {
		return db, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, db); err != nil {
		return nil, fmt.Errorf("%s: %w", s.dbPath(), err)
	}
	if db.Images == nil {
		db.Images = map[string]*Record{}
	}
	return db, nil
}

// lock takes an flock on <dir>/name; release with unlock.
func (s *Store) lock(name string, how int) (*os.File, error) {
	p := filepath.Join(s.dir, name)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err = unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", p, err)
	}
	return f, nil
}

func unlock(f *os.File) {
	if f != nil {
		_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
		f.Close()
	}
}

// update runs fn on the database under the metadata lock and writes the
// result atomically when fn returns nil.
func (s *Store) update(fn func(db *database) error) error {
	l, err := s.lock("lock", unix.LOCK_EX)
	if err != nil {
		return err
	}
	defer unlock(l)
	db, err := s.readDB()
	if err != nil {
		return err
	}
	if err := fn(db); err != nil {
		return err
	}
	b, err := json.MarshalIndent(db, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(s.dbPath(), b, 0o600)
}

// writeFileAtomic writes data to a temp file beside path, fsyncs and renames.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp := path + ".tmp-" + randID()
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_CLOEXEC, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func randID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// tmpDir makes a fresh work dir under tmp/, named after this process so a
// later GC can tell leftovers of dead processes from work in progress.
func (s *Store) tmpDir(kind string) (string, error) {
	return os.MkdirTemp(filepath.Join(s.dir, "tmp"), fmt.Sprintf("%s-%d-", kind, os.Getpid()))
}

// ---- lookups ----

// Lookup finds the image a reference names: a tag (normalised like Docker:
// busybox → docker.io/library/busybox:latest), repo@sha256:digest (the repo
// digest or the manifest digest), or an image ID (full "sha256:..." or a
// unique hex prefix of at least 12). Read-only; takes no lock. found=false
// with a nil error means the image is not in the store.
func (s *Store) Lookup(ref string) (Record, bool, error) {
	db, err := s.readDB()
	if err != nil {
		return Record{}, false, err
	}
	r, err := db.find(ref)
	if err != nil || r == nil {
		return Record{}, false, err
	}
	return *r, true, nil
}

func (db *database) find(ref string) (*Record, error) {
	if id, ok := asImageID(ref); ok {
		var hits []*Record
		for k, r := range db.Images {
			if strings.HasPrefix(k, id) {
				hits = append(hits, r)
			}
		}
		switch len(hits) {
		case 1:
			return hits[0], nil
		case 0:
			// A bare hex string may also be a repository name; fall through.
		default:
			return nil, fmt.Errorf("image ID %q is ambiguous (%d images)", ref, len(hits))
		}
	}
	n, err := ParseReference(ref)
	if err != nil {
		if _, ok := asImageID(ref); ok {
			return nil, nil
		}
		return nil, err
	}
	for _, id := range sortedKeys(db.Images) {
		r := db.Images[id]
		if n.Digest == "" {
			for _, t := range r.RepoTags {
				if t == n.String() {
					return r, nil
				}
			}
			continue
		}
		for _, d := range r.RepoDigests {
			if d == n.String() {
				return r, nil
			}
		}
		if r.ManifestDigest == n.Digest || r.IndexDigest == n.Digest {
			if r.hasRepo(n.Repository) {
				return r, nil
			}
		}
	}
	return nil, nil
}

func (r *Record) hasRepo(repo string) bool {
	for _, t := range append(append([]string{}, r.RepoTags...), r.RepoDigests...) {
		if refRepository(t) == repo {
			return true
		}
	}
	return false
}

// refRepository strips the :tag or @digest from a normalised reference.
func refRepository(ref string) string {
	if i := strings.Index(ref, "@"); i >= 0 {
		return ref[:i]
	}
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		return ref[:i]
	}
	return ref
}

// asImageID accepts "sha256:<hex>" or a hex prefix of 12+ characters.
func asImageID(ref string) (string, bool) {
	h := strings.TrimPrefix(ref, "sha256:")
	if len(h) < 12 || len(h) > 64 {
		return "", false
	}
	if _, err := hex.DecodeString(h + strings.Repeat("0", len(h)%2)); err != nil || strings.ToLower(h) != h {
		return "", false
	}
	return "sha256:" + h, true
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// ImageInfo is a row of `image ls`.
type ImageInfo struct {
	Record
	InUse int // containers whose rootfs record names this image
}

// List returns every image, newest first, with its in-use count.
func (s *Store) List() ([]ImageInfo, error) {
	db, err := s.readDB()
	if err != nil {
		return nil, err
	}
	uses, err := s.rootfsRecords()
	if err != nil {
		return nil, err
	}
	count := map[string]int{}
	for _, u := range uses {
		count[u.ImageID]++
	}
	var out []ImageInfo
	for _, r := range db.Images {
		out = append(out, ImageInfo{Record: *r, InUse: count[r.ID]})
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Stored.Equal(out[j].Stored) {
			return out[i].Stored.After(out[j].Stored)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// ErrInUse is returned by Remove for an image a container uses.
var ErrInUse = errors.New("image is in use")

// Remove untags ref; when ref is an image ID, or the last name of the image
// goes, the image record goes too. An image in use by a container is refused
// (errors.Is(err, ErrInUse)). Layers are freed by GC.
func (s *Store) Remove(ref string) (removed Record, err error) {
	err = s.update(func(db *database) error {
		// Read under the lock: PrepareRootfs registers uses under it too.
		uses, err := s.rootfsRecords()
		if err != nil {
			return err
		}
		r, err := db.find(ref)
		if err != nil {
			return err
		}
		if r == nil {
			return fmt.Errorf("image %q: not found in %s", ref, s.dir)
		}
		byID := false
		if id, ok := asImageID(ref); ok && strings.HasPrefix(r.ID, id) {
			byID = true
		}
		n, perr := ParseReference(ref)
		if !byID && perr == nil && n.Digest == "" && len(r.RepoTags) > 1 {
			// Another tag still names the image: just untag, like docker rmi.
			r.RepoTags = without(r.RepoTags, n.String())
			removed = *r
			return nil
		}
		var users []string
		for _, u := range uses {
			if u.ImageID == r.ID {
				users = append(users, u.ID)
			}
		}
		if len(users) > 0 {
			return fmt.Errorf("image %s (%s): %w by container(s) %s", ref, r.ID, ErrInUse, strings.Join(users, ", "))
		}
		delete(db.Images, r.ID)
		removed = *r
		return nil
	})
	return removed, err
}

func without(list []string, v string) []string {
	var out []string
	for _, x := range list {
		if x != v {
			out = append(out, x)
		}
	}
	return out
}

// ---- garbage collection ----

// GCResult says what a GC removed.
type GCResult struct {
	Layers, Blobs, TempDirs int
	Bytes                   int64
	Skipped                 string // why the layer/blob sweep did not run, if it did not
}

// GC removes layers and blobs no image record and no rootfs record
// references, and work dirs left by dead processes. When a pull or import is
// running (in any process) the layer/blob sweep is skipped and GCResult.Skipped
// says so: its layers are not recorded yet.
func (s *Store) GC() (GCResult, error) {
	var res GCResult
	ing, err := os.OpenFile(filepath.Join(s.dir, "ingest.lock"), os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return res, err
	}
	defer ing.Close()
	if err := unix.Flock(int(ing.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		res.Skipped = "an image pull or import is in progress"
		return res, nil
	}
	defer unix.Flock(int(ing.Fd()), unix.LOCK_UN)
	l, err := s.lock("lock", unix.LOCK_EX)
	if err != nil {
		return res, err
	}
	defer unlock(l)

	db, err := s.readDB()
	if err != nil {
		return res, err
	}
	uses, err := s.rootfsRecords()
	if err != nil {
		return res, err
	}
	keepLayers, keepBlobs := map[string]bool{}, map[string]bool{}
	for _, r := range db.Images {
		for _, ly := range r.Layers {
			keepLayers[hexOf(ly.DiffID)] = true
		}
		for _, d := range []string{r.ID, r.ManifestDigest, r.IndexDigest} {
			if d != "" {
				keepBlobs[hexOf(d)] = true
			}
		}
	}
	for _, u := range uses {
		for _, d := range u.Layers {
			keepLayers[hexOf(d)] = true
		}
	}
	sweep := func(dir string, keep map[string]bool, n *int) error {
		ents, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, e := range ents {
			if keep[e.Name()] {
				continue
			}
			p := filepath.Join(dir, e.Name())
			res.Bytes += du(p)
			if err := os.RemoveAll(p); err != nil {
				return err
			}
			*n++
		}
		return nil
	}
	if err := sweep(filepath.Join(s.dir, "layers/sha256"), keepLayers, &res.Layers); err != nil {
		return res, err
	}
	if err := sweep(filepath.Join(s.dir, "blobs/sha256"), keepBlobs, &res.Blobs); err != nil {
		return res, err
	}
	// Work dirs of dead processes (name: kind-PID-rand).
	ents, _ := os.ReadDir(filepath.Join(s.dir, "tmp"))
	for _, e := range ents {
		parts := strings.Split(e.Name(), "-")
		if len(parts) < 3 {
			continue
		}
		pid, err := strconv.Atoi(parts[1])
		if err != nil || (pid != os.Getpid() && unix.Kill(pid, 0) == unix.ESRCH) {
			p := filepath.Join(s.dir, "tmp", e.Name())
			res.Bytes += du(p)
			if os.RemoveAll(p) == nil {
				res.TempDirs++
			}
		}
	}
	return res, nil
}

func hexOf(d string) string { return strings.TrimPrefix(d, "sha256:") }

// du is the apparent size of a tree (for GC figures only).
func du(p string) int64 {
	var n int64
	_ = filepath.WalkDir(p, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}
