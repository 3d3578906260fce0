package runtime

import (
	"fmt"
	"os"

	"github.com/minikubelet/minikubelet/runtime/shim"
)

// HelperMain runs the hidden helper named by os.Args[1] (the pod supervisor
// or the container init) and exits; it returns false when os.Args names no
// helper. Test binaries call it first in TestMain, so that the runtime can
// re-execute them exactly as it re-executes minikubelet.
func HelperMain() bool {
	if len(os.Args) < 2 {
		return false
	}
	switch os.Args[1] {
	case shim.SupervisorCommand:
		if len(os.Args) != 3 {
			fmt.Fprintln(os.Stderr, "usage: __pod-supervisor <sandbox dir>")
			os.Exit(2)
		}
		os.Exit(shim.SupervisorMain(os.Args[2]))
	case shim.ContainerInitCommand:
		os.Exit(shim.ContainerInitMain())
	}
	return false
}
