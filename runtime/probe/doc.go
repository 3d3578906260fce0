// Package probe runs Kubernetes container probes the way kubelet does and
// decides what their results mean.
//
// Handlers (one run each, with the probe's timeout; kubelet defaults: period
// 10 s, timeout 1 s, success 1, failure 3, initial delay 0):
//   - httpGet: host defaults to the pod IP; HTTP or HTTPS (certificate not
//     verified); httpHeaders (a Host header sets the request host); User-Agent
//     kube-probe/<major.minor> of the k8s.io/api in go.mod and Accept */*
//     unless given; no keep-alive, no proxy, no compression; 200-399 succeed;
//     redirects followed on the same host (10 at most), a redirect to another
//     host is not followed and counts as Warning (success + ProbeWarning
//     event); body read up to 10 KiB and never put in failure messages.
//   - tcpSocket: a TCP connect.
//   - grpc: grpc.health.v1.Health/Check, plaintext, SERVING succeeds.
//   - exec: through the Execer the pod runtime implements (exit 0 succeeds,
//     output is the message, a timeout fails, other errors are Unknown).
//
// Pods without a reachable IP (loopback-only networking) are probed from
// inside their network namespace: Target.NetnsPath makes every dial happen
// on a fresh OS thread that setns'd into it and then dies (InNetns), and the
// default host becomes 127.0.0.1. hostNetwork pods pass the node's IP as
// PodIP and no netns (kubeadm's probes on 127.0.0.1 work as given).
//
// Worker is kubelet's prober worker as a pure state machine driven by
// (time, container state, result): initial delay, period, success and
// failure thresholds, startup gating liveness and readiness, hold after a
// liveness/startup failure until the container is replaced, readiness
// dropped when the container stops, the Unhealthy/ProbeWarning events and
// the probe-level terminationGracePeriodSeconds of the resulting kill. The
// reconciler owns timers and goroutines; it asks Worker.Next when to run
// Prober.Run and feeds the Result to Worker.Observe; Worker.Snapshot maps
// one to one onto reconciler.ProbeResult (container ID, outcome after
// thresholds or Unknown, consecutive counts, last output).
//
// Not done here (kubelet does): retrying a probe that errored up to 3 times
// within one period, and the random jitter of the first probe after a
// kubelet restart.
package probe
