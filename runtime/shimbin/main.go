// Command minikubelet-shim is the pod supervisor and container init alone,
// without the daemon's dependencies (Kubernetes API types, cobra, D-Bus), so
// that the per-pod process costs less memory than the full binary
// re-executed. Point runtime.Options.Exe at it; it takes the same hidden
// subcommands as minikubelet.
package main

import (
	"fmt"
	"os"

	"github.com/minikubelet/minikubelet/runtime/shim"
)

func main() {
	if status, ok := shim.Main(os.Args); ok {
		os.Exit(status)
	}
	fmt.Fprintf(os.Stderr, "usage: %s %s SANDBOX-DIR | %s | %s\n", os.Args[0], shim.SupervisorCommand, shim.ContainerInitCommand, shim.ExecCommand)
	os.Exit(2)
}
