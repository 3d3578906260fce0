package cgroupfs

// The cgroupfs driver: the kubelet's cgroupfs tree where systemd is not
// running,
//
//	/kubepods                         (root, from --cgroup-root)
//	├── burstable/pod<uid>/<id>       (Burstable pods, one cgroup per scope)
//	├── besteffort/pod<uid>/<id>      (BestEffort pods)
//	└── pod<uid>/<id>                 (Guaranteed pods)
//
// in every mounted hierarchy (v1: one directory per mounted controller plus
// name=systemd and, on hybrid hosts, the unified mount; v2: one directory),
// created and limited through github.com/opencontainers/cgroups (fs for v1,
// fs2 for v2). <id> is the sandbox or container ID, the same ID the systemd
// driver puts in minikubelet-<id>.scope; units reported by this driver carry
// the systemd driver's unit names (PodSlice, ScopeUnitName) so the
// reconciler keys both drivers alike, and CgroupPath holds the cgroupfs path.
//
// Ownership: cgroups carry no owner, and extended attributes are not
// available on every v1 hierarchy (this build machine mounts memory without
// xattr). So the driver keeps a marker file per pod and per scope it created
// under <StateDir>/cgroupfs/<root>/ (the daemon passes its --root-dir, so
// two daemons with different roots never share markers). Cgroups vanish at
// reboot while the markers may stay: Init drops the markers whose cgroup is
// gone before anything is created. A marker is written
// before its cgroup is made, so a crash can leave a marker without cgroup
// (harmless, collected by RemovePod/StopScope) but never an unmarked cgroup
// of ours. Init refuses a root holding pod cgroups without marker: another
// agent (a kubelet) owns it.
//
// Events: without systemd there is no event source for "the last process of
// a scope exited" on v1 (release_agent is host-global and needs a helper
// binary; notify_on_release likewise). Where a cgroup2 mount exists (pure v2,
// and the hybrid unified mount this driver joins processes to), each scope's
// cgroup.events is watched with inotify ("populated 0" is instant); pure v1
// hosts fall back to reading cgroup.procs every PollInterval per scope
// (one small read, the low-cost check the kubelet's own PLEG relist does).
// State changes the driver makes itself (pod or scope created, removed) are
// reported as they happen.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/cgroups"
	devconfig "github.com/opencontainers/cgroups/devices/config"
	cgfs "github.com/opencontainers/cgroups/fs"
	"github.com/opencontainers/cgroups/fs2"
	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/minikubelet/minikubelet/systemd"
)

// Options configure the cgroupfs driver.
type Options struct {
	CgroupRoot string // --cgroup-root: "kubepods" (default), "/kubepods", "a/b"
	// StateDir holds the ownership markers under StateDir/cgroupfs (the
	// daemon's --root-dir). Required: a shared default would let two daemons
	// with different roots read each other's markers.
	StateDir string
	// PollInterval is how often a scope's emptiness is checked where no
	// inotify source exists (pure v1), and how often watched scopes are
	// re-checked for removal (default 1s).
	PollInterval time.Duration
	// DefaultStopTimeout applies to scopes whose stop timeout is unknown
	// (0 in their ScopeSpec): 30s, the Kubernetes default grace period.
	DefaultStopTimeout time.Duration
}

// Driver implements systemd.Driver over the cgroup filesystem.
type Driver struct {
	names    systemd.Names
	rootPath string // "/kubepods"
	markers  string // <StateDir>/cgroupfs/<root>
	opts     Options

	ctx    context.Context // ends at Close: stops the scope watchers
	cancel context.CancelFunc

	mu       sync.Mutex
	closed   bool
	events   chan systemd.Event
	dropped  uint64
	watching map[string]*scopeWatch // scope id → its watcher
	qosMu    sync.Mutex             // serialises QoS cgroup updates

	forcePoll bool // tests: use the pure-v1 poll even where inotify works
}

var _ systemd.Driver = (*Driver)(nil)

// New returns the driver; nothing is created until Init.
func New(opts Options) (*Driver, error) {
	if opts.StateDir == "" {
		return nil, errors.New("cgroupfs driver: StateDir is required (the daemon's --root-dir)")
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = time.Second
	}
	if opts.DefaultStopTimeout <= 0 {
		opts.DefaultStopTimeout = 30 * time.Second
	}
	n := systemd.NewNames(opts.CgroupRoot)
	// The root is the QoS dirs' parent: derive it from the names so both
	// drivers read --cgroup-root the same way.
	rootPath := path.Dir(path.Dir(n.CgroupfsPodPath(v1.PodQOSBurstable, "x")))
	if rootPath == "/" || strings.Contains(rootPath, "..") {
		return nil, fmt.Errorf("--cgroup-root %q: the pod tree needs a cgroup of its own below the hierarchy root", opts.CgroupRoot)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Driver{
		names:    n,
		rootPath: rootPath,
		markers:  filepath.Join(opts.StateDir, "cgroupfs", strings.ReplaceAll(strings.Trim(rootPath, "/"), "/", "_")),
		opts:     opts,
		ctx:      ctx,
		cancel:   cancel,
		events:   make(chan systemd.Event, 1024),
		watching: map[string]*scopeWatch{},
	}, nil
}

// Name is "cgroupfs".
func (d *Driver) Name() string { return "cgroupfs" }

// RootPath is the tree's root cgroup path (/kubepods).
func (d *Driver) RootPath() string { return d.rootPath }

func (d *Driver) qosPath(qos systemd.QOSClass) string {
	switch qos {
	case v1.PodQOSBurstable:
		return d.rootPath + "/burstable"
	case v1.PodQOSBestEffort:
		return d.rootPath + "/besteffort"
	}
	return d.rootPath
}

func (d *Driver) podPath(qos systemd.QOSClass, uid types.UID) string {
	return d.qosPath(qos) + "/pod" + string(uid)
}

// Init checks ownership and creates the root and QoS cgroups.
func (d *Driver) Init(ctx context.Context) error {
	rootDirs, err := systemd.CgroupDirs(d.rootPath)
	if err != nil {
		return err
	}
	// Everything we create lives inside a mounted hierarchy: the root's
	// parent must be cgroupfs, never the tmpfs holding the mount points.
	for k, dir := range rootDirs {
		if err := requireCgroupFS(filepath.Dir(dir)); err != nil {
			return fmt.Errorf("cgroup root %s (hierarchy %q): %w", d.rootPath, k, err)
		}
	}
	d.pruneStaleMarkers()
	if err := d.checkOwnership(rootDirs); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(d.markers, "pods"), 0o700); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(d.markers, "scopes"), 0o700); err != nil {
		return err
	}
	if err := d.apply(d.rootPath, systemd.Resources{}, true); err != nil {
		return err
	}
	for _, qos := range []systemd.QOSClass{v1.PodQOSBestEffort, v1.PodQOSBurstable} {
		if err := d.applyQOS(qos); err != nil {
			return err
		}
	}
	// Adopt: watch the scopes a previous run left.
	states, err := d.List(ctx)
	if err != nil {
		return err
	}
	for _, s := range states {
		if s.ID != "" {
			d.watchScope(s.ID, s.CgroupPath)
		}
	}
	return nil
}

// pruneStaleMarkers removes the markers whose cgroup no longer exists (the
// host rebooted, or a crash fell between marker and mkdir). Only Init calls
// it, before this process creates anything, so no marker of a cgroup being
// made is in flight.
func (d *Driver) pruneStaleMarkers() {
	exists := func(p string) bool {
		dirs, err := systemd.CgroupDirs(p)
		if err != nil {
			return true // cannot tell: keep the marker
		}
		dir, ok := primaryDir(dirs)
		return !ok || cgroups.PathExists(dir)
	}
	ents, _ := os.ReadDir(filepath.Join(d.markers, "pods"))
	for _, e := range ents {
		uid, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		if m, err := d.readPodMarker(types.UID(uid)); err == nil && !exists(d.podPath(m.QOS, m.UID)) {
			os.Remove(d.podMarkerFile(m.UID))
		}
	}
	ents, _ = os.ReadDir(filepath.Join(d.markers, "scopes"))
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		if m, err := d.readScopeMarker(id); err == nil && !exists(d.scopePath(m)) {
			os.Remove(d.scopeMarkerFile(id))
		}
	}
}

// requireCgroupFS checks that dir, or its nearest existing ancestor (a
// nested --cgroup-root such as a/b), is on a cgroup filesystem.
func requireCgroupFS(dir string) error {
	var st unix.Statfs_t
	for {
		err := unix.Statfs(dir, &st)
		if err == nil {
			break
		}
		if err != unix.ENOENT || dir == "/" {
			return fmt.Errorf("statfs %s: %w", dir, err)
		}
		dir = filepath.Dir(dir)
	}
	if st.Type != unix.CGROUP_SUPER_MAGIC && st.Type != unix.CGROUP2_SUPER_MAGIC {
		return fmt.Errorf("%s is not a cgroup filesystem (refusing to create cgroups outside a mounted hierarchy)", dir)
	}
	return nil
}

// checkOwnership refuses a root that another agent uses: pod cgroups under
// it without our marker, or a running kubelet when the root is the
// kubelet's default name.
func (d *Driver) checkOwnership(rootDirs map[string]string) error {
	var foreign []string
	for _, qos := range []systemd.QOSClass{v1.PodQOSGuaranteed, v1.PodQOSBurstable, v1.PodQOSBestEffort} {
		for _, uid := range d.podDirUIDs(qos) {
			if _, err := d.readPodMarker(uid); err != nil {
				foreign = append(foreign, d.podPath(qos, uid))
			}
		}
	}
	if len(foreign) > 0 {
		sort.Strings(foreign)
		if len(foreign) > 3 {
			foreign = append(foreign[:3], fmt.Sprintf("and %d more", len(foreign)-3))
		}
		return fmt.Errorf("cgroup root %s holds pod cgroups minikubelet did not create (%s; no marker in %s): another agent (a kubelet?) owns it; stop it or pass another --cgroup-root",
			d.rootPath, strings.Join(foreign, ", "), d.markers)
	}
	if d.rootPath == "/"+systemd.DefaultCgroupRoot {
		if pid := runningKubelet(); pid != 0 {
			return fmt.Errorf("a kubelet is running (pid %d) and uses %s by default: pass another --cgroup-root", pid, d.rootPath)
		}
	}
	return nil
}

// runningKubelet returns the PID of a process named kubelet, or 0.
func runningKubelet() int {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if err == nil && strings.TrimSpace(string(b)) == "kubelet" && !systemd.IsSelf("/proc", e.Name()) {
			return pid
		}
	}
	return 0
}

// primaryDir is the directory of cgroupPath in the hierarchy used for
// listing and emptiness checks: the unified one on v2, else memory, pids,
// cpu (every hierarchy holds the same tree; these are the ones the kubelet
// needs anyway).
func primaryDir(dirs map[string]string) (string, bool) {
	for _, k := range []string{systemd.UnifiedKey, "memory", "pids", "cpu", "cpuacct", "freezer", "devices", "systemd"} {
		if d, ok := dirs[k]; ok {
			return d, true
		}
	}
	keys := make([]string, 0, len(dirs))
	for k := range dirs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) == 0 {
		return "", false
	}
	return dirs[keys[0]], true
}

// podDirUIDs lists the pod<uid> cgroups directly under a QoS cgroup.
func (d *Driver) podDirUIDs(qos systemd.QOSClass) []types.UID {
	dirs, err := systemd.CgroupDirs(d.qosPath(qos))
	if err != nil {
		return nil
	}
	dir, ok := primaryDir(dirs)
	if !ok {
		return nil
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []types.UID
	for _, e := range ents {
		if e.IsDir() && strings.HasPrefix(e.Name(), "pod") && len(e.Name()) > 3 {
			out = append(out, types.UID(strings.TrimPrefix(e.Name(), "pod")))
		}
	}
	return out
}

// ---- markers ----

type podMarker struct {
	UID       types.UID         `json:"uid"`
	QOS       systemd.QOSClass  `json:"qos"`
	CPUShares uint64            `json:"cpuShares,omitempty"` // for the burstable sum
	Resources systemd.Resources `json:"resources"`           // re-applied by StartScope
}

type scopeMarker struct {
	UID         types.UID        `json:"uid"`
	QOS         systemd.QOSClass `json:"qos"`
	ID          string           `json:"id"`
	Description string           `json:"description,omitempty"`
	StopTimeout time.Duration    `json:"stopTimeout"`
}

func (d *Driver) podMarkerFile(uid types.UID) string {
	return filepath.Join(d.markers, "pods", string(uid)+".json")
}

func (d *Driver) scopeMarkerFile(id string) string {
	return filepath.Join(d.markers, "scopes", id+".json")
}

func (d *Driver) readPodMarker(uid types.UID) (podMarker, error) {
	var m podMarker
	b, err := os.ReadFile(d.podMarkerFile(uid))
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("pod marker %s: %w", d.podMarkerFile(uid), err)
	}
	return m, nil
}

func (d *Driver) readScopeMarker(id string) (scopeMarker, error) {
	var m scopeMarker
	b, err := os.ReadFile(d.scopeMarkerFile(id))
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("scope marker %s: %w", d.scopeMarkerFile(id), err)
	}
	return m, nil
}

// writeFileAtomic replaces file so a crash never leaves half a marker.
func writeFileAtomic(file string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return err
	}
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, file)
}

// validName refuses IDs and UIDs that would not be one path component.
func validName(kind, s string) error {
	if s == "" || s == "." || s == ".." || strings.ContainsAny(s, "/\x00") {
		return fmt.Errorf("invalid %s %q", kind, s)
	}
	return nil
}

// ---- applying resources ----

// cgroupfsResources turns the driver's Resources into opencontainers'
// Resources. Unset (nil) values are written as "unlimited" / the default
// weight, so an update that drops a limit really lifts it. On v2 the weight
// is the plan's CPUSharesToWeight (the same value the systemd driver sets
// as CPUWeight), and a limited memory gets no swap (memory.swap.max 0, the
// kubelet's default). Devices are skipped here; createOnce sets a scope's
// device rules.
func cgroupfsResources(r systemd.Resources, v2 bool) *cgroups.Resources {
	out := &cgroups.Resources{SkipDevices: true, Memory: -1, CpuQuota: -1}
	shares := uint64(systemd.SharesPerCPU)
	if r.CPUShares != nil {
		shares = *r.CPUShares
	}
	if v2 {
		out.CpuWeight = systemd.CPUSharesToWeight(shares)
	} else {
		out.CpuShares = shares
	}
	out.CpuPeriod = r.CPUPeriodMicros
	if out.CpuPeriod == 0 {
		out.CpuPeriod = systemd.QuotaPeriod
	}
	if r.CPUQuotaMicros != nil && *r.CPUQuotaMicros > 0 {
		out.CpuQuota = *r.CPUQuotaMicros
	}
	if r.MemoryLimit != nil && *r.MemoryLimit > 0 {
		out.Memory = *r.MemoryLimit
		if v2 {
			out.MemorySwap = out.Memory // memory+swap = memory: swap.max 0
		}
	}
	pids := int64(-1)
	if r.PidsLimit != nil && *r.PidsLimit > 0 {
		pids = *r.PidsLimit
	}
	out.PidsLimit = &pids
	return out
}

// fsManagerPaths renames our dirs keys to opencontainers' v1 subsystem
// names ("systemd" → "name=systemd", the hybrid "unified" → "").
func fsManagerPaths(dirs map[string]string) map[string]string {
	out := make(map[string]string, len(dirs))
	for k, v := range dirs {
		switch k {
		case "systemd":
			k = "name=systemd"
		case systemd.HybridV2Key:
			k = ""
		}
		out[k] = v
	}
	return out
}

// newManager builds the opencontainers manager of one cgroup.
func newManager(dirs map[string]string, res *cgroups.Resources) (cgroups.Manager, error) {
	cg := &cgroups.Cgroup{Resources: res}
	if systemd.IsV2Dirs(dirs) {
		return fs2.NewManager(cg, dirs[systemd.UnifiedKey])
	}
	return cgfs.NewManager(cg, fsManagerPaths(dirs))
}

// apply creates cgroupPath in every hierarchy and sets r. With onlyCPU the
// limits other than cpu weight are left alone (root and QoS cgroups: the
// kubelet caps those with node allocatable, which minikubelet does not
// enforce).
func (d *Driver) apply(cgroupPath string, r systemd.Resources, onlyCPU bool) error {
	_, err := d.create(cgroupPath, r, onlyCPU)
	return err
}

func (d *Driver) create(cgroupPath string, r systemd.Resources, onlyCPU bool) (cgroups.Manager, error) {
	return retryVanished(func() (cgroups.Manager, error) { return d.createOnce(cgroupPath, r, onlyCPU, nil) })
}

// retryVanished retries an operation that failed because a directory
// vanished under it. Where systemd runs beside this driver (the test node;
// a host a user forced --cgroup-driver=cgroupfs on), systemd trims empty
// cgroups in the v1 hierarchies of controllers no unit uses (blkio,
// devices...) whenever it realizes the root slice; recreating is all it takes.
func retryVanished[T any](op func() (T, error)) (T, error) {
	for attempt := 0; ; attempt++ {
		v, err := op()
		if err == nil || attempt == 4 || !errors.Is(err, fs.ErrNotExist) {
			return v, err
		}
	}
}

// createOnce creates and sets one cgroup. devices, when not nil, are its
// device rules (scopes); slices leave the device cgroup alone.
func (d *Driver) createOnce(cgroupPath string, r systemd.Resources, onlyCPU bool, devices []*devconfig.Rule) (cgroups.Manager, error) {
	dirs, err := systemd.CgroupDirs(cgroupPath)
	if err != nil {
		return nil, err
	}
	v2 := systemd.IsV2Dirs(dirs)
	res := cgroupfsResources(r, v2)
	if devices != nil {
		res.SkipDevices, res.Devices = false, devices
	}
	if onlyCPU {
		res.Memory, res.MemorySwap, res.CpuQuota, res.PidsLimit = 0, 0, 0, nil
		if r.CPUShares == nil {
			res.CpuShares, res.CpuWeight = 0, 0
		}
	}
	m, err := newManager(dirs, res)
	if err != nil {
		return nil, fmt.Errorf("cgroup %s: %w", cgroupPath, err)
	}
	// Apply(-1) creates the directories without moving anything; the v1
	// cpuset controller copies cpuset.cpus/mems from the parent into every
	// new level on the way (cpusetEnsureParent), so tasks can join it.
	if err := m.Apply(-1); err != nil {
		return nil, fmt.Errorf("create cgroup %s: %w", cgroupPath, err)
	}
	// Slices skip devices (SkipDevices), which makes the v1 manager skip
	// the devices directory too; create it so the tree exists there and a
	// scope below can have its allowlist.
	if dev, ok := dirs["devices"]; ok && !v2 {
		if err := os.MkdirAll(dev, 0o755); err != nil {
			return nil, fmt.Errorf("create cgroup %s: %w", dev, err)
		}
	}
	if v2 {
		if err := fitV2Controllers(dirs[systemd.UnifiedKey], res); err != nil {
			return nil, fmt.Errorf("cgroup %s: %w", cgroupPath, err)
		}
	}
	if err := m.Set(res); err != nil {
		return nil, fmt.Errorf("set limits of cgroup %s: %w", cgroupPath, err)
	}
	return m, nil
}

// fitV2Controllers drops the writes a v2 cgroup cannot take because a
// controller is not enabled for it (a host or container that does not
// delegate it): "unlimited" values and the cpu weight (a soft share) are
// skipped; an actual limit is an error naming the controller, never
// silently lost.
func fitV2Controllers(dir string, res *cgroups.Resources) error {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
	if err != nil {
		return err
	}
	avail := map[string]bool{}
	for _, c := range strings.Fields(string(b)) {
		avail[c] = true
	}
	missing := func(ctrl string) error {
		return fmt.Errorf("a %s limit is asked for but the %s controller is not enabled in %s (cgroup.controllers: %q)", ctrl, ctrl, dir, strings.TrimSpace(string(b)))
	}
	if !avail["cpu"] {
		if res.CpuQuota > 0 {
			return missing("cpu")
		}
		res.CpuWeight, res.CpuQuota, res.CpuPeriod = 0, 0, 0
	}
	if !avail["memory"] {
		if res.Memory > 0 {
			return missing("memory")
		}
		res.Memory, res.MemorySwap = 0, 0
	}
	if !avail["pids"] {
		if res.PidsLimit != nil && *res.PidsLimit > 0 {
			return missing("pids")
		}
		res.PidsLimit = nil
	}
	return nil
}

// UpdateQOS sets a QoS cgroup's values (compute them with QOSResources over
// the active pods, as the kubelet's QoS manager does; the systemd driver has
// the same method). Once called for a class, its values are kept (in the
// state dir) and re-applied instead of the driver's own estimate.
func (d *Driver) UpdateQOS(ctx context.Context, qos systemd.QOSClass, r systemd.Resources) error {
	if qos != v1.PodQOSBurstable && qos != v1.PodQOSBestEffort {
		return fmt.Errorf("update QoS cgroup: %q has no QoS cgroup (Guaranteed pods sit under the root)", qos)
	}
	if err := writeFileAtomic(d.qosMarkerFile(qos), r); err != nil {
		return fmt.Errorf("QoS %s marker: %w", qos, err)
	}
	d.qosMu.Lock()
	defer d.qosMu.Unlock()
	return d.apply(d.qosPath(qos), r, false)
}

func (d *Driver) qosMarkerFile(qos systemd.QOSClass) string {
	return filepath.Join(d.markers, "qos-"+strings.ToLower(string(qos))+".json")
}

// applyQOS (re)sets a QoS cgroup: the values given to UpdateQOS when there
// were any; else BestEffort gets the minimum shares and Burstable the sum
// of its pods' shares, the kubelet's qos_container_manager rule. (The
// kubelet sums millicores before converting; summing shares differs by the
// per-pod rounding, under 1 share per pod, and pods at the 2-share floor,
// i.e. without cpu request, count 0 as their 0m request does there.)
func (d *Driver) applyQOS(qos systemd.QOSClass) error {
	d.qosMu.Lock()
	defer d.qosMu.Unlock()
	if b, err := os.ReadFile(d.qosMarkerFile(qos)); err == nil {
		var r systemd.Resources
		if err := json.Unmarshal(b, &r); err != nil {
			return fmt.Errorf("QoS marker %s: %w", d.qosMarkerFile(qos), err)
		}
		return d.apply(d.qosPath(qos), r, false)
	}
	if qos == v1.PodQOSBestEffort {
		return d.apply(d.qosPath(qos), systemd.Resources{CPUShares: ptr(uint64(systemd.MinShares))}, true)
	}
	var sum uint64
	ents, _ := os.ReadDir(filepath.Join(d.markers, "pods"))
	for _, e := range ents {
		uid, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		m, err := d.readPodMarker(types.UID(uid))
		if err != nil || m.QOS != v1.PodQOSBurstable || m.CPUShares <= systemd.MinShares {
			continue
		}
		sum += m.CPUShares
	}
	shares := min(max(sum, systemd.MinShares), systemd.MaxShares)
	return d.apply(d.qosPath(v1.PodQOSBurstable), systemd.Resources{CPUShares: &shares}, true)
}

// ---- pods ----

// EnsurePod creates the pod's cgroup or updates its limits.
func (d *Driver) EnsurePod(ctx context.Context, pod systemd.PodCgroup) error {
	if err := validName("pod UID", string(pod.UID)); err != nil {
		return err
	}
	switch pod.QOS {
	case v1.PodQOSGuaranteed, v1.PodQOSBurstable, v1.PodQOSBestEffort:
	default:
		return fmt.Errorf("pod %s: unknown QoS class %q", pod.UID, pod.QOS)
	}
	if old, err := d.readPodMarker(pod.UID); err == nil && old.QOS != pod.QOS {
		return fmt.Errorf("pod %s exists as %s at %s; cannot move it to %s", pod.UID, old.QOS, d.podPath(old.QOS, pod.UID), pod.QOS)
	}
	var shares uint64
	if pod.Resources.CPUShares != nil {
		shares = *pod.Resources.CPUShares
	}
	if err := writeFileAtomic(d.podMarkerFile(pod.UID), podMarker{UID: pod.UID, QOS: pod.QOS, CPUShares: shares, Resources: pod.Resources}); err != nil {
		return fmt.Errorf("pod %s marker: %w", pod.UID, err)
	}
	p := d.podPath(pod.QOS, pod.UID)
	if err := d.apply(p, pod.Resources, false); err != nil {
		return err
	}
	if pod.QOS == v1.PodQOSBurstable {
		if err := d.applyQOS(v1.PodQOSBurstable); err != nil {
			return err
		}
	}
	d.emit(systemd.Event{Unit: d.names.PodSlice(pod.QOS, pod.UID), State: d.podState(pod.UID, pod.QOS)})
	return nil
}

func (d *Driver) podState(uid types.UID, qos systemd.QOSClass) systemd.UnitState {
	return systemd.UnitState{Unit: d.names.PodSlice(qos, uid), PodUID: uid, ActiveState: "active", SubState: "active", CgroupPath: d.podPath(qos, uid)}
}

// findPod returns the QoS class of a pod this driver created.
func (d *Driver) findPod(uid types.UID) (systemd.QOSClass, bool) {
	if m, err := d.readPodMarker(uid); err == nil {
		return m.QOS, true
	}
	return "", false
}

// RemovePod removes the pod's cgroup in every hierarchy. Empty leftover
// scope cgroups go with it; scopes that still hold processes make it fail,
// naming them.
func (d *Driver) RemovePod(ctx context.Context, uid types.UID) error {
	if err := validName("pod UID", string(uid)); err != nil {
		return err
	}
	qos, ok := d.findPod(uid)
	if !ok {
		return nil // never ours, or already gone
	}
	p := d.podPath(qos, uid)
	dirs, err := systemd.CgroupDirs(p)
	if err != nil {
		return err
	}
	if pids, err := allPIDs(dirs); err != nil {
		return err
	} else if len(pids) > 0 {
		return fmt.Errorf("pod %s: cgroup %s still holds processes %v: stop its scopes first", uid, p, pids)
	}
	if err := removeCgroupDirs(dirs); err != nil {
		return fmt.Errorf("remove pod %s: %w", uid, err)
	}
	// Scope markers of this pod (scopes removed with it).
	ents, _ := os.ReadDir(filepath.Join(d.markers, "scopes"))
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		if m, err := d.readScopeMarker(id); err == nil && m.UID == uid {
			d.unwatchScope(id)
			os.Remove(d.scopeMarkerFile(id))
		}
	}
	if err := os.Remove(d.podMarkerFile(uid)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if qos == v1.PodQOSBurstable {
		if err := d.applyQOS(v1.PodQOSBurstable); err != nil {
			return err
		}
	}
	d.emit(systemd.Event{Unit: d.names.PodSlice(qos, uid), State: systemd.UnitState{Unit: d.names.PodSlice(qos, uid), PodUID: uid, ActiveState: "inactive", SubState: "dead", CgroupPath: p}, Gone: true})
	return nil
}

// removeCgroupDirs rmdirs a cgroup (children first) in every hierarchy.
func removeCgroupDirs(dirs map[string]string) error {
	var errs []error
	for _, dir := range dirs {
		if err := cgroups.RemovePath(dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// allPIDs lists the processes in a cgroup and below, across hierarchies
// (a process moved in one hierarchy only still counts).
func allPIDs(dirs map[string]string) ([]int, error) {
	seen := map[int]bool{}
	for _, dir := range dirs {
		pids, err := cgroups.GetAllPids(dir)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, fmt.Errorf("list processes of %s: %w", dir, err)
		}
		for _, p := range pids {
			seen[p] = true
		}
	}
	out := make([]int, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	sort.Ints(out)
	return out, nil
}

// ---- scopes ----

func (d *Driver) scopePath(m scopeMarker) string {
	return d.podPath(m.QOS, m.UID) + "/" + m.ID
}

// StartScope creates the scope's cgroup with its limits and moves the
// (stopped) processes in. Limits are set before any process joins.
func (d *Driver) StartScope(ctx context.Context, spec systemd.ScopeSpec) error {
	if err := validName("scope ID", spec.ID); err != nil {
		return err
	}
	if len(spec.PIDs) == 0 {
		return fmt.Errorf("scope %s: no process to put in it", spec.ID)
	}
	if old, err := d.readScopeMarker(spec.ID); err == nil && old.UID != spec.Pod.UID {
		return fmt.Errorf("scope %s already belongs to pod %s", spec.ID, old.UID)
	}
	if _, ok := d.findPod(spec.Pod.UID); !ok {
		if err := d.EnsurePod(ctx, spec.Pod); err != nil {
			return err
		}
	}
	qos, _ := d.findPod(spec.Pod.UID)
	m := scopeMarker{UID: spec.Pod.UID, QOS: qos, ID: spec.ID, Description: spec.Description, StopTimeout: spec.StopTimeout}
	if err := writeFileAtomic(d.scopeMarkerFile(spec.ID), m); err != nil {
		return fmt.Errorf("scope %s marker: %w", spec.ID, err)
	}
	p := d.scopePath(m)
	_, err := retryVanished(func() (struct{}, error) {
		mgr, err := d.createOnce(p, spec.Resources, false, deviceRules(spec.Privileged))
		if err != nil {
			return struct{}{}, err
		}
		for _, pid := range spec.PIDs {
			if err := mgr.AddPid("", pid); err != nil {
				return struct{}{}, fmt.Errorf("move pid %d into %s: %w", pid, p, err)
			}
		}
		return struct{}{}, nil
	})
	if err != nil {
		return fmt.Errorf("scope %s: %w", systemd.ScopeUnitName(spec.ID), err)
	}
	if err := d.reapplyAncestors(spec.Pod.UID); err != nil {
		return fmt.Errorf("scope %s: %w", systemd.ScopeUnitName(spec.ID), err)
	}
	d.watchScope(spec.ID, p)
	st := systemd.UnitState{Unit: systemd.ScopeUnitName(spec.ID), PodUID: spec.Pod.UID, ID: spec.ID, ActiveState: "active", SubState: "running", CgroupPath: p, PIDs: slices.Clone(spec.PIDs)}
	d.emit(systemd.Event{Unit: st.Unit, State: st})
	return nil
}

// StopScope kills what is in the scope (SIGTERM, SIGKILL after its stop
// timeout; SIGKILL at once with kill) and removes its cgroup.
func (d *Driver) StopScope(ctx context.Context, id string, kill bool) error {
	if err := validName("scope ID", id); err != nil {
		return err
	}
	m, err := d.readScopeMarker(id)
	if errors.Is(err, fs.ErrNotExist) {
		// A scope cgroup in one of our pods whose marker was lost is still
		// ours to stop; anything else is not ours, or already stopped.
		var ok bool
		if m, ok = d.findUnmarkedScope(id); !ok {
			return nil
		}
	} else if err != nil {
		return err
	}
	p := d.scopePath(m)
	dirs, err := systemd.CgroupDirs(p)
	if err != nil {
		return err
	}
	unit := systemd.ScopeUnitName(id)
	if !kill {
		timeout := m.StopTimeout
		if timeout <= 0 {
			timeout = d.opts.DefaultStopTimeout
		}
		pids, err := allPIDs(dirs)
		if err != nil {
			return err
		}
		for _, pid := range pids {
			unix.Kill(pid, unix.SIGTERM)
		}
		if err := waitEmpty(ctx, dirs, timeout); err != nil && ctx.Err() != nil {
			return fmt.Errorf("stop %s: %w", unit, ctx.Err())
		}
	}
	if err := killAll(ctx, dirs); err != nil {
		return fmt.Errorf("stop %s (%s): %w", unit, p, err)
	}
	if err := removeCgroupDirs(dirs); err != nil {
		return fmt.Errorf("stop %s: %w", unit, err)
	}
	d.unwatchScope(id)
	if err := os.Remove(d.scopeMarkerFile(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	d.emit(systemd.Event{Unit: unit, State: systemd.UnitState{Unit: unit, PodUID: m.UID, ID: id, ActiveState: "inactive", SubState: "dead", CgroupPath: p}, Gone: true})
	return nil
}

// findUnmarkedScope looks for a scope cgroup named id in this driver's pods.
func (d *Driver) findUnmarkedScope(id string) (scopeMarker, bool) {
	ents, _ := os.ReadDir(filepath.Join(d.markers, "pods"))
	for _, e := range ents {
		uid, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		pm, err := d.readPodMarker(types.UID(uid))
		if err != nil {
			continue
		}
		m := scopeMarker{UID: pm.UID, QOS: pm.QOS, ID: id}
		dirs, err := systemd.CgroupDirs(d.scopePath(m))
		if err != nil {
			continue
		}
		if dir, ok := primaryDir(dirs); ok && cgroups.PathExists(dir) {
			return m, true
		}
	}
	return scopeMarker{}, false
}

// waitEmpty waits until no process is left in the cgroup, up to timeout.
func waitEmpty(ctx context.Context, dirs map[string]string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		pids, err := allPIDs(dirs)
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v still running after %s", pids, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// killAll SIGKILLs everything in the cgroup until it is empty. v2 kernels
// with cgroup.kill do it atomically; elsewhere, where a freezer is mounted,
// the cgroup is frozen first so nothing forks between listing and killing
// (as runc does), then thawed so the kills are delivered.
func killAll(ctx context.Context, dirs map[string]string) error {
	if dir, ok := dirs[systemd.UnifiedKey]; ok {
		if err := os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0); err == nil {
			return waitEmpty(ctx, dirs, 10*time.Second)
		}
	}
	freezer := dirs["freezer"]
	freeze := func(state string) {
		if freezer != "" {
			os.WriteFile(filepath.Join(freezer, "freezer.state"), []byte(state), 0)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		freeze("FROZEN")
		pids, err := allPIDs(dirs)
		if err == nil {
			for _, pid := range pids {
				unix.Kill(pid, unix.SIGKILL)
			}
		}
		freeze("THAWED")
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v survive SIGKILL", pids)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// reapplyAncestors sets the pod's and its QoS cgroup's values again once a
// process sits below them. Until then they are empty cgroups, and an empty
// cgroup may be removed behind our back (systemd trims v1 hierarchies of
// controllers its units do not use); creating the scope would then have
// recreated them without limits. With a process inside they can no longer
// be removed, so the values set now stay.
func (d *Driver) reapplyAncestors(uid types.UID) error {
	m, err := d.readPodMarker(uid)
	if err != nil {
		return fmt.Errorf("pod %s marker: %w", uid, err)
	}
	if m.QOS != v1.PodQOSGuaranteed {
		if err := d.applyQOS(m.QOS); err != nil {
			return err
		}
	}
	return d.apply(d.podPath(m.QOS, uid), m.Resources, false)
}

// ---- listing ----

// List returns this driver's pods and their scopes under the root.
func (d *Driver) List(ctx context.Context) ([]systemd.UnitState, error) {
	var out []systemd.UnitState
	for _, qos := range []systemd.QOSClass{v1.PodQOSGuaranteed, v1.PodQOSBurstable, v1.PodQOSBestEffort} {
		for _, uid := range d.podDirUIDs(qos) {
			if m, err := d.readPodMarker(uid); err != nil || m.QOS != qos {
				continue // not ours
			}
			out = append(out, d.podState(uid, qos))
			p := d.podPath(qos, uid)
			dirs, err := systemd.CgroupDirs(p)
			if err != nil {
				return nil, err
			}
			dir, _ := primaryDir(dirs)
			ents, err := os.ReadDir(dir)
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					continue // removed meanwhile
				}
				return nil, err
			}
			for _, e := range ents {
				if !e.IsDir() {
					continue
				}
				st, err := d.scopeState(uid, e.Name(), p+"/"+e.Name())
				if err != nil {
					if errors.Is(err, fs.ErrNotExist) {
						continue
					}
					return nil, err
				}
				out = append(out, st)
			}
		}
	}
	return out, nil
}

func (d *Driver) scopeState(uid types.UID, id, p string) (systemd.UnitState, error) {
	dirs, err := systemd.CgroupDirs(p)
	if err != nil {
		return systemd.UnitState{}, err
	}
	pids, err := allPIDs(dirs)
	if err != nil {
		return systemd.UnitState{}, err
	}
	if dir, _ := primaryDir(dirs); !cgroups.PathExists(dir) {
		return systemd.UnitState{}, fs.ErrNotExist
	}
	st := systemd.UnitState{Unit: systemd.ScopeUnitName(id), PodUID: uid, ID: id, ActiveState: "active", SubState: "running", CgroupPath: p, PIDs: pids}
	if len(pids) == 0 {
		st.ActiveState, st.SubState = "inactive", "dead"
	}
	return st, nil
}

// ---- events ----

// Events streams state changes. The channel is buffered; when the consumer
// falls 1024 events behind, further events are dropped (counted) — the
// reconciler's periodic resync (List) recovers the state.
func (d *Driver) Events() <-chan systemd.Event { return d.events }

func (d *Driver) emit(ev systemd.Event) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	select {
	case d.events <- ev:
	default:
		d.dropped++
	}
}

// scopeWatch is one running scope watcher.
type scopeWatch struct{ cancel context.CancelFunc }

// watchScope follows one scope until it is removed: an event when it
// becomes empty, and one when its cgroup disappears behind our back.
func (d *Driver) watchScope(id, p string) {
	d.mu.Lock()
	if d.closed || d.watching[id] != nil {
		d.mu.Unlock()
		return
	}
	ctx, cancel := context.WithCancel(d.ctx)
	w := &scopeWatch{cancel: cancel}
	d.watching[id] = w
	d.mu.Unlock()
	go func() {
		defer d.endWatch(id, w)
		d.runScopeWatch(ctx, id, p)
	}()
}

// unwatchScope stops the scope's watcher (StopScope, RemovePod).
func (d *Driver) unwatchScope(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if w := d.watching[id]; w != nil {
		w.cancel()
		delete(d.watching, id)
	}
}

// endWatch forgets a watcher that ended by itself, unless a newer watcher
// of a scope with the same ID has replaced it.
func (d *Driver) endWatch(id string, w *scopeWatch) {
	w.cancel()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.watching[id] == w {
		delete(d.watching, id)
	}
}

func (d *Driver) runScopeWatch(ctx context.Context, id, p string) {
	dirs, err := systemd.CgroupDirs(p)
	if err != nil {
		return
	}
	// cgroup.events (populated) of the unified hierarchy, where one exists.
	var wake <-chan struct{}
	interval := d.opts.PollInterval
	v2dir, ok := dirs[systemd.UnifiedKey]
	if !ok {
		v2dir, ok = dirs[systemd.HybridV2Key]
	}
	if ok && !d.forcePoll {
		if c, stop, err := systemd.WatchFile(filepath.Join(v2dir, "cgroup.events")); err == nil {
			defer stop()
			wake = c
			interval = 10 * d.opts.PollInterval // only to notice removal
		}
	}
	m, _ := d.readScopeMarker(id)
	lastActive := true
	for {
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-time.After(interval):
		}
		st, err := d.scopeState(m.UID, id, p)
		if errors.Is(err, fs.ErrNotExist) {
			unit := systemd.ScopeUnitName(id)
			d.emit(systemd.Event{Unit: unit, State: systemd.UnitState{Unit: unit, PodUID: m.UID, ID: id, ActiveState: "inactive", SubState: "dead", CgroupPath: p}, Gone: true})
			return
		}
		if err != nil {
			continue
		}
		if active := st.ActiveState == "active"; active != lastActive {
			lastActive = active
			d.emit(systemd.Event{Unit: st.Unit, State: st})
		}
	}
}

// ---- usage and OOM ----

func (d *Driver) cgroupOf(uid types.UID, id string) (string, error) {
	if id == "" {
		qos, ok := d.findPod(uid)
		if !ok {
			return "", fmt.Errorf("pod %s: no cgroup of this driver", uid)
		}
		return d.podPath(qos, uid), nil
	}
	m, err := d.readScopeMarker(id)
	if err != nil {
		return "", fmt.Errorf("scope %s: %w", systemd.ScopeUnitName(id), err)
	}
	if uid != "" && m.UID != uid {
		return "", fmt.Errorf("scope %s belongs to pod %s, not %s", systemd.ScopeUnitName(id), m.UID, uid)
	}
	return d.scopePath(m), nil
}

// Usage reads a scope's (id) or the pod's (id "") usage.
func (d *Driver) Usage(ctx context.Context, uid types.UID, id string) (systemd.Usage, error) {
	p, err := d.cgroupOf(uid, id)
	if err != nil {
		return systemd.Usage{}, err
	}
	dirs, err := systemd.CgroupDirs(p)
	if err != nil {
		return systemd.Usage{}, err
	}
	return systemd.ReadUsage(dirs)
}

// WatchOOM counts OOM kills of a scope (or the pod, id "") from now on.
func (d *Driver) WatchOOM(ctx context.Context, uid types.UID, id string) (<-chan struct{}, error) {
	p, err := d.cgroupOf(uid, id)
	if err != nil {
		return nil, err
	}
	dirs, err := systemd.CgroupDirs(p)
	if err != nil {
		return nil, err
	}
	return systemd.WatchOOMDirs(ctx, dirs)
}

// Close stops the watchers and closes the event channel. Cgroups stay.
func (d *Driver) Close() error {
	d.cancel()
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.closed {
		d.closed = true
		close(d.events)
	}
	return nil
}
