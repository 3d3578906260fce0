// Package imagebuild makes small OCI images from folders and writes them as
// docker-archive or oci-archive tarballs, with go-containerregistry. It backs
// hack/mkimage (the demo image of `make run`), the images tests and benchmarks.
package imagebuild

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Config is the runnable part of the image config.
type Config struct {
	Entrypoint   []string
	Cmd          []string
	Env          []string
	WorkingDir   string
	User         string
	ExposedPorts []string // "8080/tcp"
	StopSignal   string
	Platform     *v1.Platform // default: linux/GOARCH
	Created      time.Time    // zero: none (reproducible)
}

// TarDir writes dir as a layer tar: names relative to dir, owned by 0:0
// (the folder is usually staged by an unprivileged build), hard links kept.
func TarDir(dir string, w io.Writer) error {
	tw := tar.NewWriter(w)
	seen := map[[2]uint64]string{} // dev,ino → first name, for hard links
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		h, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		h.Name = filepath.ToSlash(rel)
		if fi.IsDir() {
			h.Name += "/"
		}
		h.Uid, h.Gid, h.Uname, h.Gname = 0, 0, "root", "root"
		h.Format = tar.FormatPAX
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && fi.Mode().IsRegular() && st.Nlink > 1 {
			key := [2]uint64{uint64(st.Dev), st.Ino}
			if first, ok := seen[key]; ok {
				h.Typeflag, h.Linkname, h.Size = tar.TypeLink, first, 0
			} else {
				seen[key] = h.Name
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if h.Typeflag == tar.TypeReg {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, f)
			f.Close()
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// LayerFromDir makes a gzip layer of dir.
func LayerFromDir(dir string) (v1.Layer, error) {
	var buf bytes.Buffer
	if err := TarDir(dir, &buf); err != nil {
		return nil, err
	}
	return LayerFromTar(buf.Bytes())
}

// LayerFromTar makes a gzip layer from an uncompressed layer tar.
func LayerFromTar(b []byte) (v1.Layer, error) {
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
}

// Image stacks layers (bottom first) with cfg.
func Image(layers []v1.Layer, cfg Config) (v1.Image, error) {
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	p := v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	if cfg.Platform != nil {
		p = *cfg.Platform
	}
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	cf.Created = v1.Time{Time: cfg.Created}
	cf.Config.Entrypoint, cf.Config.Cmd, cf.Config.Env = cfg.Entrypoint, cfg.Cmd, cfg.Env
	cf.Config.WorkingDir, cf.Config.User, cf.Config.StopSignal = cfg.WorkingDir, cfg.User, cfg.StopSignal
	if len(cfg.ExposedPorts) > 0 {
		cf.Config.ExposedPorts = map[string]struct{}{}
		for _, port := range cfg.ExposedPorts {
			cf.Config.ExposedPorts[port] = struct{}{}
		}
	}
	return mutate.ConfigFile(img, cf)
}

// Compression of a whole archive file.
type Compression string

const (
	None Compression = ""
	Gzip Compression = "gzip"
	Zstd Compression = "zstd"
)

// WriteDockerArchive writes images (reference → image) as `docker save` does.
func WriteDockerArchive(path string, imgs map[string]v1.Image, c Compression) error {
	refs := map[name.Reference]v1.Image{}
	for r, img := range imgs {
		t, err := name.NewTag(r)
		if err != nil {
			return err
		}
		refs[t] = img
	}
	return writeCompressed(path, c, func(w io.Writer) error { return tarball.MultiRefWrite(refs, w) })
}

// WriteDirArchive writes at path a docker-archive of one image named ref:
// one layer of the folder dir (LayerFromDir) under the config cfg,
// uncompressed. It is what the tests that build their own small image need.
func WriteDirArchive(path, dir, ref string, cfg Config) error {
	layer, err := LayerFromDir(dir)
	if err != nil {
		return err
	}
	img, err := Image([]v1.Layer{layer}, cfg)
	if err != nil {
		return err
	}
	return WriteDockerArchive(path, map[string]v1.Image{ref: img}, None)
}

// WriteOCIArchive writes an OCI image layout archive holding images
// (reference → image or index), each named with the full reference in both
// org.opencontainers.image.ref.name and io.containerd.image.name.
func WriteOCIArchive(path string, imgs map[string]any, c Compression) error {
	dir, err := os.MkdirTemp("", "oci-layout-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	refs := make([]string, 0, len(imgs))
	for r := range imgs {
		refs = append(refs, r)
	}
	sort.Strings(refs)
	for _, r := range refs {
		ann := layout.WithAnnotations(map[string]string{
			"org.opencontainers.image.ref.name": r,
			"io.containerd.image.name":          r,
		})
		switch x := imgs[r].(type) {
		case v1.Image:
			err = lp.AppendImage(x, ann)
		case v1.ImageIndex:
			err = lp.AppendIndex(x, ann)
		default:
			err = fmt.Errorf("%s: %T is neither an image nor an index", r, x)
		}
		if err != nil {
			return err
		}
	}
	return writeCompressed(path, c, func(w io.Writer) error { return tarTree(dir, w) })
}

// tarTree archives a layout folder (plain files and dirs, sorted).
func tarTree(dir string, w io.Writer) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		h, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		h.Name = filepath.ToSlash(rel)
		if d.IsDir() {
			h.Name += "/"
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if d.Type().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(tw, f)
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

func writeCompressed(path string, c Compression, write func(io.Writer) error) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	var w io.WriteCloser = nopWriteCloser{f}
	switch c {
	case Gzip:
		w = gzip.NewWriter(f)
	case Zstd:
		if w, err = zstd.NewWriter(f); err != nil {
			f.Close()
			return err
		}
	case None:
	default:
		f.Close()
		return fmt.Errorf("unknown compression %q", c)
	}
	err = write(w)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// CompressionFor picks the archive compression from a file name.
func CompressionFor(path string) Compression {
	switch {
	case strings.HasSuffix(path, ".gz"), strings.HasSuffix(path, ".tgz"):
		return Gzip
	case strings.HasSuffix(path, ".zst"), strings.HasSuffix(path, ".zstd"):
		return Zstd
	}
	return None
}
