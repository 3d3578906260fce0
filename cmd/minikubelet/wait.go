package main

// wait.go: `minikubelet wait --for=condition=Ready pod/NAME`, so systemd
// units and scripts can order on pods (kubectl's syntax and exit codes).

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/minikubelet/minikubelet/internal/api/kubectl"
)

func init() { registerCommand(newWaitCmd) }

func newWaitCmd() *cobra.Command {
	var co apiClientOptions
	var forSpec string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "wait --for=condition=Ready|delete|create pod/NAME... [--timeout=30s]",
		Short: "Wait until pods meet a condition (exit 0) or the timeout passes (exit 1)",
		Long: `Wait blocks until every named pod meets --for: condition=NAME[=VALUE] (Ready,
Initialized, ContainersReady, PodScheduled; VALUE defaults to true), delete or create.
A pod that does not exist yet is waited for, and so is a daemon that is (re)starting.
--timeout=0 checks once; a negative timeout waits a week.`,
		Example: `  minikubelet wait --for=condition=Ready pod/etcd -n kube-system --timeout=120s
  minikubelet wait --for=delete pod/web`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if forSpec == "" {
				return kubectlExit(errors.New("--for must be set: condition=NAME[=VALUE], delete or create"))
			}
			cond, err := kubectl.ParseFor(forSpec)
			if err != nil {
				return kubectlExit(err)
			}
			return runOnPods(cmd, args, func(ctx context.Context, names []string) error {
				if len(names) == 0 {
					return fmt.Errorf("resource(s) were provided, but no name was specified")
				}
				c := co.client()
				for _, n := range names {
					if err := kubectl.Wait(ctx, c, co.namespace, n, cond, timeout, cmd.OutOrStdout(), cmd.ErrOrStderr()); err != nil {
						return err
					}
				}
				return nil
			})
		},
	}
	co.addFlags(cmd.Flags(), false)
	cmd.Flags().StringVar(&forSpec, "for", "", "condition=NAME[=VALUE], delete or create")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "how long to wait for each pod")
	return cmd
}
