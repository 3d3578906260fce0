package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/minikubelet/minikubelet/internal/api"
	"github.com/minikubelet/minikubelet/internal/e2enode"
)

// mountTmpfs mounts a tmpfs of size on dir for the test and unmounts it at
// the end (after the node's own cleanup, which may have detached it).
func mountTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size="+size+",mode=0755"); err != nil {
		t.Fatalf("mount a %s tmpfs on %s: %v", size, dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			t.Errorf("unmount the tmpfs on %s: %v", dir, err)
		}
	})
}

// fill writes dir/.chaos-filler until the filesystem says ENOSPC, and
// returns the filler's path.
func fill(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, ".chaos-filler")
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatalf("create %s: %v", p, err)
	}
	defer f.Close()
	t.Cleanup(func() { os.Remove(p) })
	for _, chunk := range []int{1 << 20, 64 << 10, 4 << 10, 512, 1} {
		buf := make([]byte, chunk)
		for {
			if _, err := f.Write(buf); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("fill %s: %v", p, err)
				}
				break
			}
		}
	}
	// Inodes too: a tmpfs counts them, and a full disk often has none left.
	for i := 0; ; i++ {
		q := fmt.Sprintf("%s.%d", p, i)
		f, err := os.Create(q)
		if err != nil {
			break
		}
		f.Close()
		if i > 100 {
			os.Remove(q)
			break
		}
		t.Cleanup(func() { os.Remove(q) })
	}
	return p
}

// unfill removes what fill wrote.
func unfill(dir string) {
	m, _ := filepath.Glob(filepath.Join(dir, ".chaos-filler*"))
	for _, p := range m {
		os.Remove(p)
	}
}

// counter reads the number the chatty container writes to its /dev/shm
// (the pod's own tmpfs: on neither disk) after each log line.
func counter(n *e2enode.Node, uid string) int {
	b, _ := os.ReadFile(filepath.Join(n.Root, "pods", uid, "shm", "count"))
	v, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return v
}

// logSince says whether the daemon's log of run since its offset has a
// line with every one of words.
func logHas(n *e2enode.Node, run int, words ...string) bool {
	b, _ := os.ReadFile(filepath.Join(n.Dir, fmt.Sprintf("daemon-%d.log", run)))
	for _, l := range strings.Split(string(b), "\n") {
		all := true
		for _, w := range words {
			all = all && strings.Contains(l, w)
		}
		if all {
			return true
		}
	}
	return false
}

const chattyScript = `i=0; while true; do i=$((i+1)); echo "line $i: the quick brown fox jumps over the lazy dog, again and again and again"; echo $i > /dev/shm/count; [ -f /dev/shm/stop ] && { rm /dev/shm/stop; exit 0; }; [ $((i % 100)) = 0 ] && sleep 0.05; done`

// TestChaosDiskFull (scenario 4): --log-dir, then --root-dir, are small
// tmpfs mounts filled to ENOSPC while pods run (one writes ~2000 log lines
// a second). Running pods keep running and the chatty container never
// blocks on its log (its counter keeps moving); lines are dropped and
// counted (exit.json's logDropped); the daemon names the full disk in one
// Warning line and a node event, survives a SIGKILL while the root disk is
// full, and a pod written meanwhile starts once space returns.
func TestChaosDiskFull(t *testing.T) {
	n := e2enode.New(t, e2enode.Options{Setup: func(n *e2enode.Node) {
		mountTmpfs(t, n.Root, "64m")
		mountTmpfs(t, n.Logs, "4m")
	}})
	var total tally
	var worst time.Duration
	faults := []string{}
	defer func() {
		results.Add(Row{Scenario: "4 disk full (ENOSPC)", Load: "2 pods, one logging ~2000 lines/s, one with exec probes; a pod created while full",
			Faults: strings.Join(faults, ", "), Lost: total.lost, Duplicated: total.duplicated, Leaked: total.leaked,
			Restarted: total.restarted, Converge: worst})
	}()
	n.Start()
	desired := map[string]*want{"keep": {name: "keep", kind: stable}}
	n.Write("keep.yaml", desired["keep"].manifest())
	n.Write("chatty.yaml", e2enode.PodManifest("chatty", "Always", 1, chattyScript))
	desired["chatty"] = &want{name: "chatty", kind: stable}
	_, tl, snap := converge(n, desired, nil, nil, 90*time.Second)
	report(t, "first start", tl)
	if !tl.ok() {
		return
	}
	baseline(snap, desired)
	chatty := desired["chatty"].uid
	logGlob := filepath.Join(n.Logs, "default_chatty-node1_"+chatty, "c", "*.log*")
	logSize := func() int64 {
		m, _ := filepath.Glob(logGlob)
		var sum int64
		for _, p := range m {
			if st, err := os.Stat(p); err == nil {
				sum += st.Size()
			}
		}
		return sum
	}
	moving := func(what string) {
		c0 := counter(n, chatty)
		n.WaitFor("the chatty container writing on ("+what+")", 30*time.Second, func() bool { return counter(n, chatty) > c0+2000 })
	}

	// --log-dir full.
	fill(t, n.Logs)
	faults = append(faults, "--log-dir full")
	n.WaitFor("a Warning line naming --log-dir", 30*time.Second, func() bool { return logHas(n, 1, "disk full", "--log-dir", n.Logs) })
	n.WaitFor("a DiskFull node event", 10*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		evs, err := api.NewClient(n.Socket).ListEvents(ctx, "")
		if err != nil {
			return false
		}
		for _, e := range evs.Items {
			if e.InvolvedObject.Kind == "Node" && e.Type == "Warning" && e.Reason == "DiskFull" && strings.Contains(e.Message, n.Logs) {
				return true
			}
		}
		return false
	})
	moving("log disk full")
	if sz := logSize(); sz > 0 {
		moving("log disk still full")
		if logSize() != sz {
			t.Errorf("the chatty log grew on a full disk: %d → %d", sz, logSize())
		}
	}
	_, tl, snap = converge(n, desired, nil, nil, 30*time.Second)
	total.add(tl)
	report(t, "log disk full", tl)
	start := time.Now()
	unfill(n.Logs)
	sz := logSize()
	n.WaitFor("log lines written again once space returned", 30*time.Second, func() bool { return logSize() > sz })
	n.WaitFor("a line saying space is back on --log-dir", 30*time.Second, func() bool { return logHas(n, 1, "disk space available again", n.Logs) })
	worst = max(worst, time.Since(start))
	// The dropped lines are counted in the attempt's exit record: end it.
	if err := os.WriteFile(filepath.Join(n.Root, "pods", chatty, "shm", "stop"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	n.WaitFor("the chatty attempt's exit record", 30*time.Second, func() bool {
		m, _ := filepath.Glob(filepath.Join(n.Root, "pods", chatty, "containers", "*", "exit.json"))
		return len(m) > 0
	})
	m, _ := filepath.Glob(filepath.Join(n.Root, "pods", chatty, "containers", "*", "exit.json"))
	var rec struct {
		LogDropped uint64 `json:"logDropped"`
		ExitCode   int    `json:"exitCode"`
	}
	b, _ := os.ReadFile(m[0])
	if err := json.Unmarshal(b, &rec); err != nil || rec.LogDropped == 0 {
		t.Errorf("%s: no dropped log lines counted (%v): %s", m[0], err, b)
	} else {
		t.Logf("chatty's first attempt: %d log lines dropped while --log-dir was full", rec.LogDropped)
	}
	desired["chatty"].uid = "" // it exited on purpose: a new baseline
	_, tl, snap = converge(n, desired, nil, func(s *snapshot) bool {
		p := s.pods["chatty-node1"]
		return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].RestartCount == 1
	}, 60*time.Second)
	total.add(tl)
	report(t, "chatty restarted", tl)
	baseline(snap, desired)

	// --root-dir full, a pod written meanwhile, the daemon SIGKILL'd.
	fill(t, n.Root)
	faults = append(faults, "--root-dir full", "a daemon SIGKILL while full")
	n.WaitFor("a Warning line naming --root-dir", 30*time.Second, func() bool { return logHas(n, 1, "disk full", "--root-dir", n.Root) })
	n.Write("late.yaml", (&want{name: "late"}).manifest())
	moving("root disk full")
	n.Stop(syscall.SIGKILL)
	n.Start()
	n.WaitFor("the restarted daemon naming the full --root-dir", 30*time.Second, func() bool { return logHas(n, 2, "disk full", "--root-dir", n.Root) })
	moving("root disk full, daemon restarted")
	pods, err := observe(n)
	if err != nil {
		t.Fatal(err)
	}
	withoutLate := map[string]*want{"keep": desired["keep"], "chatty": desired["chatty"]}
	for name, w := range withoutLate {
		p := pods.pods[w.podName()]
		if !e2enode.Running(&p) || p.Status.ContainerStatuses[0].ContainerID != w.container {
			t.Errorf("pod %s was touched while --root-dir was full: %+v", name, p.Status)
			total.restarted++
		}
	}
	start = time.Now()
	unfill(n.Root)
	desired["late"] = &want{name: "late", kind: stable}
	d, tl, _ := converge(n, desired, nil, nil, 90*time.Second)
	worst = max(worst, d, time.Since(start))
	total.add(tl)
	report(t, "root disk free again", tl)
	n.WaitFor("a line saying space is back on --root-dir", 30*time.Second, func() bool { return logHas(n, 2, "disk space available again", n.Root) })
	worst = max(worst, removeAll(t, n, desired, &total))
}
