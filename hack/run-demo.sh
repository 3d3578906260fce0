#!/usr/bin/env bash
# make run: the demo. Everything it makes lives in two folders of its own and
# is removed when it stops (Ctrl-C, kill -TERM, closing the terminal):
#
#   /run/minikubelet-demo        manifests/, the API socket, cni/net.d/ (its own conflist)
#   /var/lib/minikubelet-demo    --root-dir (image store, pod state, CNI IPAM and cache,
#                                cgroupfs markers) and logs/ (--log-dir)
#   bridge mkldemo0              its pod network (10.87.0.0/24, no NAT, no iptables rules)
#   cgroup root mkldemo          mkldemo.slice on systemd hosts, /mkldemo on cgroupfs ones
#
# It never reads or writes /etc/kubernetes, /etc/cni/net.d, /var/lib/minikubelet,
# /var/log/pods or another daemon's cgroups. On stop it removes the demo's
# manifests, waits while the daemon stops the pod (SIGTERM, SIGKILL after the
# pod's terminationGracePeriodSeconds), stops the daemon, then removes the
# folders, the bridge, the cgroups it created and restores net.ipv4.ip_forward.
#
# Environment (for tests): MKL_DEMO_BIN (bin/minikubelet), MKL_DEMO_RUN_DIR,
# MKL_DEMO_STATE_DIR, MKL_DEMO_ARGS (extra `run` flags, word-split).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${MKL_DEMO_BIN:-bin/minikubelet}
run_dir=${MKL_DEMO_RUN_DIR:-/run/minikubelet-demo}
state=${MKL_DEMO_STATE_DIR:-/var/lib/minikubelet-demo}
manifests=$run_dir/manifests
socket=$run_dir/minikubelet.sock
cni_conf=$run_dir/cni/net.d
logs=$state/logs
bridge=mkldemo0
cgroup_root=mkldemo
pod_cidr=10.87.0.0/24
read -r -a extra_args <<<"${MKL_DEMO_ARGS:-}"

say() { echo "== $*" 2>/dev/null || true; } # the terminal may be gone (SIGHUP)
follow="" # the tail -F that shows the daemon's log here

# One demo at a time: the daemon holds a lock in its root dir while it runs.
if [ -e "$state/minikubelet.lock" ] && ! flock -n "$state/minikubelet.lock" true; then
  echo "run-demo: another demo is running (pid $(cat "$state/minikubelet.lock" 2>/dev/null), lock $state/minikubelet.lock); stop it first" >&2
  exit 1
fi

# What was there before, so that stopping removes only what the demo made.
forward_before=$(cat /proc/sys/net/ipv4/ip_forward 2>/dev/null || echo "")
cgroups_before=$(find /sys/fs/cgroup -maxdepth 2 -type d -name "$cgroup_root*" 2>/dev/null | sort || true)
systemd_host=
[ -d /run/systemd/system ] && systemd_host=1
slices_before=
if [ -n "$systemd_host" ]; then
  slices_before=$(systemctl list-units --all --plain --no-legend "$cgroup_root*.slice" 2>/dev/null | awk '{print $1}' | sort || true)
fi

daemon=
stopping=

# cleanup removes what the demo created. Signals are ignored from here on:
# make forwards the TERM it got, a terminal sends HUP to the whole group, and
# a second Ctrl-C must not leave the pods and the daemon behind half-stopped.
cleanup() {
  trap '' INT TERM HUP PIPE
  [ -n "$stopping" ] && return
  stopping=1
  set +eu
  local now=""
  echo 2>/dev/null
  if [ -n "$daemon" ] && kill -0 "$daemon" 2>/dev/null; then
    rm -f "$manifests"/*.yaml
    say "stopping: removed the demo manifests; waiting for the daemon to stop the pods (SIGTERM to each container, SIGKILL after the pod's terminationGracePeriodSeconds: 5s for the demo)"
    local last="" now deadline=$((SECONDS + 60))
    while ((SECONDS < deadline)); do
      if ! now=$(timeout 10 "$bin" get pods -A --no-headers --socket "$socket" 2>/dev/null); then
        say "the daemon does not answer on $socket"
        break
      fi
      [ -z "$now" ] && break
      if [ "$now" != "$last" ]; then
        say "waiting for:"
        echo "$now" 2>/dev/null
        last=$now
      fi
      sleep 0.2
    done
    if [ -n "$now" ]; then
      say "pods still there after 60s; stopping the daemon anyway (the next make run adopts and removes them):"
      echo "$now" 2>/dev/null
    fi
    say "stopping the daemon (pid $daemon)"
    kill -TERM "$daemon" 2>/dev/null
    # Its exit is bounded (10 s for actions in flight); a daemon that does
    # not go within 30 s is killed: its pods stay and the next run adopts them.
    local i
    for i in $(seq 1 150); do kill -0 "$daemon" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$daemon" 2>/dev/null && { say "the daemon did not stop in 30s; SIGKILL"; kill -KILL "$daemon" 2>/dev/null; }
    wait "$daemon" 2>/dev/null
  fi
  [ -n "$follow" ] && kill "$follow" 2>/dev/null
  if [ -n "$(ls -A "$state/pods" 2>/dev/null)" ]; then
    # A daemon that died before it removed the pods leaves them running:
    # their state stays for the next make run, which adopts and removes them.
    say "pods of the demo are left in $state/pods; run make run again and stop it to remove them"
  else
    # Nothing of the demo runs: remove what it made.
    ip link del "$bridge" 2>/dev/null && say "removed the bridge $bridge"
    if [ "$forward_before" = 0 ] && [ "$(cat /proc/sys/net/ipv4/ip_forward 2>/dev/null)" = 1 ]; then
      # The CNI bridge plugin turns forwarding on for its gateway.
      echo 0 >/proc/sys/net/ipv4/ip_forward && say "restored net.ipv4.ip_forward=0"
    fi
    if [ -n "$systemd_host" ]; then
      local s
      for s in $(systemctl list-units --all --plain --no-legend "$cgroup_root*.slice" 2>/dev/null | awk '{print $1}' | sort -r); do
        grep -qxF "$s" <<<"$slices_before" || systemctl stop "$s" 2>/dev/null
      done
    fi
    local d
    for d in $(find /sys/fs/cgroup -maxdepth 2 -type d -name "$cgroup_root*" 2>/dev/null); do
      grep -qxF "$d" <<<"$cgroups_before" || find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
    done
    # Never delete through a mount: anything still mounted below the demo's
    # folders is the demo's own and is unmounted first, deepest first.
    local m
    while IFS= read -r m; do
      [ -n "$m" ] && { umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; }
    done < <(awk -v a="$state" -v b="$run_dir" '$5 == a || index($5, a "/") == 1 || $5 == b || index($5, b "/") == 1 {print $5}' /proc/self/mountinfo | sort -r)
    rm -rf --one-file-system "$run_dir" "$state"
    say "demo stopped; removed $run_dir, $state, the bridge and the demo's cgroups"
  fi
}
on_signal() {
  cleanup
  exit 0
}
trap on_signal INT TERM HUP

mkdir -p "$manifests" "$cni_conf" "$logs"
# The demo's own network: a conflist in its own --cni-conf-dir (so nothing in
# /etc/cni/net.d is read or written), its own bridge and subnet. Only bridge
# and host-local: without ipMasq, firewall or portmap no iptables rule is made.
cat >"$cni_conf/10-minikubelet-demo.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "minikubelet-demo",
  "plugins": [
    {"type": "bridge", "bridge": "$bridge", "isGateway": true, "ipMasq": false,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$pod_cidr"}]], "dataDir": "$state/cni/ipam"}}
  ]
}
EOF
hack/build-demo-image.sh --root-dir "$state"
cp examples/manifests/*.yaml "$manifests"/
"$bin" validate "$manifests"/*.yaml

# Its own session: the terminal's Ctrl-C or hangup and make's TERM reach this
# script, which stops the pods first and the daemon last.
# Its log goes to a file, followed on this terminal: a daemon writing straight
# to the terminal blocks in write() once nobody reads it any more (a closed
# terminal whose pty is still held open), and then even its API stops
# answering; found when the demo test's terminal-close case hung under load.
daemon_log=$run_dir/minikubelet.log
setsid "$bin" run --manifest-dir "$manifests" --root-dir "$state" --log-dir "$logs" --socket "$socket" \
  --cni-conf-dir "$cni_conf" --cgroup-root "$cgroup_root" "${extra_args[@]}" >>"$daemon_log" 2>&1 &
daemon=$!
tail -n +1 -F --pid="$daemon" "$daemon_log" 2>/dev/null &
follow=$!

for _ in $(seq 1 100); do
  "$bin" get pods --socket "$socket" >/dev/null 2>&1 && break
  kill -0 "$daemon" 2>/dev/null || break
  sleep 0.1
done
cat <<EOF

== minikubelet is running the pods of $manifests. In another terminal, try:
   $bin get pods -o wide --socket $socket
   $bin describe pod demo --socket $socket
   $bin logs demo -c client --socket $socket
   $bin exec demo -c web --socket $socket -- wget -qO- localhost:8080
   edit or add a file in $manifests and watch the pod follow it
== Ctrl-C (or kill -TERM, or closing this terminal) removes the demo pods, stops the
   daemon and removes $run_dir, $state, the bridge $bridge and the demo's cgroups.
   The daemon's log: $daemon_log (followed here).

EOF
for _ in $(seq 1 50); do
  "$bin" get pods --no-headers --socket "$socket" 2>/dev/null | grep -q Running && break
  kill -0 "$daemon" 2>/dev/null || break
  sleep 0.2
done
"$bin" get pods -o wide --socket "$socket" || true
set +e
wait "$daemon"
code=$?
# Here only when the daemon exited on its own (a signal to this script runs on_signal).
say "the daemon exited (status $code)"
cleanup
exit 1
