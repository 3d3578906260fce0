package reconciler

// create_errors.go: why a container could not be created. The shell keeps
// the latest one until the next create of that container succeeds and feeds
// it back as ObservedPod.CreateErrors, so that the status shows the
// kubelet's waiting reasons instead of only Warning events.

// The kubelet's waiting reasons for a container that could not be created
// (kuberuntime's ErrCreateContainerConfig and ErrCreateContainer).
const (
	// ReasonCreateContainerConfigError: the container's configuration was
	// refused before anything was created (runAsNonRoot with a root user,
	// a bad subPath, an environment reference that cannot be resolved).
	ReasonCreateContainerConfigError = "CreateContainerConfigError"
	// ReasonCreateContainerError: creating it failed (its root
	// filesystem, a mount, the container init).
	ReasonCreateContainerError = "CreateContainerError"
)

// CreateError is the latest failure to create one container.
type CreateError struct {
	Attempt uint32 // the attempt (restartCount) that could not be created
	Reason  string // ReasonCreateContainerConfigError or ReasonCreateContainerError
	Message string
}
