package images

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// Progress reports a pull or import: bytes of layer blobs read so far.
type Progress struct {
	Ref         string
	Layer       string // digest (or diffID) of the layer that moved
	Done, Total int64  // all layers of the image; Total counts only layers not already stored
	LayersDone  int
	LayersTotal int
}

// ProgressFunc receives progress; calls are serialised, and must be fast.
type ProgressFunc func(Progress)

// ingestSource is an image about to enter the store.
type ingestSource struct {
	img         v1.Image
	ref         string   // for messages and progress
	tags        []string // normalised repo:tag names to point at the image
	repoDigests []string // normalised repo@digest names
	rawManifest []byte   // nil for docker archives (no manifest to keep)
	rawIndex    []byte   // the multi-platform index it was chosen from, if any
	platform    v1.Platform
	// uncompressed: the source serves uncompressed layers cheaply (docker
	// archives); read Uncompressed() and verify diffIDs only.
	uncompressed bool
	source       string
}

// layerDir is where the unpacked layer with this diffID lives.
func (s *Store) layerDir(diffID string) string {
	return filepath.Join(s.dir, "layers/sha256", hexOf(diffID))
}

func (s *Store) layerPresent(diffID string) bool {
	_, err := os.Stat(filepath.Join(s.layerDir(diffID), "layer.json"))
	return err == nil
}

// ingest stores an image: layers unpacked (verified) first, blobs, then the
// record under the metadata lock. The caller holds the ingest lock shared.
func (s *Store) ingest(ctx context.Context, src ingestSource, progress ProgressFunc) (Record, error) {
	rawCfg, err := src.img.RawConfigFile()
	if err != nil {
		return Record{}, fmt.Errorf("%s: reading config: %w", src.ref, err)
	}
	cfgDigest := sha256Digest(rawCfg)
	var manifest *v1.Manifest
	if src.rawManifest != nil {
		if manifest, err = v1.ParseManifest(bytes.NewReader(src.rawManifest)); err != nil {
			return Record{}, fmt.Errorf("%s: manifest: %w", src.ref, err)
		}
		if manifest.Config.Digest.String() != cfgDigest {
			return Record{}, fmt.Errorf("%s: config digest mismatch: manifest says %s, content is %s", src.ref, manifest.Config.Digest, cfgDigest)
		}
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(rawCfg))
	if err != nil {
		return Record{}, fmt.Errorf("%s: config: %w", src.ref, err)
	}
	layers, err := src.img.Layers()
	if err != nil {
		return Record{}, fmt.Errorf("%s: layers: %w", src.ref, err)
	}
	if len(layers) != len(cfg.RootFS.DiffIDs) {
		return Record{}, fmt.Errorf("%s: %d layers but %d diffIDs in the config", src.ref, len(layers), len(cfg.RootFS.DiffIDs))
	}

	rec := Record{
		ID:       cfgDigest,
		Platform: platformString(v1.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}),
		Created:  cfg.Created.Time,
		Stored:   time.Now().UTC(),
		Source:   src.source,
		Config: ImageConfig{
			Entrypoint: cfg.Config.Entrypoint, Cmd: cfg.Config.Cmd, Env: cfg.Config.Env,
			WorkingDir: cfg.Config.WorkingDir, User: cfg.Config.User,
			StopSignal: cfg.Config.StopSignal, Labels: cfg.Config.Labels,
		},
	}
	for p := range cfg.Config.ExposedPorts {
		rec.Config.ExposedPorts = append(rec.Config.ExposedPorts, p)
	}
	sort.Strings(rec.Config.ExposedPorts)
	if src.rawManifest != nil {
		rec.ManifestDigest = sha256Digest(src.rawManifest)
	}
	if src.rawIndex != nil {
		rec.IndexDigest = sha256Digest(src.rawIndex)
	}

	// Fetch and unpack the missing layers, a few at a time.
	type job struct {
		i     int
		layer v1.Layer
		size  int64
	}
	var jobs []job
	var total int64
	for i, l := range layers {
		info := LayerInfo{DiffID: cfg.RootFS.DiffIDs[i].String()}
		if manifest != nil {
			info.Digest = manifest.Layers[i].Digest.String()
			info.Size = manifest.Layers[i].Size
		}
		// Docker archives: the size is the tar's, known once read (asking
		// go-containerregistry would gzip the layer to find out).
		rec.Layers = append(rec.Layers, info)
		if !s.layerPresent(info.DiffID) {
			jobs = append(jobs, job{i, l, info.Size})
			total += info.Size
		} else if info.Size == 0 {
			rec.Layers[i].Size = s.storedLayerSize(info.DiffID)
		}
	}
	pr := &progressState{fn: progress, p: Progress{Ref: src.ref, Total: total, LayersTotal: len(jobs)}}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(3)
	for _, j := range jobs {
		g.Go(func() error {
			return s.unpackOne(gctx, src, j.layer, rec.Layers[j.i], pr)
		})
	}
	if err := g.Wait(); err != nil {
		return Record{}, err
	}
	for i := range rec.Layers {
		if rec.Layers[i].Size == 0 {
			rec.Layers[i].Size = s.storedLayerSize(rec.Layers[i].DiffID)
		}
		rec.Size += rec.Layers[i].Size
	}

	for _, b := range [][]byte{src.rawManifest, src.rawIndex, rawCfg} {
		if b != nil {
			if err := s.putBlob(b); err != nil {
				return Record{}, err
			}
		}
	}
	rec.RepoTags = dedup(src.tags)
	rec.RepoDigests = dedup(src.repoDigests)
	err = s.update(func(db *database) error {
		for _, d := range rec.Layers { // a GC may not have run meanwhile (we hold ingest.lock), but be sure
			if !s.layerPresent(d.DiffID) {
				return fmt.Errorf("%s: layer %s vanished before the image was recorded", src.ref, d.DiffID)
			}
		}
		for _, t := range rec.RepoTags { // a tag names one image: take it from any other
			for id, other := range db.Images {
				if id != rec.ID {
					other.RepoTags = without(other.RepoTags, t)
				}
			}
		}
		if old := db.Images[rec.ID]; old != nil {
			rec.RepoTags = dedup(append(old.RepoTags, rec.RepoTags...))
			rec.RepoDigests = dedup(append(old.RepoDigests, rec.RepoDigests...))
			if rec.ManifestDigest == "" {
				rec.ManifestDigest, rec.IndexDigest = old.ManifestDigest, old.IndexDigest
			}
		}
		r := rec
		db.Images[rec.ID] = &r
		return nil
	})
	return rec, err
}

func dedup(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

type progressState struct {
	mu sync.Mutex
	fn ProgressFunc
	p  Progress
}

func (ps *progressState) add(layer string, n int64, layerDone bool) {
	if ps.fn == nil {
		return
	}
	ps.mu.Lock()
	ps.p.Done += n
	ps.p.Layer = layer
	if layerDone {
		ps.p.LayersDone++
	}
	ps.fn(ps.p) // serialised: callers need no locking of their own
	ps.mu.Unlock()
}

type countingReader struct {
	r     io.Reader
	layer string
	ps    *progressState
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	if n > 0 {
		c.ps.add(c.layer, int64(n), false)
	}
	return n, err
}

// layerMeta is layer.json beside a layer's diff/.
type layerMeta struct {
	DiffID   string    `json:"diffID"`
	Digest   string    `json:"digest,omitempty"`
	Size     int64     `json:"size"`     // blob size as distributed
	Unpacked int64     `json:"unpacked"` // bytes of file content written
	Created  time.Time `json:"created"`
}

// unpackOne fetches one layer, verifies it while unpacking into a temp dir,
// and renames the result into place.
func (s *Store) unpackOne(ctx context.Context, src ingestSource, l v1.Layer, info LayerInfo, ps *progressState) error {
	what := fmt.Sprintf("%s: layer %s", src.ref, info.DiffID)
	tmp, err := s.tmpDir("layer")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp) // only something left when we failed or lost a race
	diff := filepath.Join(tmp, "diff")
	if err := os.Mkdir(diff, 0o755); err != nil {
		return err
	}

	var rc io.ReadCloser
	var blobHash hash.Hash
	var uncompressed io.Reader
	if src.uncompressed {
		if rc, err = l.Uncompressed(); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		uncompressed = &countingReader{r: rc, layer: info.DiffID, ps: ps}
	} else {
		if rc, err = l.Compressed(); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		blobHash = sha256.New()
		counted := &countingReader{r: io.TeeReader(rc, blobHash), layer: info.Digest, ps: ps}
		dec, err := decompress(counted)
		if err != nil {
			rc.Close()
			return fmt.Errorf("%s: %w", what, err)
		}
		defer dec.Close()
		uncompressed = dec
	}
	defer rc.Close()
	stop := context.AfterFunc(ctx, func() { rc.Close() }) // cancellation aborts a blocked read
	defer stop()

	diffHash := sha256.New()
	streamed := &byteCounter{}
	tee := io.TeeReader(uncompressed, io.MultiWriter(diffHash, streamed))
	written, err := unpackLayer(tee, diff)
	if err == nil {
		// The tar may end before the stream does (padding): hash it all.
		_, err = io.Copy(io.Discard, tee)
	}
	if blobHash != nil && ctx.Err() == nil {
		// Drain the compressed stream so its digest covers the whole blob;
		// also after a failed unpack: "digest mismatch" says more than the
		// decompressor's complaint about a damaged blob.
		_, derr := io.Copy(blobHash, rc)
		// go-containerregistry's registry reader checks digests itself and
		// fails at EOF ("error verifying ..."): that is a mismatch too.
		if got := "sha256:" + hex.EncodeToString(blobHash.Sum(nil)); got != info.Digest && (derr == nil || strings.Contains(derr.Error(), "verif")) {
			return fmt.Errorf("%s: blob %s digest mismatch: got %s (corrupt or tampered blob; nothing stored)", what, info.Digest, got)
		}
		if err == nil {
			err = derr
		}
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", what, ctx.Err())
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if got := "sha256:" + hex.EncodeToString(diffHash.Sum(nil)); got != info.DiffID {
		return fmt.Errorf("%s: content digest mismatch: config says %s, layer content is %s (corrupt or tampered layer; nothing stored)", what, info.DiffID, got)
	}
	if info.Size == 0 {
		info.Size = streamed.n
	}
	meta, _ := json.Marshal(layerMeta{DiffID: info.DiffID, Digest: info.Digest, Size: info.Size, Unpacked: written, Created: time.Now().UTC()})
	if err := writeFileAtomic(filepath.Join(tmp, "layer.json"), meta, 0o644); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o711); err != nil {
		return err
	}
	if err := syncDir(tmp); err != nil {
		return err
	}
	err = os.Rename(tmp, s.layerDir(info.DiffID))
	if err != nil && (errors.Is(err, fs.ErrExist) || errors.Is(err, unix.ENOTEMPTY)) && s.layerPresent(info.DiffID) {
		err = nil // another process unpacked the same layer first: same content
	}
	if err == nil {
		ps.add(info.Digest, 0, true)
	}
	return err
}

func syncDir(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// decompress sniffs gzip or zstd (or plain tar) from the first bytes.
func decompress(r io.Reader) (io.ReadCloser, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, err := br.Peek(4)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	switch {
	case len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		z, err := gzip.NewReader(br)
		if err != nil {
			return nil, err
		}
		return z, nil
	case len(magic) == 4 && bytes.Equal(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		z, err := zstd.NewReader(br)
		if err != nil {
			return nil, err
		}
		return z.IOReadCloser(), nil
	}
	return io.NopCloser(br), nil
}

func sha256Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// putBlob stores b under its own digest.
func (s *Store) putBlob(b []byte) error {
	p := filepath.Join(s.dir, "blobs", strings.Replace(sha256Digest(b), ":", "/", 1))
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	return writeFileAtomic(p, b, 0o644)
}

type byteCounter struct{ n int64 }

func (c *byteCounter) Write(b []byte) (int, error) { c.n += int64(len(b)); return len(b), nil }

// storedLayerSize reads a stored layer's size from its layer.json.
func (s *Store) storedLayerSize(diffID string) int64 {
	var m layerMeta
	if b, err := os.ReadFile(filepath.Join(s.layerDir(diffID), "layer.json")); err == nil {
		_ = json.Unmarshal(b, &m)
	}
	return m.Size
}
