package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// kubeadm's kubelet.service (10-kubeadm.conf) with kubeadm-flags.env and a
// user's KUBELET_EXTRA_ARGS, as systemd splits them.
var kubeadmCommandLine = []string{
	"--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf", "--kubeconfig=/etc/kubernetes/kubelet.conf",
	"--config=/var/lib/kubelet/config.yaml",
	"--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock", "--pod-infra-container-image=registry.k8s.io/pause:3.10.2",
	"--hostname-override=CP-1", "--node-ip", "192.0.2.10",
	"--rotate-certificates", "--some-future-flag", "value", "--v=2", "--node-labels=a=b",
	"--container-runtime-endpoint", "unix:///run/other.sock",
}

func TestKubeletCommandLine(t *testing.T) {
	for _, argv0 := range []string{"/usr/local/bin/kubelet", "minikubelet"} {
		argv := []string{argv0}
		if argv0 == "minikubelet" {
			argv = append(argv, "run")
		}
		ignoredRunFlags = nil
		args := kubeletArgs(append(argv, kubeadmCommandLine...))
		if args[0] != "run" {
			t.Fatalf("%s: %v does not run the daemon", argv0, args)
		}
		want := []string{"--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf", "--kubeconfig=/etc/kubernetes/kubelet.conf",
			"--config=/var/lib/kubelet/config.yaml", "--hostname-override=CP-1", "--node-ip", "192.0.2.10", "--v=2", "--node-labels=a=b"}
		if got := strings.Join(args[1:], " "); got != strings.Join(want, " ") {
			t.Errorf("%s: kept\n  %s\nwant\n  %s", argv0, got, strings.Join(want, " "))
		}
		got := strings.Join(ignoredRunFlags, ", ")
		for _, w := range []string{"--container-runtime-endpoint (minikubelet is the container runtime", "--pod-infra-container-image (",
			"--rotate-certificates (", "--some-future-flag (unknown)"} {
			if !strings.Contains(got, w) {
				t.Errorf("%s: the warning %q lacks %q", argv0, got, w)
			}
		}
		if strings.Count(got, "container-runtime-endpoint") != 1 || len(ignoredRunFlags) != 4 {
			t.Errorf("%s: each flag is named once: %q", argv0, got)
		}
		// What is kept parses, and --hostname-override names the node.
		if err := newRunCmd().ParseFlags(args[1:]); err != nil {
			t.Errorf("%s: run does not parse what was kept: %v", argv0, err)
		}
		base, extra := parseRun(t, slicesDelete(args[1:], "--v=2")...)
		d := extra.daemonOptions(&base)
		if d.NodeName != "cp-1" {
			t.Errorf("%s: node name %q, want cp-1 from --hostname-override", argv0, d.NodeName)
		}
		var buf bytes.Buffer
		warnIgnoredFlags(slog.New(slog.NewTextHandler(&buf, nil)))
		if strings.Count(buf.String(), "\n") != 1 || !strings.Contains(buf.String(), "some-future-flag") {
			t.Errorf("one warning line naming the flags, got %q", buf.String())
		}
	}
	ignoredRunFlags = nil
	// Other commands are untouched; kubelet with no flags is run.
	if got := kubeletArgs([]string{"minikubelet", "get", "pods", "--bogus"}); strings.Join(got, " ") != "get pods --bogus" {
		t.Errorf("get: %v", got)
	}
	if got := kubeletArgs([]string{"kubelet"}); strings.Join(got, " ") != "run" {
		t.Errorf("bare kubelet: %v", got)
	}
}

func TestBootstrapKubeconfig(t *testing.T) {
	dir := t.TempDir()
	kc := filepath.Join(dir, "kubelet.conf")
	boot := filepath.Join(dir, "bootstrap-kubelet.conf")
	if err := bootstrapCheck(kc, ""); err != nil {
		t.Errorf("no bootstrap flag: %v", err)
	}
	err := bootstrapCheck(kc, boot)
	if err == nil || !strings.Contains(err.Error(), "TLS bootstrap") || !strings.Contains(err.Error(), "not supported") {
		t.Errorf("missing kubeconfig with a bootstrap kubeconfig: %v", err)
	}
	os.WriteFile(kc, []byte("apiVersion: v1\nkind: Config\n"), 0o600)
	if err := bootstrapCheck(kc, boot); err != nil {
		t.Errorf("an existing kubeconfig wins, as with the kubelet: %v", err)
	}
	// Through apply: the error reaches the daemon's start.
	base, extra := parseRun(t, "--kubeconfig", filepath.Join(dir, "absent.conf"), "--bootstrap-kubeconfig", boot)
	d := extra.daemonOptions(&base)
	if err := extra.cluster.apply(&d, newLogger(0)); err == nil || !strings.Contains(err.Error(), "not supported") {
		t.Errorf("apply: %v", err)
	}
}

func slicesDelete(in []string, drop string) (out []string) {
	for _, s := range in {
		if s != drop {
			out = append(out, s)
		}
	}
	return out
}
