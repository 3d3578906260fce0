package main

// get.go: `minikubelet get pods`, and the flags and error printing every
// kubectl-shaped client command (get, describe, logs, wait) shares.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/minikubelet/minikubelet/internal/api"
	"github.com/minikubelet/minikubelet/internal/api/kubectl"
)

func init() { registerCommand(newGetCmd) }

// apiClientOptions are the flags of every client command.
type apiClientOptions struct {
	socket        string
	namespace     string
	allNamespaces bool
}

func (o *apiClientOptions) addFlags(fs *pflag.FlagSet, withAll bool) {
	fs.StringVar(&o.socket, "socket", defaultSocket, "unix socket of the local API (as given to `minikubelet run`)")
	fs.StringVarP(&o.namespace, "namespace", "n", "default", "namespace of the pod")
	if withAll {
		fs.BoolVarP(&o.allNamespaces, "all-namespaces", "A", false, "list pods of every namespace")
	}
}

func (o *apiClientOptions) client() *api.Client { return api.NewClient(o.socket) }

// clientContext ends on SIGINT/SIGTERM, so -w and -f stop cleanly.
func clientContext(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
}

// runOnPods is the body of the client commands that take pod names in
// kubectl's forms (pods NAME..., pod/NAME): it parses args and runs do on
// the names with a clientContext; a malformed argument and do's error both
// end as kubectl's exit (kubectlExit).
func runOnPods(cmd *cobra.Command, args []string, do func(ctx context.Context, names []string) error) error {
	names, err := kubectl.ParsePodArgs(args)
	if err != nil {
		return kubectlExit(err)
	}
	ctx, stop := clientContext(cmd)
	defer stop()
	return kubectlExit(do(ctx, names))
}

// kubectlExit prints err as kubectl would and exits 1 (nil stays nil;
// errors already shown to the user are not printed twice).
func kubectlExit(err error) error {
	if err == nil || errors.Is(err, context.Canceled) {
		return nil
	}
	var rep *kubectl.ReportedError
	if !errors.As(err, &rep) {
		fmt.Fprintln(os.Stderr, kubectl.FormatError(err))
	}
	return &exitError{code: 1}
}

func newGetCmd() *cobra.Command {
	var co apiClientOptions
	var o kubectl.GetOptions
	cmd := &cobra.Command{
		Use:   "get pods [NAME...] [-o wide|json|yaml|name|jsonpath=...|custom-columns=...] [-w]",
		Short: "List pods as kubectl get does",
		Long: `Get prints the node's pods in kubectl's columns (NAME READY STATUS RESTARTS AGE;
-o wide adds IP NODE QOS). -o json prints one v1 PodList (a single NAME: the Pod).
Names may omit the -<node> suffix of static pods.`,
		Example: `  minikubelet get pods
  minikubelet get pods -A -o wide
  minikubelet get pod etcd -n kube-system -o yaml
  minikubelet get pods -w
  minikubelet get pods -o jsonpath='{.items[*].status.podIP}'
  minikubelet get pods -o custom-columns=NAME:.metadata.name,IP:.status.podIP`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runOnPods(cmd, args, func(ctx context.Context, names []string) error {
				o.Namespace, o.AllNamespaces = co.namespace, co.allNamespaces
				return kubectl.Get(ctx, co.client(), o, names, cmd.OutOrStdout(), cmd.ErrOrStderr())
			})
		},
	}
	co.addFlags(cmd.Flags(), true)
	cmd.Flags().StringVarP(&o.Output, "output", "o", "", "output format: wide, json, yaml, name, jsonpath=TEMPLATE or custom-columns=HEADER:PATH,...")
	cmd.Flags().BoolVarP(&o.Watch, "watch", "w", false, "after listing, print each change")
	cmd.Flags().StringVarP(&o.LabelSelector, "selector", "l", "", "label selector (e.g. app=web,tier!=db)")
	cmd.Flags().BoolVar(&o.NoHeaders, "no-headers", false, "omit the table header")
	return cmd
}
