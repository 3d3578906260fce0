package images

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/minikubelet/minikubelet/internal/testwait"
	"github.com/minikubelet/minikubelet/runtime/images/imagebuild"
)

func TestImportArchives(t *testing.T) {
	img := busyboxImage(t)
	wantID, _ := img.ConfigName()
	work := t.TempDir()
	cases := []struct {
		file  string
		write func(path string) error
	}{
		{"docker.tar", func(p string) error {
			return imagebuild.WriteDockerArchive(p, map[string]v1.Image{"localhost/bb:docker": img}, imagebuild.None)
		}},
		{"docker.tar.gz", func(p string) error {
			return imagebuild.WriteDockerArchive(p, map[string]v1.Image{"localhost/bb:dockergz": img}, imagebuild.Gzip)
		}},
		{"oci.tar", func(p string) error {
			return imagebuild.WriteOCIArchive(p, map[string]any{"localhost/bb:oci": img}, imagebuild.None)
		}},
		{"oci.tar.zst", func(p string) error {
			return imagebuild.WriteOCIArchive(p, map[string]any{"localhost/bb:ocizst": img}, imagebuild.Zstd)
		}},
	}
	s := openStore(t, Options{})
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			p := filepath.Join(work, tc.file)
			if err := tc.write(p); err != nil {
				t.Fatal(err)
			}
			recs, err := s.Import(context.Background(), p, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != 1 || recs[0].ID != wantID.String() {
				t.Fatalf("imported %+v, want one image %s", recs, wantID)
			}
			tag := "localhost/bb:" + strings.NewReplacer(".tar", "", ".gz", "gz", ".zst", "zst").Replace(tc.file)
			r, found, err := s.Lookup(tag)
			if err != nil || !found {
				t.Fatalf("Lookup(%s) = %v, %v", tag, found, err)
			}
			want := ImageConfig{Entrypoint: []string{"/bin/sh"}, Cmd: []string{"-c", "echo hi"}, Env: []string{"PATH=/bin", "FROM=image"}, WorkingDir: "/tmp", User: "0", ExposedPorts: []string{"80/tcp"}, StopSignal: "SIGQUIT"}
			if !reflect.DeepEqual(r.Config, want) {
				t.Fatalf("config %+v, want %+v", r.Config, want)
			}
			if strings.HasPrefix(tc.file, "oci") && (r.ManifestDigest == "" || len(r.RepoDigests) != 1) {
				t.Fatalf("OCI import should keep the manifest digest: %+v", r)
			}
			// The layer is unpacked with the busybox binary intact.
			diff := filepath.Join(s.layerDir(r.Layers[0].DiffID), "diff")
			got, err := os.ReadFile(filepath.Join(diff, "bin/busybox"))
			want1, _ := os.ReadFile("/bin/busybox")
			if err != nil || len(got) != len(want1) {
				t.Fatalf("bin/busybox in layer: %d bytes, %v", len(got), err)
			}
			if l, _ := os.Readlink(filepath.Join(diff, "bin/sh")); l != "busybox" {
				t.Fatalf("bin/sh → %q", l)
			}
		})
	}
	// All four names point at one image, whose one layer is stored once.
	list, err := s.List()
	if err != nil || len(list) != 1 || len(list[0].RepoTags) != 4 {
		t.Fatalf("List = %+v, %v", list, err)
	}
	ents, _ := os.ReadDir(filepath.Join(s.Dir(), "layers/sha256"))
	if len(ents) != 1 {
		t.Fatalf("%d layer dirs, want 1 shared", len(ents))
	}
	noLeftovers(t, s)
}

func TestImportMultiImageArchives(t *testing.T) {
	a := imageOf(t, imagebuild.Config{Cmd: []string{"a"}}, layerOf(t, file("a", "A")))
	b := imageOf(t, imagebuild.Config{Cmd: []string{"b"}}, layerOf(t, file("a", "A")), layerOf(t, file("b", "B")))
	dir := t.TempDir()
	s := openStore(t, Options{})
	docker := filepath.Join(dir, "multi.tar")
	if err := imagebuild.WriteDockerArchive(docker, map[string]v1.Image{"example.com/a:1": a, "example.com/b:1": b}, imagebuild.None); err != nil {
		t.Fatal(err)
	}
	oci := filepath.Join(dir, "multi-oci.tar.gz")
	if err := imagebuild.WriteOCIArchive(oci, map[string]any{"example.com/a:2": a, "example.com/b:2": b}, imagebuild.Gzip); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{docker, oci} {
		recs, err := s.Import(context.Background(), f, nil)
		if err != nil || len(recs) != 2 {
			t.Fatalf("%s: %d images, %v", f, len(recs), err)
		}
	}
	for _, ref := range []string{"example.com/a:1", "example.com/b:1", "example.com/a:2", "example.com/b:2"} {
		r, ok, _ := s.Lookup(ref)
		if !ok || r.Config.Cmd[0] != ref[12:13] {
			t.Fatalf("%s: %v %+v", ref, ok, r.Config)
		}
	}
	// Layer "a" is shared by both images: two layer dirs in all.
	if ents, _ := os.ReadDir(filepath.Join(s.Dir(), "layers/sha256")); len(ents) != 2 {
		t.Fatalf("%d layer dirs, want 2", len(ents))
	}
}

func TestImportRejectsGarbage(t *testing.T) {
	s := openStore(t, Options{})
	p := filepath.Join(t.TempDir(), "x.tar")
	os.WriteFile(p, tarBytes(t, file("hello", "x")), 0o644)
	if _, err := s.Import(context.Background(), p, nil); err == nil || !strings.Contains(err.Error(), "neither a docker archive") {
		t.Fatalf("err = %v", err)
	}
	os.WriteFile(p, []byte("not a tar at all, just some bytes that are long enough..........................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................................."), 0o644)
	if _, err := s.Import(context.Background(), p, nil); err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("err = %v (must name the file)", err)
	}
}

func TestAirgapFolder(t *testing.T) {
	img := imageOf(t, imagebuild.Config{Cmd: []string{"x"}}, layerOf(t, file("x", "1")))
	s := openStore(t, Options{})
	dir := s.ImportDir()
	if err := imagebuild.WriteDockerArchive(filepath.Join(dir, "first.tar"), map[string]v1.Image{"localhost/airgap:first": img}, imagebuild.None); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("ignored"), 0o644)

	oldSettle := airgapSettle
	airgapSettle = 100 * time.Millisecond
	t.Cleanup(func() { airgapSettle = oldSettle })
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var seen []AirgapResult
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.WatchAirgap(ctx, dir, func(r AirgapResult) { mu.Lock(); seen = append(seen, r); mu.Unlock() })
	}()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, "the archive present at start", func() bool { _, ok, _ := s.Lookup("localhost/airgap:first"); return ok })

	// A file that appears later (written elsewhere, renamed in: the safe way), gzip.
	img2 := imageOf(t, imagebuild.Config{Cmd: []string{"y"}}, layerOf(t, file("y", "2")))
	staged := filepath.Join(t.TempDir(), "second.tar.gz")
	if err := imagebuild.WriteOCIArchive(staged, map[string]any{"localhost/airgap:second": img2}, imagebuild.Gzip); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(staged)
	os.WriteFile(filepath.Join(t.TempDir(), "unused"), nil, 0o644)
	if err := os.WriteFile(filepath.Join(dir, "second.tar.gz"), b, 0o644); err != nil { // plain write: debounced
		t.Fatal(err)
	}
	waitFor(t, "the archive dropped later", func() bool { _, ok, _ := s.Lookup("localhost/airgap:second"); return ok })

	// The same content under another name is not imported again; nor is a
	// file seen before (a second scan, as after a daemon restart).
	os.WriteFile(filepath.Join(dir, "copy.tar.gz"), b, 0o644)
	waitFor(t, "the copy noticed", func() bool {
		return strings.Contains(readFile(t, filepath.Join(s.Dir(), "airgap.json")), "copy.tar.gz")
	})
	for _, r := range s.ImportAirgap(context.Background(), dir) {
		if !r.Skipped || r.Err != nil {
			t.Fatalf("rescan imported again: %+v", r)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 {
		t.Fatalf("reported %d imports, want 2 (first, second): %+v", len(seen), seen)
	}
}

func readFile(t *testing.T, p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testwait.Until(t, what, 20*time.Second, 20*time.Millisecond, cond)
}

func TestConcurrentStoresShareOneRoot(t *testing.T) {
	// The daemon and a CLI are two processes; two Store values on one root
	// (separate lock file descriptions) stand in for them.
	root := t.TempDir()
	dir := t.TempDir()
	var files []string
	for i := range 6 {
		img := imageOf(t, imagebuild.Config{Cmd: []string{"c"}}, layerOf(t, file("common", "shared")), layerOf(t, file("own", strings.Repeat("x", i+1))))
		p := filepath.Join(dir, string(rune('a'+i))+".tar")
		if err := imagebuild.WriteDockerArchive(p, map[string]v1.Image{"localhost/c:" + string(rune('a'+i)): img}, imagebuild.None); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(files))
	for i, f := range files {
		s, err := Open(root, Options{})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Import(context.Background(), f, nil); err != nil {
				errs <- err
			}
			if i%2 == 0 {
				if _, err := s.GC(); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	s, _ := Open(root, Options{})
	list, _ := s.List()
	if len(list) != 6 {
		t.Fatalf("%d images recorded, want 6", len(list))
	}
	for _, im := range list {
		for _, l := range im.Layers {
			if !s.layerPresent(l.DiffID) {
				t.Fatalf("%v: layer %s missing", im.RepoTags, l.DiffID)
			}
		}
	}
	noLeftovers(t, s)
}
