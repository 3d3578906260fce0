package chaos

import (
	"fmt"
	"math/rand"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minikubelet/minikubelet/internal/e2enode"
)

// churn is the desired set of pods and the random changes made to it.
type churn struct {
	n                       *e2enode.Node
	r                       *rand.Rand
	desired                 map[string]*want
	next, target            int
	creates, edits, deletes int
}

func (c *churn) create() {
	k := stable
	switch x := c.r.Intn(100); {
	case x < 15:
		k = crasher
	case x < 30:
		k = exiter
	}
	w := &want{name: fmt.Sprintf("p%d", c.next), kind: k}
	c.next++
	c.desired[w.name] = w
	c.n.Write(w.name+".yaml", w.manifest())
	c.creates++
}

func (c *churn) names() []string {
	var out []string
	for name := range c.desired {
		out = append(out, name)
	}
	sort.Strings(out) // map order would defeat the seed
	return out
}

// step makes one random change: a create, an edit (a new generation: a new
// pod UID, so the pod is replaced) or a delete.
func (c *churn) step() {
	names := c.names()
	x := c.r.Intn(100)
	switch {
	case len(names) < c.target/2 || (x < 40 && len(names) < c.target):
		c.create()
	case x < 70:
		w := c.desired[names[c.r.Intn(len(names))]]
		w.gen++
		w.uid = "" // replaced on purpose: a new baseline
		c.n.Write(w.name+".yaml", w.manifest())
		c.edits++
	default:
		name := names[c.r.Intn(len(names))]
		delete(c.desired, name)
		c.n.Remove(name + ".yaml")
		c.deletes++
	}
}

// removeAll deletes every manifest and checks that nothing is left.
func removeAll(t *testing.T, n *e2enode.Node, desired map[string]*want, total *tally) time.Duration {
	t.Helper()
	for name := range desired {
		n.Remove(name + ".yaml")
		delete(desired, name)
	}
	d, tl, _ := converge(n, desired, nil, nil, 120*time.Second)
	report(t, "after every manifest was removed", tl)
	total.add(tl)
	return d
}

// report fails the test with what a check found.
func report(t *testing.T, when string, tl tally) {
	t.Helper()
	if tl.ok() {
		return
	}
	p := tl.problems
	if len(p) > 25 {
		p = append(p[:25], fmt.Sprintf("… and %d more", len(tl.problems)-25))
	}
	t.Errorf("%s: lost %d, duplicated %d, leaked %d, restarted without reason %d:\n  %s",
		when, tl.lost, tl.duplicated, tl.leaked, tl.restarted, strings.Join(p, "\n  "))
}

// TestChaosDaemonKill (scenario 1): the daemon is SIGKILL'd at random
// instants while pods are created, edited and deleted (some crash-loop,
// some exit with a code, the others carry exec probes), and the folder
// changes while it is down too. After each restart, once quiet: every
// desired pod exactly once, nothing left of the others, no restart without
// reason, every exit code kept.
func TestChaosDaemonKill(t *testing.T) {
	r := rng(t)
	kills := rounds(t, 2, 20)
	n := e2enode.New(t)
	c := &churn{n: n, r: r, desired: map[string]*want{}, target: pick(6, 50)}
	var total tally
	var worst time.Duration
	done := 0
	defer func() {
		results.Add(Row{Scenario: "1 daemon SIGKILL during churn",
			Load:   fmt.Sprintf("≤%d pods: %d creates, %d edits, %d deletes; crash loops, exec probes, exit codes", c.target, c.creates, c.edits, c.deletes),
			Faults: fmt.Sprintf("%d SIGKILLs of the daemon", done), Lost: total.lost, Duplicated: total.duplicated,
			Leaked: total.leaked, Restarted: total.restarted, Converge: worst})
	}()
	n.Start()
	for i := 0; i < c.target*2/3; i++ {
		c.create()
	}
	d, tl, snap := converge(n, c.desired, nil, nil, 180*time.Second)
	report(t, "first start", tl)
	if !tl.ok() {
		return
	}
	t.Logf("%d pods converged in %s", len(c.desired), d.Round(time.Millisecond))
	baseline(snap, c.desired)
	for k := 0; k < kills; k++ {
		end := time.Now().Add(time.Duration(200+r.Intn(pick(1000, 2500))) * time.Millisecond)
		for time.Now().Before(end) {
			c.step()
			time.Sleep(time.Duration(10+r.Intn(120)) * time.Millisecond) // pacing, not a wait
		}
		n.Stop(syscall.SIGKILL)
		done++
		for i := r.Intn(4); i > 0; i-- { // the folder changes while the daemon is down
			c.step()
		}
		n.Start()
		d, tl, snap := converge(n, c.desired, nil, nil, 180*time.Second)
		worst = max(worst, d)
		total.add(tl)
		report(t, fmt.Sprintf("kill %d", k+1), tl)
		if !tl.ok() {
			return
		}
		t.Logf("kill %d: %d pods converged in %s", k+1, len(c.desired), d.Round(time.Millisecond))
		baseline(snap, c.desired)
	}
	worst = max(worst, removeAll(t, n, c.desired, &total))
}
