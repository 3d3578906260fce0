package reconciler

import (
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// ---------------------------------------------------------------------------
// Inputs: what should run.

// Desired is what the manifest folder asks for, keyed by pod UID.
type Desired struct {
	Pods map[types.UID]*DesiredPod
	// FileErrors are files that never produced a valid pod (nothing runs for
	// them); they only give InvalidManifest events. Keyed by file path.
	FileErrors map[string]string
	// Shutdown lists, by pod UID, the pods to stop because the node is
	// shutting down (the kubelet's GracefulNodeShutdown; filled by the
	// node shutdown manager, nil otherwise). Such a pod is stopped, not
	// removed: it keeps its state and starts again once it is no longer
	// listed (the shutdown was cancelled, or the node booted again).
	Shutdown map[types.UID]ShutdownStop
}

// ShutdownStop bounds one pod's stop for a node shutdown: its containers
// get min(terminationGracePeriodSeconds, MaxGrace) from Since (the
// kubelet's gracePeriodOverride of the pod's priority group).
type ShutdownStop struct {
	Since    time.Time
	MaxGrace time.Duration
	// Rejected: the pod appeared while the node was shutting down and is
	// not started at all (kubelet's admission: reason NodeShutdown).
	Rejected bool
}

// DesiredPod is one static pod from one file.
type DesiredPod struct {
	// Pod is the defaulted pod with its static-pod identity (name
	// "<name>-<node>", UID from the content hash). When the file turned
	// invalid it is the last good spec, which keeps running.
	Pod *v1.Pod
	// Source is the manifest file.
	Source string
	// Error is the file's current parse/validation error ("" when valid).
	// A non-empty Error with a Pod means: keep the last good pod, report.
	Error string
	// SeenAt is when the file's current content was first read
	// (kubernetes.io/config.seen); imagePullPolicy Always pulls once after it.
	SeenAt time.Time
	// QOSClass is computed by systemd's plan (not here) and copied to status.
	QOSClass v1.PodQOSClass
}

// ---------------------------------------------------------------------------
// Inputs: what runs.

// Observed is everything the IO shell found on the node.
type Observed struct {
	Pods map[types.UID]*ObservedPod
	// Images by the reference written in the pod spec (the shell normalises
	// nothing here; it keys by container.Image so lookups are exact).
	Images map[string]*ImageState
	// InFlight holds the Key of every action the executor is running now;
	// the plan does not issue those again.
	InFlight map[string]struct{}
	// PrevStatus is the last status the shell persisted per pod UID (nil when
	// none). Events are derived from the difference to the new status, and
	// condition transition times and startTime are carried over from it.
	PrevStatus map[types.UID]*v1.PodStatus
	// HostIP is the node's address for status.hostIP.
	HostIP string
	// NodeName for event messages ("Successfully assigned ns/pod to node").
	NodeName string
}

// SandboxState is the pause sandbox's state as the runtime reports it.
type SandboxState uint8

const (
	// SandboxNone: no sandbox exists for the pod.
	SandboxNone SandboxState = iota
	// SandboxRunning: the pause process is alive, namespaces are usable.
	SandboxRunning
	// SandboxExited: the pause process is gone (or the scope has no process:
	// a half-created sandbox) but its resources (scope, netns, IP) are held.
	SandboxExited
	// SandboxStopped: exited and its resources released (StopSandbox done).
	SandboxStopped
)

// Sandbox is the pod's latest sandbox.
type Sandbox struct {
	ID      string
	Attempt uint32
	State   SandboxState
	PID     int
	IPs     []string // pod IPs, first is status.podIP
}

// ContainerState is one container instance's state as the runtime reports it.
type ContainerState uint8

const (
	// ContainerCreated: created, never started (a daemon crash between
	// create and start, or a scope without its process).
	ContainerCreated ContainerState = iota
	ContainerRunning
	ContainerExited
)

// ContainerInstance is one run (attempt) of a container. The runtime keeps
// exit records across daemon restarts; the shell passes every instance it
// still knows (at least the last 8 per container name, so CrashLoopBackOff
// can count consecutive crashes up to its cap).
type ContainerInstance struct {
	ID         string
	Name       string
	Attempt    uint32 // kubelet's restartCount of this instance
	SandboxID  string // the sandbox it ran in
	State      ContainerState
	ExitCode   int32
	Signal     int32
	Reason     string // Completed, Error, OOMKilled, StartError, ...
	Message    string // termination message
	StartedAt  time.Time
	FinishedAt time.Time
	Image      string // the spec's image reference
	ImageRef   string // resolved reference (status.image)
	ImageID    string // digest (status.imageID)
	// Hash is the container spec's hash when the instance was created
	// (containerHash; "" when unknown, e.g. made by an older daemon).
	Hash string
}

// ImagePresence is the image store's view of one reference.
type ImagePresence uint8

const (
	ImageAbsent ImagePresence = iota
	ImagePulling
	ImagePresent
	ImagePullFailed
)

// ImageState is one image reference on the node.
type ImageState struct {
	Presence ImagePresence
	ImageID  string
	// PulledAt is when it was last pulled from a registry (zero: imported
	// or present before; pullPolicy Always wants PulledAt >= SeenAt).
	PulledAt time.Time
	// Failures counts consecutive failed pulls; LastFailure is the latest.
	Failures    int
	LastFailure time.Time
	Message     string // the registry's own message of the last failure
	// BackoffUntil, when set by the image store, overrides the computed
	// ImagePullBackOff expiry.
	BackoffUntil time.Time
}

// ProbeOutcome is a prober's verdict after its thresholds (kubelet's
// results manager reports Failure only after failureThreshold failures).
type ProbeOutcome uint8

const (
	ProbeUnknown ProbeOutcome = iota
	ProbeSuccess
	ProbeFailure
)

// ProbeResult is one probe of one container instance.
type ProbeResult struct {
	ContainerID          string // the instance probed; results of older instances are ignored
	Outcome              ProbeOutcome
	ConsecutiveFailures  int32
	ConsecutiveSuccesses int32
	Output               string
}

// ProbeResults are the three probes of one container.
type ProbeResults struct {
	Liveness, Readiness, Startup ProbeResult
}

// HookState is the state of a preStop hook run.
type HookState uint8

const (
	HookNotRun HookState = iota
	HookRunning
	HookDone
	HookFailed
)

// Termination records that a pod's termination started, so the grace
// deadline survives plan rounds and daemon restarts (the shell persists it
// when it executes MarkTerminating).
type Termination struct {
	Since    time.Time
	Deadline time.Time
	Reason   string
}

// ObservedPod is what exists on the node for one pod UID.
type ObservedPod struct {
	UID       types.UID
	Namespace string
	Name      string
	// Pod is the spec recorded in the pod's state dir when it was created
	// (nil when no state survived). A pod no longer desired is terminated
	// with it (its grace period, preStop hooks, sidecars).
	Pod *v1.Pod

	SliceExists bool // the pod's cgroup slice exists
	StateExists bool // the pod's state dir exists
	MountsExist bool // mounts (emptyDir tmpfs, shm, overlay roots) remain

	Sandbox    Sandbox
	Containers []ContainerInstance
	Probes     map[string]ProbeResults // by container name
	PreStop    map[string]HookState    // by container instance ID

	Termination *Termination // nil: not terminating
	StartTime   time.Time    // when the pod was first started on this node

	// StrayScopes are the IDs of running scopes in the pod's slice that
	// belong to neither its recorded sandbox nor a container the runtime
	// lists: an earlier instance whose records were lost (a damaged or
	// removed state folder) that still runs.
	StrayScopes []string

	// CreateErrors is, by container name, the latest failure to create
	// the container (the executor's; forgotten once a create succeeds).
	// The status shows it as the container's waiting reason while the
	// plan keeps asking for that same attempt.
	CreateErrors map[string]CreateError
}

// Config holds the knobs of the plan.
type Config struct {
	// CrashLoopInitial is the first non-zero restart delay (kubelet: 10 s).
	CrashLoopInitial time.Duration
	// CrashLoopMax caps the delay (kubelet: 300 s; --crashloop-max lowers it).
	CrashLoopMax time.Duration
	// CrashLoopReset: a container that ran this long resets its back-off
	// (kubelet: 10 min, twice the max back-off).
	CrashLoopReset time.Duration
	// ImagePullInitial / ImagePullMax: ImagePullBackOff (10 s doubling to 300 s).
	ImagePullInitial time.Duration
	ImagePullMax     time.Duration
	// DefaultGrace is used when the pod does not set
	// terminationGracePeriodSeconds (v1 default 30 s).
	DefaultGrace time.Duration
	// MinGraceAfterPreStop is what a container keeps after its preStop hook
	// used up the grace period (kubelet's minimumGracePeriodInSeconds, 2 s).
	MinGraceAfterPreStop time.Duration
}

// DefaultConfig returns the kubelet's values.
func DefaultConfig() Config {
	return Config{
		CrashLoopInitial:     10 * time.Second,
		CrashLoopMax:         300 * time.Second,
		CrashLoopReset:       600 * time.Second,
		ImagePullInitial:     10 * time.Second,
		ImagePullMax:         300 * time.Second,
		DefaultGrace:         30 * time.Second,
		MinGraceAfterPreStop: 2 * time.Second,
	}
}

// withDefaults fills zero fields so a zero Config behaves like the kubelet.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	fill := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	fill(&c.CrashLoopInitial, d.CrashLoopInitial)
	fill(&c.CrashLoopMax, d.CrashLoopMax)
	fill(&c.CrashLoopReset, d.CrashLoopReset)
	fill(&c.ImagePullInitial, d.ImagePullInitial)
	fill(&c.ImagePullMax, d.ImagePullMax)
	fill(&c.DefaultGrace, d.DefaultGrace)
	fill(&c.MinGraceAfterPreStop, d.MinGraceAfterPreStop)
	return c
}

// ---------------------------------------------------------------------------
// Outputs.

// Result is one plan.
type Result struct {
	// Pods holds one entry per pod UID that is desired or observed, sorted
	// by UID.
	Pods []PodPlan
	// Events are derived from transitions (previous status -> new status)
	// and from the actions issued. Each has a Key; the shell records an
	// event once per Key (a plan repeated before its actions ran repeats
	// the same keys).
	Events []Event
	// NextWake is the earliest time the plan can change without any new
	// observation (zero: none). The shell sets a timer for it.
	NextWake time.Time
}

// PodPlan is the plan of one pod.
type PodPlan struct {
	UID       types.UID
	Namespace string
	Name      string
	// Actions to execute in order, stopping at the first failure.
	Actions []Action
	// Status is the pod's computed status (nil for an orphan whose spec is
	// unknown). The shell persists it and feeds it back as PrevStatus.
	Status *v1.PodStatus
	// Terminating: the pod is being stopped (deleted, replaced, orphaned);
	// it stays listed (kubectl shows Terminating) until RemovePod is done.
	Terminating bool
	// InvalidManifest repeats DesiredPod.Error for the API.
	InvalidManifest string
	// ShutdownStopped: the pod is listed in Desired.Shutdown and nothing of
	// it runs any more (containers exited, sandbox stopped).
	ShutdownStopped bool
}

// Event is a Kubernetes-shaped event.
type Event struct {
	Key       string // dedup key (stable across identical plans)
	PodUID    types.UID
	Namespace string
	Name      string // the pod's name
	Container string // "" for pod-level events; fieldPath spec.containers{name}
	Type      string // v1.EventTypeNormal or v1.EventTypeWarning
	Reason    string
	Message   string
	Time      time.Time
}

// Action is one idempotent request to the IO shell.
//
// Executor contract:
//   - run a pod's actions in order, stop at the first failure (the next
//     plan asks again); different pods run in parallel (with a bound);
//     consecutive PullImage actions may run in parallel;
//   - while an action runs, put its Key in Observed.InFlight; a PullImage
//     key is global ("pull/<image>"): one pull serves every pod;
//   - each action is a request for a state, so doing it twice is harmless
//     (EnsurePodCgroup on an existing slice, KillContainer of an exited
//     container, RemovePod of a removed pod all succeed).
type Action interface {
	// Pod is the pod the action belongs to.
	Pod() types.UID
	// Key identifies the request; the same Key means the same request.
	Key() string
	// barrier: actions after it in the pod's chain need its effect.
	barrier() bool
}

// EnsurePodCgroup creates the pod's slice (Driver.EnsurePod).
type EnsurePodCgroup struct{ UID types.UID }

// PullImage fetches an image (shared by every pod that needs it).
type PullImage struct {
	UID    types.UID
	Image  string
	Policy v1.PullPolicy
}

// RunSandbox creates and starts the pause sandbox.
type RunSandbox struct {
	UID     types.UID
	Attempt uint32
}

// CreateAndStartContainer creates one container instance in the pod's
// current sandbox and starts it.
type CreateAndStartContainer struct {
	UID     types.UID
	Name    string
	Attempt uint32 // its restartCount
	Init    bool   // an init container (regular or sidecar)
	Sidecar bool   // an init container with restartPolicy Always
	Image   string
	// SandboxAttempt is the sandbox it belongs in; executors check that the
	// current sandbox has it (it may be created by the action before).
	SandboxAttempt uint32
	// Hash is containerHash of the spec it is created from; executors
	// record it with the instance (ContainerInstance.Hash).
	Hash string
	// DefinitionChanged: it replaces an instance of an older spec under
	// the same pod UID (executors update the pod's recorded spec).
	DefinitionChanged bool
}

// KillContainer stops a running container instance: run its preStop hook
// when RunPreStop (bounded by Grace), send the stop signal, wait what is
// left of Grace but at least MinGraceAfterPreStop when a hook ran, SIGKILL.
type KillContainer struct {
	UID                  types.UID
	ID                   string
	Name                 string
	Grace                time.Duration
	RunPreStop           bool
	MinGraceAfterPreStop time.Duration
	Reason               string // machine reason: Deleted, Replaced, LivenessFailed, ...
	Message              string // the Killing event's message
}

// RemoveContainer deletes a created-but-never-started instance (a daemon
// crash between create and start); a fresh attempt replaces it.
type RemoveContainer struct {
	UID  types.UID
	ID   string
	Name string
}

// StopSandbox stops the pause process (if alive) and releases the
// sandbox's resources (scope, network).
type StopSandbox struct {
	UID types.UID
	ID  string
}

// Termination reasons Plan uses (KillContainer.Reason, Termination.Reason).
const (
	ReasonDeleted          = "Deleted"          // the manifest file was removed
	ReasonReplaced         = "Replaced"         // the file changed: a new UID took over the name
	ReasonDeadlineExceeded = "DeadlineExceeded" // activeDeadlineSeconds
	ReasonCompleted        = "Completed"        // the pod finished (restartPolicy OnFailure/Never)
	ReasonSandboxChanged   = "SandboxChanged"   // the sandbox died
	ReasonNodeShutdown     = "NodeShutdown"     // the node is shutting down (Desired.Shutdown)
	// ReasonDefinitionChanged: the manifest was edited under a fixed
	// metadata.uid and this container's spec changed.
	ReasonDefinitionChanged = "DefinitionChanged"
)

// The status of a pod stopped for a node shutdown, word for word the
// kubelet's (nodeshutdown manager): phase Failed, this reason and message,
// and a DisruptionTarget condition (reason TerminationByKubelet).
const (
	NodeShutdownReason  = "Terminated"
	NodeShutdownMessage = "Pod was terminated in response to imminent node shutdown."
	// A pod that appears while the node shuts down is rejected (kubelet's
	// nodeshutdown admission handler): phase Failed, this reason and message.
	NodeShutdownRejectedReason  = "NodeShutdown"
	NodeShutdownRejectedMessage = "Pod was rejected as the node is shutting down."
)

// MarkTerminating asks the shell to persist Termination{Since: now,
// Deadline: now+Grace, Reason} unless one is recorded.
type MarkTerminating struct {
	UID    types.UID
	Grace  time.Duration
	Reason string
}

// RemovePod removes what remains of a terminated pod: container scopes,
// the pod slice, mounts and the state dir (logs are kept per policy).
type RemovePod struct {
	UID types.UID
}

// StopStrayScope kills and stops a scope of ObservedPod.StrayScopes: left
// alone, the earlier instance would run beside the pod's new sandbox (the
// pod twice).
type StopStrayScope struct {
	UID types.UID
	ID  string
}

// CleanupOrphan removes a pod that is neither desired nor known (no spec
// survived): kill everything at once, then remove as RemovePod does.
type CleanupOrphan struct {
	UID types.UID
}

func (a EnsurePodCgroup) Pod() types.UID         { return a.UID }
func (a PullImage) Pod() types.UID               { return a.UID }
func (a RunSandbox) Pod() types.UID              { return a.UID }
func (a CreateAndStartContainer) Pod() types.UID { return a.UID }
func (a KillContainer) Pod() types.UID           { return a.UID }
func (a RemoveContainer) Pod() types.UID         { return a.UID }
func (a StopSandbox) Pod() types.UID             { return a.UID }
func (a MarkTerminating) Pod() types.UID         { return a.UID }
func (a RemovePod) Pod() types.UID               { return a.UID }
func (a CleanupOrphan) Pod() types.UID           { return a.UID }
func (a StopStrayScope) Pod() types.UID          { return a.UID }

// Keys: pulls are keyed by image alone (one pull serves every pod), the rest
// by pod and the object they act on.
func (a EnsurePodCgroup) Key() string { return string(a.UID) + "/cgroup" }
func (a PullImage) Key() string       { return "pull/" + a.Image }
func (a RunSandbox) Key() string      { return string(a.UID) + "/sandbox/" + u32(a.Attempt) }
func (a CreateAndStartContainer) Key() string {
	return string(a.UID) + "/start/" + a.Name + "/" + u32(a.Attempt)
}
func (a KillContainer) Key() string   { return string(a.UID) + "/kill/" + a.ID }
func (a RemoveContainer) Key() string { return string(a.UID) + "/remove/" + a.ID }
func (a StopSandbox) Key() string     { return string(a.UID) + "/stopsandbox/" + a.ID }
func (a MarkTerminating) Key() string { return string(a.UID) + "/terminate" }
func (a RemovePod) Key() string       { return string(a.UID) + "/removepod" }
func (a CleanupOrphan) Key() string   { return string(a.UID) + "/cleanup" }
func (a StopStrayScope) Key() string  { return string(a.UID) + "/stray/" + a.ID }

func (EnsurePodCgroup) barrier() bool         { return true }
func (PullImage) barrier() bool               { return true }
func (RunSandbox) barrier() bool              { return true }
func (CreateAndStartContainer) barrier() bool { return false }
func (KillContainer) barrier() bool           { return false }
func (RemoveContainer) barrier() bool         { return false }
func (StopSandbox) barrier() bool             { return true }
func (MarkTerminating) barrier() bool         { return false }
func (RemovePod) barrier() bool               { return true }
func (CleanupOrphan) barrier() bool           { return true }
func (StopStrayScope) barrier() bool          { return true }

// u32 formats without fmt (keys are built for every pod on every plan).
func u32(n uint32) string {
	if n == 0 {
		return "0"
	}
	var b [10]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}
