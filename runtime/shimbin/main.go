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
	if len(os.Args) >= 2 {
		switch os.Args[1] {
		case shim.SupervisorCommand:
			if len(os.Args) == 3 {
				os.Exit(shim.SupervisorMain(os.Args[2]))
			}
		case shim.ContainerInitCommand:
			os.Exit(shim.ContainerInitMain())
		}
	}
	fmt.Fprintf(os.Stderr, "usage: %s %s SANDBOX-DIR | %s\n", os.Args[0], shim.SupervisorCommand, shim.ContainerInitCommand)
	os.Exit(2)
}
