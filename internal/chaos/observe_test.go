package chaos

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/minikubelet/minikubelet/internal/e2enode"
	"github.com/minikubelet/minikubelet/internal/testnode"
)

// kind is what a desired pod is expected to do.
type kind int

const (
	stable  kind = iota // runs forever: Running, never restarted without a reason
	crasher             // exits 3 again and again (restartPolicy Always): CrashLoopBackOff
	exiter              // restartPolicy Never, exits 42 once: Failed with that code
	own                 // its scenario checks it (e.g. the fork bomb); here only: reported, at most one sandbox
)

// want is one desired pod as the test wrote it.
type want struct {
	name string // metadata.name (the pod is <name>-node1)
	kind kind
	gen  int // bumped by each edit
	// the pod as first seen converged since its last edit: a later change
	// of sandbox or container without a fault that explains it is a restart
	// without reason.
	uid, container string
	sandbox        int   // the supervisor's PID
	restarts       int32 // its restartCount then
}

func (w *want) podName() string { return w.name + "-node1" }

// manifest is w's YAML; a stable pod carries a liveness and a readiness
// probe (exec), so probes run during every fault. Their timeout and
// threshold are generous: on a starved machine (load 29 on 2 cores in one
// run) an exec of true can take seconds, and a liveness kill for that is a
// reason, not the daemon's fault.
func (w *want) manifest() string {
	switch w.kind {
	case crasher:
		return e2enode.PodManifest(w.name, "Always", 1, fmt.Sprintf("echo gen %d; sleep 0.5; exit 3", w.gen))
	case exiter:
		return e2enode.PodManifest(w.name, "Never", 1, fmt.Sprintf("echo gen %d; sleep 1; exit 42", w.gen))
	}
	return e2enode.PodManifest(w.name, "Always", 1, fmt.Sprintf("echo gen %d; while true; do sleep 1; done", w.gen)) +
		`    livenessProbe:
      exec: {command: ["true"]}
      periodSeconds: 2
      timeoutSeconds: 10
      failureThreshold: 6
    readinessProbe:
      exec: {command: ["true"]}
      periodSeconds: 2
`
}

// snapshot is what exists on the node at one instant.
type snapshot struct {
	pods       map[string]v1.Pod // by name
	sandboxes  map[string][]int  // pod name → process count of each active sandbox scope
	ctrs       map[string][]int  // "pod/container" → process count of each active container scope
	sandboxPID map[string]int    // pod name → the supervisor PID its state folder records
	orphans    []string          // leftovers of pods that are gone, each said in a few words
	twice      []string          // pod names the API reports more than once
	taken      time.Time
}

var scopeDesc = regexp.MustCompile(`minikubelet (sandbox|container) ([^ /]+)/([^ /]+)(?:/([^ ]+))?$`)

// observe reads the API, systemd's units, the processes in the cgroup tree,
// mounts, veths, the CNI IPAM folder and the nat table.
func observe(n *e2enode.Node) (*snapshot, error) {
	s := &snapshot{pods: map[string]v1.Pod{}, sandboxes: map[string][]int{}, ctrs: map[string][]int{}, sandboxPID: map[string]int{}, taken: time.Now()}
	pods, err := n.Pods()
	if err != nil {
		return nil, err
	}
	uids := map[string]bool{}
	for _, p := range pods {
		if _, twice := s.pods[p.Name]; twice {
			s.twice = append(s.twice, p.Name)
		}
		s.pods[p.Name] = p
		uids[string(p.UID)] = true
		s.sandboxPID[p.Name] = n.SandboxPID(string(p.UID))
	}
	procs := scopeProcs()
	out, err := exec.Command("systemctl", "list-units", "--all", "--no-legend", "--plain", "kubepods*", "minikubelet-*").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("systemctl list-units: %v: %s", err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) < 4 || f[2] != "active" {
			continue
		}
		unit := f[0]
		if strings.HasPrefix(unit, "kubepods-") && strings.Contains(unit, "-pod") {
			uid := strings.ReplaceAll(strings.TrimSuffix(unit[strings.LastIndex(unit, "-pod")+4:], ".slice"), "_", "-")
			if !uids[uid] {
				s.orphans = append(s.orphans, "slice "+unit)
			}
			continue
		}
		m := scopeDesc.FindStringSubmatch(l)
		if m == nil || !strings.HasSuffix(unit, ".scope") {
			continue
		}
		pod := m[3]
		if _, ok := s.pods[pod]; !ok {
			s.orphans = append(s.orphans, fmt.Sprintf("scope %s (%s of %s, no such pod)", unit, m[1], pod))
			continue
		}
		if m[1] == "sandbox" {
			s.sandboxes[pod] = append(s.sandboxes[pod], procs[unit])
		} else {
			s.ctrs[pod+"/"+m[4]] = append(s.ctrs[pod+"/"+m[4]], procs[unit])
		}
	}
	podsDir := filepath.Join(n.Root, "pods")
	ents, _ := os.ReadDir(podsDir)
	for _, e := range ents {
		if !uids[e.Name()] {
			s.orphans = append(s.orphans, "state folder "+filepath.Join(podsDir, e.Name()))
		}
	}
	for _, m := range e2enode.MountsUnder(podsDir) {
		rel, _ := filepath.Rel(podsDir, m)
		if !uids[strings.Split(rel, "/")[0]] {
			s.orphans = append(s.orphans, "mount "+m)
		}
	}
	// IPAM (host-local): one file per address, holding the pod UID.
	addrs, _ := filepath.Glob(filepath.Join(n.Root, "cni", "ipam", "*", "*"))
	held := map[string]int{}
	for _, a := range addrs {
		base := filepath.Base(a)
		if strings.HasPrefix(base, "last_reserved_ip") || base == "lock" {
			continue
		}
		b, err := os.ReadFile(a)
		if err != nil {
			continue
		}
		uid := strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0])
		held[uid]++
		if !uids[uid] {
			s.orphans = append(s.orphans, fmt.Sprintf("IPAM address %s (pod %s)", base, uid))
		} else if held[uid] > 1 {
			s.orphans = append(s.orphans, fmt.Sprintf("IPAM address %s: a second address of pod %s", base, uid))
		}
	}
	// veths: one per pod holding a sandbox (the node's network namespace is
	// the test node's own, so every veth is a pod's).
	if out, err := exec.Command("ip", "-o", "link", "show", "type", "veth").Output(); err == nil {
		veths := 0
		for _, l := range strings.Split(string(out), "\n") {
			if strings.TrimSpace(l) != "" {
				veths++
			}
		}
		withSandbox := 0
		for _, p := range s.pods {
			if !p.Spec.HostNetwork && len(s.sandboxes[p.Name]) > 0 {
				withSandbox++
			}
		}
		if veths > withSandbox {
			s.orphans = append(s.orphans, fmt.Sprintf("%d veths for %d pod sandboxes", veths, withSandbox))
		}
	}
	// The bridge plugin's masquerade rules carry the CNI container ID (the
	// pod UID) in a comment.
	if out, err := exec.Command("iptables-save", "-t", "nat").Output(); err == nil {
		seen := map[string]bool{}
		for _, m := range regexp.MustCompile(`id: \\?"([0-9a-f-]{36})\\?"`).FindAllStringSubmatch(string(out), -1) {
			if !uids[m[1]] && !seen[m[1]] {
				seen[m[1]] = true
				s.orphans = append(s.orphans, "nat rules of pod "+m[1])
			}
		}
	}
	sort.Strings(s.orphans)
	return s, nil
}

// scopeProcs counts the processes in each minikubelet scope, from every
// process's own cgroup (name=systemd on a v1 hybrid host, the unified
// hierarchy otherwise). A container init not yet placed in its own scope
// (runtime/doc.go, "Hold until placed") sits in its sandbox's scope for a
// moment: it is not counted (a crash-looping pod has one there often).
func scopeProcs() map[string]int {
	counts := map[string]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		f, err := os.Open(filepath.Join("/proc", e.Name(), "cgroup"))
		if err != nil {
			continue
		}
		path, unified := "", ""
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			l := sc.Text()
			if strings.Contains(l, ":name=systemd:") {
				path = l[strings.Index(l, ":name=systemd:")+len(":name=systemd:"):]
			} else if strings.HasPrefix(l, "0::") {
				unified = l[3:]
			}
		}
		f.Close()
		if path == "" {
			path = unified
		}
		last := filepath.Base(path)
		if !strings.HasPrefix(last, "minikubelet-") || !strings.HasSuffix(last, ".scope") {
			continue
		}
		if cmd, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline")); strings.Contains(string(cmd), "__container-init") {
			continue
		}
		counts[last]++
	}
	return counts
}

// tally is what a check found wrong.
type tally struct {
	lost, duplicated, leaked, restarted int
	problems                            []string
}

func (t *tally) add(o tally) {
	t.lost += o.lost
	t.duplicated += o.duplicated
	t.leaked += o.leaked
	t.restarted += o.restarted
	t.problems = append(t.problems, o.problems...)
}

func (t tally) ok() bool { return t.lost+t.duplicated+t.leaked+t.restarted == 0 }

func (t *tally) problem(counter *int, format string, args ...any) {
	*counter++
	t.problems = append(t.problems, fmt.Sprintf(format, args...))
}

// check compares a snapshot with the desired pods. excused lists pods whose
// sandbox or container may have changed since their baseline for a reason
// the test knows (it killed their supervisor).
func check(s *snapshot, desired map[string]*want, excused map[string]bool) tally {
	var t tally
	for _, w := range desired {
		p, ok := s.pods[w.podName()]
		if !ok {
			t.problem(&t.lost, "pod %s is not reported", w.podName())
			continue
		}
		sb := s.sandboxes[w.podName()]
		ctr := s.ctrs[w.podName()+"/c"]
		if len(sb) > 1 {
			t.problem(&t.duplicated, "pod %s: %d sandbox scopes %v", w.podName(), len(sb), sb)
		}
		if len(ctr) > 1 {
			t.problem(&t.duplicated, "pod %s: %d scopes of container c %v", w.podName(), len(ctr), ctr)
		}
		for _, c := range sb {
			if c > 1 {
				t.problem(&t.duplicated, "pod %s: %d processes in its sandbox scope, want one supervisor", w.podName(), c)
			}
		}
		switch w.kind {
		case stable:
			if !e2enode.Running(&p) || len(sb) != 1 || len(ctr) != 1 || sb[0] != 1 || ctr[0] < 1 {
				t.problem(&t.lost, "pod %s: phase %s, %d sandbox scopes %v, %d container scopes %v, want Running in one of each",
					w.podName(), p.Status.Phase, len(sb), sb, len(ctr), ctr)
				continue
			}
			if p.Status.PodIP == "" && !p.Spec.HostNetwork {
				t.problem(&t.lost, "pod %s: Running without a pod IP (its network is lost)", w.podName())
				continue
			}
			cs := p.Status.ContainerStatuses[0]
			if w.uid != "" && !excused[w.name] && (w.uid != string(p.UID) || w.sandbox != s.sandboxPID[w.podName()] || w.container != cs.ContainerID) {
				t.problem(&t.restarted, "pod %s: uid %s → %s, sandbox PID %d → %d, container %s → %s, nothing asked for it",
					w.podName(), w.uid, p.UID, w.sandbox, s.sandboxPID[w.podName()], w.container, cs.ContainerID)
			}
			if w.uid != "" && cs.RestartCount != w.restarts && !excused[w.name] {
				t.problem(&t.restarted, "pod %s: restartCount %d, was %d", w.podName(), cs.RestartCount, w.restarts)
			}
		case crasher:
			if len(sb) != 1 {
				t.problem(&t.lost, "crash-looping pod %s: %d sandbox scopes, want 1", w.podName(), len(sb))
			}
		case exiter:
			if p.Status.Phase != v1.PodFailed || len(p.Status.ContainerStatuses) == 0 {
				t.problem(&t.lost, "pod %s (exits 42, restartPolicy Never): phase %s, want Failed", w.podName(), p.Status.Phase)
				continue
			}
			cs := p.Status.ContainerStatuses[0]
			if st := cs.State.Terminated; st == nil || st.ExitCode != 42 || cs.RestartCount != 0 {
				t.problem(&t.lost, "pod %s: exit code not kept or restarted: %+v, restarts %d", w.podName(), cs.State, cs.RestartCount)
			}
		}
	}
	names := map[string]bool{}
	for _, w := range desired {
		names[w.podName()] = true
	}
	for name := range s.pods {
		if !names[name] {
			t.problem(&t.leaked, "pod %s is reported but its manifest is gone", name)
		}
	}
	for _, name := range s.twice {
		t.problem(&t.duplicated, "pod %s is reported more than once", name)
	}
	for _, o := range s.orphans {
		t.problem(&t.leaked, "left behind: %s", o)
	}
	return t
}

// baseline records each converged pod's identity, for pods without one
// (new, edited, or whose supervisor the test killed: reset uid to "").
func baseline(s *snapshot, desired map[string]*want) {
	for _, w := range desired {
		p, ok := s.pods[w.podName()]
		if !ok || w.kind != stable || !e2enode.Running(&p) {
			continue
		}
		if w.uid == "" {
			cs := p.Status.ContainerStatuses[0]
			w.uid, w.sandbox, w.container, w.restarts = string(p.UID), s.sandboxPID[w.podName()], cs.ContainerID, cs.RestartCount
		}
	}
}

// converge waits (bounded) until the node matches desired and nothing is
// left behind, and returns how long that took and, on timeout, what was
// still wrong (the tally of the last look).
// ready, when not nil, must also hold (e.g. a killed supervisor replaced:
// right after a fault the old state can still look fine).
func converge(n *e2enode.Node, desired map[string]*want, excused map[string]bool, ready func(*snapshot) bool, timeout time.Duration) (time.Duration, tally, *snapshot) {
	start := time.Now()
	deadline := start.Add(testnode.Scale(timeout))
	var last tally
	var snap *snapshot
	var slow []string // what was still wrong 5 s in: said when it took longer
	for {
		s, err := observe(n)
		if err == nil {
			snap = s
			last = check(s, desired, excused)
			if last.ok() && (ready == nil || ready(s)) {
				if slow != nil {
					n.T.Logf("slow to converge (%s); 5 s in, still: %s", time.Since(start).Round(time.Millisecond), strings.Join(slow, "; "))
				}
				return time.Since(start), last, s
			}
			if slow == nil && time.Since(start) > 5*time.Second {
				slow = append([]string{}, last.problems...)
				if len(slow) > 6 {
					slow = slow[:6]
				}
			}
		} else {
			last = tally{problems: []string{err.Error()}}
		}
		if time.Now().After(deadline) {
			if last.ok() {
				last.problem(&last.lost, "the fault was not repaired within %s", testnode.Scale(timeout))
			}
			return time.Since(start), last, snap
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// startStable writes count stable pods (prefix0, prefix1, ...) into
// desired and the folder, waits until they run and records their baseline.
// It returns the snapshot that showed them running, or nil when they did
// not (the test has failed then).
func startStable(t *testing.T, n *e2enode.Node, desired map[string]*want, prefix string, count int) *snapshot {
	t.Helper()
	for i := 0; i < count; i++ {
		w := &want{name: fmt.Sprintf("%s%d", prefix, i), kind: stable}
		desired[w.name] = w
		n.Write(w.name+".yaml", w.manifest())
	}
	_, tl, snap := converge(n, desired, nil, nil, 120*time.Second)
	report(t, "first start", tl)
	if !tl.ok() {
		return nil
	}
	baseline(snap, desired)
	return snap
}
