package systemd

import (
	"testing"

	"github.com/minikubelet/minikubelet/internal/testnode"
)

// The test binary runs inside a freshly booted systemd (testnode.Main);
// helperMain lets the binary double as the held child of the scope tests.
func TestMain(m *testing.M) {
	if helperMain() {
		return
	}
	testnode.Main(m)
}
