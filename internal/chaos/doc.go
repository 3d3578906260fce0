// Package chaos is minikubelet's chaos suite (issue 14): the real daemon
// binary, run by internal/e2enode inside a test node (a real systemd booted
// in namespaces, internal/testnode), is hurt on purpose while it works, and
// after each fault, once the node is quiet, an invariant is checked against
// what really exists — the API's pods, systemd's units, the processes in
// the cgroup tree, mounts, veths, CNI IPAM files and iptables rules:
//
//   - every desired pod is there exactly once (one sandbox scope holding one
//     supervisor, one scope per running container; a pod whose container
//     exits with a code shows that code);
//   - nothing is left of a pod that is gone (scope, slice, state folder,
//     mount, netns pin, veth, IPAM address, masquerade rule);
//   - no container was restarted without a reason (a pod nobody touched
//     keeps its sandbox and containers).
//
// Scenarios (the numbers are the issue's):
//
//	TestChaosDaemonKill     1: seeded SIGKILLs of the daemon during churn
//	TestChaosSystemd        2: systemd daemon-reexec and daemon-reload during
//	                           churn, and the daemon's connections to
//	                           systemd's private D-Bus socket cut from
//	                           outside (pidfd_getfd + shutdown)
//	TestChaosShimKill       3: a pod's supervisor SIGKILL'd at random
//	TestChaosDiskFull       4: ENOSPC on --log-dir and --root-dir (small tmpfs)
//	TestChaosCorruptState   5: state files truncated or garbled, a pod folder
//	                           taken away under its running sandbox
//	TestChaosManifestFolder 6: thousands of abusive files in the live folder
//	TestChaosAPIAbuse       7: many watches, stalled readers, malformed and
//	                           oversized requests on the socket and
//	                           --read-only-port
//	TestChaosPodExhaustion  8: a fork bomb and a memory hog in one pod
//
// Length. `go test` (and so `make test`) runs the short form of each.
// MKL_CHAOS=full (`make chaos`) runs the default length (20 daemon kills
// during churn of up to 50 pods, 15 systemd faults during churn of up to 30
// pods, 20 supervisor kills, 5 rounds of state
// corruption, 5000 abusive manifests, 5 waves of 1000 watches, a minute of
// fork bomb); CHAOS_ROUNDS=N sets the number of
// faults (kills, waves) of every scenario. The seed of the random choices is printed; MKL_CHAOS_SEED=N
// repeats a run. Each scenario adds a row to the table printed at the end
// (and written to $MKL_CHAOS_TABLE when set): the load, the faults
// injected, what was lost, duplicated, leaked or restarted without reason
// (the goal is 0 in each) and the longest time to converge after a fault.
package chaos
