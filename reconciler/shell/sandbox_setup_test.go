package shell

import (
	"context"
	"testing"

	"k8s.io/apimachinery/pkg/types"

	"github.com/minikubelet/minikubelet/reconciler"
)

// A round that looks at a pod while this daemon is making its sandbox (the
// pause runs, its network is not set up yet: CNI would find no attachment)
// must not CNI CHECK that sandbox as if it were adopted from an earlier
// run: the check fails, the sandbox is called broken ("its sandbox is
// recreated", a NetworkNotReady warning), and a verdict written after the
// sandbox's own "set up by this process" could have it replaced for
// nothing. Found by chaos scenario 2 (a warning per new pod during churn).
func TestSandboxBeingMadeIsNotChecked(t *testing.T) {
	w := newWorld(t)
	w.net.broken = true // a CHECK before Setup finds nothing attached
	desired := desiredOf(testPod("u1", "app"))
	n := w.node()
	var mid reconciler.SandboxState
	seen := false
	w.rt.ran = func(uid types.UID) {
		obs, err := n.Observe(context.Background(), &desired)
		if err != nil {
			t.Errorf("observe mid-sandbox: %v", err)
			return
		}
		if op := obs.Pods[uid]; op != nil {
			mid, seen = op.Sandbox.State, true
		}
	}
	w.converge(n, desired)
	if !seen {
		t.Fatal("no round looked at the pod while its sandbox was made")
	}
	if w.net.checked != 0 {
		t.Errorf("CNI CHECK ran %d times on a sandbox this daemon was setting up, want none", w.net.checked)
	}
	if mid != reconciler.SandboxRunning {
		t.Errorf("mid-setup the sandbox was observed %v, want running (its pause runs; this daemon sets up its network)", mid)
	}
	if k := w.rt.count("RunSandbox"); k != 1 {
		t.Errorf("RunSandbox called %d times, want once", k)
	}
	wantStates(t, w, "u1", "app#0=Running")
}
