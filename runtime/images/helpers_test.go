package images

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/minikubelet/minikubelet/runtime/images/imagebuild"
)

// busyboxDir stages a folder with Debian's busybox-static and a few applet
// links, the way hack/build-demo-image.sh does.
func busyboxDir(t *testing.T) string {
	t.Helper()
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skipf("needs Debian's busybox-static (/bin/busybox): %v (make deps installs it)", err)
	}
	dir := t.TempDir()
	for _, d := range []string{"bin", "etc", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "bin/busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"sh", "cat", "ls", "echo"} {
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", a)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "etc/hello"), []byte("hello from the image\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func busyboxImage(t *testing.T) v1.Image {
	t.Helper()
	l, err := imagebuild.LayerFromDir(busyboxDir(t))
	if err != nil {
		t.Fatal(err)
	}
	img, err := imagebuild.Image([]v1.Layer{l}, imagebuild.Config{Entrypoint: []string{"/bin/sh"}, Cmd: []string{"-c", "echo hi"}, Env: []string{"PATH=/bin", "FROM=image"}, WorkingDir: "/tmp", User: "0", ExposedPorts: []string{"80/tcp"}, StopSignal: "SIGQUIT"})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// entry is one tar entry of a hand-made layer.
type entry struct {
	name, body, link string
	typ              byte
	mode             int64
}

func file(name, body string) entry {
	return entry{name: name, body: body, typ: tar.TypeReg, mode: 0o644}
}
func dir(name string) entry { return entry{name: name, typ: tar.TypeDir, mode: 0o755} }
func symlink(name, to string) entry {
	return entry{name: name, link: to, typ: tar.TypeSymlink, mode: 0o777}
}
func hardlink(name, to string) entry {
	return entry{name: name, link: to, typ: tar.TypeLink, mode: 0o644}
}

func tarBytes(t *testing.T, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, Size: int64(len(e.body)), ModTime: time.Unix(1700000000, 0), Format: tar.FormatPAX}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	return buf.Bytes()
}

func layerOf(t *testing.T, entries ...entry) v1.Layer {
	t.Helper()
	l, err := imagebuild.LayerFromTar(tarBytes(t, entries...))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func imageOf(t *testing.T, cfg imagebuild.Config, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := imagebuild.Image(layers, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func openStore(t *testing.T, opts Options) *Store {
	t.Helper()
	s, err := Open(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// noLeftovers fails when a store holds work dirs (half-done unpacks).
func noLeftovers(t *testing.T, s *Store) {
	t.Helper()
	ents, _ := os.ReadDir(filepath.Join(s.Dir(), "tmp"))
	for _, e := range ents {
		t.Errorf("leftover work dir %s", e.Name())
	}
}
