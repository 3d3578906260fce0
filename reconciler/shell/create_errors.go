package shell

// create_errors.go: the shell's record of why a container could not be
// created (reconciler.CreateError), kept until the next create of that
// container succeeds and fed back as ObservedPod.CreateErrors.

import (
	"errors"

	"k8s.io/apimachinery/pkg/types"

	mklrt "github.com/minikubelet/minikubelet/runtime"

	"github.com/minikubelet/minikubelet/reconciler"
)

// createErrorReason classifies an error of the runtime's CreateContainer.
func createErrorReason(err error) string {
	var ce *mklrt.ConfigError
	if errors.As(err, &ce) {
		return reconciler.ReasonCreateContainerConfigError
	}
	return reconciler.ReasonCreateContainerError
}

func (n *Node) recordCreateError(uid types.UID, name string, attempt uint32, reason string, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.createErrs == nil {
		n.createErrs = map[types.UID]map[string]reconciler.CreateError{}
	}
	if n.createErrs[uid] == nil {
		n.createErrs[uid] = map[string]reconciler.CreateError{}
	}
	n.createErrs[uid][name] = reconciler.CreateError{Attempt: attempt, Reason: reason, Message: err.Error()}
}

func (n *Node) clearCreateError(uid types.UID, name string) {
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
func (n *Node) observeCreateErrorsLocked(obs *reconciler.Observed, desired *reconciler.Desired) {
	for uid, m := range n.createErrs {
		op := obs.Pods[uid]
		if op == nil {
			if desired.Pods[uid] == nil {
				delete(n.createErrs, uid)
			}
			continue
		}
		op.CreateErrors = make(map[string]reconciler.CreateError, len(m))
		for name, ce := range m {
			op.CreateErrors[name] = ce
		}
	}
}
