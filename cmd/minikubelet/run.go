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
	"github.com/minikubelet/minikubelet/runtime/network"
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
SIGTERM or SIGINT stops the daemon and leaves the pods running, like the kubelet.

With --read-only-port the pods' API (get, describe, events, /metrics) is also
served over plain TCP without authentication, on --address: by default
0.0.0.0, every interface, like the kubelet. Anyone who can reach that port
reads every pod's spec, env values included. Use --address 127.0.0.1 (or a
firewall) unless the network is trusted.

What the daemon writes (defaults in brackets), and nothing else:
  --root-dir [/var/lib/minikubelet]
    minikubelet.lock        one daemon per root dir (holds its PID)
    images/                 the image store: blobs/, layers/, rootfs/ (containers' overlay
                            roots, mounted while they run), tmp/, and import/ (archives
                            dropped here are imported)
    pods/<uid>/             per pod: sandbox/ (the pause's spec, state, sup.sock,
                            supervisor.log, netns bind mount), containers/<id>/ (spec,
                            state, exit records), etc-hosts, etc-hostname, resolv.conf,
                            shm/ (a tmpfs mount), volumes/ (emptyDir)
    cni/net.d/` + network.DefaultConfFile + `
                            the default conflist, used only while --cni-conf-dir holds none
    cni/ipam/, cni/cache/   pod IP allocations of the default conflist, the CNI cache
    cgroupfs/<root>/        ownership markers of the cgroupfs driver
  --log-dir [/var/log/pods]
    <namespace>_<pod>_<uid>/<container>/<restart>.log   container logs (CRI format)
  --socket [/run/minikubelet/minikubelet.sock]   the local API (0600), and its folder
  cgroups   systemd: transient units <cgroup-root>.slice, its QoS and pod slices and one
            minikubelet-<id>.scope per sandbox and container; cgroupfs: the folders
            <cgroup-root>/{burstable,besteffort}/pod<uid>/<id> in every hierarchy
  network   what the CNI plugins of the config in use make: with the default conflist
            the bridge ` + network.DefaultBridge + `, one veth per pod, the node-level chains
            MINIKUBELET-POD-MASQ (nat) and MINIKUBELET-POD-FORWARD (filter) with one jump each
            from POSTROUTING and FORWARD (kept when the daemon stops, like the bridge),
            portmap's CNI-HOSTPORT-* for hostPorts, and net.ipv4.ip_forward=1
  volumes   hostPath volumes of type DirectoryOrCreate/FileOrCreate create their path

It only reads --manifest-dir, --cni-conf-dir and --cni-bin-dir, <root-dir>/config.json
and /var/lib/kubelet/config.json (registry credentials); it never writes them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := newLogger(verbosity)
			// One format everywhere: packages that log through slog's default
			// (and the standard log package) write the same text lines.
			slog.SetDefault(log)
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
	warnIgnoredFlags(log)
	if err := extra.cluster.apply(&o, log); err != nil {
		return err
	}
	return daemon.Run(ctx, o)
}
