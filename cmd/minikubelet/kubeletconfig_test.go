package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// kubeadm's /var/lib/kubelet/config.yaml as kubeadm 1.37 writes it.
const kubeadmConfig = `apiVersion: kubelet.config.k8s.io/v1beta1
authentication:
  anonymous:
    enabled: false
  webhook:
    cacheTTL: 0s
    enabled: true
  x509:
    clientCAFile: /etc/kubernetes/pki/ca.crt
authorization:
  mode: Webhook
  webhook:
    cacheAuthorizedTTL: 0s
    cacheUnauthorizedTTL: 0s
cgroupDriver: systemd
clusterDNS:
- 10.96.0.10
clusterDomain: cluster.local
containerRuntimeEndpoint: ""
cpuManagerReconcilePeriod: 0s
crashLoopBackOff: {}
evictionPressureTransitionPeriod: 0s
fileCheckFrequency: 0s
healthzBindAddress: 127.0.0.1
healthzPort: 10248
httpCheckFrequency: 0s
imageMaximumGCAge: 0s
imageMinimumGCAge: 0s
kind: KubeletConfiguration
logging:
  flushFrequency: 0
  options:
    json:
      infoBufferSize: "0"
    text:
      infoBufferSize: "0"
  verbosity: 0
memorySwap: {}
nodeStatusReportFrequency: 0s
nodeStatusUpdateFrequency: 0s
resolvConf: /run/systemd/resolve/resolv.conf
rotateCertificates: true
runtimeRequestTimeout: 0s
shutdownGracePeriod: 0s
shutdownGracePeriodCriticalPods: 0s
staticPodPath: /etc/kubernetes/manifests
streamingConnectionIdleTimeout: 0s
syncFrequency: 0s
volumeStatsAggPeriod: 0s
`

func parseRunPtr(t *testing.T, args ...string) (*daemonOptions, *runExtraOptions) {
	t.Helper()
	base, extra := parseRun(t, args...)
	return &base, &extra
}

func TestKubeadmConfigIsRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yaml")
	body := strings.Replace(kubeadmConfig, "nodeStatusUpdateFrequency: 0s", "nodeStatusUpdateFrequency: 4s", 1)
	os.WriteFile(path, []byte(body+"port: 10260\nmaxPods: 50\npodPidsLimit: 4096\n"), 0o644)
	opts, extra := parseRunPtr(t, "--config", path, "--manifest-dir", "/srv/manifests", "--healthz-port", "12000")
	d := extra.daemonOptions(opts)
	if err := extra.cluster.apply(&d, newLogger(0)); err != nil {
		t.Fatal(err)
	}
	kc, err := loadKubeletConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	missing, _ := applyKubeletConfig(kc, extra.cluster.fs, &d)
	if d.ManifestDir != "/srv/manifests" {
		t.Errorf("a flag must win over staticPodPath: %q", d.ManifestDir)
	}
	if d.CgroupDriver != "systemd" || d.HealthzAddr != "127.0.0.1:12000" || d.Cluster.Port != 10260 ||
		d.Cluster.MaxPods != 50 || d.PodPidsLimit != 4096 || d.Cluster.NodeStatusUpdateFrequency != 4*time.Second {
		t.Errorf("options: driver %q healthz %q port %d maxPods %d pids %d freq %s", d.CgroupDriver, d.HealthzAddr,
			d.Cluster.Port, d.Cluster.MaxPods, d.PodPidsLimit, d.Cluster.NodeStatusUpdateFrequency)
	}
	if !d.Cluster.WebhookAuthn || !d.Cluster.WebhookAuthz || d.Cluster.ClientCAFile != "/etc/kubernetes/pki/ca.crt" {
		t.Errorf("auth: %+v", d.Cluster)
	}
	// kubeadm's DNS settings are applied; the shutdown grace of 0s in its
	// file leaves minikubelet's defaults (the file's zero means unset).
	if len(d.ClusterDNS) != 1 || d.ClusterDNS[0] != "10.96.0.10" || d.ClusterDomain != "cluster.local" ||
		d.ResolvConf != "/run/systemd/resolve/resolv.conf" || d.NoResolvConf {
		t.Errorf("DNS: clusterDNS %v domain %q resolvConf %q", d.ClusterDNS, d.ClusterDomain, d.ResolvConf)
	}
	if d.ShutdownGracePeriod != 30*time.Second || d.ShutdownGracePeriodCriticalPods != 10*time.Second {
		t.Errorf("shutdown grace %s/%s, want the defaults 30s/10s", d.ShutdownGracePeriod, d.ShutdownGracePeriodCriticalPods)
	}
	if got := strings.Join(missing, ","); got != "rotateCertificates" {
		t.Errorf("not-implemented list %q, want rotateCertificates only", got)
	}
}

func TestKubeletConfigErrorsNameTheField(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"unknown field": "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nstaticPodPat: /x\n",
		"kind":          "apiVersion: v1\nkind: Pod\n",
		"cgroupDriver":  "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriver: foo\n",
	} {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".yaml")
		os.WriteFile(path, []byte(body), 0o644)
		opts, extra := parseRunPtr(t, "--config", path)
		d := extra.daemonOptions(opts)
		err := extra.cluster.apply(&d, newLogger(0))
		if err == nil || !strings.Contains(err.Error(), path) && !strings.Contains(err.Error(), "cgroupDriver") {
			t.Errorf("%s: error %v should name the file or field", name, err)
		}
	}
}

func TestParseTaints(t *testing.T) {
	got, err := parseTaints([]string{"a=b:NoSchedule", "c:NoExecute"})
	if err != nil || len(got) != 2 || got[0].Key != "a" || got[0].Value != "b" || got[1].Key != "c" || got[1].Effect != "NoExecute" {
		t.Fatalf("%v %v", got, err)
	}
	for _, bad := range []string{"a=b", "a=b:Sometimes", "=b:NoSchedule"} {
		if _, err := parseTaints([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
