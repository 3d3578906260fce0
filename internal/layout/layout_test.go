package layout

import (
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/types"
)

// No UID leads out of the pods folder.
func TestPodStaysUnderPods(t *testing.T) {
	r := Root("/var/lib/mkl")
	for _, uid := range []types.UID{"", ".", "..", "../../etc", "a/b", "x\x00y", "0a1b-2c3d"} {
		dir := r.Pod(uid).Dir()
		if filepath.Dir(dir) != r.Pods() || strings.Contains(filepath.Base(dir), "/") {
			t.Errorf("uid %q: pod folder %q is not a child of %s", uid, dir, r.Pods())
		}
	}
	if got := r.Pod("u1").ContainerRoot("app", 3); got != "/var/lib/mkl/pods/u1/rootfs/app-3" {
		t.Errorf("container root = %s", got)
	}
}
