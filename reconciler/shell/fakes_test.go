package shell

// fakes_test.go: in-memory stand-ins for the parts Node drives (parts.go),
// and a world that runs Observe -> reconciler.Plan -> Execute rounds over
// them. The fakes keep the contracts the real parts promise and Node relies
// on: a sandbox is placed through SandboxConfig.Place, StopSandbox takes
// the containers with it, RemoveSandbox removes <root-dir>/pods/<uid>.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/minikubelet/minikubelet/internal/layout"
	"github.com/minikubelet/minikubelet/reconciler"
	mklrt "github.com/minikubelet/minikubelet/runtime"
	"github.com/minikubelet/minikubelet/runtime/images"
	"github.com/minikubelet/minikubelet/runtime/network"
	"github.com/minikubelet/minikubelet/systemd"
)

type fakeContainer struct {
	st   mklrt.ContainerStatus
	done chan struct{} // closed once exited
}

func (c *fakeContainer) exit(code int, now time.Time) {
	if c.st.State == mklrt.ContainerExited {
		return
	}
	c.st.State, c.st.ExitCode, c.st.Reason, c.st.FinishedAt = mklrt.ContainerExited, code, "Error", now
	close(c.done)
}

type fakeSandbox struct{ pid int }

// fakeRuntime is a runtime whose processes are map entries.
type fakeRuntime struct {
	root string
	now  func() time.Time

	mu         sync.Mutex
	seq        int
	sandboxes  map[types.UID]*fakeSandbox // alive ones
	containers map[types.UID][]*fakeContainer
	calls      map[string]int // method -> calls
	// fail, when set, is asked before a call takes effect; an error it
	// returns is the call's.
	fail func(method string) error
	// lost, when set, is asked after a call took effect: true makes the
	// caller see an error anyway (the daemon died before it heard back).
	lost func(method string) bool
	// ran, when set, is called once RunSandbox's pause runs, before it
	// returns (what a concurrent round sees in the middle of a sandbox).
	ran func(uid types.UID)
}

func newFakeRuntime(root string, now func() time.Time) *fakeRuntime {
	return &fakeRuntime{root: root, now: now, sandboxes: map[types.UID]*fakeSandbox{},
		containers: map[types.UID][]*fakeContainer{}, calls: map[string]int{}}
}

func (r *fakeRuntime) enter(method string) error {
	r.mu.Lock()
	r.calls[method]++
	fail := r.fail
	r.mu.Unlock()
	if fail != nil {
		return fail(method)
	}
	return nil
}

func (r *fakeRuntime) count(method string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[method]
}

func (r *fakeRuntime) RunSandbox(ctx context.Context, cfg mklrt.SandboxConfig) (mklrt.SandboxStatus, error) {
	if err := r.enter("RunSandbox"); err != nil {
		return mklrt.SandboxStatus{}, err
	}
	r.mu.Lock()
	r.seq++
	pid := 1000 + r.seq
	r.mu.Unlock()
	if cfg.Place != nil {
		if err := cfg.Place(ctx, []int{pid}); err != nil {
			return mklrt.SandboxStatus{}, err
		}
	}
	r.mu.Lock()
	for _, c := range r.containers[cfg.Pod.UID] {
		c.exit(137, r.now()) // a new sandbox replaces the old one's processes
	}
	r.sandboxes[cfg.Pod.UID] = &fakeSandbox{pid: pid}
	st := mklrt.SandboxStatus{PodUID: cfg.Pod.UID, PID: pid, Dir: r.PodDir(cfg.Pod.UID), NetNSPath: r.netns(cfg.Pod.UID)}
	ran := r.ran
	r.mu.Unlock()
	if ran != nil {
		ran(cfg.Pod.UID)
	}
	return st, nil
}

func (r *fakeRuntime) SandboxStatus(ctx context.Context, uid types.UID) (mklrt.SandboxStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := mklrt.SandboxStatus{PodUID: uid, Dir: r.PodDir(uid)}
	if sb := r.sandboxes[uid]; sb != nil {
		st.PID, st.NetNSPath = sb.pid, r.netns(uid)
	}
	return st, nil
}

func (r *fakeRuntime) StopSandbox(ctx context.Context, uid types.UID) error {
	if err := r.enter("StopSandbox"); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.sandboxes, uid)
	for _, c := range r.containers[uid] {
		c.exit(137, r.now())
	}
	return nil
}

func (r *fakeRuntime) RemoveSandbox(ctx context.Context, uid types.UID) error {
	if err := r.enter("RemoveSandbox"); err != nil {
		return err
	}
	r.mu.Lock()
	delete(r.sandboxes, uid)
	delete(r.containers, uid)
	r.mu.Unlock()
	return os.RemoveAll(r.PodDir(uid))
}

func (r *fakeRuntime) netns(uid types.UID) string {
	return layout.Root(r.root).Pod(uid).NetnsPin()
}

func (r *fakeRuntime) SetPodIP(pod *v1.Pod, ip string) error { return nil }

func (r *fakeRuntime) PodDir(uid types.UID) string {
	return layout.Root(r.root).Pod(uid).Dir()
}

func (r *fakeRuntime) CreateContainer(ctx context.Context, cfg mklrt.ContainerConfig) (mklrt.CreatedContainer, error) {
	if err := r.enter("CreateContainer"); err != nil {
		return mklrt.CreatedContainer{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	uid := cfg.Pod.UID
	if r.sandboxes[uid] == nil {
		return mklrt.CreatedContainer{}, fmt.Errorf("pod %s: no sandbox", uid)
	}
	r.seq++
	id := fmt.Sprintf("%s-c%d", cfg.Container.Name, r.seq)
	r.containers[uid] = append(r.containers[uid], &fakeContainer{done: make(chan struct{}),
		st: mklrt.ContainerStatus{ID: id, PodUID: uid, Name: cfg.Container.Name, Attempt: cfg.Attempt,
			State: mklrt.ContainerCreated, PID: 2000 + r.seq, CreatedAt: r.now()}})
	if r.lost != nil && r.lost("CreateContainer") {
		return mklrt.CreatedContainer{}, errors.New("daemon killed after the create")
	}
	return mklrt.CreatedContainer{ID: id, PID: 2000 + r.seq}, nil
}

func (r *fakeRuntime) find(uid types.UID, id string) *fakeContainer {
	for _, c := range r.containers[uid] {
		if c.st.ID == id {
			return c
		}
	}
	return nil
}

func (r *fakeRuntime) StartContainer(ctx context.Context, uid types.UID, id string) error {
	if err := r.enter("StartContainer"); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.find(uid, id)
	if c == nil || c.st.State != mklrt.ContainerCreated {
		return fmt.Errorf("container %s: not created", id)
	}
	c.st.State, c.st.StartedAt = mklrt.ContainerRunning, r.now()
	return nil
}

func (r *fakeRuntime) StopContainer(ctx context.Context, uid types.UID, id string, grace time.Duration) error {
	return r.StopContainerSignal(ctx, uid, id, syscall.SIGTERM, grace)
}

func (r *fakeRuntime) StopContainerSignal(ctx context.Context, uid types.UID, id string, sig syscall.Signal, grace time.Duration) error {
	if err := r.enter("StopContainer"); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if c := r.find(uid, id); c != nil {
		c.exit(137, r.now())
	}
	return nil
}

func (r *fakeRuntime) WaitContainer(ctx context.Context, uid types.UID, id string) (mklrt.ContainerStatus, error) {
	r.mu.Lock()
	c := r.find(uid, id)
	r.mu.Unlock()
	if c == nil {
		return mklrt.ContainerStatus{}, fmt.Errorf("container %s: not found", id)
	}
	select {
	case <-c.done:
	case <-ctx.Done():
		return mklrt.ContainerStatus{}, ctx.Err()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return c.st, nil
}

func (r *fakeRuntime) RemoveContainer(ctx context.Context, uid types.UID, id string) error {
	if err := r.enter("RemoveContainer"); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	cs := r.containers[uid]
	for i, c := range cs {
		if c.st.ID == id {
			r.containers[uid] = append(cs[:i:i], cs[i+1:]...)
			break
		}
	}
	return nil
}

func (r *fakeRuntime) ContainerStatus(ctx context.Context, uid types.UID, id string) (mklrt.ContainerStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c := r.find(uid, id); c != nil {
		return c.st, nil
	}
	return mklrt.ContainerStatus{}, fmt.Errorf("container %s: not found", id)
}

func (r *fakeRuntime) ListContainers(ctx context.Context, uid types.UID) ([]mklrt.ContainerStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []mklrt.ContainerStatus
	for _, c := range r.containers[uid] {
		out = append(out, c.st)
	}
	return out, nil
}

func (r *fakeRuntime) Exec(ctx context.Context, uid types.UID, id string, cfg mklrt.ExecConfig) (int, error) {
	return 0, errors.New("exec: not in the fake")
}

// states lists every container of a pod as "name#attempt=State".
func (r *fakeRuntime) states(uid types.UID) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, c := range r.containers[uid] {
		out = append(out, fmt.Sprintf("%s#%d=%s", c.st.Name, c.st.Attempt, c.st.State))
	}
	sort.Strings(out)
	return out
}

// fakeImages holds image references; a root "mount" is a record.
type fakeImages struct {
	mu      sync.Mutex
	present map[string]bool
	roots   map[string]string // rootfs id -> container dir
	pulls   int
	pullErr error
}

func (s *fakeImages) EnsureImage(ctx context.Context, ref string, policy v1.PullPolicy, progress images.ProgressFunc) (images.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pulls++
	if s.pullErr != nil {
		return images.Record{}, s.pullErr
	}
	s.present[ref] = true
	return images.Record{ID: "sha256:" + ref}, nil
}

func (s *fakeImages) Lookup(ref string) (images.Record, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return images.Record{ID: "sha256:" + ref, RepoTags: []string{ref}}, s.present[ref], nil
}

func (s *fakeImages) MountRootfs(ctx context.Context, id string, img images.Record, containerDir string, readOnly bool, target string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.roots[id] = containerDir
	return nil
}

func (s *fakeImages) ReleaseRootfs(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.roots, id)
	return nil
}

func (s *fakeImages) RootfsRecords() ([]images.RootfsRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []images.RootfsRecord
	for id, dir := range s.roots {
		out = append(out, images.RootfsRecord{ID: id, ContainerDir: dir})
	}
	return out, nil
}

// fakeCgroups keeps slices and scopes as unit states.
type fakeCgroups struct {
	mu    sync.Mutex
	units map[string]systemd.UnitState // by PodUID/ID ("" for the slice)
}

func (d *fakeCgroups) EnsurePod(ctx context.Context, pod systemd.PodCgroup) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.units[string(pod.UID)+"/"] = systemd.UnitState{Unit: "pod" + string(pod.UID) + ".slice", PodUID: pod.UID, ActiveState: "active"}
	return nil
}

func (d *fakeCgroups) StartScope(ctx context.Context, spec systemd.ScopeSpec) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.units[string(spec.Pod.UID)+"/"+spec.ID] = systemd.UnitState{Unit: systemd.ScopeUnitName(spec.ID), PodUID: spec.Pod.UID, ID: spec.ID, ActiveState: "active"}
	return nil
}

func (d *fakeCgroups) StopScope(ctx context.Context, id string, kill bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for k, u := range d.units {
		if u.ID == id && id != "" {
			delete(d.units, k)
		}
	}
	return nil
}

func (d *fakeCgroups) RemovePod(ctx context.Context, uid types.UID) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.units, string(uid)+"/")
	return nil
}

func (d *fakeCgroups) List(ctx context.Context) ([]systemd.UnitState, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []systemd.UnitState
	for _, u := range d.units {
		out = append(out, u)
	}
	return out, nil
}

func (d *fakeCgroups) WatchOOM(ctx context.Context, uid types.UID, id string) (<-chan struct{}, error) {
	ch := make(chan struct{})
	go func() { <-ctx.Done(); close(ch) }()
	return ch, nil
}

// fakeNetwork hands out one address per pod.
type fakeNetwork struct {
	mu      sync.Mutex
	setups  int
	checked int
	broken  bool // Check fails
	hang    bool // Check gives no verdict: it waits for its context
}

func (f *fakeNetwork) Setup(ctx context.Context, pod network.PodNetwork) (network.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.setups++
	return network.Result{IPs: []net.IP{net.ParseIP("10.88.0.7")}}, nil
}

func (f *fakeNetwork) Teardown(ctx context.Context, pod network.PodNetwork) error { return nil }

func (f *fakeNetwork) Check(ctx context.Context, pod network.PodNetwork) (network.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.checked++
	if f.hang {
		f.mu.Unlock()
		<-ctx.Done()
		f.mu.Lock()
		return network.Result{}, ctx.Err()
	}
	if f.broken {
		return network.Result{}, errors.New("CNI CHECK: no such interface")
	}
	return network.Result{}, nil
}

// world is one node's root folder and parts; each node() is a daemon
// process over them (a second call is a restarted daemon).
type world struct {
	t    testing.TB
	root string
	rt   *fakeRuntime
	img  *fakeImages
	cg   *fakeCgroups
	net  *fakeNetwork
	wake func() // NodeOptions.Wake of the nodes it makes (nil: none)

	mu    sync.Mutex
	clock time.Time
}

func newWorld(t testing.TB) *world {
	w := &world{t: t, root: t.TempDir(), clock: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		img: &fakeImages{present: map[string]bool{}, roots: map[string]string{}},
		cg:  &fakeCgroups{units: map[string]systemd.UnitState{}}, net: &fakeNetwork{}}
	w.rt = newFakeRuntime(w.root, w.now)
	return w
}

func (w *world) now() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.clock
}

func (w *world) advance(d time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.clock = w.clock.Add(d)
}

func (w *world) node() *Node {
	n := NewNode(NodeOptions{RootDir: w.root, NodeName: "node1", HostIP: "192.0.2.1",
		Driver: w.cg, Runtime: w.rt, Images: w.img, Network: w.net, Now: w.now, Wake: w.wake})
	w.t.Cleanup(n.Close)
	return n
}

// round observes, plans and executes every pod's chain in order, stopping
// a chain at its first error (as Loop does); it returns the actions run and
// the errors met.
func (w *world) round(n *Node, desired reconciler.Desired) (actions []string, errs []error) {
	w.t.Helper()
	ctx := context.Background()
	obs, err := n.Observe(ctx, &desired)
	if err != nil {
		w.t.Fatalf("observe: %v", err)
	}
	res := reconciler.Plan(desired, obs, w.now(), reconciler.DefaultConfig())
	for i := range res.Pods {
		pp := &res.Pods[i]
		n.Persist(pp)
		var pod *v1.Pod
		if dp := desired.Pods[pp.UID]; dp != nil {
			pod = dp.Pod
		} else if op := obs.Pods[pp.UID]; op != nil {
			pod = op.Pod
		}
		for _, a := range pp.Actions {
			actions = append(actions, a.Key())
			if err := n.Execute(ctx, a, pod); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", a.Key(), err))
				break
			}
		}
	}
	return actions, errs
}

// converge runs rounds until one has nothing to do; it fails the test on
// an error or when that takes more than 20 rounds.
func (w *world) converge(n *Node, desired reconciler.Desired) {
	w.t.Helper()
	for i := 0; i < 20; i++ {
		actions, errs := w.round(n, desired)
		if len(errs) > 0 {
			w.t.Fatalf("round %d: %v", i, errs)
		}
		if len(actions) == 0 {
			return
		}
	}
	w.t.Fatal("no steady state after 20 rounds")
}

func testPod(uid string, containers ...string) *v1.Pod {
	grace := int64(30)
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-node1", Namespace: "default", UID: types.UID(uid)},
		Spec:       v1.PodSpec{RestartPolicy: v1.RestartPolicyAlways, TerminationGracePeriodSeconds: &grace, NodeName: "node1"},
	}
	for _, c := range containers {
		pod.Spec.Containers = append(pod.Spec.Containers, v1.Container{Name: c, Image: "img-" + c + ":1", ImagePullPolicy: v1.PullIfNotPresent})
	}
	return pod
}

func desiredOf(pods ...*v1.Pod) reconciler.Desired {
	d := reconciler.Desired{Pods: map[types.UID]*reconciler.DesiredPod{}}
	for _, p := range pods {
		d.Pods[p.UID] = &reconciler.DesiredPod{Pod: p, Source: "/m/" + p.Name + ".yaml"}
	}
	return d
}
