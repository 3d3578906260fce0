package main

// daemonpaths.go: client commands that read the daemon's files (exec, image)
// learn where they are from the daemon itself, so --socket alone is enough.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/minikubelet/minikubelet/internal/api"
)

// resolveRootDir is --root-dir when given; else the root dir of the daemon
// answering on socket; else (no daemon on the default socket) the default.
// A --socket given explicitly must answer: its daemon's files are meant.
func resolveRootDir(cmd *cobra.Command, rootDir, socket string) (string, error) {
	if cmd.Flags().Changed("root-dir") {
		return rootDir, nil
	}
	cfg, err := daemonConfig(cmd.Context(), socket)
	if err == nil {
		return cfg.RootDir, nil
	}
	if cmd.Flags().Changed("socket") {
		return "", fmt.Errorf("cannot learn the daemon's root dir from %s (pass --root-dir): %w", socket, err)
	}
	return rootDir, nil
}

// daemonConfig asks the daemon on socket for its paths.
func daemonConfig(ctx context.Context, socket string) (*api.DaemonConfig, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cfg, err := api.NewClient(socket).Config(ctx)
	if apierrors.IsNotFound(err) {
		return nil, errors.New("the daemon does not tell its paths (an older minikubelet?)")
	}
	return cfg, err
}
