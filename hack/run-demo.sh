#!/usr/bin/env bash
# make run: the demo. Runs the daemon on examples/manifests with state under
# /tmp so it never touches /etc/kubernetes or /var/lib on the host.
set -euo pipefail
cd "$(dirname "$0")/.."
exec bin/minikubelet run --manifest-dir examples/manifests --root-dir /var/lib/minikubelet-demo --log-dir /var/log/pods "$@"
