#!/usr/bin/env bash
# make run: the demo. Copies examples/manifests into a demo manifest folder,
# runs the daemon on it with its state in /var/lib/minikubelet-demo (never
# /etc/kubernetes or /var/lib/minikubelet), and shows the pods.
# Ctrl-C removes the demo's manifests, waits for the pods to be gone (the
# daemon tears them down, as deleting a static pod file does), then stops.
set -euo pipefail
cd "$(dirname "$0")/.."
root=/var/lib/minikubelet-demo
manifests=/run/minikubelet-demo/manifests
socket=/run/minikubelet-demo/minikubelet.sock
bin=bin/minikubelet

mkdir -p "$manifests"
cp examples/manifests/*.yaml "$manifests"/
"$bin" validate "$manifests"/*.yaml

# Its own session: a Ctrl-C in the terminal reaches this script, not the daemon.
setsid "$bin" run --manifest-dir "$manifests" --root-dir "$root" --log-dir /var/log/pods --socket "$socket" &
daemon=$!

stop() {
  trap - INT TERM
  echo
  echo "== removing the demo manifests; the daemon stops and removes their pods"
  rm -f "$manifests"/*.yaml
  for _ in $(seq 1 60); do
    [ -z "$("$bin" get pods -A --no-headers --socket "$socket" 2>/dev/null)" ] && break
    sleep 1
  done
  kill -TERM "$daemon" 2>/dev/null || true
  wait "$daemon" 2>/dev/null || true
  echo "== demo stopped"
  exit 0
}
trap stop INT TERM

for _ in $(seq 1 100); do "$bin" get pods --socket "$socket" >/dev/null 2>&1 && break; sleep 0.1; done
cat <<EOF

== minikubelet is running the pods of $manifests. In another terminal, try:
   $bin get pods -o wide --socket $socket
   $bin describe pod demo --socket $socket
   $bin logs demo -c client --socket $socket
   $bin exec demo -c web --socket $socket --root-dir $root -- wget -qO- localhost:8080
   edit or add a file in $manifests and watch the pod follow it
== Ctrl-C removes the demo pods and stops the daemon.

EOF
sleep 3
"$bin" get pods -o wide --socket "$socket" || true
wait "$daemon"
