package reconciler

// create_errors.go: why a container could not be created, kept by the
// executor until the next create of that container succeeds, and fed back
// as ObservedPod.CreateErrors so that the status shows the kubelet's
// waiting reasons instead of only Warning events.

import (
	"errors"

	"k8s.io/apimachinery/pkg/types"

	mklrt "github.com/minikubelet/minikubelet/runtime"
)

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

// createErrorReason classifies an error of the runtime's CreateContainer.
func createErrorReason(err error) string {
	var ce *mklrt.ConfigError
	if errors.As(err, &ce) {
		return ReasonCreateContainerConfigError
	}
	return ReasonCreateContainerError
}

func (n *NodeShell) recordCreateError(uid types.UID, name string, attempt uint32, reason string, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.createErrs == nil {
		n.createErrs = map[types.UID]map[string]CreateError{}
	}
	if n.createErrs[uid] == nil {
		n.createErrs[uid] = map[string]CreateError{}
	}
	n.createErrs[uid][name] = CreateError{Attempt: attempt, Reason: reason, Message: err.Error()}
}

func (n *NodeShell) clearCreateError(uid types.UID, name string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if m := n.createErrs[uid]; m != nil {
		delete(m, name)
		if len(m) == 0 {
			delete(n.createErrs, uid)
		}
	}
}

// observeCreateErrors copies the recorded failures into obs and forgets
// those of pods that are gone. Call with n.mu held.
func (n *NodeShell) observeCreateErrorsLocked(obs *Observed, desired *Desired) {
	for uid, m := range n.createErrs {
		op := obs.Pods[uid]
		if op == nil {
			if desired.Pods[uid] == nil {
				delete(n.createErrs, uid)
			}
			continue
		}
		op.CreateErrors = make(map[string]CreateError, len(m))
		for name, ce := range m {
			op.CreateErrors[name] = ce
		}
	}
}
