#!/usr/bin/env bash
# Builds the real Kubernetes and etcd binaries the cluster-mode and kubeadm
# tests run against, once per machine, into a cache outside the repository:
#   $MKL_K8S_CACHE (default ~/.cache/minikubelet/k8s/v1.37.2-etcd3.7.0-<hash>)/{kube-apiserver,
#   kube-controller-manager,kube-scheduler,kubectl,kubeadm,kubelet,etcd}
# The module here requires k8s.io/kubernetes v1.37.2 and replaces every staging
# module by its published v0.37.2 (k8s.io/kubernetes is not meant to be
# imported; this is the recipe that makes it build). Cold: ~5-6 min on 2 cores,
# plus ~3 min each for kube-controller-manager and kube-scheduler.
# Usage: hack/k8s/build.sh [binary...]   (default: all); prints the cache dir.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export PATH=/usr/local/go/bin:$PATH
key="v1.37.2-etcd3.7.0-$(cat "$here/go.mod" "$here/go.sum" "$here/etcdmain/main.go" | sha256sum | cut -c1-12)"
cache=${MKL_K8S_CACHE:-${HOME:-/root}/.cache/minikubelet/k8s/$key}
mkdir -p "$cache"
want=("$@")
((${#want[@]})) || want=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubeadm kubelet etcd)
# One builder at a time per cache (parallel test packages may ask together).
exec 9>"$cache/.lock"
flock 9
cd "$here"
for b in "${want[@]}"; do
  [ -x "$cache/$b" ] && continue
  case $b in
    etcd) pkg=./etcdmain ;;
    kube-apiserver|kube-controller-manager|kube-scheduler|kubectl|kubeadm|kubelet) pkg=k8s.io/kubernetes/cmd/$b ;;
    *) echo "build.sh: unknown binary $b" >&2; exit 2 ;;
  esac
  echo "build.sh: building $b (cached in $cache)" >&2
  CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -o "$cache/$b.tmp" "$pkg"
  mv "$cache/$b.tmp" "$cache/$b"
done
echo "$cache"
