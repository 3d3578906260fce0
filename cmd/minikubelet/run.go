package main

// run.go: `minikubelet run`, the daemon (assembled in internal/daemon).
// SIGTERM or SIGINT stops the daemon only: pods keep running.

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/minikubelet/minikubelet/internal/daemon"
)

func init() { registerCommand(newRunCmd) }

func newRunCmd() *cobra.Command {
	var opts daemonOptions
	var extra runExtraOptions
	var verbosity int
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the pods of the manifest folder (the daemon)",
		Long: `Run watches --manifest-dir and keeps every static pod it defines running.
SIGTERM or SIGINT stops the daemon and leaves the pods running, like the kubelet.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := newLogger(verbosity)
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return runDaemon(ctx, &opts, &extra, log)
		},
	}
	opts.addFlags(cmd.Flags())
	extra.addFlags(cmd.Flags())
	cmd.Flags().IntVarP(&verbosity, "v", "v", 0, "log verbosity: 0 info, 4 debug (kubelet's -v habit)")
	return cmd
}

// newLogger writes text logs to stderr; each -v step lowers the level by
// one, so -v 4 reaches slog's Debug.
func newLogger(verbosity int) *slog.Logger {
	level := slog.LevelInfo - slog.Level(verbosity)
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

func runDaemon(ctx context.Context, opts *daemonOptions, extra *runExtraOptions, log *slog.Logger) error {
	o := extra.daemonOptions(opts)
	o.Log = log
	if err := extra.cluster.apply(&o, log); err != nil {
		return err
	}
	return daemon.Run(ctx, o)
}
