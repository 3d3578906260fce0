// Package shell is the IO side of the reconciler (package reconciler is the
// pure core): Node reads the node back into reconciler.Observed (cgroup
// units, the runtime's sandboxes and containers with their exit records,
// the image store, probes, its own records under <root-dir>/pods/<uid>) and
// executes reconciler.Action values one at a time; Loop observes, calls
// reconciler.Plan with the clock's now, persists statuses and hands each
// pod's chain of actions to a bounded pool of workers. A chain's kills run
// side by side (their grace periods must not add up), and so do its app
// container creates (a wave): each container's root, process and scope are
// made at once, its start waits for its predecessor's (startorder.go), so
// the workloads still exec in spec order, one by one, as the kubelet's do.
//
// Crash safety is the shell's part of the contract: each action writes the
// record naming what it is about to create before creating it (execute.go),
// so a daemon killed at any instant leaves something the next observation
// recognises and the next plan completes or collects. Node reaches the node
// through the small interfaces of parts.go (only the methods it calls of the
// runtime, the image store, the network manager and the cgroup driver), so
// those rules have fast unit tests over fakes (node_test.go: adoption,
// half-created pods, retries) besides the end-to-end tests with the real
// parts (internal/daemon).
package shell
