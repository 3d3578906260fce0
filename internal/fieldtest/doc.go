// Package fieldtest is the e2e suite of the field host (make test-vm, issue
// 11): it runs inside the Debian 12 guest that hack/vm boots (systemd PID 1,
// pure cgroup v2) and uses minikubelet as a user would — `make install`,
// `systemctl enable --now minikubelet`, manifests in /etc/kubernetes/manifests
// — then proves from the v2 cgroup files and systemd's own view what the
// kubelet would have set up, and what restarts, kills, upgrades and a reboot
// must leave.
//
// The tests carry the build tag fieldtest: they install a service and write
// host-wide config, which only a throwaway guest may get. hack/vm/test-tier.sh
// builds them with `go test -c -tags fieldtest` and runs TestBoot1* in the
// first boot (ending with a graceful reboot) and TestBoot2* in the second.
package fieldtest
