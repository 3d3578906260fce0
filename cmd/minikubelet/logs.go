package main

// logs.go: `minikubelet logs POD`, read straight from the CRI log files, so
// it works while the daemon is down.

import (
	"errors"
	"strings"

	"github.com/spf13/cobra"

	"github.com/minikubelet/minikubelet/internal/api"
	"github.com/minikubelet/minikubelet/internal/api/kubectl"
)

func init() { registerCommand(newLogsCmd) }

func newLogsCmd() *cobra.Command {
	var co apiClientOptions
	o := kubectl.LogsOptions{Tail: -1}
	cmd := &cobra.Command{
		Use:   "logs POD [-c CONTAINER] [-f] [--previous] [--tail N] [--timestamps]",
		Short: "Print a container's log from " + defaultLogDir,
		Long: `Logs reads <log-dir>/<namespace>_<pod>_<uid>/<container>/<restart>.log (and its rotated
files) directly. The daemon, when it answers, only tells which pod UID, containers and
restart count are current; without it the newest files are read.`,
		Example: `  minikubelet logs web
  minikubelet logs etcd -n kube-system -f --tail 20
  minikubelet logs web -c sidecar --previous`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pod := args[0]
			if t, n, ok := strings.Cut(pod, "/"); ok && (t == "pod" || t == "pods" || t == "po") {
				pod = n
			}
			ctx, stop := clientContext(cmd)
			defer stop()
			o.Namespace, o.Pod, o.Warn = co.namespace, pod, cmd.ErrOrStderr()
			if !cmd.Flags().Changed("log-dir") {
				// The daemon, when it answers, knows its --log-dir; when it
				// is down the default (or --log-dir) is read.
				if cfg, err := daemonConfig(ctx, co.socket); err == nil {
					o.LogDir = cfg.LogDir
				} else if cmd.Flags().Changed("socket") && !errors.Is(err, api.ErrUnreachable) {
					return kubectlExit(err)
				}
			}
			return kubectlExit(kubectl.Logs(ctx, co.client(), o, cmd.OutOrStdout()))
		},
	}
	co.addFlags(cmd.Flags(), false)
	fs := cmd.Flags()
	fs.StringVarP(&o.Container, "container", "c", "", "container name (default: the kubectl.kubernetes.io/default-container annotation, else the first container)")
	fs.BoolVarP(&o.Follow, "follow", "f", false, "keep printing what is written, across rotations, until the container ends")
	fs.BoolVarP(&o.Previous, "previous", "p", false, "print the previous instance of the container")
	fs.IntVar(&o.Tail, "tail", -1, "lines from the end to print (-1: all)")
	fs.BoolVar(&o.Timestamps, "timestamps", false, "prefix each line with its RFC3339Nano time")
	fs.StringVar(&o.LogDir, "log-dir", defaultLogDir, "container log root (CRI layout), as given to `minikubelet run`; when not given, the daemon answering on --socket tells it")
	fs.StringVar(&o.NodeName, "node-name", defaultNodeName(), "node name, to match <pod>-<node> folders when the daemon is down")
	return cmd
}
