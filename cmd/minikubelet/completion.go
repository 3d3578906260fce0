package main

// completion.go: what `minikubelet completion bash|zsh|fish` (cobra's
// generated scripts) completes beyond command and flag names: pod names
// and containers asked from the daemon on --socket, and the fixed values
// of -o and --cgroup-driver.

import (
	"context"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/minikubelet/minikubelet/internal/api"
)

// addCompletions wires the completions into the command tree.
func addCompletions(root *cobra.Command) {
	root.CompletionOptions.HiddenDefaultCmd = false
	for _, c := range root.Commands() {
		switch c.Name() {
		case "get":
			c.ValidArgsFunction = func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
				if len(args) == 0 {
					return []string{"pods"}, cobra.ShellCompDirectiveNoFileComp
				}
				return podNames(cmd)
			}
			_ = c.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(
				[]string{"wide", "json", "yaml", "name", "jsonpath=", "custom-columns="}, cobra.ShellCompDirectiveNoSpace|cobra.ShellCompDirectiveNoFileComp))
		case "describe", "wait":
			c.ValidArgsFunction = func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
				return podNames(cmd)
			}
		case "logs", "exec":
			c.ValidArgsFunction = func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
				if len(args) > 0 {
					return nil, cobra.ShellCompDirectiveDefault
				}
				return podNames(cmd)
			}
			_ = c.RegisterFlagCompletionFunc("container", func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
				if len(args) == 0 {
					return nil, cobra.ShellCompDirectiveNoFileComp
				}
				return podContainerNames(cmd, args[0])
			})
		case "run", "validate":
			_ = c.RegisterFlagCompletionFunc("cgroup-driver", cobra.FixedCompletions(
				[]string{"auto", "systemd", "cgroupfs"}, cobra.ShellCompDirectiveNoFileComp))
		}
	}
}

func completionClient(cmd *cobra.Command) (*api.Client, string, context.Context, context.CancelFunc) {
	socket, _ := cmd.Flags().GetString("socket")
	if socket == "" {
		socket = defaultSocket
	}
	ns, _ := cmd.Flags().GetString("namespace")
	if ns == "" {
		ns = "default"
	}
	if all, _ := cmd.Flags().GetBool("all-namespaces"); all {
		ns = ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	return api.NewClient(socket), ns, ctx, cancel
}

// podNames lists the pods of the namespace, by their names without the
// -<node> suffix (what users type) and in full.
func podNames(cmd *cobra.Command) ([]string, cobra.ShellCompDirective) {
	c, ns, ctx, cancel := completionClient(cmd)
	defer cancel()
	list, err := c.ListPods(ctx, ns, "")
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveError
	}
	var out []string
	for _, p := range list.Items {
		if p.Spec.NodeName != "" {
			if short, ok := strings.CutSuffix(p.Name, "-"+p.Spec.NodeName); ok {
				out = append(out, short)
			}
		}
		out = append(out, p.Name)
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

func podContainerNames(cmd *cobra.Command, pod string) ([]string, cobra.ShellCompDirective) {
	c, ns, ctx, cancel := completionClient(cmd)
	defer cancel()
	p, err := c.GetPod(ctx, ns, pod)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveError
	}
	var out []string
	for _, ct := range p.Spec.InitContainers {
		out = append(out, ct.Name)
	}
	for _, ct := range p.Spec.Containers {
		out = append(out, ct.Name)
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}
