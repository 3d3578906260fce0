// Package depsanchor pins the modules the design card names while their
// first users are being written, so go.mod and go.sum stay complete for
// every package built in parallel. Remove once each module has a real user.
package depsanchor

import (
	_ "github.com/containernetworking/cni/libcni"
	_ "github.com/coreos/go-systemd/v22/daemon"
	_ "github.com/coreos/go-systemd/v22/dbus"
	_ "github.com/cyphar/filepath-securejoin"
	_ "github.com/fsnotify/fsnotify"
	_ "github.com/godbus/dbus/v5"
	_ "github.com/google/go-containerregistry/pkg/authn"
	_ "github.com/google/go-containerregistry/pkg/name"
	_ "github.com/google/go-containerregistry/pkg/registry"
	_ "github.com/google/go-containerregistry/pkg/v1/layout"
	_ "github.com/google/go-containerregistry/pkg/v1/mutate"
	_ "github.com/google/go-containerregistry/pkg/v1/remote"
	_ "github.com/google/go-containerregistry/pkg/v1/tarball"
	_ "github.com/moby/profiles/seccomp"
	_ "github.com/moby/sys/capability"
	_ "github.com/opencontainers/cgroups"
	_ "github.com/opencontainers/cgroups/fs"
	_ "github.com/opencontainers/cgroups/fs2"
	_ "github.com/opencontainers/cgroups/manager"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/prometheus/client_golang/prometheus/promhttp"
	_ "github.com/spf13/cobra"
	_ "golang.org/x/sys/unix"
	_ "k8s.io/api/core/v1"
	_ "k8s.io/apimachinery/pkg/api/resource"
	_ "k8s.io/apimachinery/pkg/api/validation"
	_ "k8s.io/apimachinery/pkg/util/validation"
	_ "sigs.k8s.io/yaml"
)
