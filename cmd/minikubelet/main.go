// Command minikubelet runs Kubernetes Pod manifests from a folder on one host,
// the way the kubelet runs static pods, without a cluster or a container engine.
//
// Each subcommand lives in its own file and registers itself with
// registerCommand, so the command tree is the list of files in this folder.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// commandFactories holds every subcommand constructor; files add theirs in init.
var commandFactories []func() *cobra.Command

func registerCommand(f func() *cobra.Command) { commandFactories = append(commandFactories, f) }

// exitError carries a process exit code through cobra without printing twice.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "minikubelet",
		Short:         "Run Kubernetes Pod manifests from a folder on one host",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       buildVersion().String(),
	}
	root.SetVersionTemplate("{{.Version}}\n")
	for _, f := range commandFactories {
		root.AddCommand(f())
	}
	addCompletions(root)
	return root
}

func main() {
	if kubeletVersion(os.Args, os.Stdout) {
		return
	}
	root := newRootCmd()
	root.SetArgs(kubeletArgs(os.Args))
	if err := root.Execute(); err != nil {
		var ee *exitError
		if errors.As(err, &ee) {
			if ee.err != nil {
				fmt.Fprintln(os.Stderr, "minikubelet:", ee.err)
			}
			os.Exit(ee.code)
		}
		fmt.Fprintln(os.Stderr, "minikubelet:", err)
		os.Exit(1)
	}
}
