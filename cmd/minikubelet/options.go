package main

import (
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// Defaults shared by the daemon and the client commands (the command-line contract).
const (
	defaultManifestDir = "/etc/kubernetes/manifests"
	defaultRootDir     = "/var/lib/minikubelet"
	defaultLogDir      = "/var/log/pods"
	defaultSocket      = "/run/minikubelet/minikubelet.sock"
	defaultCgroupRoot  = "kubepods"
	defaultResync      = 20 * time.Second
)

// defaultNodeName is the lower-cased hostname, as the kubelet's --hostname-override default.
func defaultNodeName() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	return strings.ToLower(h)
}

// nodeOptions are the flags every command that reasons about pods needs.
type nodeOptions struct {
	nodeName string
	rootDir  string
}

func (o *nodeOptions) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.nodeName, "node-name", defaultNodeName(), "node name; static pods are named <name>-<node-name>")
	fs.StringVar(&o.rootDir, "root-dir", defaultRootDir, "directory for images, pod state and exit records")
}

// daemonOptions are the flags of `minikubelet run`.
type daemonOptions struct {
	nodeOptions
	manifestDir  string
	logDir       string
	socket       string
	cgroupDriver string
	cgroupRoot   string
	resync       time.Duration
}

func (o *daemonOptions) addFlags(fs *pflag.FlagSet) {
	o.nodeOptions.addFlags(fs)
	fs.StringVar(&o.manifestDir, "manifest-dir", defaultManifestDir, "folder of Pod manifests to run")
	fs.StringVar(&o.logDir, "log-dir", defaultLogDir, "container log root (CRI layout)")
	fs.StringVar(&o.socket, "socket", defaultSocket, "unix socket of the local API")
	fs.StringVar(&o.cgroupDriver, "cgroup-driver", "auto", "auto|systemd|cgroupfs (auto: systemd when /run/systemd/system exists)")
	fs.StringVar(&o.cgroupRoot, "cgroup-root", defaultCgroupRoot, "name of the root of the pod cgroup tree")
	fs.DurationVar(&o.resync, "resync", defaultResync, "period of the full re-list of the manifest folder and of observed state")
}
