// Package daemon assembles `minikubelet run`: the manifest folder, the
// cgroup driver, the image store, the pod runtime and CNI, the reconcile
// loop and the local API server, and tells systemd when it is ready.
//
// Stopping the daemon (SIGTERM, SIGINT, ctx cancelled) stops only the
// daemon: the pods keep running (their supervisors are detached and sit in
// their own scopes), as with the kubelet. The next start adopts them.
// Only a node shutdown announced by logind stops pods (graceful node
// shutdown, internal/nodeshutdown); they start again at the next boot.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/minikubelet/minikubelet/internal/api"
	"github.com/minikubelet/minikubelet/internal/cluster"
	"github.com/minikubelet/minikubelet/internal/kubeletserver"
	"github.com/minikubelet/minikubelet/internal/nodeshutdown"
	"github.com/minikubelet/minikubelet/manifests"
	"github.com/minikubelet/minikubelet/reconciler"
	"github.com/minikubelet/minikubelet/reconciler/shell"
	mklrt "github.com/minikubelet/minikubelet/runtime"
	"github.com/minikubelet/minikubelet/runtime/images"
	"github.com/minikubelet/minikubelet/runtime/network"
	"github.com/minikubelet/minikubelet/systemd"
	"github.com/minikubelet/minikubelet/systemd/cgroupfs"
)

// Options are the daemon's settings (the flags of `minikubelet run`).
type Options struct {
	NodeName     string
	RootDir      string
	ManifestDir  string
	LogDir       string
	Socket       string
	CgroupDriver string // auto, systemd, cgroupfs
	CgroupRoot   string
	Resync       time.Duration
	// CrashLoopMax caps CrashLoopBackOff (kubelet: 300 s).
	CrashLoopMax time.Duration
	// PodPidsLimit is --pod-pids-limit (<= 0: unlimited).
	PodPidsLimit int64
	// ReadOnlyAddr is the optional read-only TCP address of the API ("" = off);
	// when empty, ReadOnlyPort > 0 gives Address:ReadOnlyPort.
	ReadOnlyAddr string
	// ReadOnlyPort is --read-only-port (0 = off) and Address the kubelet's
	// --address it binds to ("" = 0.0.0.0, every interface, like the kubelet).
	ReadOnlyPort int
	Address      string
	// ResolvConf is --resolv-conf, the node file pods' DNS is based on
	// ("" = /etc/resolv.conf; when it is systemd-resolved's stub, the
	// upstream file /run/systemd/resolve/resolv.conf is used, as kubeadm
	// configures the kubelet). NoResolvConf is the kubelet's
	// --resolv-conf="": no node file (pods get 127.0.0.1, search ".").
	ResolvConf   string
	NoResolvConf bool
	// ClusterDNS (--cluster-dns, IP addresses) and ClusterDomain
	// (--cluster-domain, "" = cluster.local) for dnsPolicy ClusterFirst.
	ClusterDNS    []string
	ClusterDomain string
	// Network configures CNI; DisableNetwork gives every pod loopback only.
	Network        network.Config
	DisableNetwork bool
	// InsecureRegistries are reached over plain HTTP.
	InsecureRegistries []string
	// Parallel bounds how many pods are worked on at once (default 8).
	Parallel int
	// PodLogRetention: logs of pods that are gone are removed after this
	// long without writes (0: kept forever).
	PodLogRetention time.Duration
	// HealthzAddr serves /healthz (--healthz-bind-address:--healthz-port;
	// "" = off).
	HealthzAddr string
	// Cluster is cluster mode (--kubeconfig; cluster.go).
	Cluster ClusterOptions
	// RuntimeExe overrides the binary re-executed as pod supervisor.
	RuntimeExe string
	Log        *slog.Logger

	// ShutdownGracePeriod and ShutdownGracePeriodCriticalPods are graceful
	// node shutdown (the KubeletConfiguration's shutdownGracePeriod and
	// shutdownGracePeriodCriticalPods; 0: off, as the kubelet's default).
	ShutdownGracePeriod             time.Duration
	ShutdownGracePeriodCriticalPods time.Duration
}

// Run runs the daemon until ctx ends (pods keep running) or a component fails.
func Run(ctx context.Context, o Options) error {
	log := o.Log
	if log == nil {
		log = slog.Default()
	}
	for _, d := range []string{o.RootDir, o.LogDir} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return err
		}
	}
	shutdownCfg := nodeshutdown.Config{GracePeriod: o.ShutdownGracePeriod, CriticalPodsGracePeriod: o.ShutdownGracePeriodCriticalPods}
	if err := shutdownCfg.Validate(); err != nil {
		return err
	}
	// One daemon per root dir: two would adopt the same pods and each start
	// what the other is starting. The lock dies with the process (SIGKILL
	// included) and is not inherited by the pods (close-on-exec).
	unlock, err := lockRoot(o.RootDir)
	if err != nil {
		return err
	}
	defer unlock()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	metrics := api.NewMetrics()
	driver, driverName, err := openCgroupDriver(ctx, o, metrics, log)
	if err != nil {
		return err
	}
	defer driver.Close()
	store, err := images.Open(o.RootDir, images.Options{InsecureRegistries: o.InsecureRegistries})
	if err != nil {
		return err
	}
	for _, ip := range o.ClusterDNS {
		if _, err := netip.ParseAddr(ip); err != nil {
			return fmt.Errorf("--cluster-dns: %q is not an IP address", ip)
		}
	}
	readOnlyAddr, err := readOnlyAddress(o)
	if err != nil {
		return err
	}
	// The runtime's DNS warnings are pod events; the event store comes later.
	var podEvent func(pod *v1.Pod, container, typ, reason, msg string)
	rt, err := newRuntime(o, log, func(pod *v1.Pod, typ, reason, msg string) {
		if podEvent != nil {
			podEvent(pod, "", typ, reason, msg)
		}
	})
	if err != nil {
		return err
	}
	netm := newNetwork(o, log)
	log.Debug("runtime ready", "network", netm != nil)
	src, err := manifests.NewSource(manifests.Config{Dir: o.ManifestDir, NodeName: o.NodeName, Resync: o.Resync,
		Logger: log.With("component", "manifests")})
	if err != nil {
		return err
	}

	apiStore := api.NewStore(0)
	// describe's cgroup usage is read when asked for (usage.go).
	sampler := newUsageSampler(driver)
	server := api.NewServer(usageSource{apiStore, sampler}, metrics, log.With("component", "api"))
	server.SetConfig(api.DaemonConfig{NodeName: o.NodeName, RootDir: o.RootDir, LogDir: o.LogDir, ManifestDir: o.ManifestDir,
		Socket: o.Socket, CgroupDriver: driverName, CgroupRoot: o.CgroupRoot})

	planOpts, cfg := planConfig(o)
	var loop *shell.Loop
	wake := func() {
		if loop != nil {
			loop.Wake()
		}
	}
	podEvent = eventRecorder(apiStore, o.NodeName)
	var podNet shell.Network // a nil *network.Manager would be a non-nil interface
	if netm != nil {
		podNet = netm
	}
	node := shell.NewNode(shell.NodeOptions{RootDir: o.RootDir, NodeName: o.NodeName,
		Driver: driver, Runtime: rt, Images: store, Network: podNet, Plan: planOpts, Wake: wake, Event: podEvent,
		LogDir: o.LogDir, LogRetention: o.PodLogRetention,
		Log: log.With("component", "node")})
	defer node.Close()
	rep := newReporter(apiStore, metrics, node, driver, sampler, planOpts, cfg, o.NodeName)
	rep.log = log.With("component", "events")
	// Graceful node shutdown asks the loop to stop pods through the gate
	// (Desired.Shutdown) and learns from each round which have stopped.
	shutdownGate := nodeshutdown.NewGate(wake, func(uid types.UID) bool { return loop != nil && loop.Busy(uid) }, nil)
	var lastRound atomic.Int64
	// reported: a first round's pods are in the API store (the cluster
	// agent's mirror pods wait for it).
	var reported atomic.Bool
	loop = shell.NewLoop(node, func() (reconciler.Desired, bool) {
		snap := src.Snapshot()
		d := desiredFrom(snap)
		shutdownGate.Fill(&d)
		return d, snap.Synced
	}, shell.LoopOptions{Config: cfg, Parallel: o.Parallel, Resync: o.Resync,
		Log: log.With("component", "reconciler"),
		Report: func(res *reconciler.Result, d *reconciler.Desired, obs *reconciler.Observed) {
			rep.report(res, d, obs)
			reported.Store(true)
			shutdownGate.Observe(res, d, obs)
		},
		OnActionError: func(uid types.UID, pod *v1.Pod, a reconciler.Action, err error) {
			if reason, container := actionFailureReason(a); reason != "" {
				podEvent(pod, container, v1.EventTypeWarning, reason, err.Error())
			}
		},
		OnRound: func(d time.Duration, err error) {
			metrics.ObserveReconcile(d, err)
			lastRound.Store(time.Now().UnixNano())
		}})

	healthy := livenessCheck(o.Resync, &lastRound, loop)
	agent, kubeletAPI, err := newClusterAgent(o, usageSource{apiStore, sampler}, rt, func() error {
		if loop.Rounds() == 0 {
			return errors.New("no reconcile round completed yet")
		}
		return healthy()
	}, reported.Load, metrics.Handler(), log) // the pods gauge is recounted every round (report.go)
	if err != nil {
		return err
	}
	// Only a node shutdown stops pods: the lock goes with the daemon.
	shutdownMgr := nodeshutdown.New(shutdownCfg, shutdownGate, nodeshutdown.Options{Log: log.With("component", "nodeshutdown")})
	log.Info("minikubelet running", "node", o.NodeName, "manifestDir", src.Dir(), "cgroupDriver", driver.Name(),
		"socket", o.Socket, "rootDir", o.RootDir, "network", netm != nil)
	return parts{o: o, log: log, src: src, server: server, readOnlyAddr: readOnlyAddr, loop: loop, events: driver.Events(), store: store,
		lim:     &emptyDirLimits{usage: rt.EmptyDirUsage, log: log.With("component", "eviction"), over: map[types.UID]string{}},
		healthy: healthy, agent: agent, kubeletAPI: kubeletAPI, shutdown: shutdownMgr,
		disks: newDiskWatch(o.RootDir, o.LogDir, log.With("component", "disk"), func(typ, reason, msg string) {
			apiStore.RecordEvent(v1.Event{InvolvedObject: v1.ObjectReference{Kind: "Node", APIVersion: "v1", Name: o.NodeName},
				Type: typ, Reason: reason, Message: msg, Source: v1.EventSource{Component: "kubelet", Host: o.NodeName}})
		})}.run(ctx)
}

// watchAirgap imports the archives dropped in the airgap folder
// (<root-dir>/images/import), at start and as they appear; a pod waiting
// for one of their images is tried again at once. A folder that cannot be
// watched is said, never a reason to stop.
func (p parts) watchAirgap(ctx context.Context) {
	alog := p.log.With("component", "airgap")
	err := p.store.WatchAirgap(ctx, p.store.ImportDir(), func(r images.AirgapResult) {
		if r.Err != nil {
			alog.Warn("import failed", "file", r.File, "err", r.Err)
			return
		}
		var refs []string
		for _, rec := range r.Images {
			refs = append(refs, rec.RepoTags...)
		}
		alog.Info("imported", "file", r.File, "images", strings.Join(refs, ","))
		p.loop.Wake()
	})
	if err != nil && ctx.Err() == nil {
		alog.Warn("the airgap folder is not watched", "dir", p.store.ImportDir(), "err", err)
	}
}

// parts are what Run assembled, ready to run.
type parts struct {
	o            Options
	log          *slog.Logger
	src          *manifests.Source
	server       *api.Server
	readOnlyAddr string
	loop         *shell.Loop
	events       <-chan systemd.Event
	store        *images.Store
	lim          *emptyDirLimits
	healthy      func() error
	agent        *cluster.Agent        // nil: standalone
	kubeletAPI   *kubeletserver.Server // nil: standalone
	shutdown     *nodeshutdown.Manager
	disks        *diskWatch
}

// run runs every part in one errgroup until ctx ends or one fails (the API
// server, the manifest source, the loop ending early): the first failure
// stops them all and is run's error. Pods keep running either way.
func (p parts) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { p.watchAirgap(gctx); return nil })
	g.Go(func() error {
		err := p.src.Run(gctx)
		if gctx.Err() != nil {
			return nil
		}
		if err == nil {
			err = errors.New("stopped")
		}
		return fmt.Errorf("manifest source: %w", err)
	})
	g.Go(func() error {
		err := p.server.ListenAndServe(gctx, p.o.Socket, p.readOnlyAddr)
		if err == nil && gctx.Err() == nil {
			err = errors.New("stopped")
		}
		if err != nil {
			return fmt.Errorf("API server: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		err := p.loop.Run(gctx)
		if gctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("reconcile loop stopped: %v", err)
	})
	g.Go(func() error { wakeLoop(gctx, p.loop, p.src.Changed(), p.events); return nil })
	g.Go(func() error { p.lim.run(gctx, p.src.Snapshot); return nil })
	g.Go(func() error { p.disks.run(gctx); return nil })
	if p.o.HealthzAddr != "" {
		g.Go(func() error {
			serveHealthz(gctx, p.o.HealthzAddr, p.healthy, p.log.With("component", "healthz"))
			return nil
		})
	}
	if p.agent != nil {
		// Decoupled: the agent reads apiStore; an API server outage never
		// reaches the loop.
		g.Go(func() error { p.agent.Run(gctx); return nil })
	}
	if p.kubeletAPI != nil {
		g.Go(func() error { p.kubeletAPI.Run(gctx); return nil })
	}
	g.Go(func() error { p.shutdown.Run(gctx); return nil })
	notifySystemd(gctx, p.loop, p.healthy, p.log)

	sddaemon.SdNotify(false, sddaemon.SdNotifyStopping)
	var runErr error
	if ctx.Err() == nil {
		runErr = context.Cause(gctx) // a part failed (asked to stop is no error)
	}
	p.log.Info("minikubelet stopping; pods keep running", "reason", context.Cause(gctx))
	cancel()
	// Actions see the cancel and return; one that does not (a stuck
	// supervisor call) is not waited for: the next start completes it.
	done := make(chan struct{})
	go func() { g.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		p.log.Warn("actions still running at exit; the next start completes them")
	}
	return runErr
}

// livenessCheck: alive while the loop completes rounds (at least one per
// resync). A slow round is not a dead loop: a completed action counts as
// progress too, and the start as the first sign of life (adopting or
// starting many pods at boot, or a slow host's CNI ADDs, can keep the
// first rounds busy past the watchdog's interval).
func livenessCheck(resync time.Duration, lastRound *atomic.Int64, loop *shell.Loop) func() error {
	if resync <= 0 {
		resync = 20 * time.Second
	}
	started := time.Now()
	return func() error {
		last := started
		if r := lastRound.Load(); r != 0 && time.Unix(0, r).After(last) {
			last = time.Unix(0, r)
		}
		if a := loop.LastActionDone(); a.After(last) {
			last = a
		}
		if since := time.Since(last); since > 2*resync+10*time.Second {
			return fmt.Errorf("no reconcile round completed and no action finished for %s", since.Round(time.Second))
		}
		return nil
	}
}

// planConfig is the cgroup plan's and the reconciler's configuration from
// the options (--pod-pids-limit, --crashloop-max).
func planConfig(o Options) (systemd.PlanOptions, reconciler.Config) {
	var pidsLimit *int64
	if o.PodPidsLimit > 0 {
		pidsLimit = &o.PodPidsLimit
	}
	cfg := reconciler.DefaultConfig()
	if o.CrashLoopMax > 0 {
		cfg.CrashLoopMax = o.CrashLoopMax
		if cfg.CrashLoopInitial > cfg.CrashLoopMax {
			cfg.CrashLoopInitial = cfg.CrashLoopMax
		}
	}
	return systemd.PlanOptions{CgroupRoot: o.CgroupRoot, PodPidsLimit: pidsLimit}, cfg
}

// eventRecorder records a pod's (or one of its containers') event in the
// API store, with the kubelet as source.
func eventRecorder(apiStore *api.Store, nodeName string) func(pod *v1.Pod, container, typ, reason, msg string) {
	return func(pod *v1.Pod, container, typ, reason, msg string) {
		if pod == nil {
			return
		}
		obj := v1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID}
		if container != "" {
			obj.FieldPath = "spec.containers{" + container + "}"
		}
		apiStore.RecordEvent(v1.Event{InvolvedObject: obj, Type: typ, Reason: reason, Message: msg,
			Source: v1.EventSource{Component: "kubelet", Host: nodeName}})
	}
}

// notifySystemd tells systemd READY=1 once the first round ran (the folder
// read, pods adopted), so units ordered after minikubelet see its API answer
// with real state, and pets the watchdog while the daemon is healthy; it
// returns when ctx ends.
func notifySystemd(ctx context.Context, loop *shell.Loop, healthy func() error, log *slog.Logger) {
	ready := time.NewTicker(50 * time.Millisecond)
	defer ready.Stop()
	notifiedReady := false
	var watchdog <-chan time.Time
	if iv, err := sddaemon.SdWatchdogEnabled(false); err == nil && iv > 0 {
		t := time.NewTicker(iv / 2)
		defer t.Stop()
		watchdog = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-ready.C:
			if !notifiedReady && loop.Rounds() > 0 {
				notifiedReady = true
				ready.Stop()
				sddaemon.SdNotify(false, sddaemon.SdNotifyReady)
				log.Info("minikubelet ready")
			}
		case <-watchdog:
			// Alive: the loop completes rounds or its actions finish (healthy).
			if healthy() == nil {
				sddaemon.SdNotify(false, sddaemon.SdNotifyWatchdog)
			}
		}
	}
}

// wakeLoop wakes the loop on manifest changes and unit events until ctx
// ends.
func wakeLoop(ctx context.Context, loop *shell.Loop, changed <-chan struct{}, events <-chan systemd.Event) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
			loop.Wake()
		case ev, ok := <-events:
			if !ok {
				events = nil // the driver has no more events; manifests still wake
				continue
			}
			// A pod being started or stopped makes a burst of unit
			// events; rounds they would wake change nothing for it (it
			// is busy: see Loop.Busy) and only compete with its chain
			// for the CPU. The chain's end wakes the loop.
			if ev.State.PodUID != "" && loop.Busy(ev.State.PodUID) {
				continue
			}
			loop.Wake()
		}
	}
}

// openCgroupDriver connects the cgroup driver --cgroup-driver names (auto:
// systemd when it runs) and creates the root and QoS slices.
func openCgroupDriver(ctx context.Context, o Options, metrics *api.Metrics, log *slog.Logger) (systemd.Driver, string, error) {
	log.Debug("starting", "cgroupDriver", o.CgroupDriver)
	driverName, err := systemd.DetectDriver(o.CgroupDriver)
	if err != nil {
		return nil, "", err
	}
	var driver systemd.Driver
	if driverName == "systemd" {
		driver, err = systemd.New(ctx, systemd.DBusOptions{CgroupRoot: o.CgroupRoot})
	} else {
		driver, err = cgroupfs.New(cgroupfs.Options{CgroupRoot: o.CgroupRoot, StateDir: o.RootDir})
	}
	if err != nil {
		return nil, "", fmt.Errorf("cgroup driver %s: %w", driverName, err)
	}
	log.Debug("cgroup driver connected", "driver", driverName)
	if driverName == "systemd" {
		driver = timedDriver{Driver: driver, m: metrics}
	}
	if err := driver.Init(ctx); err != nil {
		driver.Close()
		return nil, "", fmt.Errorf("cgroup driver %s: %w", driverName, err)
	}
	log.Debug("cgroup tree ready", "driver", driverName)
	return driver, driverName, nil
}

// newRuntime creates the container runtime and says when the node's
// resolv.conf is systemd-resolved's stub.
func newRuntime(o Options, log *slog.Logger, event func(pod *v1.Pod, typ, reason, msg string)) (*mklrt.Runtime, error) {
	rt, err := mklrt.New(mklrt.Options{RootDir: o.RootDir, LogDir: o.LogDir, NodeName: o.NodeName, Exe: o.RuntimeExe,
		Log:            log.With("component", "runtime"),
		HostResolvConf: o.ResolvConf, NoHostResolvConf: o.NoResolvConf, ClusterDNS: o.ClusterDNS, ClusterDomain: o.ClusterDomain,
		Event: event})
	if err != nil {
		return nil, err
	}
	if !o.NoResolvConf {
		conf := o.ResolvConf
		if conf == "" {
			conf = "/etc/resolv.conf"
		}
		if eff, swapped := mklrt.EffectiveResolvConf(conf); swapped {
			log.Info("the resolv.conf is systemd-resolved's stub (a loopback nameserver pods cannot reach); pods' DNS is based on its upstream file, as kubeadm configures the kubelet",
				"resolvConf", conf, "using", eff)
		}
	}
	return rt, nil
}

// newNetwork sets up pod networking (CNI); nil when it is off or
// unavailable, and pods get loopback only.
func newNetwork(o Options, log *slog.Logger) *network.Manager {
	if o.DisableNetwork {
		return nil
	}
	cfg := o.Network
	cfg.RootDir = o.RootDir
	netm, err := network.New(cfg, network.WithLogger(log.With("component", "network")))
	if err != nil {
		log.Warn("pod networking unavailable: pods get loopback only", "err", err)
		return nil
	}
	if st := netm.Status(); st.LoopbackOnly {
		log.Warn("pod networking: loopback only", "reason", st.Reason)
	}
	return netm
}

// readOnlyAddress is where the read-only port listens ("" = off):
// ReadOnlyAddr as given, else --address:--read-only-port, the address
// defaulting to 0.0.0.0 (every interface) as the kubelet's.
func readOnlyAddress(o Options) (string, error) {
	if o.ReadOnlyAddr != "" || o.ReadOnlyPort <= 0 {
		return o.ReadOnlyAddr, nil
	}
	if o.ReadOnlyPort > 65535 {
		return "", fmt.Errorf("--read-only-port: %d is not a TCP port", o.ReadOnlyPort)
	}
	host := o.Address
	if host == "" {
		host = "0.0.0.0"
	}
	if _, err := netip.ParseAddr(host); err != nil {
		return "", fmt.Errorf("--address: %q is not an IP address", host)
	}
	return net.JoinHostPort(host, strconv.Itoa(o.ReadOnlyPort)), nil
}

// actionFailureReason names a failed action's Warning event as kubelet does
// ("": no event of its own).
func actionFailureReason(a reconciler.Action) (reason, container string) {
	switch a := a.(type) {
	case reconciler.EnsurePodCgroup:
		return "FailedCreatePodContainer", ""
	case reconciler.RunSandbox:
		return "FailedCreatePodSandBox", ""
	case reconciler.CreateAndStartContainer:
		return "Failed", a.Name
	case reconciler.KillContainer:
		return "FailedKillPod", a.Name
	case reconciler.StopSandbox, reconciler.RemovePod, reconciler.CleanupOrphan, reconciler.RemoveContainer, reconciler.StopStrayScope:
		return "FailedKillPod", ""
	case reconciler.PullImage:
		return "", "" // the plan reports each failed pull once (Warning Failed, as the kubelet)
	}
	return "Failed", ""
}

// lockRoot takes <root-dir>/minikubelet.lock (flock, exclusive) and writes
// our PID into it for the error message of the next one.
func lockRoot(root string) (func(), error) {
	path := filepath.Join(root, "minikubelet.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		b, _ := os.ReadFile(path)
		f.Close()
		return nil, fmt.Errorf("another minikubelet (pid %s) is running with --root-dir %s (%s is locked)", strings.TrimSpace(string(b)), root, path)
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return func() { f.Close() }, nil
}
