package main

// version.go: `minikubelet version`, `minikubelet --version`, and
// `kubelet --version` when the binary is invoked as kubelet (kubeadm's
// preflight runs `kubelet --version` and parses "Kubernetes vX.Y.Z").

import (
	"fmt"
	"io"
	"path/filepath"
	goruntime "runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// KubernetesVersion is the Kubernetes release whose API and kubelet
// behaviour minikubelet follows (k8s.io/* modules v0.37.2).
const KubernetesVersion = "v1.37.2"

// Stamped by the Makefile: go build -ldflags "-X main.version=... -X main.commit=...".
// Without them, the module version and VCS data Go records in the binary.
var (
	version = ""
	commit  = ""
)

func init() { registerCommand(newVersionCmd) }

type versionInfo struct {
	Version, Commit, GoVersion, Platform, Kubernetes string
}

func buildVersion() versionInfo {
	v := versionInfo{Version: version, Commit: commit, GoVersion: goruntime.Version(),
		Platform: goruntime.GOOS + "/" + goruntime.GOARCH, Kubernetes: KubernetesVersion}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v.Version = bi.Main.Version
		}
		if v.Commit == "" {
			var rev, modified string
			for _, s := range bi.Settings {
				switch s.Key {
				case "vcs.revision":
					rev = s.Value
				case "vcs.modified":
					modified = s.Value
				}
			}
			if len(rev) > 12 {
				rev = rev[:12]
			}
			if rev != "" && modified == "true" {
				rev += "-dirty"
			}
			v.Commit = rev
		}
	}
	if v.Version == "" {
		v.Version = "devel"
	}
	if v.Commit == "" {
		v.Commit = "unknown"
	}
	return v
}

func (v versionInfo) String() string {
	return fmt.Sprintf("minikubelet %s (commit %s, %s, %s), follows Kubernetes %s", v.Version, v.Commit, v.GoVersion, v.Platform, v.Kubernetes)
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit, Go version and the Kubernetes version followed",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := buildVersion()
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "Version:     %s\n", v.Version)
			fmt.Fprintf(w, "Commit:      %s\n", v.Commit)
			fmt.Fprintf(w, "Go version:  %s\n", v.GoVersion)
			fmt.Fprintf(w, "Platform:    %s\n", v.Platform)
			fmt.Fprintf(w, "Kubernetes:  %s (the API and kubelet behaviour it follows)\n", v.Kubernetes)
			return nil
		},
	}
}

// kubeletVersion answers `kubelet --version` as the kubelet does when this
// binary is invoked as kubelet (argv[0]); ok is false for anything else.
func kubeletVersion(argv []string, out io.Writer) (ok bool) {
	if len(argv) == 0 || filepath.Base(argv[0]) != "kubelet" {
		return false
	}
	for _, a := range argv[1:] {
		switch {
		case a == "--version" || a == "--version=true" || a == "-version":
			fmt.Fprintf(out, "Kubernetes %s\n", KubernetesVersion)
			return true
		case a == "--version=raw":
			fmt.Fprintf(out, "version.Info{GitVersion:%q, GoVersion:%q, Platform:%q}\n", KubernetesVersion, goruntime.Version(), goruntime.GOOS+"/"+goruntime.GOARCH)
			return true
		case a == "--":
			return false
		case !strings.HasPrefix(a, "-"):
			return false
		}
	}
	return false
}
