package daemon

// cluster.go: cluster mode (--kubeconfig) and the healthz endpoint. The
// cluster side only reads the API store the reconcile loop feeds; it never
// blocks or delays the loop, whatever the API server does.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/minikubelet/minikubelet/internal/api"
	"github.com/minikubelet/minikubelet/internal/cluster"
	"github.com/minikubelet/minikubelet/internal/kubeletserver"
)

// ClusterOptions are the flags of cluster mode; an empty Kubeconfig means
// standalone.
type ClusterOptions struct {
	Kubeconfig   string
	NodeIP       string
	NodeLabels   map[string]string
	Taints       []v1.Taint
	RegisterNode bool
	// Port is the kubelet API port (--port, 10250), announced in the Node's
	// daemonEndpoints.
	Port int
	// Address the kubelet API listens on ("" = all).
	Address string
	// TLSCertFile/TLSKeyFile serve the kubelet API (default: self-signed
	// under <root-dir>/pki); ClientCAFile verifies client certificates;
	// WebhookAuthn/WebhookAuthz ask the API server (TokenReview,
	// SubjectAccessReview).
	TLSCertFile, TLSKeyFile, ClientCAFile string
	WebhookAuthn, WebhookAuthz            bool
	MaxPods                               int
	NodeStatusUpdateFrequency             time.Duration
	NodeStatusReportFrequency             time.Duration
}

// clientFromKubeconfig loads a kubeconfig as the kubelet does (client
// certificate or token; QPS 50, burst 100: the kubelet's kubeAPIQPS/Burst).
func clientFromKubeconfig(path string) (kubernetes.Interface, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, fmt.Errorf("--kubeconfig %s: %w", path, err)
	}
	cfg.QPS, cfg.Burst = 50, 100
	cfg.UserAgent = "minikubelet/" + cluster.Version
	cfg.Timeout = 30 * time.Second
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("--kubeconfig %s: %w", path, err)
	}
	return c, nil
}

// newClusterAgent prepares cluster mode: the agent and the kubelet API;
// nil, nil when standalone.
func newClusterAgent(o Options, src api.Source, rt kubeletserver.Runtime, ready func() error, sourceReady func() bool, metrics http.Handler, log *slog.Logger) (*cluster.Agent, *kubeletserver.Server, error) {
	co := o.Cluster
	if co.Kubeconfig == "" {
		return nil, nil, nil
	}
	client, err := clientFromKubeconfig(co.Kubeconfig)
	if err != nil {
		return nil, nil, err
	}
	nodeIP := co.NodeIP
	if nodeIP == "" {
		nodeIP = cluster.DefaultNodeIP()
	}
	if nodeIP == "" {
		log.Warn("no --node-ip and no address on a default-route interface: the Node gets no InternalIP")
	} else if net.ParseIP(nodeIP) == nil {
		return nil, nil, fmt.Errorf("--node-ip %q: not an IP address", nodeIP)
	}
	var srv *kubeletserver.Server
	if co.Port > 0 {
		var ips []string
		if nodeIP != "" {
			ips = append(ips, nodeIP)
		}
		srv = kubeletserver.New(kubeletserver.Options{Address: co.Address, Port: co.Port, NodeName: o.NodeName,
			NodeIPs: ips, CertFile: co.TLSCertFile, KeyFile: co.TLSKeyFile, RootDir: o.RootDir,
			ClientCAFile: co.ClientCAFile, WebhookAuthn: co.WebhookAuthn, WebhookAuthz: co.WebhookAuthz, Client: client,
			Source: src, Socket: o.Socket, LogDir: o.LogDir, Runtime: rt, Metrics: metrics, Log: log.With("component", "kubelet-api")})
		if err := srv.Init(); err != nil {
			return nil, nil, err
		}
	}
	agent, err := cluster.New(cluster.Options{
		Client: client, NodeName: o.NodeName, NodeIP: nodeIP, Labels: co.NodeLabels, Taints: co.Taints,
		RegisterNode: co.RegisterNode, KubeletPort: int32(co.Port), RootDir: o.RootDir, MaxPods: co.MaxPods,
		PodCIDR: o.Network.PodCIDR, Source: src, Ready: ready, SourceReady: sourceReady,
		NodeStatusUpdateFrequency: co.NodeStatusUpdateFrequency, NodeStatusReportFrequency: co.NodeStatusReportFrequency,
		Log: log.With("component", "cluster"),
	})
	return agent, srv, err
}

// serveHealthz serves /healthz on addr until ctx ends (kubelet:
// pkg/kubelet/server/server.go ListenAndServeKubeletHealthzServer,
// 127.0.0.1:10248). A port taken is logged and tried again every 5 s, as
// the kubelet does: healthz is never a reason to stop the pods.
func serveHealthz(ctx context.Context, addr string, check func() error, log *slog.Logger) {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if err := check(); err != nil {
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprintf(w, "[-]syncloop failed: %v\nhealthz check failed\n", err)
			return
		}
		w.Write([]byte("ok"))
	})
	for ctx.Err() == nil {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			log.Error("healthz server failed to listen; retrying in 5s", "address", addr, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(5 * time.Second):
			}
			continue
		}
		hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { <-ctx.Done(); hs.Close() }()
		log.Debug("healthz listening", "address", l.Addr().String())
		if err := hs.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("healthz server", "err", err)
		}
	}
}
