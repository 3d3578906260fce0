// Package reconciler is the pure core of minikubelet's pod loop.
//
// The design follows etcd's raft core and controller-runtime's Reconcile:
// the decision logic is a pure function, and every piece of IO (reading the
// manifest folder, listing cgroup units, asking the runtime, pulling images,
// writing status, the clock) lives in the shell that calls it: package
// reconciler/shell (Node observes and executes, Loop runs rounds). This
// package imports nothing that does IO and never reads the clock;
// TestPureCoreDoesNoIO (purity_test.go) fails the build of any change that
// would.
//
//	Plan(desired, observed, now, cfg) -> Result{per pod: actions + v1.PodStatus, events, next wake-up}
//
// Plan is level-triggered: it looks only at what should run (Desired, from
// the manifests) and what runs (Observed, from the cgroup driver, the
// runtime's state and exit records, the image store, the prober), never at
// what it decided last time. The same inputs always give the same Result,
// so a daemon killed at any instant and started again simply plans again
// from what it finds: a running pod is adopted (no action), a half-created
// one is completed, an orphan is collected. There are no timers here: time
// is the Now input, and Result.NextWake tells the shell when the plan may
// change on its own (a back-off expiring, a grace period ending, an
// activeDeadlineSeconds being reached).
//
// Actions are idempotent requests. The shell may execute them, fail, and
// retry; what is still executing is fed back as Observed.InFlight (keyed by
// Action.Key) so the plan never issues it twice. The actions of one pod form
// a chain to run in order, stopping at the first failure (but a failed app
// container does not hold back its sibling app containers, as with the
// kubelet): Plan only chains
// an action after another when it needs the other's effect (cgroup ->
// images -> sandbox -> containers), which halves the number of plan rounds
// a pod start costs.
//
// Kubernetes semantics reproduced here (with where they come from):
//   - start order: pod cgroup, image pulls, sandbox, regular init containers
//     one by one to success, restartable init containers ("native sidecars",
//     KEP-753) started in order and kept running, then the app containers
//     in one chain step (kuberuntime computePodActions), started in spec
//     order as the kubelet does (the shell creates them side by side and
//     orders only their starts, see shell.Loop's waves);
//   - restarts per restartPolicy with the CrashLoopBackOff delays of the
//     kubelet (first restart immediate, then 10 s doubling to 300 s,
//     measured from the exit, reset after 10 min of running);
//   - termination: preStop, stop signal, terminationGracePeriodSeconds
//     (kubelet keeps at least 2 s after a preStop hook), SIGKILL, app
//     containers before sidecars, sidecars in reverse order;
//   - graceful node shutdown: pods listed in Desired.Shutdown are stopped
//     as above with their grace bounded by their priority group's
//     (kubelet nodeshutdown manager), status Failed, reason Terminated,
//     a DisruptionTarget condition; they keep their state and start again
//     in a fresh sandbox once no longer listed (cancelled, or next boot);
//   - a sandbox that died takes every container with it and is recreated
//     with a new attempt; under restartPolicy Never a pod whose containers
//     already ran is not recreated;
//   - status: phase as kubelet's getPhase, conditions, container statuses
//     with the waiting reasons (ContainerCreating, PodInitializing,
//     CrashLoopBackOff, ErrImagePull, ImagePullBackOff,
//     CreateContainerConfigError, CreateContainerError ...), and the
//     kubectl READY/STATUS/RESTARTS columns (KubectlStatusAt);
//   - a manifest edited under a fixed metadata.uid keeps its pod: a running
//     app container or sidecar whose spec hash (recorded at creation)
//     differs is killed and started again at once, whatever the restart
//     policy ("Container X definition changed, will be restarted",
//     computePodActions); the others keep running. The hash covers the
//     whole container and the volumes it mounts (hash.go says why not only
//     name and image as the kubelet since 1.31).
//
// minikubelet goes beyond the kubelet in two places, by design (issue 2 and
// 6): a manifest that turns invalid keeps its last good pod running (an
// InvalidManifest event, no action), and an edited manifest's new pod (a new
// UID with the same name) only replaces the old one once its images are on
// the node, so a typo in an image reference does not take a working pod down.
package reconciler
