package nodeshutdown

// Integration tests against a real systemd-logind on the system bus (the
// field host's Debian guest, or any systemd host). Where there is none
// (the lab test node, containers) they are skipped with the reason. A real
// PrepareForShutdown only comes with a real poweroff: the guest's e2e
// check covers that; here the lock and the delay override are proven.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/minikubelet/minikubelet/internal/syncbuf"
	"github.com/minikubelet/minikubelet/internal/testwait"
)

func realLogind(t *testing.T, dir string) Logind {
	t.Helper()
	if os.Getenv("MKL_SKIP_INTEGRATION") != "" {
		t.Skip("MKL_SKIP_INTEGRATION set")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	lg, err := Connect(ctx, dir)
	if err != nil {
		t.Skipf("no systemd-logind reachable on the system bus: %v", err)
	}
	t.Cleanup(func() { lg.Close() })
	return lg
}

type inhibitor struct {
	What, Who, Why, Mode string
	UID, PID             uint32
}

func listInhibitors(t *testing.T) []inhibitor {
	t.Helper()
	conn, err := dbus.ConnectSystemBus()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var out []inhibitor
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := conn.Object(logindService, logindPath).CallWithContext(ctx, logindInterface+".ListInhibitors", 0).Store(&out); err != nil {
		t.Fatalf("ListInhibitors: %v", err)
	}
	return out
}

func ours(t *testing.T) *inhibitor {
	for _, in := range listInhibitors(t) {
		if in.Who == InhibitWho && in.PID == uint32(os.Getpid()) {
			return &in
		}
	}
	return nil
}

// waitFor polls logind (its view changes when it handles our fd or
// signal, after our call returned), bounded.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testwait.Until(t, what, 10*time.Second, 50*time.Millisecond, cond)
}

// The manager takes a "shutdown" delay inhibitor named minikubelet, logind
// lists it with our PID, and the daemon's stop releases it.
func TestRealLogindInhibitorLock(t *testing.T) {
	lg := realLogind(t, filepath.Join(t.TempDir(), "unused"))
	cur, err := lg.InhibitDelayMax(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if ours(t) != nil {
		t.Fatal("an inhibitor of this process exists before the test")
	}
	// A grace logind already allows: no drop-in is written here.
	grace := cur
	if grace > 30*time.Second {
		grace = 30 * time.Second
	}
	if grace < time.Second {
		t.Skipf("logind's InhibitDelayMaxUSec is %s", cur)
	}
	cfg := Config{GracePeriod: grace, CriticalPodsGracePeriod: grace / 3}
	logs := &syncbuf.Buffer{}
	m := New(cfg, &fakePods{resumed: make(chan struct{}, 1)}, Options{
		Connect: func(ctx context.Context) (Logind, error) { return lg, nil },
		Log:     slog.New(slog.NewTextHandler(logs, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() { cancel(); <-done }()
	var in *inhibitor
	waitFor(t, "our inhibitor in ListInhibitors", func() bool { in = ours(t); return in != nil })
	if in.What != "shutdown" || in.Mode != "delay" || in.Why != InhibitWhy {
		t.Fatalf("inhibitor %+v", *in)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitFor(t, "our inhibitor gone after the manager stopped", func() bool { return ours(t) == nil })
}

// A grace above logind's InhibitDelayMaxSec: the drop-in is written into
// logind.conf.d, logind reloaded, and the new maximum seen. The test puts
// the old state back (drop-in removed or restored, logind reloaded).
func TestRealLogindDelayOverride(t *testing.T) {
	// It writes the host's logind configuration (and puts it back): only
	// on a disposable host, the field host's guest (MKL_TESTNODE_HOST=1).
	if os.Getenv("MKL_TESTNODE_HOST") != "1" || os.Getuid() != 0 {
		t.Skip("writes /etc/systemd/logind.conf.d: runs only as root in the field host's guest (MKL_TESTNODE_HOST=1)")
	}
	lg := realLogind(t, LogindConfDir)
	ctx := context.Background()
	before, err := lg.InhibitDelayMax(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if before > time.Hour {
		t.Skipf("logind's InhibitDelayMaxUSec is %s already", before)
	}
	path := filepath.Join(LogindConfDir, DropInName)
	old, err := os.ReadFile(path)
	hadOld := err == nil
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if hadOld {
			os.WriteFile(path, old, 0o644)
		} else {
			os.Remove(path)
		}
		if err := lg.Reload(ctx); err != nil {
			t.Errorf("reload logind after the test: %v", err)
		}
		waitFor(t, "logind's old InhibitDelayMaxUSec back", func() bool {
			d, err := lg.InhibitDelayMax(ctx)
			return err == nil && d == before
		})
	})
	want := before + 7*time.Second
	want = want.Truncate(time.Second)
	cfg := Config{GracePeriod: want, CriticalPodsGracePeriod: 0}
	m := New(cfg, &fakePods{}, Options{})
	if err := m.ensureDelay(ctx, lg); err != nil {
		t.Fatal(err)
	}
	got, err := lg.InhibitDelayMax(ctx)
	if err != nil || got != want {
		t.Fatalf("InhibitDelayMaxUSec %s (err %v), want %s", got, err, want)
	}
	b, _ := os.ReadFile(path)
	if !containsLine(string(b), fmt.Sprintf("InhibitDelayMaxSec=%d", int(want/time.Second))) {
		t.Fatalf("%s:\n%s", path, b)
	}
}

func containsLine(s, line string) bool {
	for len(s) > 0 {
		i := 0
		for i < len(s) && s[i] != '\n' {
			i++
		}
		if s[:i] == line {
			return true
		}
		if i == len(s) {
			break
		}
		s = s[i+1:]
	}
	return false
}
