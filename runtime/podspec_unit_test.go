package runtime

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/types"
)

// A UID that is not one path component never leaves <root-dir>/pods, and
// removing such a "pod" removes nothing of anyone else (defence behind the
// manifests' metadata.uid validation).
func TestEscapePodUIDOutOfPodsDir(t *testing.T) {
	root := t.TempDir()
	r, err := New(Options{RootDir: root, LogDir: t.TempDir(), Exe: "/bin/true"})
	if err != nil {
		t.Fatal(err)
	}
	keep := filepath.Join(root, "pods", "other", "keep")
	if err := os.MkdirAll(keep, 0o755); err != nil {
		t.Fatal(err)
	}
	pods := filepath.Join(root, "pods")
	for _, uid := range []types.UID{"", ".", "..", "../..", "a/../..", "/", "x\x00y"} {
		d := r.PodDir(uid)
		if filepath.Dir(d) != pods || filepath.Base(d) == ".." || filepath.Base(d) == "." {
			t.Errorf("PodDir(%q) = %s, not a child of %s", uid, d, pods)
		}
		if err := r.RemoveSandbox(context.Background(), uid); err != nil {
			t.Errorf("RemoveSandbox(%q): %v", uid, err)
		}
	}
	if _, err := os.Stat(keep); err != nil {
		t.Fatalf("another pod's state is gone: %v", err)
	}
	if got := r.PodDir("6f3c2b1e-0d4a-4c1b-9e8f-1a2b3c4d5e6f"); got != filepath.Join(pods, "6f3c2b1e-0d4a-4c1b-9e8f-1a2b3c4d5e6f") {
		t.Errorf("a plain UID is its own directory: %s", got)
	}
}
