package chaos

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minikubelet/minikubelet/internal/e2enode"
)

// junk is one abusive manifest file's name and content.
func junk(r *rand.Rand, i int) (string, []byte) {
	switch i % 7 {
	case 0: // not YAML at all
		b := make([]byte, 512+r.Intn(4096))
		r.Read(b)
		return fmt.Sprintf("garbage-%d.yaml", i), b
	case 1: // YAML, not a pod
		return fmt.Sprintf("notapod-%d.yaml", i), []byte(fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c%d}\n", i))
	case 2: // a pod that fails validation
		return fmt.Sprintf("invalid-%d.yaml", i), []byte(fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata: {name: Bad_Name_%d}\nspec: {containers: [{name: c}]}\n", i))
	case 3: // deeply nested
		d := 2000 + r.Intn(20000)
		return fmt.Sprintf("nested-%d.yaml", i), []byte("spec: " + strings.Repeat("[", d) + strings.Repeat("]", d) + "\n")
	case 4: // huge: a pod with an enormous annotation, the first few near and
		// over the 10 MiB limit, the others 10 to 100 KiB
		size := (10 << 10) + r.Intn(90<<10)
		if i < 7*4 {
			size = (9 << 20) + r.Intn(3<<20)
		}
		// (its container name is invalid: parsed in full, then refused)
		return fmt.Sprintf("huge-%d.yaml", i), []byte(fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata:\n  name: huge%d\n  annotations: {a: %q}\nspec: {containers: [{name: Not_Valid, image: x}]}\n", i, strings.Repeat("x", size)))
	case 5: // a pod cut short before its spec (a cut further on can be a
		// valid pod of another image: a pod like any other)
		m := (&want{name: fmt.Sprintf("cut%d", i)}).manifest()
		return fmt.Sprintf("cut-%d.yaml", i), []byte(m[:1+r.Intn(strings.Index(m, "spec:"))])
	default: // an editor's leftovers
		return fmt.Sprintf(".pod-%d.yaml.swp", i), []byte("b0VIM 8.2\x00\x00")
	}
}

// TestChaosManifestFolder (scenario 6): thousands of files written into the
// live manifest folder over a while — garbage, non-pods, invalid pods,
// YAML nested thousands deep, files around the 10 MiB limit, truncated
// pods, editors' swap files — beside valid pods, some declared twice in two
// files. No panic, memory bounded, the valid pods run once each, the pod
// that was there before is untouched, and removing everything leaves
// nothing behind.
func TestChaosManifestFolder(t *testing.T) {
	r := rng(t)
	files := pick(300, 5000)
	valid := pick(4, 20)
	n := e2enode.New(t)
	var total tally
	var worst time.Duration
	rssBefore, rssPeak, written := 0, 0, 0
	defer func() {
		results.Add(Row{Scenario: "6 manifest folder abuse", Load: fmt.Sprintf("1 pod running; %d valid pods added, %d of them in two files", valid, valid/2),
			Faults: fmt.Sprintf("%d abusive files (garbage, non-pods, invalid, nested, ~10 MiB, truncated, swap files); daemon RSS %d → %d MiB", written, rssBefore>>10, rssPeak>>10),
			Lost:   total.lost, Duplicated: total.duplicated, Leaked: total.leaked, Restarted: total.restarted, Converge: worst})
	}()
	n.Start()
	desired := map[string]*want{}
	if startStable(t, n, desired, "keep", 1) == nil {
		return
	}
	pid := n.Cmd.Process.Pid
	rssBefore = rssKiB(pid)
	var names []string
	start := time.Now()
	for i := 0; i < files; i++ {
		name, b := junk(r, i)
		if err := os.WriteFile(filepath.Join(n.Manifests, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
		written++
		if i%(files/valid) == 0 && len(desired) <= valid {
			w := &want{name: fmt.Sprintf("v%d", i), kind: stable}
			desired[w.name] = w
			n.Write(w.name+".yaml", w.manifest())
			names = append(names, w.name+".yaml")
			if len(desired)%2 == 0 { // the same pod in a second file
				n.Write(w.name+"-again.yaml", w.manifest())
				names = append(names, w.name+"-again.yaml")
			}
		}
		if i%50 == 0 {
			rssPeak = max(rssPeak, rssKiB(pid))
			select {
			case <-n.Exited:
				t.Fatalf("the daemon exited while files were written (file %d, %s)", i, name)
			default:
			}
		}
	}
	d, tl, snap := converge(n, desired, nil, nil, 180*time.Second)
	worst = max(worst, d)
	total.add(tl)
	report(t, "after the abuse", tl)
	rssPeak = max(rssPeak, rssKiB(pid))
	t.Logf("%d files in %s; converged %s later; RSS %d → %d MiB", written, time.Since(start).Round(time.Millisecond), d.Round(time.Millisecond), rssBefore>>10, rssPeak>>10)
	if rssPeak > 1<<20 { // 1 GiB
		t.Errorf("daemon RSS reached %d MiB", rssPeak>>10)
	}
	baseline(snap, desired)
	for _, name := range names {
		os.Remove(filepath.Join(n.Manifests, name))
	}
	for name := range desired {
		if name != "keep0" {
			delete(desired, name)
		}
	}
	d, tl, _ = converge(n, desired, nil, nil, 120*time.Second)
	worst = max(worst, d)
	total.add(tl)
	report(t, "after the files were removed", tl)
	worst = max(worst, removeAll(t, n, desired, &total))
}
