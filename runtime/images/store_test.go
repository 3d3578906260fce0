package images

import (
	"context"
	"errors"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/minikubelet/minikubelet/runtime/images/imagebuild"
)

func TestLookupRemoveAndGC(t *testing.T) {
	s := openStore(t, Options{})
	shared := layerOf(t, file("shared", "s"))
	a := storeImage(t, s, "localhost/a:1", imageOf(t, imagebuild.Config{Cmd: []string{"a"}}, shared, layerOf(t, file("a", "a"))))
	b := storeImage(t, s, "localhost/b:1", imageOf(t, imagebuild.Config{Cmd: []string{"b"}}, shared))
	// A second tag for a, and a tag moved from b to a.
	storeImage(t, s, "localhost/a:2", imageOf(t, imagebuild.Config{Cmd: []string{"a"}}, shared, layerOf(t, file("a", "a"))))
	for ref, want := range map[string]string{
		"localhost/a:1": a.ID, "localhost/a:2": a.ID, "localhost/b:1": b.ID,
		a.ID: a.ID, strings.TrimPrefix(a.ID, "sha256:")[:12]: a.ID,
		"localhost/a@" + a.ManifestDigest: a.ID,
	} {
		r, ok, err := s.Lookup(ref)
		if err != nil || !ok || r.ID != want {
			t.Errorf("Lookup(%s) = %v %v %v, want %s", ref, r.ID, ok, err, want)
		}
	}
	if _, ok, _ := s.Lookup("localhost/a:3"); ok {
		t.Fatal("unknown tag found")
	}
	if _, ok, _ := s.Lookup("localhost/b@" + a.ManifestDigest); ok {
		t.Fatal("a digest must match within its repository only")
	}
	// Removing one of two tags only untags.
	if _, err := s.Remove("localhost/a:1"); err != nil {
		t.Fatal(err)
	}
	if r, ok, _ := s.Lookup("localhost/a:2"); !ok || len(r.RepoTags) != 1 {
		t.Fatalf("a:2 after untagging a:1: %+v", r)
	}
	if _, err := s.Remove("localhost/a:1"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("second rm: %v", err)
	}
	if _, err := s.Remove("localhost/a:2"); err != nil {
		t.Fatal(err)
	}
	res, err := s.GC()
	if err != nil || res.Layers != 1 || res.Blobs != 2 {
		t.Fatalf("GC after removing a: %+v %v (the shared layer must stay for b)", res, err)
	}
	if !s.layerPresent(b.Layers[0].DiffID) {
		t.Fatal("b's layer collected")
	}
	// GC skips the sweep while an ingest runs (in any process).
	ing, _ := s.lock("ingest.lock", unix.LOCK_SH)
	res, err = s.GC()
	unlock(ing)
	if err != nil || res.Skipped == "" {
		t.Fatalf("GC during an ingest: %+v %v", res, err)
	}
	if _, err := s.PrepareRootfs(context.Background(), "../x", b, "/tmp/x", false); err == nil {
		t.Fatal("a rootfs id with a slash was accepted")
	}
	if _, err := s.PrepareRootfs(context.Background(), "c1", b, t.TempDir(), false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Remove(b.ID); !errors.Is(err, ErrInUse) {
		t.Fatalf("rm by ID of an image in use: %v", err)
	}
	if b.ImageID() != "localhost/b@"+b.ManifestDigest && b.ImageID() != b.ID {
		t.Fatalf("ImageID %s", b.ImageID())
	}
}

func TestInsecureRegistriesUsePlainHTTP(t *testing.T) {
	s := openStore(t, Options{InsecureRegistries: []string{"reg.example:5000", "http://other.example"}})
	for ref, scheme := range map[string]string{
		"reg.example:5000/a/b:1": "http", "other.example/x": "http", "reg.example/a": "https", "busybox": "https",
	} {
		r, _ := ParseReference(ref)
		n, err := s.nameReference(r)
		if err != nil {
			t.Fatal(err)
		}
		if got := n.Context().Registry.Scheme(); got != scheme {
			t.Errorf("%s: %s, want %s", ref, got, scheme)
		}
	}
}

func TestLocalhostImagesAreNeverPulled(t *testing.T) {
	s := openStore(t, Options{CredentialFiles: noCreds})
	var pe *PullError
	if _, err := s.EnsureImage(context.Background(), "localhost/demo:latest", "Always", nil); !errors.As(err, &pe) || !strings.Contains(pe.Message, "local-only") {
		t.Fatalf("absent local image: %v", err)
	}
	rec := storeImage(t, s, "localhost/demo:latest", imageOf(t, imagebuild.Config{Cmd: []string{"x"}}, layerOf(t, file("x", "x"))))
	got, err := s.EnsureImage(context.Background(), "localhost/demo", "Always", nil)
	if err != nil || got.ID != rec.ID || s.Fetches() != 0 {
		t.Fatalf("Always on a stored localhost/ image: %v (fetches %d)", err, s.Fetches())
	}
}
