package main

// describe.go: `minikubelet describe pod NAME`.

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/minikubelet/minikubelet/internal/api/kubectl"
)

func init() { registerCommand(newDescribeCmd) }

func newDescribeCmd() *cobra.Command {
	var co apiClientOptions
	cmd := &cobra.Command{
		Use:   "describe pod [NAME...]",
		Short: "Show a pod in detail as kubectl describe does, with its cgroup slice, scopes, limits and usage",
		Example: `  minikubelet describe pod web
  minikubelet describe pod/etcd -n kube-system`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runOnPods(cmd, args, func(ctx context.Context, names []string) error {
				return kubectl.DescribePods(ctx, co.client(), co.namespace, names, nil, cmd.OutOrStdout())
			})
		},
	}
	co.addFlags(cmd.Flags(), false)
	return cmd
}
