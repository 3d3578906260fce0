package images

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"golang.org/x/sys/unix"
)

// Import reads an image archive — docker-archive (docker save) or an OCI
// image layout archive (oci-archive), plain, gzip or zstd, one or many images
// — into the store and returns the images it stored. Images of another
// platform in an OCI archive are skipped.
func (s *Store) Import(ctx context.Context, file string, progress ProgressFunc) ([]Record, error) {
	ing, err := s.lock("ingest.lock", unix.LOCK_SH)
	if err != nil {
		return nil, err
	}
	defer unlock(ing)

	if abs, err := filepath.Abs(file); err == nil {
		file = abs
	}
	work, err := s.tmpDir("import")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	tarPath, err := plainTar(file, work)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	names, err := tarNames(tarPath)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	var recs []Record
	switch {
	case names["manifest.json"]:
		recs, err = s.importDocker(ctx, file, tarPath, progress)
	case names["index.json"] && names["oci-layout"]:
		recs, err = s.importOCI(ctx, file, tarPath, filepath.Join(work, "layout"), progress)
	default:
		return nil, fmt.Errorf("%s: neither a docker archive (manifest.json) nor an OCI layout archive (oci-layout, index.json)", file)
	}
	if err != nil {
		return recs, fmt.Errorf("%s: %w", file, err)
	}
	return recs, nil
}

// plainTar returns a path to the uncompressed archive: the file itself, or a
// decompressed copy in work (go-containerregistry re-reads the archive per
// layer; decompressing once keeps that cheap).
func plainTar(file, work string) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var magic [4]byte
	n, _ := io.ReadFull(f, magic[:])
	gz := n >= 2 && magic[0] == 0x1f && magic[1] == 0x8b
	zs := n == 4 && bytes.Equal(magic[:], []byte{0x28, 0xb5, 0x2f, 0xfd})
	if !gz && !zs {
		return file, nil
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	dec, err := decompress(f)
	if err != nil {
		return "", err
	}
	defer dec.Close()
	out := filepath.Join(work, "archive.tar")
	w, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(w, dec); err != nil {
		w.Close()
		return "", fmt.Errorf("decompressing: %w", err)
	}
	return out, w.Close()
}

func tarNames(p string) (map[string]bool, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names := map[string]bool{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names, nil
		}
		if err != nil {
			return nil, fmt.Errorf("not a tar archive: %w", err)
		}
		names[cleanEntryName(h.Name)] = true
	}
}

func (s *Store) importDocker(ctx context.Context, file, tarPath string, progress ProgressFunc) ([]Record, error) {
	opener := func() (io.ReadCloser, error) { return os.Open(tarPath) }
	m, err := tarball.LoadManifest(opener)
	if err != nil {
		return nil, err
	}
	var recs []Record
	for i, d := range m {
		var img v1.Image
		var tags []string
		for _, t := range d.RepoTags {
			r, err := ParseReference(t)
			if err != nil {
				return recs, fmt.Errorf("manifest.json[%d].RepoTags: %w", i, err)
			}
			tags = append(tags, r.TagRef())
		}
		if len(d.RepoTags) > 0 {
			t, err := name.NewTag(d.RepoTags[0])
			if err != nil {
				return recs, fmt.Errorf("manifest.json[%d].RepoTags: %w", i, err)
			}
			img, err = tarball.Image(opener, &t)
			if err != nil {
				return recs, err
			}
		} else if len(m) == 1 {
			if img, err = tarball.Image(opener, nil); err != nil {
				return recs, err
			}
		} else {
			return recs, fmt.Errorf("manifest.json[%d]: untagged image in a multi-image archive cannot be selected", i)
		}
		ref := firstOr(tags, fmt.Sprintf("%s[%d]", filepath.Base(file), i))
		rec, err := s.ingest(ctx, ingestSource{img: img, ref: ref, tags: tags, uncompressed: true, source: "import:" + file}, progress)
		if err != nil {
			return recs, err
		}
		recs = append(recs, rec)
	}
	return recs, nil
}

func firstOr(l []string, def string) string {
	if len(l) > 0 {
		return l[0]
	}
	return def
}

// importOCI unpacks the layout (regular files and directories only, confined
// with os.Root) and reads it with go-containerregistry's layout package.
func (s *Store) importOCI(ctx context.Context, file, tarPath, dir string, progress ProgressFunc) ([]Record, error) {
	if err := extractLayout(tarPath, dir); err != nil {
		return nil, err
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var recs []Record
	skipped := 0
	for i, desc := range im.Manifests {
		src := ingestSource{ref: fmt.Sprintf("%s[%d]", filepath.Base(file), i), source: "import:" + file, platform: s.plat}
		if n := ociRefName(desc.Annotations); n != "" {
			r, err := ParseReference(n)
			if err != nil {
				return recs, fmt.Errorf("index.json manifests[%d] annotation: %w", i, err)
			}
			src.ref = r.String()
			if r.Tag != "" {
				src.tags = []string{r.TagRef()}
			}
		}
		switch {
		case desc.MediaType.IsIndex():
			child, err := idx.ImageIndex(desc.Digest)
			if err != nil {
				return recs, err
			}
			if src.rawIndex, err = verifiedRaw(child, desc.Digest); err != nil {
				return recs, err
			}
			cim, err := child.IndexManifest()
			if err != nil {
				return recs, err
			}
			pick, err := pickPlatform(cim, s.plat)
			if err != nil {
				return recs, fmt.Errorf("%s: %w", src.ref, err)
			}
			if src.img, err = child.Image(pick.Digest); err != nil {
				return recs, err
			}
			if src.rawManifest, err = verifiedRaw(src.img, pick.Digest); err != nil {
				return recs, err
			}
		case desc.MediaType.IsImage():
			if desc.Platform != nil && !platformMatches(s.plat, *desc.Platform) {
				skipped++
				continue
			}
			if src.img, err = idx.Image(desc.Digest); err != nil {
				return recs, err
			}
			if src.rawManifest, err = verifiedRaw(src.img, desc.Digest); err != nil {
				return recs, err
			}
		default:
			continue // attestations, signatures, artifacts
		}
		for _, t := range src.tags {
			src.repoDigests = append(src.repoDigests, refRepository(t)+"@"+desc.Digest.String())
		}
		rec, err := s.ingest(ctx, src, progress)
		if err != nil {
			return recs, err
		}
		recs = append(recs, rec)
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("no image for %s in the archive (%d for other platforms)", platformString(s.plat), skipped)
	}
	return recs, nil
}

// ociRefName is the image name of an index entry: containerd's full-name
// annotation, else the OCI ref.name when it is a full reference (a bare tag
// such as "latest" names no repository).
func ociRefName(a map[string]string) string {
	if n := a["io.containerd.image.name"]; n != "" {
		return n
	}
	if n := a["org.opencontainers.image.ref.name"]; strings.ContainsAny(n, "/:") {
		return n
	}
	return ""
}

type rawManifester interface{ RawManifest() ([]byte, error) }

// verifiedRaw returns the raw manifest and checks it hashes to want.
func verifiedRaw(m rawManifester, want v1.Hash) ([]byte, error) {
	b, err := m.RawManifest()
	if err != nil {
		return nil, err
	}
	if got := sha256Digest(b); got != want.String() {
		return nil, fmt.Errorf("manifest digest mismatch: expected %s, got %s", want, got)
	}
	return b, nil
}

func extractLayout(tarPath, dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	f, err := os.Open(tarPath)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		rel := cleanEntryName(h.Name)
		if rel == "" {
			continue
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := root.MkdirAll(rel, 0o700); err != nil {
				return err
			}
		case tar.TypeReg:
			if d := path.Dir(rel); d != "." {
				if err := root.MkdirAll(d, 0o700); err != nil {
					return err
				}
			}
			w, err := root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
			if err != nil {
				return err
			}
			_, err = io.Copy(w, tr)
			if cerr := w.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		default:
			return fmt.Errorf("OCI layout entry %q: unexpected type %q", h.Name, string(h.Typeflag))
		}
	}
}

// pickPlatform chooses the manifest for want from a multi-platform index:
// same OS and architecture; the exact variant is preferred, then one with no
// variant (arm64 images often omit "v8").
func pickPlatform(im *v1.IndexManifest, want v1.Platform) (v1.Descriptor, error) {
	var best *v1.Descriptor
	bestScore := -1
	var seen []string
	for i := range im.Manifests {
		d := &im.Manifests[i]
		if !d.MediaType.IsImage() && d.MediaType != "" {
			continue
		}
		if d.Platform == nil {
			continue
		}
		seen = append(seen, platformString(*d.Platform))
		if !platformMatches(want, *d.Platform) {
			continue
		}
		score := 1
		switch {
		case d.Platform.Variant == want.Variant:
			score = 3
		case normVariant(d.Platform.Architecture, d.Platform.Variant) == normVariant(want.Architecture, want.Variant):
			score = 2
		}
		if score > bestScore {
			best, bestScore = d, score
		}
	}
	if best == nil {
		return v1.Descriptor{}, fmt.Errorf("no image for platform %s (the index has: %s)", platformString(want), strings.Join(seen, ", "))
	}
	return *best, nil
}

func platformMatches(want, have v1.Platform) bool {
	if have.OS != "" && have.OS != want.OS || have.Architecture != want.Architecture {
		return false
	}
	hv, wv := normVariant(have.Architecture, have.Variant), normVariant(want.Architecture, want.Variant)
	if hv == "" || wv == "" || hv == wv {
		return true
	}
	// arm: a v7 host runs v6 and v5 images too.
	return have.Architecture == "arm" && hv < wv
}

func normVariant(arch, v string) string {
	if arch == "arm64" && v == "v8" {
		return ""
	}
	return v
}
