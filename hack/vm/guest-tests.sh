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
rc=0
while read -r b pkg dir bin args; do
  [ "$b" = "$boot" ] || continue
  echo "guest-tests: $pkg" >&2
  # shellcheck disable=SC2086 # ARGS are words on purpose
  # Each package's events are also kept in bin/vmtest/logs (boot, binary), so
  # a failure can be read after the guest is gone.
  log=$vt/logs/boot$boot-${bin%.test}.json
  cp "$vt/$bin" "$local/$bin"
  (cd "$repo/$dir" && "$vt/test2json" -t -p "$pkg" "$local/$bin" -test.v=test2json $args) > >(tee "$log") || rc=1
  rm -f "$local/$bin"
  wait # the tee
done < "${2:-$vt/plan}"
exit $rc
