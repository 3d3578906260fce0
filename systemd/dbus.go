package systemd

// dbus.go: the systemd driver. Every slice and scope is a transient unit
// created over systemd's private D-Bus socket, every limit a unit property,
// so systemd (and a daemon-reload) agrees with what the cgroup files say.
//
// Ownership: every unit this driver creates has a Description starting with
// "minikubelet" (OwnerPrefix). systemd keeps transient units' descriptions
// across daemon-reload and daemon-reexec, so a restarted daemon recognises
// its own slices and scopes from systemd's state alone, with no marker file
// that could disagree with it. Units under the root without that prefix
// belong to someone else (a kubelet: "libcontainer container ..."): List
// skips them, nothing here stops them, and Init refuses to start when pod
// slices of another owner exist.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	sd "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// OwnerPrefix starts the Description of every unit this program creates.
const OwnerPrefix = "minikubelet"

// DefaultJobTimeout bounds the wait for a systemd job's result (runc: 30 s).
const DefaultJobTimeout = 30 * time.Second

// systemdPrivateAddress is systemd's own D-Bus socket (no dbus-daemon needed).
const systemdPrivateAddress = "unix:path=/run/systemd/private"

// DBusOptions configure the systemd driver.
type DBusOptions struct {
	CgroupRoot string        // --cgroup-root; "kubepods" when empty
	JobTimeout time.Duration // DefaultJobTimeout when 0
	// Address of systemd's bus; systemd's private socket when empty.
	Address string
	// Unified overrides the hierarchy detection (nil: statfs /sys/fs/cgroup).
	Unified *bool
	// ProcDir is where running processes are looked up for the coexistence
	// check ("/proc" when empty).
	ProcDir string
}

// DBusDriver is the systemd Driver.
type DBusDriver struct {
	opts    DBusOptions
	names   Names
	unified bool

	ctx    context.Context // lives until Close; owns the D-Bus connections
	cancel context.CancelFunc

	mu         sync.Mutex // guards conn
	conn       *sd.Conn
	reconnects atomic.Uint64 // connections dialed after a lost one

	events  chan Event
	dropped atomic.Uint64
	wg      sync.WaitGroup

	cacheMu sync.Mutex
	cache   map[string]UnitState // last known state of our units, for events
	// scopeFacts: scope unit -> properties List read, with the state they
	// were read in (guarded by cacheMu; see dbus_facts.go).
	scopeFacts map[string]scopeFacts

	// The Burstable slice's weight: until UpdateQOS gives the exact value,
	// the sum of the Burstable pods' shares (each floored, so within one
	// share per pod of the kubelet's figure).
	qosMu       sync.Mutex
	burstShares map[types.UID]uint64
	qosExact    bool
}

var (
	_ Driver     = (*DBusDriver)(nil)
	_ QOSUpdater = (*DBusDriver)(nil)
)

// New connects to systemd and starts following unit changes. It creates
// nothing: Init builds the root and QoS slices.
func New(ctx context.Context, opts DBusOptions) (*DBusDriver, error) {
	if opts.JobTimeout <= 0 {
		opts.JobTimeout = DefaultJobTimeout
	}
	if opts.Address == "" {
		opts.Address = systemdPrivateAddress
	}
	if opts.ProcDir == "" {
		opts.ProcDir = "/proc"
	}
	d := &DBusDriver{
		opts:        opts,
		names:       NewNames(opts.CgroupRoot),
		events:      make(chan Event, 1024),
		cache:       map[string]UnitState{},
		burstShares: map[types.UID]uint64{},
	}
	if opts.Unified != nil {
		d.unified = *opts.Unified
	} else {
		u, err := isUnifiedCgroupFS("/sys/fs/cgroup")
		if err != nil {
			return nil, err
		}
		d.unified = u
	}
	if opts.Address == systemdPrivateAddress {
		// Fail fast where systemd does not run at all; retries are for a
		// systemd that is re-executing, not for one that is absent.
		if _, err := os.Stat("/run/systemd/private"); err != nil {
			return nil, fmt.Errorf("systemd driver: systemd is not running here (%v); use --cgroup-driver=cgroupfs", err)
		}
	}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	if _, err := d.connection(ctx); err != nil {
		d.cancel()
		return nil, err
	}
	sigConn, sigs, err := d.openSignals()
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("subscribe to systemd unit signals at %s: %w", opts.Address, err)
	}
	d.wg.Add(1)
	go d.eventLoop(sigConn, sigs)
	return d, nil
}

// isUnifiedCgroupFS tells a pure cgroup v2 host (cgroup2 mounted at dir)
// from a legacy or hybrid one, where systemd drives v1 controllers.
func isUnifiedCgroupFS(dir string) (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return false, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return st.Type == unix.CGROUP2_SUPER_MAGIC, nil
}

// Name is "systemd".
func (d *DBusDriver) Name() string { return "systemd" }

// Unified reports whether systemd drives a pure cgroup v2 hierarchy.
func (d *DBusDriver) Unified() bool { return d.unified }

// Names are the unit names of this driver's tree.
func (d *DBusDriver) Names() Names { return d.names }

// Close stops following events and closes the connections.
func (d *DBusDriver) Close() error {
	d.cancel()
	d.mu.Lock()
	if d.conn != nil {
		d.conn.Close()
		d.conn = nil
	}
	d.mu.Unlock()
	d.wg.Wait()
	return nil
}

// --- connection, reconnection, jobs ---------------------------------------

// connection returns a live connection, dialing again when systemd dropped
// the last one (daemon-reexec, a restart of systemd): retried with backoff
// until ctx ends or JobTimeout passes, never a permanent "connection closed"
// (kubernetes #100328).
func (d *DBusDriver) connection(ctx context.Context) (*sd.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ctx.Err() != nil {
		return nil, errors.New("systemd driver closed")
	}
	if d.conn != nil && d.conn.Connected() {
		return d.conn, nil
	}
	if d.conn != nil {
		d.conn.Close()
		d.conn = nil
		d.reconnects.Add(1)
	}
	deadline := time.Now().Add(d.opts.JobTimeout)
	backoff := 20 * time.Millisecond
	for {
		c, err := d.dial()
		if err == nil {
			d.conn = c
			return c, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("connect to systemd at %s: %w", d.opts.Address, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("connect to systemd at %s: %w (last error: %v)", d.opts.Address, ctx.Err(), err)
		case <-d.ctx.Done():
			return nil, errors.New("systemd driver closed")
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, time.Second)
	}
}

// dial opens a go-systemd connection. Its lifetime is the driver's context,
// not the caller's: go-systemd binds the connection to the context it dials
// with.
func (d *DBusDriver) dial() (*sd.Conn, error) {
	if d.opts.Address == systemdPrivateAddress {
		return sd.NewSystemdConnectionContext(d.ctx)
	}
	return sd.NewConnection(func() (*dbus.Conn, error) {
		c, err := dbus.Dial(d.opts.Address, dbus.WithContext(d.ctx))
		if err != nil {
			return nil, err
		}
		if err := c.Auth([]dbus.Auth{dbus.AuthExternal(fmt.Sprint(os.Getuid()))}); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	})
}

// isDisconnect tells an error of a dead connection from a refusal by systemd.
func isDisconnect(c *sd.Conn, err error) bool {
	if err == nil {
		return false
	}
	var dbusErr dbus.Error
	if errors.As(err, &dbusErr) {
		return false // systemd answered
	}
	return !c.Connected() || errors.Is(err, dbus.ErrClosed) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// call runs fn on a live connection and, when the connection turns out to
// be dead, reconnects and runs it again — for as long as the connection
// keeps dropping, up to JobTimeout (a fixed three tries gave up while
// systemd re-executed twice or a connection was cut again at once: the
// action failed although systemd was there).
func (d *DBusDriver) call(ctx context.Context, fn func(c *sd.Conn) error) error {
	deadline := time.Now().Add(d.opts.JobTimeout)
	backoff := 10 * time.Millisecond
	for attempt := 0; ; attempt++ {
		c, cerr := d.connection(ctx)
		if cerr != nil {
			return cerr
		}
		err := fn(c)
		if !isDisconnect(c, err) {
			return err
		}
		d.mu.Lock()
		if d.conn == c {
			d.conn.Close()
			d.conn = nil
			d.reconnects.Add(1)
		}
		d.mu.Unlock()
		if time.Now().After(deadline) {
			return err
		}
		if attempt == 0 {
			continue // one drop: reconnect at once
		}
		select {
		case <-ctx.Done():
			return err
		case <-d.ctx.Done():
			return err
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, time.Second)
	}
}

// errJobLost: the connection died while a job ran, so its result signal is
// lost; the caller looks at the unit's state instead.
var errJobLost = errors.New("connection to systemd lost while waiting for the job")

// runJob starts a job and waits for its result on a buffered channel (so a
// late result never blocks go-systemd's signal dispatch), at most timeout.
func (d *DBusDriver) runJob(ctx context.Context, timeout time.Duration, start func(c *sd.Conn, ch chan<- string) error) (string, error) {
	ch := make(chan string, 1)
	var conn *sd.Conn
	err := d.call(ctx, func(c *sd.Conn) error {
		conn = c
		return start(c, ch)
	})
	if err != nil {
		return "", err
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	// The result arrives as a signal on this connection: if it dies (a
	// re-exec mid-job) the signal never comes. Connected() is a local flag.
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case r := <-ch:
			return r, nil
		case <-t.C:
			return "", fmt.Errorf("no job result within %s", timeout)
		case <-ctx.Done():
			return "", ctx.Err()
		case <-tick.C:
			if !conn.Connected() {
				select {
				case r := <-ch:
					return r, nil
				default:
					return "", errJobLost
				}
			}
		}
	}
}

func dbusErrorName(err error) string {
	var e dbus.Error
	if errors.As(err, &e) {
		return e.Name
	}
	var pe *dbus.Error
	if errors.As(err, &pe) && pe != nil {
		return pe.Name
	}
	return ""
}

const (
	errUnitExists = "org.freedesktop.systemd1.UnitExists"
	errNoSuchUnit = "org.freedesktop.systemd1.NoSuchUnit"
	errNotLoaded  = "org.freedesktop.systemd1.LoadFailed"
)

// resetFailed clears a failed unit so its name can be used again; errors
// (the unit is gone or was not failed) do not matter.
func (d *DBusDriver) resetFailed(ctx context.Context, unit string) {
	_ = d.call(ctx, func(c *sd.Conn) error { return c.ResetFailedUnitContext(ctx, unit) })
}

// unitState reads a loaded unit's state; LoadState "not-found" (and an
// inactive ActiveState) for a unit systemd does not know.
func (d *DBusDriver) unitState(ctx context.Context, unit string) (sd.UnitStatus, error) {
	var out sd.UnitStatus
	err := d.call(ctx, func(c *sd.Conn) error {
		st, err := c.ListUnitsByNamesContext(ctx, []string{unit})
		if err != nil {
			return err
		}
		if len(st) == 1 {
			out = st[0]
		}
		return nil
	})
	if err != nil {
		return out, fmt.Errorf("read state of %s: %w", unit, err)
	}
	return out, nil
}

// startTransient creates a transient unit and waits until it is active. A
// leftover unit of the same name that failed is reset and the start retried
// (runc's habit; up to three tries). When the unit exists and is active, ours tells
// whether it is the one asked for: a start whose reply was lost with the
// connection (then retried on a new one) finds its own unit.
func (d *DBusDriver) startTransient(ctx context.Context, unit string, props []sd.Property, ours func(st sd.UnitStatus) bool) error {
	for attempt := 0; ; attempt++ {
		res, err := d.runJob(ctx, d.opts.JobTimeout, func(c *sd.Conn, ch chan<- string) error {
			_, err := c.StartTransientUnitContext(ctx, unit, "replace", props, ch)
			return err
		})
		// Up to three tries: across a daemon-reexec a unit can read loaded
		// but not yet active (or the first retry's reply is lost too) while
		// systemd deserializes its jobs, so one retry was not always enough.
		if err != nil && attempt < 3 && (dbusErrorName(err) == errUnitExists || errors.Is(err, errJobLost)) {
			st, serr := d.unitState(ctx, unit)
			// A job that outlived its connection may still be running:
			// its outcome is the unit's next state (a rare recovery path,
			// bounded by the job timeout).
			for deadline := time.Now().Add(d.opts.JobTimeout); serr == nil && st.ActiveState == "activating" && time.Now().Before(deadline); {
				select {
				case <-ctx.Done():
					return fmt.Errorf("start %s: %w", unit, ctx.Err())
				case <-time.After(50 * time.Millisecond):
				}
				st, serr = d.unitState(ctx, unit)
			}
			if serr == nil && st.ActiveState == "active" {
				if ours(st) {
					return nil
				}
				return fmt.Errorf("start %s: a unit of that name already runs", unit)
			}
			d.resetFailed(ctx, unit)
			if attempt > 0 {
				// Back off before the next try: systemd settles the unit
				// (job finished, or the inactive unit collected) meanwhile.
				select {
				case <-ctx.Done():
					return fmt.Errorf("start %s: %w", unit, ctx.Err())
				case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
				}
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("start %s: %w", unit, err)
		}
		if res != "done" {
			d.resetFailed(ctx, unit)
			return fmt.Errorf("start %s: job %s", unit, res)
		}
		return nil
	}
}

// stopUnit stops a unit and waits; a unit that is gone counts as stopped.
// Concurrent stops of one unit each get the job's result (systemd merges
// them into one job and go-systemd ≥ v22.7.0 delivers it to every waiter).
func (d *DBusDriver) stopUnit(ctx context.Context, unit string, timeout time.Duration) error {
	for attempt := 0; ; attempt++ {
		res, err := d.runJob(ctx, timeout, func(c *sd.Conn, ch chan<- string) error {
			_, err := c.StopUnitContext(ctx, unit, "replace", ch)
			return err
		})
		if name := dbusErrorName(err); name == errNoSuchUnit || name == errNotLoaded {
			return nil
		}
		if err == nil && (res == "done" || res == "skipped") {
			d.resetFailed(ctx, unit)
			return nil
		}
		// A lost connection or an unexpected result: the state decides. A
		// job whose result went with the connection may still be running
		// (the unit deactivating, e.g. waiting out its stop timeout): its
		// outcome is the unit's next state, not an error.
		st, serr := d.unitState(ctx, unit)
		for deadline := time.Now().Add(timeout); serr == nil && st.ActiveState == "deactivating" && time.Now().Before(deadline); {
			select {
			case <-ctx.Done():
				return fmt.Errorf("stop %s: %w", unit, ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
			st, serr = d.unitState(ctx, unit)
		}
		if serr == nil && (st.LoadState != "loaded" || st.ActiveState == "inactive" || st.ActiveState == "failed") {
			d.resetFailed(ctx, unit)
			return nil
		}
		if errors.Is(err, errJobLost) && serr == nil && attempt < 2 {
			continue // the unit still runs: ask again (systemd merges it with a job still queued)
		}
		if err != nil {
			return fmt.Errorf("stop %s: %w", unit, err)
		}
		return fmt.Errorf("stop %s: job %s, unit %s/%s", unit, res, st.ActiveState, st.SubState)
	}
}

// --- the tree --------------------------------------------------------------

func ownerDescription(desc string) string {
	if strings.HasPrefix(desc, OwnerPrefix) {
		return desc
	}
	if desc == "" {
		return OwnerPrefix
	}
	return OwnerPrefix + " " + desc
}

// ensureSlice creates a slice with r, or, when it already runs, sets r on it
// (update) or leaves it be.
func (d *DBusDriver) ensureSlice(ctx context.Context, unit, desc string, r Resources, update bool) error {
	st, err := d.unitState(ctx, unit)
	if err != nil {
		return err
	}
	if st.LoadState == "loaded" && (st.ActiveState == "active" || st.ActiveState == "activating" || st.ActiveState == "reloading") {
		if !update {
			return nil
		}
		// The Description of a running unit cannot change; limits and
		// accounting can.
		props := append(accountingProperties(), ResourceProperties(r, d.unified, false)...)
		if err := d.call(ctx, func(c *sd.Conn) error { return c.SetUnitPropertiesContext(ctx, unit, true, props...) }); err != nil {
			return fmt.Errorf("update %s: %w", unit, err)
		}
		return nil
	}
	return d.startTransient(ctx, unit, SliceProperties(ownerDescription(desc), r, d.unified), func(st sd.UnitStatus) bool {
		return st.Description == ownerDescription(desc)
	})
}

// CoexistenceError says who else owns the cgroup root.
type CoexistenceError struct {
	Root    string   // the root slice
	Reasons []string // "process 123 (kubelet) is running", "pod slice X ..."
}

func (e *CoexistenceError) Error() string {
	return fmt.Sprintf("cgroup root %s is owned by another agent: %s; two agents collecting each other's pods would kill them — stop the other agent or choose another --cgroup-root",
		e.Root, strings.Join(e.Reasons, "; "))
}

// Init creates the root slice and the Burstable and BestEffort slices
// (accounting on, BestEffort at the minimum cpu weight). It refuses with a
// *CoexistenceError when a kubelet runs (a process named kubelet, or
// kubelet.service active) or pod slices under the root were not created by
// this program.
func (d *DBusDriver) Init(ctx context.Context) error {
	if err := d.checkCoexistence(ctx); err != nil {
		return err
	}
	root := d.names.RootSlice()
	if err := d.ensureSlice(ctx, root, "minikubelet pods ("+root+")", Resources{}, false); err != nil {
		return err
	}
	_, bestEffort := QOSResources(nil)
	for _, qos := range []QOSClass{v1.PodQOSBurstable, v1.PodQOSBestEffort} {
		unit := d.names.QOSSlice(qos)
		// The Burstable weight follows the pods (UpdateQOS); created here at
		// the minimum, as the kubelet's QoS manager starts with no pods.
		if err := d.ensureSlice(ctx, unit, "minikubelet "+strings.ToLower(string(qos))+" pods", bestEffort, false); err != nil {
			return err
		}
	}
	// Pods that survived a restart of this program count in the estimate.
	units, err := d.List(ctx)
	if err != nil {
		return err
	}
	for _, u := range units {
		if _, qos, ok := d.names.IsPodSlice(u.Unit); !ok || qos != v1.PodQOSBurstable || u.ActiveState == "inactive" {
			continue
		}
		shares, err := d.sliceShares(ctx, u.Unit)
		if err != nil {
			return err
		}
		d.qosMu.Lock()
		d.burstShares[u.PodUID] = shares
		d.qosMu.Unlock()
	}
	return d.applyBurstableEstimate(ctx)
}

// sliceShares reads a slice's cpu shares back from its properties (v2: the
// CPUShares recorded beside CPUWeight; for a slice made before that, the
// weight converted back, approximate).
func (d *DBusDriver) sliceShares(ctx context.Context, unit string) (uint64, error) {
	if d.unified {
		var v uint64
		err := d.call(ctx, func(c *sd.Conn) error {
			p, err := c.GetUnitTypePropertyContext(ctx, unit, "Slice", "CPUShares")
			if err == nil {
				v, _ = p.Value.Value().(uint64)
			}
			return err
		})
		if err == nil && v != sdInfinity && v != 0 {
			return v, nil
		}
	}
	name := "CPUShares"
	if d.unified {
		name = "CPUWeight"
	}
	var v uint64
	err := d.call(ctx, func(c *sd.Conn) error {
		p, err := c.GetUnitTypePropertyContext(ctx, unit, "Slice", name)
		if err == nil {
			v, _ = p.Value.Value().(uint64)
		}
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("read %s of %s: %w", name, unit, err)
	}
	if v == sdInfinity || v == 0 {
		return MinShares, nil
	}
	if d.unified {
		v = 2 + ((v-1)*262142)/9999
	}
	return v, nil
}

// applyBurstableEstimate sets the Burstable slice to the sum of its pods'
// shares, unless UpdateQOS took over.
func (d *DBusDriver) applyBurstableEstimate(ctx context.Context) error {
	d.qosMu.Lock()
	if d.qosExact {
		d.qosMu.Unlock()
		return nil
	}
	var sum uint64
	for _, s := range d.burstShares {
		sum += s
	}
	d.qosMu.Unlock()
	shares := min(max(sum, MinShares), MaxShares)
	unit := d.names.QOSSlice(v1.PodQOSBurstable)
	return d.ensureSlice(ctx, unit, "minikubelet burstable pods", Resources{CPUShares: &shares, CPUPeriodMicros: QuotaPeriod}, true)
}

// trackBurstable records (or, with remove, forgets) a Burstable pod's
// shares and re-applies the estimate.
func (d *DBusDriver) trackBurstable(ctx context.Context, pod PodCgroup, remove bool) error {
	d.qosMu.Lock()
	if remove {
		delete(d.burstShares, pod.UID)
	} else {
		shares := uint64(MinShares)
		if pod.Resources.CPUShares != nil {
			shares = *pod.Resources.CPUShares
		}
		d.burstShares[pod.UID] = shares
	}
	d.qosMu.Unlock()
	return d.applyBurstableEstimate(ctx)
}

func (d *DBusDriver) checkCoexistence(ctx context.Context) error {
	cerr := &CoexistenceError{Root: d.names.RootSlice()}
	cerr.Reasons = append(cerr.Reasons, kubeletProcesses(d.opts.ProcDir)...)
	if st, err := d.unitState(ctx, "kubelet.service"); err == nil && st.LoadState == "loaded" &&
		(st.ActiveState == "active" || st.ActiveState == "activating" || st.ActiveState == "reloading") &&
		!d.isAlias(ctx, "kubelet.service") {
		cerr.Reasons = append(cerr.Reasons, "kubelet.service is "+st.ActiveState)
	}
	units, err := d.listUnderRoot(ctx)
	if err != nil {
		return err
	}
	for _, u := range units {
		if strings.HasPrefix(u.Description, OwnerPrefix) || u.ActiveState == "inactive" {
			continue // ours, or a stand-in systemd loaded for a name lookup
		}
		if _, _, ok := d.names.IsPodSlice(u.Name); ok {
			cerr.Reasons = append(cerr.Reasons, fmt.Sprintf("pod slice %s was not created by minikubelet (Description %q)", u.Name, u.Description))
		}
	}
	if len(cerr.Reasons) > 0 {
		return cerr
	}
	return nil
}

// kubeletProcesses names running processes whose command is kubelet.
func kubeletProcesses(procDir string) []string {
	entries, err := os.ReadDir(procDir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		b, err := os.ReadFile(filepath.Join(procDir, e.Name(), "comm"))
		if err == nil && strings.TrimSpace(string(b)) == "kubelet" && !IsSelf(procDir, e.Name()) {
			out = append(out, fmt.Sprintf("process %s (kubelet) is running", e.Name()))
		}
	}
	return out
}

// listUnderRoot lists every loaded slice of the root's tree and every
// minikubelet scope, whatever their state.
func (d *DBusDriver) listUnderRoot(ctx context.Context) ([]sd.UnitStatus, error) {
	root := d.names.RootSlice()
	patterns := []string{root, strings.TrimSuffix(root, ".slice") + "-*.slice", ScopePrefix + "*.scope"}
	var units []sd.UnitStatus
	err := d.call(ctx, func(c *sd.Conn) error {
		var err error
		units, err = c.ListUnitsByPatternsContext(ctx, []string{}, patterns)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list units %v: %w", patterns, err)
	}
	sort.Slice(units, func(i, j int) bool { return units[i].Name < units[j].Name })
	return units, nil
}

// EnsurePod creates the pod's slice with its limits, or updates the limits
// of the running slice.
func (d *DBusDriver) EnsurePod(ctx context.Context, pod PodCgroup) error {
	if pod.UID == "" {
		return errors.New("ensure pod slice: empty pod UID")
	}
	unit := d.names.PodSlice(pod.QOS, pod.UID)
	desc := fmt.Sprintf("minikubelet pod %s (%s)", pod.UID, pod.QOS)
	d.cacheMu.Lock()
	if _, ok := d.cache[unit]; !ok {
		d.cache[unit] = UnitState{Unit: unit, PodUID: pod.UID, CgroupPath: "/" + ExpandSlice(unit)}
	}
	d.cacheMu.Unlock()
	if err := d.ensureSlice(ctx, unit, desc, pod.Resources, true); err != nil {
		return err
	}
	if pod.QOS == v1.PodQOSBurstable {
		return d.trackBurstable(ctx, pod, false)
	}
	return nil
}

// UpdateQOS sets the values of a QoS slice (compute them with QOSResources
// over the active pods, as the kubelet's QoS manager does).
func (d *DBusDriver) UpdateQOS(ctx context.Context, qos QOSClass, r Resources) error {
	unit := d.names.QOSSlice(qos)
	if unit == "" {
		return errors.New("update QoS slice: Guaranteed pods have no QoS slice")
	}
	if qos == v1.PodQOSBurstable {
		d.qosMu.Lock()
		d.qosExact = true
		d.qosMu.Unlock()
	}
	return d.ensureSlice(ctx, unit, "minikubelet "+strings.ToLower(string(qos))+" pods", r, true)
}

// StartScope places spec.PIDs into a new scope in the pod's slice. The
// processes must be alive and held (not yet running their workload): when
// this returns nil they are inside with the limits applied; on error they
// were not released and the caller kills them.
func (d *DBusDriver) StartScope(ctx context.Context, spec ScopeSpec) error {
	if spec.ID == "" || len(spec.PIDs) == 0 {
		return fmt.Errorf("start scope %q: an ID and at least one live PID are required", spec.ID)
	}
	unit := ScopeUnitName(spec.ID)
	slice := d.names.PodSlice(spec.Pod.QOS, spec.Pod.UID)
	spec.Description = ownerDescription(spec.Description)
	// Known before systemd's signals about the new scope arrive, so its
	// events carry the pod.
	d.cacheMu.Lock()
	_, known := d.cache[unit]
	if !known {
		d.cache[unit] = UnitState{Unit: unit, PodUID: spec.Pod.UID, ID: spec.ID,
			CgroupPath: "/" + path.Join(ExpandSlice(slice), unit)}
	}
	d.cacheMu.Unlock()
	err := d.startTransient(ctx, unit, ScopeProperties(spec, slice, d.unified), func(sd.UnitStatus) bool {
		// Ours when every process asked for is in it.
		for _, pid := range spec.PIDs {
			var in string
			err := d.call(ctx, func(c *sd.Conn) error {
				var err error
				in, err = c.GetUnitNameByPID(ctx, uint32(pid))
				return err
			})
			if err != nil || in != unit {
				return false
			}
		}
		return true
	})
	if err != nil && !known {
		d.cacheMu.Lock()
		delete(d.cache, unit)
		d.cacheMu.Unlock()
	}
	return err
}

// StopScope stops a scope: systemd sends SIGTERM and, after the scope's stop
// timeout, SIGKILL; with kill every process gets SIGKILL first. A scope that
// is gone is stopped.
func (d *DBusDriver) StopScope(ctx context.Context, id string, kill bool) error {
	unit := ScopeUnitName(id)
	timeout := d.opts.JobTimeout
	if kill {
		err := d.call(ctx, func(c *sd.Conn) error {
			return c.KillUnitWithTarget(ctx, unit, sd.All, int32(syscall.SIGKILL))
		})
		if err != nil && dbusErrorName(err) == "" {
			return fmt.Errorf("kill %s: %w", unit, err)
		}
	} else {
		// The job lasts up to the scope's own stop timeout.
		var stopUSec uint64
		_ = d.call(ctx, func(c *sd.Conn) error {
			p, err := c.GetUnitTypePropertyContext(ctx, unit, "Scope", "TimeoutStopUSec")
			if err == nil {
				stopUSec, _ = p.Value.Value().(uint64)
			}
			return err
		})
		if stopUSec > 0 && stopUSec < uint64(24*time.Hour/time.Microsecond) {
			timeout += time.Duration(stopUSec) * time.Microsecond
		}
	}
	return d.stopUnit(ctx, unit, timeout)
}

// RemovePod stops the pod's slice (and whatever still runs in it). The QoS
// slices stay.
func (d *DBusDriver) RemovePod(ctx context.Context, uid types.UID) error {
	var names []string
	for _, qos := range []QOSClass{v1.PodQOSGuaranteed, v1.PodQOSBurstable, v1.PodQOSBestEffort} {
		names = append(names, d.names.PodSlice(qos, uid))
	}
	var units []sd.UnitStatus
	err := d.call(ctx, func(c *sd.Conn) error {
		var err error
		units, err = c.ListUnitsByNamesContext(ctx, names)
		return err
	})
	if err != nil {
		return fmt.Errorf("remove pod %s: %w", uid, err)
	}
	for _, u := range units {
		// Asking about a slice name loads a stand-in ("Slice /a/b",
		// inactive) even when no such slice exists.
		if u.LoadState != "loaded" || u.ActiveState == "inactive" {
			continue
		}
		if !strings.HasPrefix(u.Description, OwnerPrefix) {
			return fmt.Errorf("remove pod %s: %s was not created by minikubelet (Description %q)", uid, u.Name, u.Description)
		}
		if err := d.stopUnit(ctx, u.Name, d.opts.JobTimeout); err != nil {
			return err
		}
	}
	d.qosMu.Lock()
	_, burstable := d.burstShares[uid]
	d.qosMu.Unlock()
	if burstable {
		return d.trackBurstable(ctx, PodCgroup{UID: uid}, true)
	}
	return nil
}

// List returns the pod slices and scopes under the root that this program
// created (Description starting with "minikubelet"), in any state.
func (d *DBusDriver) List(ctx context.Context) ([]UnitState, error) {
	units, err := d.listUnderRoot(ctx)
	if err != nil {
		return nil, err
	}
	rootPath := "/" + ExpandSlice(d.names.RootSlice()) + "/"
	var out []UnitState
	listed := map[string]bool{}
	defer d.pruneScopeFacts(listed)
	for _, u := range units {
		if !strings.HasPrefix(u.Description, OwnerPrefix) {
			continue
		}
		if u.ActiveState == "inactive" && strings.HasSuffix(u.Name, ".slice") {
			continue // stopped, only still in memory
		}
		st := UnitState{Unit: u.Name, ActiveState: u.ActiveState, SubState: u.SubState}
		if uid, _, ok := d.names.IsPodSlice(u.Name); ok {
			st.PodUID = uid
			st.CgroupPath = "/" + ExpandSlice(u.Name)
			d.remember(st)
			out = append(out, st)
			continue
		}
		id, ok := ScopeID(u.Name)
		if !ok {
			continue // the root or a QoS slice
		}
		st.ID = id
		listed[u.Name] = true
		// A scope's cgroup and slice are fixed for its life and its Result
		// changes only with its state: its properties are read again only
		// when ListUnits shows another state (one call per scope and round
		// was most of a round's D-Bus traffic).
		facts, ok := d.scopeFactsOf(u.Name)
		if !ok || facts.active != u.ActiveState || facts.sub != u.SubState {
			var props map[string]any
			err := d.call(ctx, func(c *sd.Conn) error {
				var err error
				props, err = c.GetUnitTypePropertiesContext(ctx, u.Name, "Scope")
				return err
			})
			if err != nil {
				if dbusErrorName(err) == errNoSuchUnit {
					continue // gone meanwhile
				}
				return nil, fmt.Errorf("read %s: %w", u.Name, err)
			}
			facts = scopeFacts{active: u.ActiveState, sub: u.SubState}
			facts.cgroup, _ = props["ControlGroup"].(string)
			slice, _ := props["Slice"].(string)
			facts.result, _ = props["Result"].(string)
			if facts.cgroup == "" && slice != "" {
				facts.cgroup = "/" + path.Join(ExpandSlice(slice), u.Name) // an inactive scope has no cgroup
			}
			d.setScopeFacts(u.Name, facts)
		}
		cg := facts.cgroup
		st.Result = facts.result
		if !strings.HasPrefix(cg, rootPath) {
			continue // another root's scope
		}
		st.CgroupPath = cg
		if uid, _, ok := d.names.IsPodSlice(path.Base(path.Dir(cg))); ok {
			st.PodUID = uid
		}
		d.remember(st)
		out = append(out, st)
	}
	return out, nil
}

// --- usage and OOM ---------------------------------------------------------

// unitCgroup resolves a scope (id) or a pod slice (id "") to its
// ControlGroup path.
func (d *DBusDriver) unitCgroup(ctx context.Context, uid types.UID, id string) (string, string, error) {
	if unit, cg, ok := d.cachedCgroup(uid, id); ok {
		return unit, cg, nil
	}
	var unit, iface string
	if id != "" {
		unit, iface = ScopeUnitName(id), "Scope"
	} else {
		iface = "Slice"
		var names []string
		for _, qos := range []QOSClass{v1.PodQOSGuaranteed, v1.PodQOSBurstable, v1.PodQOSBestEffort} {
			names = append(names, d.names.PodSlice(qos, uid))
		}
		err := d.call(ctx, func(c *sd.Conn) error {
			units, err := c.ListUnitsByNamesContext(ctx, names)
			for _, u := range units {
				if u.LoadState == "loaded" && u.ActiveState != "inactive" {
					unit = u.Name
				}
			}
			return err
		})
		if err != nil {
			return "", "", err
		}
		if unit == "" {
			return "", "", fmt.Errorf("pod %s has no slice", uid)
		}
	}
	var cg string
	err := d.call(ctx, func(c *sd.Conn) error {
		p, err := c.GetUnitTypePropertyContext(ctx, unit, iface, "ControlGroup")
		if err == nil {
			cg, _ = p.Value.Value().(string)
		}
		return err
	})
	if err != nil {
		return unit, "", fmt.Errorf("read ControlGroup of %s: %w", unit, err)
	}
	if cg == "" {
		return unit, "", fmt.Errorf("%s has no cgroup (not running)", unit)
	}
	return unit, cg, nil
}

// Usage reads a scope's (id) or, with id "", a pod slice's usage from its
// cgroup files.
func (d *DBusDriver) Usage(ctx context.Context, uid types.UID, id string) (Usage, error) {
	unit, cg, err := d.unitCgroup(ctx, uid, id)
	if err != nil {
		return Usage{}, err
	}
	dirs, err := CgroupDirs(cg)
	if err != nil {
		return Usage{}, fmt.Errorf("usage of %s: %w", unit, err)
	}
	u, err := ReadUsage(dirs)
	if err != nil {
		return Usage{}, fmt.Errorf("usage of %s: %w", unit, err)
	}
	return u, nil
}

// WatchOOM counts OOM kills in a scope's (or pod slice's) memory cgroup;
// call it after StartScope and before releasing the workload.
func (d *DBusDriver) WatchOOM(ctx context.Context, uid types.UID, id string) (<-chan struct{}, error) {
	unit, cg, err := d.unitCgroup(ctx, uid, id)
	if err != nil {
		return nil, err
	}
	dirs, err := CgroupDirs(cg)
	if err != nil {
		return nil, fmt.Errorf("watch OOM of %s: %w", unit, err)
	}
	ch, err := WatchOOMDirs(ctx, dirs)
	if err != nil {
		return nil, fmt.Errorf("watch OOM of %s: %w", unit, err)
	}
	return ch, nil
}

// IsSelf says whether process pid (a /proc entry name) is this process or
// runs this same binary: minikubelet invoked as kubelet (kubeadm's preflight
// runs `kubelet --version`, a kubelet.service may run it under that name)
// is not a kubelet next to it.
func IsSelf(procDir, pid string) bool {
	if pid == strconv.Itoa(os.Getpid()) {
		return true
	}
	self, err := os.Executable()
	if err != nil {
		return false
	}
	exe, err := os.Readlink(filepath.Join(procDir, pid, "exe"))
	return err == nil && exe == self
}

// isAlias says whether unit is another unit's alias (its Id is not its
// name): kubelet.service as an alias of minikubelet.service (make
// install-kubelet-alias, for kubeadm) is this daemon, not a kubelet.
func (d *DBusDriver) isAlias(ctx context.Context, unit string) bool {
	var id string
	err := d.call(ctx, func(c *sd.Conn) error {
		p, err := c.GetUnitPropertyContext(ctx, unit, "Id")
		if err != nil {
			return err
		}
		id, _ = p.Value.Value().(string)
		return nil
	})
	return err == nil && id != "" && id != unit
}
