package runtime

import (
	"os"

	"github.com/minikubelet/minikubelet/runtime/shim"
)

// HelperMain runs the hidden helper named by os.Args[1] (the pod
// supervisor, the container init, the exec stages) and exits; it returns
// false when os.Args names no helper. Test binaries call it first in
// TestMain, so that the runtime can re-execute them exactly as it
// re-executes minikubelet.
func HelperMain() bool {
	if status, ok := shim.Main(os.Args); ok {
		os.Exit(status)
	}
	return false
}
