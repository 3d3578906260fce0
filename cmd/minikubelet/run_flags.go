package main

// run_flags.go: the flags of `minikubelet run` beyond the shared contract
// of options.go (the reconciler, network and registry knobs).

import (
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/minikubelet/minikubelet/internal/daemon"
	"github.com/minikubelet/minikubelet/runtime/network"
)

type runExtraOptions struct {
	crashLoopMax       time.Duration
	hostnameOverride   string
	podPidsLimit       int64
	readOnlyPort       int
	address            string
	resolvConf         string
	clusterDNS         []string
	clusterDomain      string
	insecureRegistries []string
	parallelPods       int
	podLogRetention    time.Duration
	network            network.Config
	// graceful node shutdown (kubelet names)
	shutdownGracePeriod             time.Duration
	shutdownGracePeriodCriticalPods time.Duration
	cluster                         clusterFlags
}

func (o *runExtraOptions) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.hostnameOverride, "hostname-override", "", "the kubelet's name for --node-name (kubeadm's kubeadm-flags.env passes it when the node name is not the hostname); wins over --node-name")
	fs.DurationVar(&o.crashLoopMax, "crashloop-max", 300*time.Second, "cap of the CrashLoopBackOff restart delay (kubelet: 300s; the first delay is 10s or this cap when lower)")
	fs.Int64Var(&o.podPidsLimit, "pod-pids-limit", -1, "maximum number of processes per pod (-1: unlimited, the kubelet's default)")
	fs.IntVar(&o.readOnlyPort, "read-only-port", 0, "TCP port of the read-only API (0: off, the default; the kubelet's was 10255). It has no authentication: "+
		"anyone who can reach --address on this port can list every pod with its spec (env values included), status, events and /metrics")
	fs.StringVar(&o.address, "address", "0.0.0.0", "IP address the read-only port listens on (the kubelet's default 0.0.0.0 is every interface; 127.0.0.1 keeps it on this host)")
	fs.StringVar(&o.resolvConf, "resolv-conf", "/etc/resolv.conf", "the node's resolver file that pods' DNS is based on (dnsPolicy Default, and ClusterFirst without --cluster-dns); "+
		"when it is systemd-resolved's stub (a loopback nameserver such as 127.0.0.53), /run/systemd/resolve/resolv.conf is used, as kubeadm configures the kubelet; \"\" disables lookups (127.0.0.1, search .)")
	fs.StringSliceVar(&o.clusterDNS, "cluster-dns", nil, "comma-separated IP addresses of the cluster DNS server; pods with dnsPolicy ClusterFirst use only these, with the cluster's search list and ndots:5")
	fs.StringVar(&o.clusterDomain, "cluster-domain", "cluster.local", "the cluster's DNS domain, searched by ClusterFirst pods (the kubelet's flag has no default; kubeadm sets cluster.local)")
	fs.StringSliceVar(&o.insecureRegistries, "insecure-registry", nil, "registry host[:port] reached over plain HTTP (repeatable)")
	fs.IntVar(&o.parallelPods, "parallel-pods", 8, "how many pods are started or stopped at once")
	fs.DurationVar(&o.podLogRetention, "pod-log-retention", 24*time.Hour, "how long the logs of a deleted or replaced pod are kept after their last write (0: forever)")
	o.network.AddFlags(fs)
	fs.DurationVar(&o.shutdownGracePeriod, "shutdown-grace-period", 30*time.Second,
		"graceful node shutdown: how long a logind delay inhibitor lock holds a node shutdown back while pods are stopped "+
			"(raises logind's InhibitDelayMaxSec with /etc/systemd/logind.conf.d/99-minikubelet.conf when lower); "+
			"0 turns it off. The kubelet's default is 0s")
	fs.DurationVar(&o.shutdownGracePeriodCriticalPods, "shutdown-grace-period-critical-pods", 10*time.Second,
		"the part of --shutdown-grace-period reserved for critical pods (priority >= 2000000000, or priorityClassName "+
			"system-node-critical or system-cluster-critical), stopped after the others; must be <= --shutdown-grace-period. "+
			"The kubelet's default is 0s; minikubelet's 30s and 10s are the kubelet documentation's example")
	o.cluster.addFlags(fs)
}

// daemonOptions turns the command line into the daemon's options.
func (o *runExtraOptions) daemonOptions(base *daemonOptions) daemon.Options {
	d := daemon.Options{
		NodeName: base.nodeName, RootDir: base.rootDir, ManifestDir: base.manifestDir, LogDir: base.logDir,
		Socket: base.socket, CgroupDriver: base.cgroupDriver, CgroupRoot: base.cgroupRoot, Resync: base.resync,
		CrashLoopMax: o.crashLoopMax, PodPidsLimit: o.podPidsLimit, InsecureRegistries: o.insecureRegistries,
		Parallel: o.parallelPods, Network: o.network, PodLogRetention: o.podLogRetention,
		ShutdownGracePeriod: o.shutdownGracePeriod, ShutdownGracePeriodCriticalPods: o.shutdownGracePeriodCriticalPods,
	}
	if o.hostnameOverride != "" {
		// kubelet: the override is lower-cased and trimmed like the hostname.
		d.NodeName = strings.ToLower(strings.TrimSpace(o.hostnameOverride))
	}
	d.ReadOnlyPort, d.Address = o.readOnlyPort, o.address
	d.ResolvConf, d.NoResolvConf = o.resolvConf, o.resolvConf == ""
	d.ClusterDNS, d.ClusterDomain = o.clusterDNS, o.clusterDomain
	return d
}
