# minikubelet — see README.md. Two commands on a fresh Debian 12 host, as root:
#   make run    build, make the demo image, run the daemon on examples/manifests
#   make test   every test (integration tests boot their own systemd in namespaces)
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
GO ?= go
BIN := bin/minikubelet
# A count, not a duration: with -fuzztime 20s Go's fuzz coordinator can fail the
# run with a bare "context deadline exceeded" when the deadline races an in-flight
# worker (CI went red so on 2026-12-02, no crasher written). A count has no deadline.
FUZZTIME ?= 150000x
TESTTIMEOUT ?= 14m

.PHONY: all build deps test test-vm unit vet fuzz escapes run bench install install-kubelet-alias clean

all: build

deps:
	@hack/install-deps.sh

# Version and commit stamped into `minikubelet version` (without them the
# binary falls back to the VCS data Go records).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
COMMIT ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)

# minikubelet-shim is the small per-pod supervisor (pause) binary; the daemon
# uses it when it sits beside bin/minikubelet (about 1 MiB per pod instead of 3).
build:
	$(GO) build -ldflags "-X main.version=$(VERSION) -X main.commit=$(COMMIT)" -o $(BIN) ./cmd/minikubelet
	$(GO) build -o bin/minikubelet-shim ./runtime/shimbin

vet:
	$(GO) vet ./...
	$(GO) vet -tags fieldtest ./internal/fieldtest/
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi

# Every test. As root, integration tests boot a real systemd (internal/testnode);
# as non-root they are skipped and listed with the reason.
# Then the field host tier (make test-vm: a Debian 12 guest under QEMU, see
# README.md, Tests); MKL_SKIP_VM=1 leaves it out, listed as skipped with that
# reason. Every test's events are kept in bin/test-events.json.
TESTVM = hack/vm/test-tier.sh
test: deps vet build k8s-bins
	@if [ "$$(id -u)" != 0 ]; then echo "make test: not root — integration tests (systemd, mounts, namespaces) will be SKIPPED; unit tests run."; fi
	set -o pipefail; { $(GO) test -count=1 -timeout $(TESTTIMEOUT) -json ./...; rc=$$?; $(TESTVM) || rc=1; exit $$rc; } | tee bin/test-events.json | $(GO) run ./hack/testsummary
	$(MAKE) --no-print-directory fuzz

# The real Kubernetes binaries the cluster-mode test runs against
# (kube-apiserver, etcd, kubectl v1.37.2), and for the field host's kubeadm
# e2e kubeadm and the control-plane images (hack/k8s/images.sh), built once
# per machine into ~/.cache/minikubelet/k8s (~6 + ~5 min cold on 2 cores)
# before the tests, so the build never counts against a test timeout.
# Failing to build is not fatal here: the tests then say why they skip.
.PHONY: k8s-bins
k8s-bins:
	@if [ "$$(id -u)" = 0 ] && [ -z "$$MKL_SKIP_INTEGRATION" ]; then hack/k8s/build.sh kube-apiserver etcd kubectl >/dev/null || echo "make: hack/k8s/build.sh failed; the cluster-mode test will say why it skips"; fi
	@if [ "$$(id -u)" = 0 ] && [ -z "$$MKL_SKIP_INTEGRATION$$MKL_SKIP_VM$$MKL_SKIP_KUBEADM" ]; then hack/k8s/images.sh >/dev/null || echo "make: hack/k8s/images.sh failed; the kubeadm e2e will say why it skips"; fi

# The field host alone (root): a Debian 12 guest under QEMU (systemd PID 1,
# pure cgroup v2) runs the integration packages and the e2e suite
# (internal/fieldtest) with minikubelet installed as a service; see README.md
# (Tests). The first run installs QEMU and builds the guest image (~2-4 min).
test-vm: vet build
	set -o pipefail; hack/vm/test-tier.sh | $(GO) run ./hack/testsummary

# Bounded fuzzing of the manifest parser (the seed corpus runs in `go test` too).
fuzz:
	@if grep -rqs 'func Fuzz' manifests/; then $(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 1x ./manifests/; fi

# The escape suite alone (also part of make test): one line per attempted way
# out of a container, "escape <name>: attempted <how>: blocked (<what happened>)".
escapes: build
	set -o pipefail; $(GO) test -count=1 -timeout $(TESTTIMEOUT) -v -run Escape ./... | grep -E '(escape .*: attempted |^(ok|FAIL|---|panic))'

unit:
	MKL_SKIP_INTEGRATION=1 $(GO) test -count=1 ./...

# The demo (hack/run-demo.sh builds and imports its image itself): its own
# folders, bridge and cgroup root, all removed on Ctrl-C, TERM or hangup.
run: deps build
	hack/run-demo.sh

# A real systemd host (root). examples/minikubelet.service runs
# /usr/local/bin/minikubelet, which uses minikubelet-shim beside it for the pods.
# install(1) replaces files by a new inode, so a running daemon and the pods'
# supervisors keep their binaries through an upgrade. DESTDIR stages a package.
install: build
	install -D -m 0755 $(BIN) $(DESTDIR)/usr/local/bin/minikubelet
	install -D -m 0755 bin/minikubelet-shim $(DESTDIR)/usr/local/bin/minikubelet-shim
	install -D -m 0644 examples/minikubelet.service $(DESTDIR)/etc/systemd/system/minikubelet.service
	install -d -m 0755 $(DESTDIR)/etc/kubernetes/manifests
	@echo "installed. Next: systemctl daemon-reload && systemctl enable --now minikubelet"
	@echo "(upgrade: systemctl daemon-reload && systemctl restart minikubelet; pods keep running)"

# minikubelet as kubeadm's kubelet (README.md, "Bootstrapping a control-plane
# node with kubeadm"): the drop-in that gives minikubelet.service kubeadm's
# kubelet command line, kubelet.service as an alias of minikubelet.service
# (kubeadm runs systemctl stop|start|restart kubelet), and `kubelet` on PATH
# for kubeadm's preflight (`kubelet --version` prints Kubernetes v1.37.2).
install-kubelet-alias: install
	install -D -m 0644 examples/kubeadm/minikubelet-as-kubelet.conf $(DESTDIR)/etc/systemd/system/minikubelet.service.d/10-kubeadm.conf
	ln -sfn minikubelet.service $(DESTDIR)/etc/systemd/system/kubelet.service
	ln -sfn minikubelet $(DESTDIR)/usr/local/bin/kubelet
	install -d -m 0700 $(DESTDIR)/var/lib/kubelet
	@echo "installed (stop minikubelet before this: systemd loses a running unit's PID when an alias is added). Next: systemctl daemon-reload && systemctl enable minikubelet; then kubeadm init (README.md)"

clean:
	rm -rf bin

# Benchmarks (root): a real systemd booted by the test harness; minikubelet
# side by side with a raw floor (unshare + systemd-run), podman kube play and
# the kubelet v1.37.2 with containerd (built once by hack/k8s/build.sh into
# ~/.cache/minikubelet/k8s, ~5 min cold), on loopback and on the CNI bridge.
# Prints one Markdown table per scenario, also in bench/results/latest.md,
# and the start-latency chart beside it (bench/results/latest-start.svg).
#   make bench                     (~15 min)  BENCHFLAGS=--quick (~3 min) or --large (500 pods)
# BENCHFLAGS=--vm runs the scenarios instead in the field host's Debian 12 guest
# (hack/vm/vm.sh: systemd PID 1, pure cgroup v2) against its own systemd: start
# latency, the floor, the CNI bridge, 30 pods' mass start/stop and steady state
# (no podman or containerd in the guest: those peers say so). Bounded by
# VM_TIMEOUT (default 900 s, boot included). Without KVM the guest is emulated
# (TCG): every table is labelled so, and bench/results/latest-vm.md opens with the
# ratios between its scenarios, the only figures to compare.
#   make bench BENCHFLAGS=--vm     (~6 min under TCG on 2 cores, at most VM_TIMEOUT; --runs/--pods/--steady)
.PHONY: bench-deps
BENCHFLAGS ?=
bench-deps:
	@hack/bench-deps.sh

# A build that fails (work in progress elsewhere) does not stop the run: the
# scenarios that need the daemon report why in their tables.
bench: deps bench-deps
	@$(MAKE) --no-print-directory build || echo "make bench: make build failed; scenarios that need bin/minikubelet will say so"
	$(GO) build -o bin/mkl-bench ./bench
	bin/mkl-bench $(BENCHFLAGS)

# The chaos suite (issue 14; README.md, "Chaos"), root: the real daemon in a
# test node, hurt on purpose while it works (SIGKILLs during churn, systemd
# re-executed and reloaded and its D-Bus connections cut during churn, killed
# pod supervisors, full disks, API abuse, a fork bomb), an invariant checked after
# each fault; ends with the table of lost / duplicated / leaked / restarted
# pods per scenario (also in bin/chaos-table.md; the whole log in
# bin/chaos.log). ~10 min; CHAOS_ROUNDS=N faults per scenario for longer,
# MKL_CHAOS_SEED=N repeats a run. Short versions run in make test.
.PHONY: chaos
chaos: deps
	@mkdir -p bin; rm -f bin/chaos-table.md
	started="$$(date -u '+%Y-%m-%d %H:%M UTC'), commit $$(git describe --always --dirty)"; rm -rf bin/chaos-logs; MKL_CHAOS=full MKL_CHAOS_TABLE=$(CURDIR)/bin/chaos-table.md MKL_E2E_LOG_DIR=$(CURDIR)/bin/chaos-logs $(GO) test -count=1 -timeout 4h -v -run '^TestChaos' ./internal/chaos/ 2>&1 | tee bin/chaos.log | grep --line-buffered -E '^(=== RUN|--- (PASS|FAIL|SKIP)|    [a-z_]+_test\.go:[0-9]+: | {8,}[^ ]|ok |FAIL|PASS)' | grep --line-buffered -vE 'time=20|^ +--- daemon run'; rc=$${PIPESTATUS[0]}; echo; if [ -s bin/chaos-table.md ]; then echo "chaos run of $$started (finished $$(date -u '+%H:%M UTC')):"; cat bin/chaos-table.md; fi; exit $$rc
