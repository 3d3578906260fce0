#!/bin/bash
# guest-tests.sh BOOT [PLAN] — runs inside the make test-vm guest (hack/vm/vm.sh run,
# cwd = the repository, shared in over 9p). Writes `go test -json` events on
# stdout (test2json), one test binary after another, as hack/vm/test-tier.sh
# listed them in bin/vmtest/plan: "BOOT IMPORTPATH DIR BINARY [ARGS...]".
# Exits 1 when any binary failed. Each package's events are also kept in
# bin/vmtest/logs/bootBOOT-BINARY.json. The binaries were built on the host
# (go test -c): the guest has no Go toolchain.
set -u
boot=$1
repo=$PWD
vt=$repo/bin/vmtest
# The integration packages run against this guest's own systemd (PID 1, cgroup
# v2) instead of a namespaced one; the daemon e2e uses the host-built binaries.
export MKL_TESTNODE_HOST=1 MKL_E2E_BINDIR=$repo/bin MKL_REPO=$repo
mkdir -p "$vt/logs"
rc=0
while read -r b pkg dir bin args; do
  [ "$b" = "$boot" ] || continue
  echo "guest-tests: $pkg" >&2
  # shellcheck disable=SC2086 # ARGS are words on purpose
  # Each package's events are also kept in bin/vmtest/logs (boot, binary), so
  # a failure can be read after the guest is gone.
  log=$vt/logs/boot$boot-${bin%.test}.json
  (cd "$repo/$dir" && "$vt/test2json" -t -p "$pkg" "$vt/$bin" -test.v=test2json $args) > >(tee "$log") || rc=1
  wait # the tee
done < "${2:-$vt/plan}"
exit $rc
