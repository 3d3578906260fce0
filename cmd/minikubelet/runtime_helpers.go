package main

import (
	"github.com/spf13/cobra"

	"github.com/minikubelet/minikubelet/runtime"
	"github.com/minikubelet/minikubelet/runtime/shim"
)

// The pod supervisor and the container init are this binary re-executed by
// the runtime (see runtime/doc.go). They are dispatched in init, before cobra
// and flag parsing, so the helpers start with as little work as possible.
func init() {
	runtime.HelperMain()
	registerCommand(func() *cobra.Command {
		return &cobra.Command{Use: shim.SupervisorCommand + " SANDBOX-DIR", Hidden: true,
			Short: "pod supervisor and pause (started by the runtime, not by hand)",
			RunE:  func(*cobra.Command, []string) error { return nil }}
	})
	registerCommand(func() *cobra.Command {
		return &cobra.Command{Use: shim.ContainerInitCommand, Hidden: true,
			Short: "container init (started by the pod supervisor, not by hand)",
			RunE:  func(*cobra.Command, []string) error { return nil }}
	})
}
