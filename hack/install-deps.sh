#!/usr/bin/env bash
# Installs what building and testing minikubelet needs on Debian 12, as root.
# Idempotent: installs only what is missing. As non-root it only checks.
set -euo pipefail
pkgs=(busybox-static containernetworking-plugins iproute2 iptables util-linux systemd dbus-bin dbus-daemon gcc libc6-dev make)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" != 0 ]; then
    echo "install-deps: not root; missing Debian packages: ${missing[*]} (integration tests that need them will skip)" >&2
  else
    echo "install-deps: apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi
if ! command -v go >/dev/null; then
  echo "install-deps: go not found on PATH (expected /usr/local/go/bin/go)" >&2
  exit 1
fi
go mod download
