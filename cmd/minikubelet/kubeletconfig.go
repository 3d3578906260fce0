package main

// kubeletconfig.go: --config, a kubelet.config.k8s.io/v1beta1
// KubeletConfiguration read as kubeadm writes it. Flags given on the
// command line override the file, as with the kubelet
// (kubelet: cmd/kubelet/app/server.go kubeletConfigFlagPrecedence).

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	"sigs.k8s.io/yaml"

	"github.com/minikubelet/minikubelet/internal/daemon"
)

// loadKubeletConfig reads path. Unknown fields are an error naming them
// (the kubelet's strict decoding), so a typo is not silently ignored.
func loadKubeletConfig(path string) (*kubeletv1beta1.KubeletConfiguration, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--config: %w", err)
	}
	var kc kubeletv1beta1.KubeletConfiguration
	if err := yaml.UnmarshalStrict(b, &kc); err != nil {
		return nil, fmt.Errorf("--config %s: %w", path, err)
	}
	if kc.APIVersion != kubeletv1beta1.SchemeGroupVersion.String() || kc.Kind != "KubeletConfiguration" {
		return nil, fmt.Errorf("--config %s: apiVersion %q kind %q: want %s KubeletConfiguration",
			path, kc.APIVersion, kc.Kind, kubeletv1beta1.SchemeGroupVersion)
	}
	return &kc, nil
}

// applyKubeletConfig sets in d what kc says, except where the flag was
// given. It returns the fields that are read but not implemented yet, for
// the one warning at start.
func applyKubeletConfig(kc *kubeletv1beta1.KubeletConfiguration, fs *pflag.FlagSet, d *daemon.Options) (notImplemented []string, err error) {
	unset := func(flag string) bool { return !fs.Changed(flag) }
	if kc.StaticPodPath != "" && unset("manifest-dir") {
		d.ManifestDir = kc.StaticPodPath
	}
	if kc.CgroupDriver != "" && unset("cgroup-driver") {
		if kc.CgroupDriver != "systemd" && kc.CgroupDriver != "cgroupfs" {
			return nil, fmt.Errorf("--config: cgroupDriver %q: want systemd or cgroupfs", kc.CgroupDriver)
		}
		d.CgroupDriver = kc.CgroupDriver
	}
	// The kubelet's cgroupRoot is the parent of its kubepods tree; ours
	// names the tree itself. "/" (the default) is the same thing.
	if kc.CgroupRoot != "" && kc.CgroupRoot != "/" {
		notImplemented = append(notImplemented, "cgroupRoot "+kc.CgroupRoot+" (pods stay under /"+d.CgroupRoot+")")
	}
	hzAddr, _ := fs.GetString("healthz-bind-address")
	hzPortN, _ := fs.GetInt("healthz-port")
	hzPort := strconv.Itoa(hzPortN)
	if kc.HealthzBindAddress != "" && unset("healthz-bind-address") {
		hzAddr = kc.HealthzBindAddress
	}
	if kc.HealthzPort != nil && unset("healthz-port") {
		hzPort = strconv.Itoa(int(*kc.HealthzPort))
	}
	d.HealthzAddr = ""
	if hzPort != "0" {
		d.HealthzAddr = net.JoinHostPort(hzAddr, hzPort)
	}
	if kc.Port != 0 && unset("port") {
		d.Cluster.Port = int(kc.Port)
	}
	if kc.ReadOnlyPort != 0 && unset("read-only-port") {
		d.ReadOnlyPort = int(kc.ReadOnlyPort)
	}
	if kc.Address != "" && unset("address") {
		d.Address = kc.Address
	}
	if f := kc.Authentication.X509.ClientCAFile; f != "" && unset("client-ca-file") {
		d.Cluster.ClientCAFile = f
	}
	if e := kc.Authentication.Webhook.Enabled; e != nil {
		d.Cluster.WebhookAuthn = *e
	}
	switch kc.Authorization.Mode {
	case "":
	case kubeletv1beta1.KubeletAuthorizationModeWebhook:
		d.Cluster.WebhookAuthz = true
	case kubeletv1beta1.KubeletAuthorizationModeAlwaysAllow:
		d.Cluster.WebhookAuthz = false
	default:
		return nil, fmt.Errorf("--config: authorization.mode %q: want Webhook or AlwaysAllow", kc.Authorization.Mode)
	}
	if kc.PodCIDR != "" && unset("pod-cidr") {
		d.Network.PodCIDR = kc.PodCIDR
	}
	if kc.TLSCertFile != "" && unset("tls-cert-file") {
		d.Cluster.TLSCertFile = kc.TLSCertFile
	}
	if kc.TLSPrivateKeyFile != "" && unset("tls-private-key-file") {
		d.Cluster.TLSKeyFile = kc.TLSPrivateKeyFile
	}
	if v := kc.NodeStatusUpdateFrequency.Duration; v > 0 && unset("node-status-update-frequency") {
		d.Cluster.NodeStatusUpdateFrequency = v
	}
	if v := kc.NodeStatusReportFrequency.Duration; v > 0 {
		d.Cluster.NodeStatusReportFrequency = v
	}
	if kc.MaxPods > 0 && unset("max-pods") {
		d.Cluster.MaxPods = int(kc.MaxPods)
	}
	if kc.PodPidsLimit != nil && unset("pod-pids-limit") {
		d.PodPidsLimit = *kc.PodPidsLimit
	}
	if len(kc.ClusterDNS) > 0 && unset("cluster-dns") {
		d.ClusterDNS = kc.ClusterDNS
	}
	if kc.ClusterDomain != "" && unset("cluster-domain") {
		d.ClusterDomain = kc.ClusterDomain
	}
	// kubelet: resolvConf "" in the file means no host DNS, as the flag.
	if kc.ResolverConfig != nil && unset("resolv-conf") {
		d.ResolvConf, d.NoResolvConf = *kc.ResolverConfig, *kc.ResolverConfig == ""
	}
	// The file's zero values are the kubelet's "off"; only a value given
	// there replaces minikubelet's defaults (30s/10s).
	if v := kc.ShutdownGracePeriod.Duration; v > 0 && unset("shutdown-grace-period") {
		d.ShutdownGracePeriod = v
		if c := kc.ShutdownGracePeriodCriticalPods.Duration; unset("shutdown-grace-period-critical-pods") {
			d.ShutdownGracePeriodCriticalPods = c
		}
	}
	// Read, not applied yet (named in the one warning at start).
	if len(kc.ShutdownGracePeriodByPodPriority) > 0 {
		notImplemented = append(notImplemented, "shutdownGracePeriodByPodPriority")
	}
	if kc.RotateCertificates {
		notImplemented = append(notImplemented, "rotateCertificates")
	}
	if kc.ContainerRuntimeEndpoint != "" {
		notImplemented = append(notImplemented, "containerRuntimeEndpoint (minikubelet is the container runtime, no CRI)")
	}
	if len(kc.EvictionHard) > 0 {
		notImplemented = append(notImplemented, "evictionHard")
	}
	return notImplemented, nil
}

// warnNotImplemented is the one warning at start.
func warnNotImplemented(log *slog.Logger, path string, fields []string) {
	if len(fields) > 0 {
		log.Warn("--config: these KubeletConfiguration fields are read but not implemented yet and have no effect",
			"file", path, "fields", strings.Join(fields, ", "))
	}
}
