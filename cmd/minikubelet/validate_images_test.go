package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minikubelet/minikubelet/runtime/images"
	"github.com/minikubelet/minikubelet/runtime/images/imagebuild"
)

const explainImagePod = `apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - name: web
    image: localhost/explain-test:v1
    command: ["/hello"]
`

// --explain resolves a stored image to its digest; an absent store is reported,
// never created (validate is offline and must not write under --root-dir).
func TestExplainShowsStoredImage(t *testing.T) {
	dir := t.TempDir()
	manifest := filepath.Join(dir, "web.yaml")
	if err := os.WriteFile(manifest, []byte(explainImagePod), 0o644); err != nil {
		t.Fatal(err)
	}
	opts := validateOpts(true)
	opts.rootDir = filepath.Join(dir, "root")

	var out, errOut bytes.Buffer
	if n := runValidate(&out, &errOut, []string{manifest}, opts); n != 0 {
		t.Fatalf("%d problems:\n%s", n, out.String())
	}
	if !strings.Contains(out.String(), "localhost/explain-test:v1: no image store under --root-dir yet") {
		t.Errorf("absent store not reported:\n%s", out.String())
	}
	if _, err := os.Stat(opts.rootDir); !os.IsNotExist(err) {
		t.Fatalf("validate created %s (err %v)", opts.rootDir, err)
	}

	if os.Geteuid() != 0 {
		t.Skip("importing an image needs root (ownership, device nodes); the stored-image half is skipped")
	}
	layerDir := filepath.Join(dir, "layer")
	os.MkdirAll(layerDir, 0o755)
	os.WriteFile(filepath.Join(layerDir, "hello"), []byte("#!/bin/sh\necho hi\n"), 0o755)
	archive := filepath.Join(dir, "img.tar")
	if err := imagebuild.WriteDirArchive(archive, layerDir, "localhost/explain-test:v1", imagebuild.Config{}); err != nil {
		t.Fatal(err)
	}
	store, err := images.Open(opts.rootDir, images.Options{})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := store.Import(context.Background(), archive, nil)
	if err != nil || len(recs) != 1 {
		t.Fatalf("import: %v (%d records)", err, len(recs))
	}
	out.Reset()
	if n := runValidate(&out, &errOut, []string{manifest}, opts); n != 0 {
		t.Fatalf("%d problems:\n%s", n, out.String())
	}
	if want := "present: digest " + recs[0].Digest(); !strings.Contains(out.String(), want) {
		t.Errorf("explain lacks %q:\n%s", want, out.String())
	}
}
