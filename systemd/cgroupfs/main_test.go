package cgroupfs

import (
	"testing"

	"github.com/minikubelet/minikubelet/internal/testnode"
	// Imported for its init: the test binary doubles as the held workload.
	_ "github.com/minikubelet/minikubelet/systemd/internal/heldproc"
)

// The test binary runs inside a freshly booted systemd (testnode.Main), as
// the systemd package's does: the cgroupfs tests share its node.
func TestMain(m *testing.M) {
	testnode.Main(m)
}
