package nodeshutdown

// manager.go: the sequence — hold the delay lock, and on
// PrepareForShutdown(true) stop the pods group by group, then release the
// lock so logind lets the shutdown go on.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/minikubelet/minikubelet/reconciler"
)

// Logind is what the manager needs of systemd-logind (Connect is the real
// one over the system bus; unit tests fake it).
type Logind interface {
	// InhibitDelayMax is logind's InhibitDelayMaxUSec: how long a delay
	// lock may hold a shutdown back.
	InhibitDelayMax(ctx context.Context) (time.Duration, error)
	// OverrideInhibitDelay makes logind's configuration allow d (a
	// logind.conf.d drop-in); Reload makes logind read it.
	OverrideInhibitDelay(d time.Duration) error
	Reload(ctx context.Context) error
	// Inhibit takes a "shutdown" delay lock; closing it releases it.
	Inhibit(ctx context.Context) (io.Closer, error)
	// Shutdowns delivers PrepareForShutdown's argument (true: the node is
	// going down now; false: a shutdown was cancelled). It is closed when
	// the connection to logind ends.
	Shutdowns() <-chan bool
	Close() error
}

// Pods is the daemon's side: the pods there are and how to stop them
// (Gate, over the reconcile loop).
type Pods interface {
	// Active returns every pod the node runs or is asked to run.
	Active() []*v1.Pod
	// Begin says the node is shutting down: pods that were not Active
	// (a manifest dropped in meanwhile) are not started.
	Begin()
	// Stop asks for pods to be stopped within the given bounds (added to
	// any earlier Stop of this shutdown).
	Stop(stops map[types.UID]reconciler.ShutdownStop)
	// WaitStopped returns once nothing of these pods runs, or ctx's error.
	WaitStopped(ctx context.Context, uids []types.UID) error
	// Resume forgets the shutdown: the stopped pods start again.
	Resume()
}

// Manager runs graceful node shutdown. Create with New, run with Run.
type Manager struct {
	cfg     Config
	pods    Pods
	connect func(ctx context.Context) (Logind, error)
	log     *slog.Logger
	now     func() time.Time
	// retry is the pause before reconnecting to a logind that went away
	// (kubelet: 1 s).
	retry time.Duration
}

// Options of a Manager; zero values take the defaults.
type Options struct {
	// Connect reaches logind (default: Connect with the system's drop-in
	// folder).
	Connect func(ctx context.Context) (Logind, error)
	Log     *slog.Logger
	Now     func() time.Time
	Retry   time.Duration
}

// New returns a manager for cfg over pods.
func New(cfg Config, pods Pods, o Options) *Manager {
	m := &Manager{cfg: cfg, pods: pods, connect: o.Connect, log: o.Log, now: o.Now, retry: o.Retry}
	if m.connect == nil {
		m.connect = func(ctx context.Context) (Logind, error) { return Connect(ctx, LogindConfDir) }
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.retry <= 0 {
		m.retry = time.Second
	}
	return m
}

// Run holds the lock and handles shutdowns until ctx ends (the lock is
// then released with the daemon: stopping minikubelet never stops pods).
// Where logind cannot be reached it says so once and returns nil: the
// daemon runs on, and a node shutdown then stops pods without grace.
func (m *Manager) Run(ctx context.Context) error {
	if !m.cfg.Enabled() {
		m.log.Info("graceful node shutdown disabled (--shutdown-grace-period=0)")
		return nil
	}
	worked := false
	for {
		err := m.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if !worked && !errors.Is(err, errConnectionLost) {
			m.log.Warn("graceful node shutdown unavailable: pods will not be stopped gracefully when the node shuts down", "err", err)
			return nil
		}
		worked = true
		m.log.Warn("graceful node shutdown: lost logind, reconnecting", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(m.retry):
		}
	}
}

var errConnectionLost = errors.New("connection to logind closed")

// session is one connection to logind: check its delay, take the lock,
// watch. It returns errConnectionLost when a working connection ends.
func (m *Manager) session(ctx context.Context) error {
	lg, err := m.connect(ctx)
	if err != nil {
		return err
	}
	defer lg.Close()
	if err := m.ensureDelay(ctx, lg); err != nil {
		return err
	}
	var lock io.Closer
	release := func() {
		if lock != nil {
			lock.Close()
			lock = nil
		}
	}
	defer release()
	if lock, err = lg.Inhibit(ctx); err != nil {
		return fmt.Errorf("logind Inhibit: %w", err)
	}
	m.log.Info("graceful node shutdown: holding a logind delay inhibitor lock", "shutdownGracePeriod", m.cfg.GracePeriod,
		"shutdownGracePeriodCriticalPods", m.cfg.CriticalPodsGracePeriod)
	events := lg.Shutdowns()
	// SIGUSR1 is a shutdown event too, as for the kubelet's manager: it
	// lets a test or an operator run the whole sequence (pods stopped, the
	// lock released) without powering the node off.
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)
	for {
		var down, ok bool
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-usr1:
			m.log.Info("SIGUSR1: handled as a node shutdown event")
			down, ok = true, true
		case down, ok = <-events:
		}
		if !ok {
			return errConnectionLost
		}
		if down {
			m.log.Info("node shutting down: stopping pods", "shutdownGracePeriod", m.cfg.GracePeriod)
			m.Shutdown(ctx)
			release()
			m.log.Info("node shutdown: pods stopped, inhibitor lock released")
			continue
		}
		m.log.Info("node shutdown cancelled: pods start again")
		m.pods.Resume()
		if lock == nil {
			if lock, err = lg.Inhibit(ctx); err != nil {
				return fmt.Errorf("logind Inhibit after a cancelled shutdown: %w", err)
			}
			m.log.Info("graceful node shutdown: holding a logind delay inhibitor lock again")
		}
	}
}

// ensureDelay makes logind's InhibitDelayMaxUSec cover the grace period
// (kubelet: a logind.conf.d drop-in, then SIGHUP to systemd-logind).
func (m *Manager) ensureDelay(ctx context.Context, lg Logind) error {
	need := m.cfg.InhibitDelay()
	cur, err := lg.InhibitDelayMax(ctx)
	if err != nil {
		return fmt.Errorf("logind InhibitDelayMaxUSec: %w", err)
	}
	if need <= cur {
		return nil
	}
	if err := lg.OverrideInhibitDelay(need); err != nil {
		return err
	}
	if err := lg.Reload(ctx); err != nil {
		return fmt.Errorf("reload logind: %w", err)
	}
	// logind reads its configuration when it handles the SIGHUP, after
	// KillUnit returned: ask until it shows (bounded).
	deadline := time.Now().Add(5 * time.Second)
	for {
		if cur, err = lg.InhibitDelayMax(ctx); err != nil {
			return fmt.Errorf("logind InhibitDelayMaxUSec: %w", err)
		}
		if need <= cur {
			m.log.Info("graceful node shutdown: raised logind's InhibitDelayMaxSec", "to", need)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("logind's InhibitDelayMaxSec is %s after the override, less than --shutdown-grace-period %s", cur, need)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Shutdown stops every pod, group by group (regular pods, then critical
// ones), each group waited for at most its grace (kubelet
// processShutdownEvent). It returns when the last group is done or ctx
// ended.
func (m *Manager) Shutdown(ctx context.Context) {
	pods := m.pods.Active()
	m.pods.Begin()
	for _, g := range Assign(m.cfg.Groups(), pods) {
		if len(g.Pods) == 0 {
			continue // kubelet: no wait for an empty group
		}
		since := m.now()
		stops := make(map[types.UID]reconciler.ShutdownStop, len(g.Pods))
		uids := make([]types.UID, 0, len(g.Pods))
		for _, p := range g.Pods {
			stops[p.UID] = reconciler.ShutdownStop{Since: since, MaxGrace: g.Grace}
			uids = append(uids, p.UID)
		}
		m.log.Info("node shutdown: stopping pods", "priority", g.Priority, "gracePeriod", g.Grace, "pods", podNames(g.Pods))
		m.pods.Stop(stops)
		wctx, cancel := context.WithTimeout(ctx, g.Grace)
		err := m.pods.WaitStopped(wctx, uids)
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			m.log.Warn("node shutdown: pods still stopping at the end of their group's grace period", "priority", g.Priority, "gracePeriod", g.Grace)
		default:
			m.log.Info("node shutdown: pods stopped", "priority", g.Priority, "pods", podNames(g.Pods))
		}
	}
}
