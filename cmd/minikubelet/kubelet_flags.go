package main

// kubelet_flags.go: the kubelet's command line as kubeadm's kubelet.service
// passes it (10-kubeadm.conf: $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS
// $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS, the last two from
// /var/lib/kubelet/kubeadm-flags.env and /etc/default/kubelet). The binary
// invoked as `kubelet` is `minikubelet run`. What minikubelet applies is a
// flag of run (--kubeconfig, --config, --node-ip, --hostname-override, ...);
// every other flag is accepted, left out, and named in one warning at
// start, with the reason when it is a kubelet flag that does not apply. An
// unknown flag is never a crash.

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/pflag"
)

// kubeletNotApplied are kubelet flags kubeadm (or its users) commonly pass
// that mean nothing for minikubelet, with the reason given in the warning.
var kubeletNotApplied = map[string]string{
	"container-runtime-endpoint": "minikubelet is the container runtime (no CRI)",
	"image-service-endpoint":     "minikubelet is the container runtime (no CRI)",
	"container-runtime":          "minikubelet is the container runtime (no CRI)",
	"runtime-request-timeout":    "minikubelet is the container runtime (no CRI)",
	"pod-infra-container-image":  "the pod sandbox is minikubelet-shim, no pause image",
	"network-plugin":             "pods' network is CNI from --cni-conf-dir",
	"cert-dir":                   "client certificate rotation is not implemented (kubelet.conf's certificate is used as is)",
	"rotate-certificates":        "client certificate rotation is not implemented (kubelet.conf's certificate is used as is)",
	"fail-swap-on":               "swap is not checked",
	"cgroups-per-qos":            "the kubepods tree is always built",
	"feature-gates":              "no kubelet feature gates",
}

// ignoredRunFlags are the flags splitRunArgs left out of a run command line,
// for the one warning runDaemon logs.
var ignoredRunFlags []string

// kubeletArgs turns argv into the command line cobra parses: the binary
// invoked as kubelet is `run`; the flags of run that its flag set does not
// define are left out (and kept in ignoredRunFlags).
func kubeletArgs(argv []string) []string {
	if len(argv) == 0 {
		return nil
	}
	args := append([]string(nil), argv[1:]...)
	if filepath.Base(argv[0]) == "kubelet" {
		args = append([]string{"run"}, args...)
	}
	if len(args) == 0 || args[0] != "run" {
		return args
	}
	keep, ignored := splitRunArgs(newRunCmd().Flags(), args[1:])
	ignoredRunFlags = ignored
	return append([]string{"run"}, keep...)
}

// splitRunArgs keeps the arguments fs knows and leaves out every other flag
// (with its value: run takes no positional arguments, so a word after an
// unknown flag is its value). ignored names each left-out flag once, with
// the reason when it is a known kubelet flag.
func splitRunArgs(fs *pflag.FlagSet, args []string) (keep, ignored []string) {
	seen := map[string]bool{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			keep = append(keep, args[i:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			keep = append(keep, a)
			continue
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if known(fs, a, name) {
			keep = append(keep, a)
			if f := lookup(fs, a, name); f != nil && !hasValue && f.NoOptDefVal == "" && i+1 < len(args) {
				i++
				keep = append(keep, args[i])
			}
			continue
		}
		if !hasValue && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
			i++ // its value
		}
		if !seen[name] {
			seen[name] = true
			if why, ok := kubeletNotApplied[name]; ok {
				ignored = append(ignored, fmt.Sprintf("--%s (%s)", name, why))
			} else {
				ignored = append(ignored, fmt.Sprintf("--%s (unknown)", name))
			}
		}
	}
	sort.Strings(ignored)
	return keep, ignored
}

func lookup(fs *pflag.FlagSet, arg, name string) *pflag.Flag {
	if !strings.HasPrefix(arg, "--") {
		// -v 2, -v=2: single-dash kubelet habits (klog's -v) and shorthands.
		if len(name) == 1 {
			if f := fs.ShorthandLookup(name); f != nil {
				return f
			}
		}
	}
	return fs.Lookup(name)
}

func known(fs *pflag.FlagSet, arg, name string) bool {
	if name == "help" || name == "h" {
		return true
	}
	return lookup(fs, arg, name) != nil
}

// warnIgnoredFlags is the one warning at start about the command line.
func warnIgnoredFlags(log *slog.Logger) {
	if len(ignoredRunFlags) > 0 {
		log.Warn("kubelet flags accepted but not applied", "flags", strings.Join(ignoredRunFlags, ", "))
	}
}

// bootstrapCheck: with --bootstrap-kubeconfig the kubelet does a TLS
// bootstrap (a CSR signed by the cluster) when --kubeconfig does not exist
// yet. minikubelet does not: kubeadm init writes kubelet.conf itself, so
// init needs none; kubeadm join does, and is refused here with the reason.
func bootstrapCheck(kubeconfig, bootstrap string) error {
	if kubeconfig == "" || bootstrap == "" {
		return nil
	}
	if _, err := os.Stat(kubeconfig); err == nil {
		return nil // as the kubelet: an existing kubeconfig wins, the bootstrap file is not read
	}
	return fmt.Errorf("--kubeconfig %s does not exist and TLS bootstrap with --bootstrap-kubeconfig %s is not supported "+
		"(kubeadm init writes kubelet.conf itself; for a joining node write kubelet.conf with a client certificate of system:node:<name>)",
		kubeconfig, bootstrap)
}
