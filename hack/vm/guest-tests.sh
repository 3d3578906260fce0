#!/bin/bash
# guest-tests.sh BOOT [PLAN] — runs inside the make test-vm guest (hack/vm/vm.sh run,
# cwd = the repository, shared in over 9p). Writes `go test -json` events on
# stdout (test2json) for the test binaries hack/vm/test-tier.sh listed in
# bin/vmtest/plan: "BOOT LANE IMPORTPATH DIR BINARY [ARGS...]".
# Exits 1 when any binary failed. Each package's events are also kept in
# bin/vmtest/logs/bootBOOT-BINARY.json. The binaries were built on the host
# (go test -c): the guest has no Go toolchain.
#
# Lanes: the packages of lane A run one after another while lane B's do the
# same beside them (the guest has two vCPUs, and one test binary mostly keeps
# one busy); lane "-" runs alone afterwards (the e2e suite installs the
# service on this host). Packages share the guest's one systemd, network and
# ports, unlike the lab (a namespaced systemd per package), so test-tier.sh
# puts those that touch the same host resources in one lane. Lane A's events
# stream as they come; lane B's follow when it is done (two writers would
# interleave long events).
set -u
boot=$1
plan=${2:-$PWD/bin/vmtest/plan}
repo=$PWD
vt=$repo/bin/vmtest
# The integration packages run against this guest's own systemd (PID 1, cgroup
# v2) instead of a namespaced one; the daemon e2e uses the host-built binaries.
# The daemon and shim the e2e tests start many times, and each test binary,
# run from the guest's own disk: a process paging its binary in over 9p
# while the host is loaded can sit in uninterruptible sleep for minutes (a
# killed CLI call once hung a package until its timeout).
local=/var/tmp/mkl-vmtest
mkdir -p "$local/bin"
cp "$repo/bin/minikubelet" "$repo/bin/minikubelet-shim" "$local/bin/"
export MKL_TESTNODE_HOST=1 MKL_E2E_BINDIR=$local/bin MKL_REPO=$repo
# Under software emulation (TCG: systemd-detect-virt says qemu, not kvm)
# everything runs several times slower than the tests' waits were written
# for: stretch their bounds (internal/testnode.Scale).
if [ "$(systemd-detect-virt 2>/dev/null)" = qemu ]; then
  export MKL_TEST_SLOWDOWN=${MKL_TEST_SLOWDOWN:-4}
fi
mkdir -p "$vt/logs"

# run_lane LANE STREAM: the lane's packages one after another; events into
# bin/vmtest/logs (and on stdout when STREAM is 1). Exit 1 if any failed.
run_lane() {
  local lane=$1 stream=$2 rc=0 b l pkg dir bin args log
  while read -r b l pkg dir bin args; do
    [ "$b" = "$boot" ] && [ "$l" = "$lane" ] || continue
    echo "guest-tests: $pkg (lane $lane)" >&2
    log=$vt/logs/boot$boot-${bin%.test}.json
    cp "$vt/$bin" "$local/$bin"
    if [ "$stream" = 1 ]; then
      # The tee's PID, to wait for it alone: a bare wait would wait for the
      # other lane too, and $! after a redirection to >(...) is not the tee.
      local fd tee_pid
      exec {fd}> >(tee "$log"); tee_pid=$!
      # shellcheck disable=SC2086 # ARGS are words on purpose
      (cd "$repo/$dir" && "$vt/test2json" -t -p "$pkg" "$local/$bin" -test.v=test2json $args) </dev/null >&"$fd" || rc=1
      exec {fd}>&-
      wait "$tee_pid"
    else
      # shellcheck disable=SC2086
      (cd "$repo/$dir" && "$vt/test2json" -t -p "$pkg" "$local/$bin" -test.v=test2json $args) </dev/null >"$log" || rc=1
    fi
    rm -f "$local/$bin"
  done < "$plan"
  return $rc
}
# lane_logs LANE: the lane's logs, in plan order.
lane_logs() {
  local b l pkg dir bin args
  while read -r b l pkg dir bin args; do
    [ "$b" = "$boot" ] && [ "$l" = "$1" ] && cat "$vt/logs/boot$boot-${bin%.test}.json"
  done < "$plan"
}

rc=0
run_lane B 0 &
laneB=$!
run_lane A 1 || rc=1
wait "$laneB" || rc=1
lane_logs B
run_lane - 1 || rc=1
exit $rc
