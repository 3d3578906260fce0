package chaos

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/minikubelet/minikubelet/internal/api"
	"github.com/minikubelet/minikubelet/internal/e2enode"
)

// systemdSocket is systemd's private D-Bus socket, the only bus the daemon
// talks to (systemd/dbus.go): no dbus-daemon is between them, so "the D-Bus
// connection dropped" is one of these connections cut.
const systemdSocket = "/run/systemd/private"

// busConns lists the daemon's (pid's) sockets connected to systemd's
// private socket, by socket inode, each with its descriptor number in pid.
// Each socket is borrowed with pidfd_getfd and asked for its peer's
// address; with cut, the borrowed descriptor is also shut down for reading
// and writing, which ends the connection for both ends (the daemon reads
// EOF, systemd drops the client) as a broken bus connection would.
func busConns(pid int, cut func(inode uint64) bool) (map[uint64]int, error) {
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil, fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	defer unix.Close(pidfd)
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := map[uint64]int{}
	for _, e := range ents {
		link, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil || !strings.HasPrefix(link, "socket:[") {
			continue
		}
		inode, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]"), 10, 64)
		if err != nil {
			continue
		}
		target, _ := strconv.Atoi(e.Name())
		fd, err := unix.PidfdGetfd(pidfd, target, 0)
		if err != nil {
			continue // closed meanwhile
		}
		sa, err := unix.Getpeername(fd)
		if su, ok := sa.(*unix.SockaddrUnix); err == nil && ok && su.Name == systemdSocket {
			out[inode] = target
			if cut != nil && cut(inode) {
				if err := unix.Shutdown(fd, unix.SHUT_RDWR); err != nil {
					unix.Close(fd)
					return nil, fmt.Errorf("shutdown the daemon's socket %d (fd %d): %w", inode, target, err)
				}
			}
		}
		unix.Close(fd)
	}
	return out, nil
}

// sdFault is one kind of systemd fault.
type sdFault int

const (
	faultReexec sdFault = iota // systemctl daemon-reexec: systemd re-executes, every bus connection drops
	faultReload                // systemctl daemon-reload: unit files read again, connections stay
	faultCut                   // the daemon's connections to systemd cut (all, or one of them)
	nFaultKinds
)

func (f sdFault) String() string {
	return [...]string{"daemon-reexec", "daemon-reload", "connection cut"}[f]
}

// dbusErrors sums, per method, the daemon's D-Bus calls that returned an
// error (its /metrics: minikubelet_dbus_call_duration_seconds_count with
// result="error"). A call that survives a fault by reconnecting is counted
// as a success.
func dbusErrors(n *e2enode.Node) (map[string]int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	text, err := api.NewClient(n.Socket).Metrics(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	re := regexp.MustCompile(`^` + api.MetricDBusCallDuration + `_count\{method="([^"]+)",result="error"\} ([0-9.e+]+)$`)
	for _, l := range strings.Split(text, "\n") {
		if m := re.FindStringSubmatch(l); m != nil {
			v, _ := strconv.ParseFloat(m[2], 64)
			out[m[1]] += int(v)
		}
	}
	return out, nil
}

// unhealthy lists the UIDs of pods with a probe failure or a liveness kill
// among the daemon's events: a restart of theirs has a reason.
func unhealthy(n *e2enode.Node) map[string]bool {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out := map[string]bool{}
	list, err := api.NewClient(n.Socket).ListEvents(ctx, "")
	if err != nil {
		n.T.Logf("list events: %v", err)
		return out
	}
	for _, e := range list.Items {
		if e.Reason == "Unhealthy" || e.Reason == "Killing" {
			out[string(e.InvolvedObject.UID)] = true
		}
	}
	return out
}

// firstStarts checks the pods that converged for the first time since their
// creation or edit (baseline not yet taken: uid ""): a stable pod's container
// started once, so restartCount 0 — more means a start was repeated (a scope
// or job result lost with the connection and the container made again),
// unless a probe failure explains it.
func firstStarts(n *e2enode.Node, s *snapshot, desired map[string]*want, tl *tally) int {
	var fresh []*want
	for _, w := range desired {
		if w.kind == stable && w.uid == "" {
			fresh = append(fresh, w)
		}
	}
	var sick map[string]bool
	for _, w := range fresh {
		p := s.pods[w.podName()]
		if len(p.Status.ContainerStatuses) != 1 || p.Status.ContainerStatuses[0].RestartCount == 0 {
			continue
		}
		if sick == nil {
			sick = unhealthy(n)
		}
		if !sick[string(p.UID)] {
			cs := p.Status.ContainerStatuses[0]
			tl.problem(&tl.restarted, "pod %s (new): restartCount %d at its first start, no probe failed (last state %+v): a start was repeated",
				w.podName(), cs.RestartCount, cs.LastTerminationState)
		}
	}
	return len(fresh)
}

// injectSystemd runs one fault against the test node's systemd or the
// daemon's connections to it, and says what it did and how many
// connections it cut.
func injectSystemd(f sdFault, r *rand.Rand, daemonPID int) (string, int, error) {
	switch f {
	case faultReexec, faultReload:
		verb := f.String()
		if out, err := exec.Command("systemctl", verb).CombinedOutput(); err != nil {
			return "", 0, fmt.Errorf("systemctl %s: %v: %s", verb, err, out)
		}
		return "systemctl " + verb, 0, nil
	}
	conns, err := busConns(daemonPID, nil)
	if err != nil {
		return "", 0, err
	}
	if len(conns) == 0 {
		return "", 0, fmt.Errorf("the daemon (PID %d) holds no connection to %s", daemonPID, systemdSocket)
	}
	inodes := make([]uint64, 0, len(conns))
	for i := range conns {
		inodes = append(inodes, i)
	}
	sort.Slice(inodes, func(i, j int) bool { return inodes[i] < inodes[j] })
	victims := map[uint64]bool{}
	if r.Intn(2) == 0 {
		for _, i := range inodes {
			victims[i] = true
		}
	} else {
		victims[inodes[r.Intn(len(inodes))]] = true
	}
	if _, err := busConns(daemonPID, func(i uint64) bool { return victims[i] }); err != nil {
		return "", 0, err
	}
	return fmt.Sprintf("%d of the daemon's %d connections to %s cut", len(victims), len(conns), systemdSocket), len(victims), nil
}

// TestChaosSystemd (scenario 2): while pods are created, edited and deleted
// (some crash-loop, some exit with a code, the others carry exec probes),
// the test node's systemd re-executes (daemon-reexec: every D-Bus
// connection drops, jobs in flight are serialised and resumed), reloads its
// units (daemon-reload), or the daemon's connections to systemd's private
// socket are cut from outside (all of them, or one: the call connection,
// the job-signal connection or the event connection alone). The daemon
// must not die or restart anything; it must reconnect (its connections to
// systemd afterwards are new ones, as many as before) and, once quiet, the
// invariant holds: every desired pod exactly once, nothing left of the
// others, no restart without reason — and a pod first started around a
// fault started once (restartCount 0: no container start repeated because
// a reply or job result was lost with the connection).
func TestChaosSystemd(t *testing.T) {
	r := rng(t)
	faults := rounds(t, 3, 15)
	n := e2enode.New(t)
	c := &churn{n: n, r: r, desired: map[string]*want{}, target: pick(4, 30)}
	var total tally
	var worst time.Duration
	done := [nFaultKinds]int{}
	cuts := 0
	failedCalls := map[string]int{}
	defer func() {
		var calls []string
		sum := 0
		for m, k := range failedCalls {
			calls = append(calls, fmt.Sprintf("%s %d", m, k))
			sum += k
		}
		sort.Strings(calls)
		failed := "no D-Bus call failed"
		if sum > 0 {
			failed = fmt.Sprintf("%d D-Bus calls failed (%s)", sum, strings.Join(calls, ", "))
		}
		results.Add(Row{Scenario: "2 systemd reexec, reload, D-Bus connection cut",
			Load: fmt.Sprintf("≤%d pods: %d creates, %d edits, %d deletes; crash loops, exec probes, exit codes", c.target, c.creates, c.edits, c.deletes),
			Faults: fmt.Sprintf("%s, %s, %s (%s cut); %s", times(done[faultReexec], "daemon-reexec"), times(done[faultReload], "daemon-reload"),
				times(done[faultCut], "connection cut"), times(cuts, "connection"), failed),
			Lost: total.lost, Duplicated: total.duplicated, Leaked: total.leaked, Restarted: total.restarted, Converge: worst})
	}()
	n.Start()
	pid := n.Cmd.Process.Pid
	for i := 0; i < c.target*2/3; i++ {
		c.create()
	}
	d, tl, snap := converge(n, c.desired, nil, nil, 180*time.Second)
	firstStarts(n, snap, c.desired, &tl)
	report(t, "first start", tl)
	if !tl.ok() {
		return
	}
	t.Logf("%d pods converged in %s", len(c.desired), d.Round(time.Millisecond))
	baseline(snap, c.desired)
	before, err := dbusErrors(n)
	if err != nil {
		t.Fatal(err)
	}
	off := r.Intn(int(nFaultKinds))
	for k := 0; k < faults; k++ {
		kind := sdFault((k + off) % int(nFaultKinds))
		held, err := busConns(pid, nil)
		if err != nil {
			t.Fatal(err)
		}
		// Churn for a while; the fault lands at a random instant of it,
		// while the daemon is acting on the changes made so far.
		window := time.Duration(pick(150, 300)+r.Intn(pick(400, 2500))) * time.Millisecond
		start := time.Now()
		at := start.Add(time.Duration(r.Int63n(int64(window))))
		faultDone := make(chan error, 1)
		var what string
		var cut int
		fired := false
		for time.Now().Before(start.Add(window)) || !fired {
			if !fired && !time.Now().Before(at) {
				fired = true
				fseed := r.Int63()
				go func() {
					var err error
					what, cut, err = injectSystemd(kind, rand.New(rand.NewSource(fseed)), pid)
					faultDone <- err
				}()
			}
			c.step()
			time.Sleep(time.Duration(10+r.Intn(120)) * time.Millisecond) // pacing, not a wait
		}
		if err := <-faultDone; err != nil {
			t.Fatalf("fault %d (%s): %v", k+1, kind, err)
		}
		done[kind]++
		cuts += cut
		select {
		case <-n.Exited:
			t.Fatalf("fault %d (%s): the daemon exited", k+1, what)
		default:
		}
		// Reconnected: after a re-exec or a cut, the daemon holds as many
		// connections to systemd as before, none of the old ones that were
		// dropped (the call connection is dialled again on the next call:
		// the --resync round makes one within 3 s).
		var conns map[uint64]int
		reconnected := func(*snapshot) bool {
			now, err := busConns(pid, nil)
			if err != nil {
				return false
			}
			conns = now
			if len(now) < len(held) {
				return false
			}
			if kind == faultReexec {
				for i := range now {
					if _, old := held[i]; old {
						return false
					}
				}
			}
			if kind == faultCut {
				fresh := 0
				for i := range now {
					if _, old := held[i]; !old {
						fresh++
					}
				}
				return fresh >= cut
			}
			return true
		}
		d, tl, s := converge(n, c.desired, nil, reconnected, 180*time.Second)
		worst = max(worst, d)
		if !reconnected(s) {
			tl.problem(&tl.lost, "the daemon did not reconnect to systemd: it held %d connections before the fault, %d now", len(held), len(conns))
		}
		fresh := firstStarts(n, s, c.desired, &tl)
		select {
		case <-n.Exited:
			tl.problem(&tl.lost, "the daemon exited after the fault")
		default:
		}
		// D-Bus calls that returned an error to the reconciler (its next
		// round retries them): a figure, not a failure by itself.
		failed := map[string]int{}
		if after, err := dbusErrors(n); err == nil {
			for m, k := range after {
				if k > before[m] {
					failed[m] = k - before[m]
					failedCalls[m] += k - before[m]
				}
			}
			before = after
		}
		total.add(tl)
		report(t, fmt.Sprintf("fault %d (%s)", k+1, what), tl)
		if !tl.ok() {
			return
		}
		t.Logf("fault %d (%s, %s into a %s churn): %d pods (%d new) converged in %s; %d connections to systemd; failed D-Bus calls %v",
			k+1, what, at.Sub(start).Round(time.Millisecond), window.Round(time.Millisecond), len(c.desired), fresh, d.Round(time.Millisecond), len(conns), failed)
		baseline(s, c.desired)
	}
	worst = max(worst, removeAll(t, n, c.desired, &total))
}

// times is "1 thing" or "n things".
func times(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}
