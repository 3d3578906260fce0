package systemd

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	sd "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"

	"github.com/minikubelet/minikubelet/internal/testnode"
)

// cutOwnBusConns shuts down some of this process's sockets connected to
// systemd's private socket (pick chooses among their descriptors) and says
// how many: what a broken bus connection does to both ends, without
// systemd re-executing.
func cutOwnBusConns(pick func(fds []int) []int) int {
	ents, _ := os.ReadDir("/proc/self/fd")
	var fds []int
	for _, e := range ents {
		link, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err != nil || !strings.HasPrefix(link, "socket:[") {
			continue
		}
		fd, _ := strconv.Atoi(e.Name())
		if sa, err := unix.Getpeername(fd); err == nil {
			if su, ok := sa.(*unix.SockaddrUnix); ok && su.Name == "/run/systemd/private" {
				fds = append(fds, fd)
			}
		}
	}
	cut := 0
	for _, fd := range pick(fds) {
		if unix.Shutdown(fd, unix.SHUT_RDWR) == nil {
			cut++
		}
	}
	return cut
}

// TestOperationsAcrossConnectionCuts: pods' slices and scopes are created
// and removed while the driver's connections to systemd are cut again and
// again (one of them or all): every call succeeds, each scope holds the
// process it was asked to, and what was removed is gone.
func TestOperationsAcrossConnectionCuts(t *testing.T) {
	testnode.Require(t)
	ctx := testCtx(t)
	root := "mklcut"
	d := newTestDriver(t, root)
	if err := d.Init(ctx); err != nil {
		t.Fatal(err)
	}
	seed := time.Now().UnixNano()
	r := rand.New(rand.NewSource(seed))
	done := make(chan struct{})
	var opErrs []error
	var ops, calls atomic.Int64 // pods done, driver calls returned
	go func() {
		defer close(done)
		for i := 0; i < 30; i++ {
			plan := PlanPod(podOf(fmt.Sprintf("cccc-%04d", i), nil, ctr("a", rl("cpu", "10m"), rl("memory", "64Mi"))), PlanOptions{CgroupRoot: root})
			if err := d.EnsurePod(ctx, plan.PodCgroup()); err != nil {
				opErrs = append(opErrs, fmt.Errorf("EnsurePod #%d: %w", i, err))
				continue
			}
			calls.Add(1)
			child := sdStartHeld(t)
			id := randID("cut")
			if err := d.StartScope(ctx, ScopeSpec{Pod: plan.PodCgroup(), ID: id, PIDs: []int{child.pid()}, Resources: plan.Containers["a"]}); err != nil {
				opErrs = append(opErrs, fmt.Errorf("StartScope #%d: %w", i, err))
				continue
			}
			calls.Add(1)
			var in string
			err := d.call(ctx, func(c *sd.Conn) error {
				var err error
				in, err = c.GetUnitNameByPID(ctx, uint32(child.pid()))
				return err
			})
			calls.Add(1)
			if err != nil || in != ScopeUnitName(id) {
				opErrs = append(opErrs, fmt.Errorf("scope #%d: its process is in %q (%v)", i, in, err))
			}
			if i%3 != 0 {
				if err := d.StopScope(ctx, id, i%2 == 0); err != nil {
					opErrs = append(opErrs, fmt.Errorf("StopScope #%d: %w", i, err))
				}
				calls.Add(1)
				if err := d.RemovePod(ctx, plan.UID); err != nil {
					opErrs = append(opErrs, fmt.Errorf("RemovePod #%d: %w", i, err))
				}
			}
			ops.Add(1)
		}
	}()
	// The next cut waits for a call to have finished since the last one:
	// faults paced by the clock alone outran the reconnects of the field
	// host's software-emulated guest, where dialing systemd and
	// authenticating takes longer than the pacing, and each new connection
	// was cut before a call could finish on it (a livelock of the test,
	// not of the driver: 482 s, then the calls' deadlines).
	cuts := 0
	lastSeen := int64(-1)
	for running := true; running; {
		select {
		case <-done:
			running = false
		case <-time.After(time.Duration(5+r.Intn(60)) * time.Millisecond): // pacing of the faults, not a wait
			if calls.Load() == lastSeen {
				continue // no call has finished since the last cut
			}
			lastSeen = calls.Load()
			cuts += cutOwnBusConns(func(fds []int) []int {
				if len(fds) == 0 || r.Intn(2) == 0 {
					return fds
				}
				k := r.Intn(len(fds))
				return fds[k : k+1]
			})
		}
	}
	for _, err := range opErrs {
		t.Error(err)
	}
	t.Logf("%d cuts, %d reconnects during %d pods (seed %d)", cuts, d.reconnects.Load(), ops.Load(), seed)
	units, err := d.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slices, scopes := 0, 0
	for _, u := range units {
		if u.ActiveState != "active" {
			continue
		}
		if u.ID == "" {
			slices++
		} else {
			scopes++
		}
	}
	if slices != 10 || scopes != 10 {
		t.Errorf("after the cuts: %d pod slices and %d scopes active, want the 10 pods kept with one scope each: %+v", slices, scopes, units)
	}
}

// TestCallKeepsReconnecting: a call whose connection drops again and again
// (systemd re-executing twice in a row, a connection cut at once again) is
// run on a new connection each time until one holds, within the job
// timeout; three tries were not enough.
func TestCallKeepsReconnecting(t *testing.T) {
	testnode.Require(t)
	ctx := testCtx(t)
	d := newTestDriver(t, "mklredial")
	tries := 0
	var units []sd.UnitStatus
	err := d.call(ctx, func(c *sd.Conn) error {
		tries++
		if tries <= 5 {
			c.Close() // dropped under the call
			return dbus.ErrClosed
		}
		var err error
		units, err = c.ListUnitsByNamesContext(ctx, []string{"-.slice"})
		return err
	})
	if err != nil || tries != 6 || len(units) != 1 {
		t.Fatalf("call across 5 dropped connections: %v after %d tries (units %+v), want success on the 6th", err, tries, units)
	}
	if n := d.reconnects.Load(); n != 5 {
		t.Errorf("%d reconnects, want 5", n)
	}
}

// TestStopFollowsAJobWhoseResultWasLost: the connection drops while a
// scope's stop job runs (its process ignores SIGTERM, so the job waits out
// the stop timeout): the result signal is lost, but the stop goes on in
// systemd, and StopScope follows the unit to its end instead of failing
// with "connection lost" while it is still deactivating (the reconciler
// would stop it again).
func TestStopFollowsAJobWhoseResultWasLost(t *testing.T) {
	testnode.Require(t)
	ctx := testCtx(t)
	root := "mklstoplost"
	d := newTestDriver(t, root)
	if err := d.Init(ctx); err != nil {
		t.Fatal(err)
	}
	plan := PlanPod(podOf("9999-abcd", nil, ctr("a", nil, nil)), PlanOptions{CgroupRoot: root})
	if err := d.EnsurePod(ctx, plan.PodCgroup()); err != nil {
		t.Fatal(err)
	}
	stubborn := startStubborn(t)
	id := randID("lost")
	unit := ScopeUnitName(id)
	if err := d.StartScope(ctx, ScopeSpec{Pod: plan.PodCgroup(), ID: id, PIDs: []int{stubborn.Process.Pid},
		Resources: plan.Containers["a"], StopTimeout: time.Second}); err != nil {
		t.Fatal(err)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- d.StopScope(ctx, id, false) }()
	// Wait (bounded) until systemd runs the stop job, on a connection of
	// the test's own, closed before the cut.
	watch, err := sd.NewSystemdConnectionContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	state := ""
	for deadline := time.Now().Add(testnode.Scale(20 * time.Second)); state != "deactivating"; {
		st, err := watch.ListUnitsByNamesContext(ctx, []string{unit})
		if err == nil && len(st) == 1 {
			state = st[0].ActiveState
		}
		if time.Now().After(deadline) {
			watch.Close()
			t.Fatalf("the stop job did not start within 20 s (unit %s)", state)
		}
		select {
		case err := <-stopped:
			watch.Close()
			t.Fatalf("StopScope returned before the test could cut its connection (%v): the stubborn process did not hold the job", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	watch.Close()
	if k := cutOwnBusConns(func(fds []int) []int { return fds }); k == 0 {
		t.Fatal("no connection to systemd to cut")
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("StopScope after its job's result was lost: %v", err)
		}
	case <-time.After(testnode.Scale(60 * time.Second)):
		t.Fatal("StopScope did not return within 60 s")
	}
	st, err := d.unitState(ctx, unit)
	if err != nil || st.ActiveState == "active" || st.ActiveState == "deactivating" {
		t.Errorf("after StopScope: %s is %s/%s (%v), want stopped", unit, st.ActiveState, st.SubState, err)
	}
	if stubborn.ProcessState == nil && syscallAlive(stubborn.Process.Pid) {
		t.Errorf("the scope's process %d still runs", stubborn.Process.Pid)
	}
}

// syscallAlive reports whether pid exists (a zombie of ours counts: it was
// killed, not yet reaped).
func syscallAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	return len(f) > 2 && f[2] != "Z"
}
