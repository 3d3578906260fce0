package images

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/minikubelet/minikubelet/internal/testnode"
	"github.com/minikubelet/minikubelet/runtime/images/imagebuild"
)

// storeImage puts img into s as ref (the registry/OCI path: manifest kept).
func storeImage(t *testing.T, s *Store, ref string, img v1.Image) Record {
	t.Helper()
	raw, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	r, _ := ParseReference(ref)
	rec, err := s.ingest(context.Background(), ingestSource{img: img, ref: ref, tags: []string{r.TagRef()}, rawManifest: raw, source: "test"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// mountContainer prepares and mounts a container root; unmounted in Cleanup.
func mountContainer(t *testing.T, s *Store, id string, rec Record, containerDir string, readOnly bool) (*Rootfs, string) {
	t.Helper()
	rf, err := s.PrepareRootfs(context.Background(), id, rec, containerDir, readOnly)
	if err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(containerDir, "rootfs")
	if err := os.MkdirAll(target, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := rf.Mount(target); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := rf.Unmount(target); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return rf, target
}

func mustRead(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestWhiteoutsThroughOverlay(t *testing.T) {
	testnode.RequireRoot(t)
	s := openStore(t, Options{})
	base := layerOf(t, dir("a/"), file("a/keep", "k"), file("a/gone", "g"), dir("o/"), file("o/old", "old"), file("top", "t"))
	over := layerOf(t, dir("a/"), file("a/.wh.gone", ""), dir("o/"), file("o/.wh..wh..opq", ""), file("o/new", "new"), file(".wh.top", ""))
	rec := storeImage(t, s, "localhost/wh:1", imageOf(t, imagebuild.Config{Cmd: []string{"x"}}, base, over))
	for _, ro := range []bool{false, true} {
		t.Run(fmt.Sprintf("readOnly=%v", ro), func(t *testing.T) {
			_, root := mountContainer(t, s, fmt.Sprintf("wh-%v", ro), rec, filepath.Join(t.TempDir(), "c"), ro)
			if mustRead(t, filepath.Join(root, "a/keep")) != "k" || mustRead(t, filepath.Join(root, "o/new")) != "new" {
				t.Fatal("files of the layers missing")
			}
			for _, p := range []string{"a/gone", "o/old", "top"} {
				if _, err := os.Lstat(filepath.Join(root, p)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s should be whited out: %v", p, err)
				}
			}
			ents, _ := os.ReadDir(filepath.Join(root, "o"))
			if len(ents) != 1 {
				t.Errorf("opaque dir o shows %d entries, want 1", len(ents))
			}
		})
	}
}

func TestContainerRootsAreIsolated(t *testing.T) {
	testnode.RequireRoot(t)
	s := openStore(t, Options{})
	archive := filepath.Join(t.TempDir(), "bb.tar")
	if err := imagebuild.WriteDockerArchive(archive, map[string]v1.Image{"localhost/bb:1": busyboxImage(t)}, imagebuild.None); err != nil {
		t.Fatal(err)
	}
	recs, err := s.Import(context.Background(), archive, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := recs[0]
	layerFile := filepath.Join(s.layerDir(rec.Layers[0].DiffID), "diff/etc/hello")
	pods := t.TempDir()
	dir1, dir2 := filepath.Join(pods, "c1"), filepath.Join(pods, "c2")
	rf1, root1 := mountContainer(t, s, "pod1-c1", rec, dir1, false)
	_, root2 := mountContainer(t, s, "pod1-c2", rec, dir2, false)

	// The image's files, runnable: busybox from the overlay in a chroot.
	out, err := exec.Command("/bin/busybox", "chroot", root1, "/bin/sh", "-c", "cat /etc/hello").CombinedOutput()
	if err != nil || string(out) != "hello from the image\n" {
		t.Fatalf("sh in the root: %q %v", out, err)
	}
	// Writes go to the container's own upper dir only.
	os.WriteFile(filepath.Join(root1, "etc/hello"), []byte("changed by c1\n"), 0o644)
	os.WriteFile(filepath.Join(root1, "tmp/new"), []byte("c1"), 0o644)
	if mustRead(t, filepath.Join(root2, "etc/hello")) != "hello from the image\n" || mustRead(t, layerFile) != "hello from the image\n" {
		t.Fatal("a write leaked into the layer or another container")
	}
	if _, err := os.Stat(filepath.Join(root2, "tmp/new")); err == nil {
		t.Fatal("c1's new file is visible in c2")
	}
	if mustRead(t, filepath.Join(dir1, "upper/tmp/new")) != "c1" || mustRead(t, filepath.Join(dir1, "upper/etc/hello")) != "changed by c1\n" {
		t.Fatal("writes not in c1's upper dir")
	}
	os.Remove(filepath.Join(root1, "bin/ls"))
	if _, err := os.Lstat(filepath.Join(root2, "bin/ls")); err != nil {
		t.Fatal("a delete in c1 removed the file for c2")
	}

	// A restart of the same container keeps its writable layer.
	if err := rf1.Unmount(root1); err != nil {
		t.Fatal(err)
	}
	rf1b, err := s.PrepareRootfs(context.Background(), "pod1-c1", rec, dir1, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := rf1b.Mount(root1); err != nil {
		t.Fatal(err)
	}
	if mustRead(t, filepath.Join(root1, "tmp/new")) != "c1" {
		t.Fatal("upper layer lost across a restart")
	}

	// readOnlyRootFilesystem: the files, and an upper layer of its own where
	// the runtime creates the mount targets the image lacks before it makes
	// the container's root read-only (the runtime's tests check that).
	_, root3 := mountContainer(t, s, "pod1-ro", rec, filepath.Join(pods, "ro"), true)
	if mustRead(t, filepath.Join(root3, "etc/hello")) != "hello from the image\n" {
		t.Fatal("read-only root lacks the image's files")
	}
	if err := os.WriteFile(filepath.Join(root3, "etc/hosts"), nil, 0o644); err != nil {
		t.Fatalf("mount target in a read-only container's root: %v", err)
	}
	if _, err := os.Stat(filepath.Join(pods, "ro/upper/etc/hosts")); err != nil {
		t.Fatalf("the mount target is not in the container's upper dir: %v", err)
	}
	if mustRead(t, layerFile) != "hello from the image\n" {
		t.Fatal("a write leaked into the layer")
	}

	// In use: ls counts, rm refuses; released: rm and GC free the layer.
	list, _ := s.List()
	if len(list) != 1 || list[0].InUse != 3 {
		t.Fatalf("List: %+v", list)
	}
	if _, err := s.Remove("localhost/bb:1"); !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "pod1-c1") {
		t.Fatalf("rm of an image in use: %v", err)
	}
	for _, id := range []string{"pod1-c1", "pod1-c2", "pod1-ro"} {
		if err := s.ReleaseRootfs(id); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Remove("localhost/bb:1"); err != nil {
		t.Fatal(err)
	}
	res, err := s.GC()
	if err != nil || res.Layers != 1 || res.Blobs != 1 || res.Skipped != "" {
		t.Fatalf("GC: %+v %v", res, err)
	}
	if _, err := os.Stat(layerFile); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("layer still there after GC")
	}
}

func TestManyLayersMount(t *testing.T) {
	testnode.RequireRoot(t)
	s := openStore(t, Options{})
	const n = 150
	var layers []v1.Layer
	for i := range n {
		layers = append(layers, layerOf(t, file(fmt.Sprintf("f%03d", i), fmt.Sprint(i)), file("top", fmt.Sprint(i))))
	}
	rec := storeImage(t, s, "localhost/many:1", imageOf(t, imagebuild.Config{Cmd: []string{"x"}}, layers...))
	for _, legacy := range []bool{false, true} {
		t.Run(fmt.Sprintf("mount(2)=%v", legacy), func(t *testing.T) {
			useMountSyscall = legacy
			t.Cleanup(func() { useMountSyscall = false })
			rf, root := mountContainer(t, s, fmt.Sprintf("many-%v", legacy), rec, filepath.Join(t.TempDir(), "c"), false)
			if l := len(strings.Join(rf.Lower, ":")); l < os.Getpagesize() {
				t.Fatalf("lowerdir string only %d bytes: the test does not exceed a page", l)
			}
			ents, err := os.ReadDir(root)
			if err != nil || len(ents) != n+1 {
				t.Fatalf("%d entries in the root, want %d: %v", len(ents), n+1, err)
			}
			if got := mustRead(t, filepath.Join(root, "top")); got != fmt.Sprint(n-1) {
				t.Fatalf("top = %s, want the top layer's %d", got, n-1)
			}
			if !legacy && !lowerdirPlusSupported() {
				t.Logf("kernel without overlay lowerdir+ (before 6.8): Mount used mount(2)")
			} else if !legacy {
				// Prove the new mount API path itself works (Mount would fall back quietly).
				t2 := filepath.Join(t.TempDir(), "direct")
				os.Mkdir(t2, 0o755)
				rfRO := *rf
				rfRO.Upper, rfRO.Work, rfRO.ReadOnly = "", "", true
				err := rfRO.mountFsconfig(t2)
				if err != nil {
					t.Fatal(err)
				} else {
					defer UnmountRootfs(t2)
					if mustRead(t, filepath.Join(t2, "f000")) != "0" {
						t.Fatal("fsconfig mount lacks the bottom layer")
					}
				}
			}
			var st unix.Statfs_t
			if err := unix.Statfs(root, &st); err != nil || st.Type != unix.OVERLAYFS_SUPER_MAGIC {
				t.Fatalf("not an overlay: %x %v", st.Type, err)
			}
		})
	}
}
