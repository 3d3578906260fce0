package chaos

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/minikubelet/minikubelet/internal/e2enode"
)

// corrupt truncates or garbles every JSON file below dir and returns how
// many it hurt.
func corrupt(dir string, garble bool) int {
	hurt := 0
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".json") {
			return nil
		}
		b, _ := os.ReadFile(p)
		if garble {
			b = []byte("\x00\xffgarbage{{")
		} else {
			b = b[:len(b)/2]
		}
		if os.WriteFile(p, b, 0o600) == nil {
			hurt++
		}
		return nil
	})
	return hurt
}

// TestChaosCorruptState (scenario 5; the short form of one pod is
// internal/daemon's TestCorruptedStateIsReportedAndConverges): while the
// daemon is SIGKILL'd, the state files of some pods are truncated or turned
// to garbage and one pod's whole folder disappears while its sandbox runs
// (its API socket is stale after every kill). The next start comes up, the
// hurt pods run again (recreated), the others are not touched, and nothing
// of the old sandboxes is left (the test itself unmounts what was below the
// folder it took away).
func TestChaosCorruptState(t *testing.T) {
	r := rng(t)
	faults := rounds(t, 1, 5)
	n := e2enode.New(t)
	npods := pick(3, 10)
	var total tally
	var worst time.Duration
	files, gone := 0, 0
	defer func() {
		results.Add(Row{Scenario: "5 corrupted state", Load: fmt.Sprintf("%d pods with exec probes", npods),
			Faults: fmt.Sprintf("%d daemon SIGKILLs, each with %d state files truncated or garbled and %d pod folders taken away under running sandboxes in all", faults, files, gone),
			Lost:   total.lost, Duplicated: total.duplicated, Leaked: total.leaked, Restarted: total.restarted, Converge: worst})
	}()
	attic := filepath.Join(n.Dir, "attic") // the folders taken away: same filesystem, outside --root-dir
	os.MkdirAll(attic, 0o755)
	t.Cleanup(func() {
		for _, m := range e2enode.MountsUnder(attic) {
			unix.Unmount(m, unix.MNT_DETACH)
		}
		os.RemoveAll(attic)
	})
	n.Start()
	desired := map[string]*want{}
	if startStable(t, n, desired, "c", npods) == nil {
		return
	}
	names := (&churn{desired: desired}).names()
	for k := 0; k < faults; k++ {
		n.Stop(syscall.SIGKILL)
		hurt := map[string]bool{}
		for _, name := range names {
			if r.Intn(3) == 0 {
				hurt[name] = true
				files += corrupt(filepath.Join(n.Root, "pods", desired[name].uid), r.Intn(2) == 0)
			}
		}
		victim := names[r.Intn(len(names))]
		hurt[victim] = true
		dir := filepath.Join(n.Root, "pods", desired[victim].uid)
		if err := os.Rename(dir, filepath.Join(attic, fmt.Sprintf("%d-%s", k, desired[victim].uid))); err != nil {
			t.Fatalf("take %s away: %v", dir, err)
		}
		gone++
		n.Start()
		// A pod with damaged files may be adopted or recreated (what the
		// daemon still can read decides); the one without a folder must get
		// a new sandbox.
		d, tl, s := converge(n, desired, hurt, func(s *snapshot) bool {
			return s.sandboxPID[desired[victim].podName()] != desired[victim].sandbox
		}, 120*time.Second)
		worst = max(worst, d)
		total.add(tl)
		report(t, fmt.Sprintf("start %d after corruption of %v", k+2, hurt), tl)
		if !tl.ok() {
			return
		}
		t.Logf("fault %d: %d pods hurt, converged in %s", k+1, len(hurt), d.Round(time.Millisecond))
		for name := range hurt {
			desired[name].uid = ""
		}
		baseline(s, desired)
	}
	worst = max(worst, removeAll(t, n, desired, &total))
}
