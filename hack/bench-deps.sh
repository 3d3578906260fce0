#!/usr/bin/env bash
# Installs what `make bench` compares against on Debian 12, as root: podman
# (the peer of scenario 3) with runc (crun 1.8 refuses this machine's cgroup
# layout) and catatonit (podman builds its infra image from it, offline);
# containerd 1.6 (with ctr and containerd-shim-runc-v2), the runtime of the
# kubelet peer (scenario 3b; the kubelet itself is built by
# hack/k8s/build.sh, run by the benchmark). Idempotent: installs only what is
# missing. As non-root it only reports.
# Nothing is configured on the host: the benchmark gives podman its own
# containers.conf, storage and cgroup mounts inside its own namespaces, and
# containerd its own config, state and mount namespace inside the test node.
# The containerd package ships only a systemd unit (no init script), so on
# these machines (PID 1 is not systemd) installing it starts nothing; on a
# systemd host its postinst enables and starts containerd.service, which the
# benchmark neither uses nor touches.
set -euo pipefail
pkgs=(podman runc catatonit containerd containernetworking-plugins busybox-static util-linux iproute2)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
((${#missing[@]})) || exit 0
if [ "$(id -u)" != 0 ]; then
  echo "bench-deps: not root; missing Debian packages: ${missing[*]} (the podman and kubelet scenarios will report why they cannot run)" >&2
  exit 0
fi
echo "bench-deps: apt-get install ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# The podman package ships /etc/cni/net.d/87-podman-bridge.conflist; with it
# there, a minikubelet using the default --cni-conf-dir would pick podman's
# bridge (first config in lexical order) instead of writing its own. The
# benchmark runs podman with --network none and needs none of it.
apt-get install -y -qq --no-install-recommends -o 'Dpkg::Options::=--path-exclude=/etc/cni/net.d/*' "${missing[@]}" >/dev/null
