package shell

import (
	"errors"
	"fmt"
	"testing"

	"k8s.io/apimachinery/pkg/types"

	mklrt "github.com/minikubelet/minikubelet/runtime"

	"github.com/minikubelet/minikubelet/reconciler"
)

// The executor's bookkeeping: a create failure is classified, shown for
// its pod until a create of that container succeeds, and forgotten with
// the pod.
func TestCreateErrorsObserved(t *testing.T) {
	if r := createErrorReason(fmt.Errorf("create container app: %w", &mklrt.ConfigError{Err: errors.New("runAsNonRoot")})); r != reconciler.ReasonCreateContainerConfigError {
		t.Errorf("config error classified as %s", r)
	}
	if r := createErrorReason(errors.New("container init: mount: not a directory")); r != reconciler.ReasonCreateContainerError {
		t.Errorf("runtime error classified as %s", r)
	}
	n := &Node{}
	n.recordCreateError("u1", "app", 3, reconciler.ReasonCreateContainerError, errors.New("boom"))
	n.recordCreateError("gone", "app", 0, reconciler.ReasonCreateContainerError, errors.New("boom"))
	obs := reconciler.Observed{Pods: map[types.UID]*reconciler.ObservedPod{"u1": {UID: "u1"}}}
	n.observeCreateErrorsLocked(&obs, &reconciler.Desired{})
	if ce := obs.Pods["u1"].CreateErrors["app"]; ce != (reconciler.CreateError{Attempt: 3, Reason: reconciler.ReasonCreateContainerError, Message: "boom"}) {
		t.Errorf("observed %+v", ce)
	}
	if _, ok := n.createErrs["gone"]; ok {
		t.Error("the error of a pod that is gone is kept")
	}
	n.clearCreateError("u1", "app")
	obs = reconciler.Observed{Pods: map[types.UID]*reconciler.ObservedPod{"u1": {UID: "u1"}}}
	n.observeCreateErrorsLocked(&obs, &reconciler.Desired{})
	if len(obs.Pods["u1"].CreateErrors) != 0 {
		t.Errorf("cleared error still observed: %+v", obs.Pods["u1"].CreateErrors)
	}
}
