package main

// cluster_flags.go: the flags of cluster mode and the endpoints the kubelet
// serves (healthz, its API port), with the kubelet's names and defaults.

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	v1 "k8s.io/api/core/v1"

	"github.com/minikubelet/minikubelet/internal/cluster"
	"github.com/minikubelet/minikubelet/internal/daemon"
)

type clusterFlags struct {
	kubeconfig         string
	bootstrapConfig    string
	config             string
	nodeIP             string
	nodeLabels         map[string]string
	taints             []string
	registerNode       bool
	healthzPort        int
	healthzBindAddress string
	port               int
	tlsCertFile        string
	tlsKeyFile         string
	clientCAFile       string
	statusUpdateFreq   time.Duration
	statusReportFreq   time.Duration
	maxPods            int
	fs                 *pflag.FlagSet
}

func (o *clusterFlags) addFlags(fs *pflag.FlagSet) {
	o.fs = fs
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig of the API server to report into as a node (cluster mode); without it minikubelet runs standalone")
	fs.StringVar(&o.bootstrapConfig, "bootstrap-kubeconfig", "", "the kubelet's TLS bootstrap kubeconfig: accepted (kubeadm's kubelet.service passes it) and not read while --kubeconfig exists; "+
		"TLS bootstrap itself is not supported, so a missing --kubeconfig with this flag is an error (kubeadm init writes kubelet.conf itself)")
	fs.StringVar(&o.config, "config", "", "a kubelet.config.k8s.io/v1beta1 KubeletConfiguration file (kubeadm's /var/lib/kubelet/config.yaml); flags override it")
	fs.StringVar(&o.nodeIP, "node-ip", "", "the Node's InternalIP (default: the IPv4 address of the default-route interface)")
	fs.StringToStringVar(&o.nodeLabels, "node-labels", nil, "labels added to the Node at registration: key=value,...")
	fs.StringSliceVar(&o.taints, "register-with-taints", nil, "taints the Node is registered with: key=value:Effect,...")
	fs.BoolVar(&o.registerNode, "register-node", true, "register the Node with the API server")
	fs.IntVar(&o.healthzPort, "healthz-port", 10248, "port of the healthz endpoint (0: off)")
	fs.StringVar(&o.healthzBindAddress, "healthz-bind-address", "127.0.0.1", "address of the healthz endpoint")
	fs.IntVar(&o.port, "port", 10250, "port of the kubelet API in cluster mode")
	fs.StringVar(&o.tlsCertFile, "tls-cert-file", "", "serving certificate of the kubelet API (default: self-signed under <root-dir>/pki)")
	fs.StringVar(&o.tlsKeyFile, "tls-private-key-file", "", "key of --tls-cert-file")
	fs.StringVar(&o.clientCAFile, "client-ca-file", "", "CA bundle that client certificates of the kubelet API are verified against")
	fs.DurationVar(&o.statusUpdateFreq, "node-status-update-frequency", cluster.DefaultNodeStatusUpdateFrequency, "how often the Node's status is computed and sent when changed")
	o.statusReportFreq = cluster.DefaultNodeStatusReportFrequency
	o.maxPods = cluster.DefaultMaxPods
	fs.IntVar(&o.maxPods, "max-pods", cluster.DefaultMaxPods, "the Node's pods capacity")
}

// apply fills the daemon's options: the flags, then --config for what no
// flag set.
func (o *clusterFlags) apply(d *daemon.Options, log *slog.Logger) error {
	taints, err := parseTaints(o.taints)
	if err != nil {
		return err
	}
	if err := bootstrapCheck(o.kubeconfig, o.bootstrapConfig); err != nil {
		return err
	}
	if o.healthzPort > 0 {
		d.HealthzAddr = net.JoinHostPort(o.healthzBindAddress, strconv.Itoa(o.healthzPort))
	}
	d.Cluster = daemon.ClusterOptions{
		Kubeconfig: o.kubeconfig, NodeIP: o.nodeIP, NodeLabels: o.nodeLabels, Taints: taints,
		RegisterNode: o.registerNode, Port: o.port, MaxPods: o.maxPods,
		NodeStatusUpdateFrequency: o.statusUpdateFreq, NodeStatusReportFrequency: o.statusReportFreq,
		TLSCertFile: o.tlsCertFile, TLSKeyFile: o.tlsKeyFile, ClientCAFile: o.clientCAFile,
		// The kubelet's --address serves both its API and the read-only port.
		Address: d.Address,
	}
	if o.config == "" {
		return nil
	}
	kc, err := loadKubeletConfig(o.config)
	if err != nil {
		return err
	}
	missing, err := applyKubeletConfig(kc, o.fs, d)
	if err != nil {
		return err
	}
	d.Cluster.Address = d.Address
	warnNotImplemented(log, o.config, missing)
	return nil
}

// parseTaints reads key[=value]:Effect (the kubelet's --register-with-taints).
func parseTaints(specs []string) ([]v1.Taint, error) {
	var out []v1.Taint
	for _, s := range specs {
		kv, effect, ok := strings.Cut(s, ":")
		if !ok {
			return nil, fmt.Errorf("--register-with-taints %q: want key[=value]:Effect", s)
		}
		switch v1.TaintEffect(effect) {
		case v1.TaintEffectNoSchedule, v1.TaintEffectPreferNoSchedule, v1.TaintEffectNoExecute:
		default:
			return nil, fmt.Errorf("--register-with-taints %q: effect %q is not NoSchedule, PreferNoSchedule or NoExecute", s, effect)
		}
		k, v, _ := strings.Cut(kv, "=")
		if k == "" {
			return nil, fmt.Errorf("--register-with-taints %q: empty key", s)
		}
		out = append(out, v1.Taint{Key: k, Value: v, Effect: v1.TaintEffect(effect)})
	}
	return out, nil
}
