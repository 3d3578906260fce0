package main

// run.go: `minikubelet run`, the daemon. For now it watches the manifest
// folder and logs what the reconciler will be asked to do; the reconciler
// work replaces the body of runDaemon, keeping the flags of daemonOptions.

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/minikubelet/minikubelet/manifests"
	"k8s.io/apimachinery/pkg/types"
)

func init() { registerCommand(newRunCmd) }

func newRunCmd() *cobra.Command {
	var opts daemonOptions
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
			return runDaemon(ctx, &opts, log)
		},
	}
	opts.addFlags(cmd.Flags())
	cmd.Flags().IntVarP(&verbosity, "v", "v", 0, "log verbosity: 0 info, 4 debug (kubelet's -v habit)")
	return cmd
}

// newLogger writes text logs to stderr; each -v step lowers the level by
// one, so -v 4 reaches slog's Debug.
func newLogger(verbosity int) *slog.Logger {
	level := slog.LevelInfo - slog.Level(verbosity)
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

func runDaemon(ctx context.Context, opts *daemonOptions, log *slog.Logger) error {
	src, err := manifests.NewSource(manifests.Config{
		Dir:      opts.manifestDir,
		NodeName: opts.nodeName,
		Resync:   opts.resync,
		Logger:   log.With("component", "manifests"),
	})
	if err != nil {
		return err
	}
	log.Info("minikubelet starting", "manifestDir", src.Dir(), "node", opts.nodeName, "resync", opts.resync)
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx) }()

	var last manifests.Snapshot
	for {
		select {
		case <-ctx.Done():
			log.Info("minikubelet stopping (pods keep running)", "reason", context.Cause(ctx))
			return nil
		case err := <-done:
			if err == nil && ctx.Err() != nil {
				return nil
			}
			if err == nil {
				err = errors.New("manifest source stopped")
			}
			return err
		case <-src.Changed():
			snap := src.Snapshot()
			logSnapshotChanges(log, last, snap)
			last = snap
		}
	}
}

// logSnapshotChanges logs each desired pod added, changed (a new UID for
// the same name: the kubelet replaces the pod) or removed, and each file
// error that appeared or was fixed.
func logSnapshotChanges(log *slog.Logger, prev, cur manifests.Snapshot) {
	type entry struct {
		uid  types.UID
		file string
	}
	before := map[string]entry{}
	for _, p := range prev.Pods {
		before[p.Pod.Namespace+"/"+p.Pod.Name] = entry{p.Pod.UID, p.File}
	}
	seen := map[string]bool{}
	for _, p := range cur.Pods {
		key := p.Pod.Namespace + "/" + p.Pod.Name
		seen[key] = true
		old, had := before[key]
		switch {
		case !had:
			log.Info("desired pod added", "pod", key, "uid", p.Pod.UID, "file", p.File)
		case old.uid != p.Pod.UID:
			log.Info("desired pod changed (replaced by a new pod)", "pod", key, "oldUID", old.uid, "uid", p.Pod.UID, "file", p.File)
		}
	}
	for key, old := range before {
		if !seen[key] {
			log.Info("desired pod removed", "pod", key, "uid", old.uid, "file", old.file)
		}
	}
	prevErrs := map[string]string{}
	for _, fe := range prev.Errors {
		prevErrs[fe.Path] = fe.Error()
	}
	curErrs := map[string]bool{}
	for _, fe := range cur.Errors {
		curErrs[fe.Path] = true
		if prevErrs[fe.Path] == fe.Error() {
			continue
		}
		kept := ""
		for _, p := range cur.Pods {
			if p.File == fe.Path && p.Stale {
				kept = p.Pod.Namespace + "/" + p.Pod.Name
			}
		}
		for _, line := range fe.Lines() {
			if kept != "" {
				log.Warn("invalid manifest; last good spec keeps running", "error", line, "pod", kept)
			} else {
				log.Warn("invalid manifest", "error", line)
			}
		}
	}
	for path := range prevErrs {
		if !curErrs[path] {
			log.Info("manifest error resolved", "file", path)
		}
	}
}
