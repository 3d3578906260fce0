package systemd

import (
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/minikubelet/minikubelet/internal/testnode"
)

// List reads a scope's properties once per state: a List served from the
// remembered facts equals one that asks systemd for everything, before and
// after the scope's process dies; a listed cgroup also serves Usage without
// asking systemd.
func TestListRemembersScopeFactsPerState(t *testing.T) {
	testnode.Require(t)
	ctx := testCtx(t)
	d := newTestDriver(t, "mklfacts")
	if err := d.Init(ctx); err != nil {
		t.Fatal(err)
	}
	plan := PlanPod(podOf("fact-0000", nil, ctr("c", nil, rl("cpu", "100m", "memory", "32Mi"))), PlanOptions{CgroupRoot: "mklfacts"})
	if err := d.EnsurePod(ctx, plan.PodCgroup()); err != nil {
		t.Fatal(err)
	}
	child := sdStartHeld(t)
	id := randID("fact")
	if err := d.StartScope(ctx, ScopeSpec{Pod: plan.PodCgroup(), ID: id, PIDs: []int{child.pid()}, Resources: plan.Containers["c"]}); err != nil {
		t.Fatal(err)
	}
	child.releaseAndReport(t)
	list := func(fresh bool) []UnitState {
		t.Helper()
		if fresh {
			d.cacheMu.Lock()
			d.scopeFacts = nil
			d.cacheMu.Unlock()
		}
		us, err := d.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		sort.Slice(us, func(i, j int) bool { return us[i].Unit < us[j].Unit })
		return us
	}
	compare := func(when string) {
		t.Helper()
		remembered := list(false)
		if got, want := remembered, list(true); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: List from remembered facts\n%+v\nwant (fresh)\n%+v", when, got, want)
		}
	}
	list(false)
	if _, ok := d.scopeFactsOf(ScopeUnitName(id)); !ok {
		t.Fatal("List remembered nothing of the scope")
	}
	compare("running")
	if _, cg, ok := d.cachedCgroup(plan.UID, id); !ok || cg == "" {
		t.Errorf("listed active scope not resolvable without D-Bus: %q %v", cg, ok)
	}
	if u, err := d.Usage(ctx, plan.UID, id); err != nil || u.PIDs == 0 {
		t.Errorf("Usage from the remembered cgroup = %+v, %v; want the scope's task", u, err)
	}
	child.cmd.Process.Kill()
	<-child.exited
	// The scope goes inactive (or away); List follows the state change.
	deadline := time.Now().Add(10 * time.Second)
	for {
		active := false
		for _, u := range list(false) {
			if u.ID == id && u.ActiveState == "active" {
				active = true
			}
		}
		if !active || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	compare("after the scope's process died")
}
