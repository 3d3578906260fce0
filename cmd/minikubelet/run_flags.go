package main

// run_flags.go: the flags of `minikubelet run` beyond the shared contract
// of options.go (the reconciler, network and registry knobs).

import (
	"strconv"
	"time"

	"github.com/spf13/pflag"

	"github.com/minikubelet/minikubelet/internal/daemon"
	"github.com/minikubelet/minikubelet/runtime/network"
)

type runExtraOptions struct {
	crashLoopMax       time.Duration
	podPidsLimit       int64
	readOnlyPort       int
	insecureRegistries []string
	parallelPods       int
	podLogRetention    time.Duration
	network            network.Config
	cluster            clusterFlags
}

func (o *runExtraOptions) addFlags(fs *pflag.FlagSet) {
	fs.DurationVar(&o.crashLoopMax, "crashloop-max", 300*time.Second, "cap of the CrashLoopBackOff restart delay (kubelet: 300s; the first delay is 10s or this cap when lower)")
	fs.Int64Var(&o.podPidsLimit, "pod-pids-limit", -1, "maximum number of processes per pod (-1: unlimited, the kubelet's default)")
	fs.IntVar(&o.readOnlyPort, "read-only-port", 0, "TCP port of the read-only API (0: off, the default; the kubelet's was 10255)")
	fs.StringSliceVar(&o.insecureRegistries, "insecure-registry", nil, "registry host[:port] reached over plain HTTP (repeatable)")
	fs.IntVar(&o.parallelPods, "parallel-pods", 8, "how many pods are started or stopped at once")
	fs.DurationVar(&o.podLogRetention, "pod-log-retention", 24*time.Hour, "how long the logs of a deleted or replaced pod are kept after their last write (0: forever)")
	o.network.AddFlags(fs)
	o.cluster.addFlags(fs)
}

// daemonOptions turns the command line into the daemon's options.
func (o *runExtraOptions) daemonOptions(base *daemonOptions) daemon.Options {
	d := daemon.Options{
		NodeName: base.nodeName, RootDir: base.rootDir, ManifestDir: base.manifestDir, LogDir: base.logDir,
		Socket: base.socket, CgroupDriver: base.cgroupDriver, CgroupRoot: base.cgroupRoot, Resync: base.resync,
		CrashLoopMax: o.crashLoopMax, PodPidsLimit: o.podPidsLimit, InsecureRegistries: o.insecureRegistries,
		Parallel: o.parallelPods, Network: o.network, PodLogRetention: o.podLogRetention,
	}
	if o.readOnlyPort > 0 {
		d.ReadOnlyAddr = ":" + strconv.Itoa(o.readOnlyPort)
	}
	return d
}
