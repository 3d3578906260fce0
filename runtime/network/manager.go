package network

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	cnitypes "github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"golang.org/x/sys/unix"
)

// PodNetwork names the pod whose network is set up or torn down.
type PodNetwork struct {
	UID       string // the CNI container ID (stable across daemon restarts)
	Namespace string
	Name      string
	// NetnsPath is the pod's network namespace (the pause process's
	// /proc/<pid>/ns/net or a bind mount of it). For Teardown it may be
	// empty when unknown; pass it only while it surely still is this pod's
	// namespace (a /proc/<pid> path of a dead pause may name a reused PID).
	NetnsPath    string
	PortMappings []HostPort // container ports with a hostPort; others are ignored
}

func (p PodNetwork) ref() PodRef { return PodRef{Namespace: p.Namespace, Name: p.Name, UID: p.UID} }

// Result is what the pod got.
type Result struct {
	IPs       []net.IP // podIPs, the first is podIP
	Interface string   // interface inside the pod carrying them ("eth0")
	Gateway   net.IP
	// LoopbackOnly: no pod network (plugins missing); the pod has lo only
	// and must be probed from inside its netns. See Manager.Status.
	LoopbackOnly bool
}

// Status tells how pods are networked on this node.
type Status struct {
	LoopbackOnly bool
	Reason       string // why loopback only ("" otherwise)
	ConfFile     string // the config in use
	Network      string // its CNI network name
	WroteDefault bool   // ConfFile is the default conflist under <root-dir>/cni/net.d
}

// CachedAttachment is one network attachment recorded in the CNI cache.
type CachedAttachment struct {
	Pod       PodRef
	Network   string
	IfName    string
	NetnsPath string // as given at ADD; may be stale
	IPs       []net.IP
	HostPorts []HostPort
}

// Manager attaches pods to the node's CNI network. Safe for concurrent use:
// calls for the same pod UID are serialised, and so are the ADDs and DELs of
// all pods (see node).
type Manager struct {
	cfg   Config
	cni   *libcni.CNIConfig
	log   *slog.Logger
	ports *hostPorts
	locks keyedMutex
	// node serialises the ADDs and DELs of different pods: their plugins'
	// iptables edits race under iptables-nft (Debian 12's), which takes no
	// lock ("Index of deletion too big", "CHAIN_DEL ... busy", and
	// removeNatChain deletes by rule number). CHECKs only read and share
	// it. Running them side by side with each iptables command serialised
	// instead (a flock wrapper first in the plugins' PATH) was measured:
	// 24 pods set up and torn down in 18.5-19.2 s either way, as ~20
	// iptables commands of ~19 ms per ADD or DEL are most of their time.
	node sync.RWMutex
	// rules are the default network's node-level masquerade and FORWARD
	// rules (noderules.go); guarded by node, held exclusively.
	rules *nodeRules

	mu       sync.Mutex
	net      *loadedNetwork
	status   Status
	dirStamp time.Time
	fileStmp time.Time
	warned   string
}

// Option tweaks New.
type Option func(*Manager)

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(m *Manager) { m.log = l } }

// New loads the first network config of cfg.ConfDir, using the default
// conflist under <root>/cni/net.d when it holds none, checks that its plugins exist in
// cfg.BinDirs (loopback-only mode with one warning otherwise) and rebuilds
// the hostPort registry from the CNI cache under <root>/cni/cache.
func New(cfg Config, opts ...Option) (*Manager, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	rules, err := newNodeRules(cfg.PodCIDR)
	if err != nil {
		return nil, fmt.Errorf("network: --pod-cidr: %w", err)
	}
	m := &Manager{cfg: cfg, log: slog.Default(), ports: newHostPorts(), rules: rules}
	for _, o := range opts {
		o(m)
	}
	for _, d := range []string{cfg.cacheDir(), cfg.ipamDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("network: create %s: %w", d, err)
		}
	}
	m.cni = libcni.NewCNIConfigWithCacheDir(cfg.BinDirs, cfg.cacheDir(), nil)
	m.mu.Lock()
	err = m.reloadLocked()
	m.mu.Unlock()
	if err != nil {
		return nil, err
	}
	atts, err := m.cni.GetCachedAttachments("")
	if err != nil {
		return nil, fmt.Errorf("network: read CNI cache %s: %w", cfg.cacheDir(), err)
	}
	for _, a := range atts {
		m.ports.add(refOf(a), fromCapabilityArgs(a.CapabilityArgs))
	}
	return m, nil
}

// Status reports the mode and the config in use.
func (m *Manager) Status() Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.refreshLocked()
	return m.status
}

// HostPorts returns the registry: pod UID → host ports it holds.
func (m *Manager) HostPorts() map[string][]HostPort { return m.ports.holders() }

// reloadLocked (re)reads the conf dir; falls back to the default conflist
// under the root dir when it holds no usable config; sets the mode.
func (m *Manager) reloadLocked() error {
	m.dirStamp = mtime(m.cfg.ConfDir)
	ln, notes, err := findConfig(m.cfg.ConfDir)
	if err != nil {
		return fmt.Errorf("network: %w", err)
	}
	for _, n := range notes {
		m.log.Warn("network: " + n)
	}
	st := Status{}
	if ln == nil {
		// The kubelet never writes CNI config, and a file in the shared
		// /etc/cni/net.d would be picked up by every other runtime on the
		// host. The default lives under our own root dir and is used only
		// while --cni-conf-dir holds no config.
		data, err := DefaultConflist(m.cfg.PodCIDR, m.cfg.ipamDir())
		if err != nil {
			return fmt.Errorf("network: --pod-cidr: %w", err)
		}
		path, err := writeDefaultConfig(m.cfg.defaultConfDir(), data)
		if err != nil {
			// A full or read-only --root-dir: the config is used from
			// memory (CNI needs no file) rather than leaving every pod
			// without a network for the daemon's whole life; the write is
			// tried again at the next reload.
			path = filepath.Join(m.cfg.defaultConfDir(), DefaultConfFile)
			m.log.Warn("network: the default CNI config cannot be written; using it from memory", "file", path, "err", err)
		}
		list, err := libcni.ConfListFromBytes(data)
		if err != nil {
			return fmt.Errorf("network: default conflist: %w", err)
		}
		ln = &loadedNetwork{file: path, list: list}
		st.WroteDefault = true
	}
	if m.net == nil || m.net.file != ln.file || m.net.list.Name != ln.list.Name {
		attrs := []any{"conflist", ln.file, "network", ln.list.Name, "plugins", strings.Join(pluginTypes(ln.list), ",")}
		if st.WroteDefault {
			attrs = append(attrs, "reason", "no CNI config in "+m.cfg.ConfDir, "podCIDR", m.cfg.PodCIDR, "bridge", DefaultBridge)
		}
		m.log.Info("network: using CNI config", attrs...)
	}
	m.net = ln
	m.fileStmp = mtime(ln.file)
	st.ConfFile, st.Network = ln.file, ln.list.Name
	m.status = st
	m.checkPluginsLocked()
	return nil
}

// checkPluginsLocked switches to loopback-only when a plugin binary of the
// network is missing, warning once per distinct reason.
func (m *Manager) checkPluginsLocked() {
	var missing []string
	for _, t := range pluginTypes(m.net.list) {
		if _, err := invoke.FindInPath(t, m.cfg.BinDirs); err != nil {
			missing = append(missing, t)
		}
	}
	if len(missing) == 0 {
		if m.status.LoopbackOnly {
			m.log.Info("network: CNI plugins found, pods get a network again", "network", m.status.Network)
		}
		m.status.LoopbackOnly, m.status.Reason, m.warned = false, "", ""
		return
	}
	m.status.LoopbackOnly = true
	m.status.Reason = fmt.Sprintf("CNI plugin(s) %s needed by %s not found in %s (install containernetworking-plugins)", strings.Join(missing, ", "), m.net.file, strings.Join(m.cfg.BinDirs, ":"))
	if m.warned != m.status.Reason {
		m.warned = m.status.Reason
		m.log.Warn("network: pods get loopback only: " + m.status.Reason)
	}
}

// refreshLocked reloads when the conf dir or the file in use changed (as
// kubelet re-reads its CNI config), and rechecks plugins while they are
// missing so installing them heals the node without a restart.
func (m *Manager) refreshLocked() {
	if !mtime(m.cfg.ConfDir).Equal(m.dirStamp) || !mtime(m.net.file).Equal(m.fileStmp) {
		if err := m.reloadLocked(); err != nil {
			m.log.Error("network: reload CNI config, keeping the previous one", "err", err)
		}
		return
	}
	if m.status.LoopbackOnly {
		m.checkPluginsLocked()
	}
}

func (m *Manager) current() (*loadedNetwork, Status) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.refreshLocked()
	return m.net, m.status
}

// Setup attaches a fresh sandbox to the network (CNI ADD) and publishes
// its hostPorts. hostNetwork pods must not be passed here (the caller skips
// CNI for them, as they use the node's stack). An attachment still cached
// for the same UID belongs to an older sandbox and is released first. In
// loopback-only mode it returns Result{LoopbackOnly: true} and no error.
func (m *Manager) Setup(ctx context.Context, pod PodNetwork) (Result, error) {
	if pod.UID == "" || pod.NetnsPath == "" {
		return Result{}, fmt.Errorf("network setup of pod %s/%s: UID and NetnsPath are required", pod.Namespace, pod.Name)
	}
	unlock := m.locks.lock(pod.UID)
	defer unlock()
	ln, st := m.current()
	if st.LoopbackOnly {
		return Result{LoopbackOnly: true}, nil
	}
	ref := pod.ref()
	if atts, _ := m.cni.GetCachedAttachments(pod.UID); len(atts) > 0 {
		stale := PodNetwork{UID: pod.UID, Namespace: pod.Namespace, Name: pod.Name}
		m.node.Lock()
		err := m.teardownAttachments(ctx, stale, atts)
		m.node.Unlock()
		if err != nil {
			return Result{}, fmt.Errorf("pod %s: release the attachment of its previous sandbox: %w", ref, err)
		}
	}
	var ports []HostPort
	for _, p := range pod.PortMappings {
		if p.HostPort > 0 {
			ports = append(ports, p)
		}
	}
	if err := m.ports.reserve(ref, ports); err != nil {
		return Result{}, err
	}
	if len(ports) > 0 && !hasCapability(ln.list, "portMappings") {
		m.log.Warn("network: the pod asks for hostPorts but no plugin of the CNI config has the portMappings capability (portmap): they are not published", "pod", ref.String(), "config", ln.file)
	}
	rt := runtimeConf(pod, ports)
	m.node.Lock()
	if st.WroteDefault {
		m.ensureNodeRulesLocked(ctx)
	}
	res, err := m.cni.AddNetworkList(ctx, ln.list, rt)
	if err != nil {
		defer m.node.Unlock()
		// Plugins that ran before the failing one hold an IP, a veth or
		// rules; undo them even if ctx is done.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		derr := m.cni.DelNetworkList(dctx, ln.list, rt)
		if derr == nil {
			derr = cleanupAfterDel(dctx, ln.list, pod.UID, nil, true)
		}
		if derr != nil {
			m.log.Warn("network: undo of a failed ADD", "pod", ref.String(), "err", derr)
		}
		cancel()
		m.ports.release(pod.UID)
		return Result{}, fmt.Errorf("pod %s: CNI ADD on network %q (%s): %w", ref, ln.list.Name, ln.file, err)
	}
	m.node.Unlock()
	out, err := convertResult(res)
	if err != nil {
		return Result{}, fmt.Errorf("pod %s: CNI result of network %q: %w", ref, ln.list.Name, err)
	}
	return out, nil
}

// ensureNodeRulesLocked makes the default network's node-level rules when
// they are due (noderules.go). A failure does not fail the pod: it still
// gets its address and reaches its node and the other pods; the warning
// (logged once per distinct error) names what is missing, and the next ADD
// tries again.
func (m *Manager) ensureNodeRulesLocked(ctx context.Context) {
	if !m.rules.due(time.Now()) {
		return
	}
	err := m.rules.ensure(ctx)
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if msg == m.rules.warned {
		return
	}
	if err != nil {
		m.log.Warn("network: the default network's node rules cannot be made: pods' traffic leaving the pod CIDR is not masqueraded (nor accepted in FORWARD)", "podCIDR", m.cfg.PodCIDR, "err", err)
	} else {
		m.log.Info("network: the default network's node rules are in place again", "podCIDR", m.cfg.PodCIDR)
	}
	m.rules.warned = msg
}

// Teardown detaches the pod (CNI DEL) and frees its hostPorts. It works
// from the CNI cache, so the config used at ADD is used even if the conf dir
// changed, and it needs only the UID after a crash (NetnsPath when known).
// Idempotent: a pod with nothing cached gets a DEL with the current config
// (covers a crash between the plugins' ADD and the cache write), which
// plugins treat as a no-op when nothing is left.
func (m *Manager) Teardown(ctx context.Context, pod PodNetwork) error {
	if pod.UID == "" {
		return fmt.Errorf("network teardown of pod %s/%s: UID is required", pod.Namespace, pod.Name)
	}
	unlock := m.locks.lock(pod.UID)
	defer unlock()
	atts, err := m.cni.GetCachedAttachments(pod.UID)
	if err != nil {
		return fmt.Errorf("pod %s: read CNI cache: %w", pod.ref(), err)
	}
	if len(atts) == 0 {
		ln, st := m.current()
		if st.LoopbackOnly {
			m.ports.release(pod.UID)
			return nil
		}
		atts = []*libcni.NetworkAttachment{{ContainerID: pod.UID, Network: ln.list.Name, IfName: PodInterface, Config: ln.list.Bytes}}
	}
	m.node.Lock()
	err = m.teardownAttachments(ctx, pod, atts)
	m.node.Unlock()
	if err != nil {
		return err
	}
	m.ports.release(pod.UID)
	return nil
}

func (m *Manager) teardownAttachments(ctx context.Context, pod PodNetwork, atts []*libcni.NetworkAttachment) error {
	netns := pod.NetnsPath
	if netns != "" && !isNetns(netns) {
		netns = "" // gone: the plugins release what lives outside it
	}
	var errs []error
	for _, a := range atts {
		list, err := libcni.ConfListFromBytes(a.Config)
		if err != nil {
			errs = append(errs, fmt.Errorf("pod %s: cached config of network %q: %w", pod.ref(), a.Network, err))
			continue
		}
		rt := &libcni.RuntimeConf{ContainerID: pod.UID, NetNS: netns, IfName: a.IfName, Args: a.CniArgs, CapabilityArgs: a.CapabilityArgs}
		cached, _ := m.cni.GetNetworkListCachedResult(list, rt)
		if err := m.cni.DelNetworkList(ctx, list, rt); err != nil {
			errs = append(errs, fmt.Errorf("pod %s: CNI DEL on network %q: %w", pod.ref(), list.Name, err))
			continue
		}
		if err := cleanupAfterDel(ctx, list, pod.UID, cached, netns != ""); err != nil {
			errs = append(errs, fmt.Errorf("pod %s: network %q: %w", pod.ref(), list.Name, err))
		}
	}
	return errors.Join(errs...)
}

// cleanupAfterDel removes what the Debian 12 bridge plugin leaves when its
// DEL cannot find eth0 with its address (netns gone or unknown, or eth0
// already deleted): the masquerade chain (checked after every DEL, a no-op
// when the plugin removed it) and, when DEL ran without a netns while the
// netns may live on, the veth pair (see cleanup.go).
func cleanupAfterDel(ctx context.Context, list *libcni.NetworkConfigList, uid string, cached cnitypes.Result, hadNetns bool) error {
	var errs []error
	for _, p := range list.Plugins {
		var c struct {
			Type   string `json:"type"`
			Bridge string `json:"bridge"`
			IPMasq bool   `json:"ipMasq"`
		}
		if json.Unmarshal(p.Bytes, &c) != nil || (c.Type != "bridge" && c.Type != "ptp") {
			continue
		}
		if c.IPMasq {
			if err := removeNatChain(ctx, masqChainName(list.Name, uid)); err != nil {
				errs = append(errs, err)
			}
		}
		if c.Type == "bridge" && cached != nil && !hadNetns {
			if c.Bridge == "" {
				c.Bridge = "cni0" // the plugin's default
			}
			if r, err := types100.NewResultFromResult(cached); err == nil {
				for _, i := range r.Interfaces {
					if i.Sandbox == "" && i.Name != c.Bridge {
						if err := deleteHostVeth(i.Name, c.Bridge); err != nil {
							errs = append(errs, fmt.Errorf("delete veth %s: %w", i.Name, err))
						}
					}
				}
			}
		}
	}
	return errors.Join(errs...)
}

// Check runs CNI CHECK for an adopted pod (after a daemon restart) and
// returns the cached result (its IPs). An error means the attachment is
// broken or unknown; the caller recreates the sandbox.
func (m *Manager) Check(ctx context.Context, pod PodNetwork) (Result, error) {
	if pod.UID == "" || pod.NetnsPath == "" {
		return Result{}, fmt.Errorf("network check of pod %s/%s: UID and NetnsPath are required", pod.Namespace, pod.Name)
	}
	unlock := m.locks.lock(pod.UID)
	defer unlock()
	_, st := m.current()
	if st.LoopbackOnly {
		return Result{LoopbackOnly: true}, nil
	}
	atts, err := m.cni.GetCachedAttachments(pod.UID)
	if err != nil {
		return Result{}, fmt.Errorf("pod %s: read CNI cache: %w", pod.ref(), err)
	}
	if len(atts) == 0 {
		return Result{}, fmt.Errorf("pod %s: no CNI attachment cached in %s", pod.ref(), m.cfg.cacheDir())
	}
	if st.WroteDefault {
		// An adopting daemon heals a flushed ruleset before any new pod.
		m.node.Lock()
		m.ensureNodeRulesLocked(ctx)
		m.node.Unlock()
	}
	m.node.RLock()
	defer m.node.RUnlock()
	var out Result
	for _, a := range atts {
		list, err := libcni.ConfListFromBytes(a.Config)
		if err != nil {
			return Result{}, fmt.Errorf("pod %s: cached config of network %q: %w", pod.ref(), a.Network, err)
		}
		rt := &libcni.RuntimeConf{ContainerID: pod.UID, NetNS: pod.NetnsPath, IfName: a.IfName, Args: a.CniArgs, CapabilityArgs: a.CapabilityArgs}
		res, err := m.cni.GetNetworkListCachedResult(list, rt)
		if err != nil || res == nil {
			return Result{}, fmt.Errorf("pod %s: no usable cached result of network %q: %v", pod.ref(), list.Name, err)
		}
		r, err := convertResult(res)
		if err != nil {
			return Result{}, err
		}
		if err := m.checkList(ctx, list, rt, r); err != nil {
			return Result{}, fmt.Errorf("pod %s: CNI CHECK on network %q: %w", pod.ref(), list.Name, err)
		}
		if out.IPs == nil {
			out = r
		}
	}
	return out, nil
}

// checkList runs CNI CHECK, working around the portmap plugin of Debian 12
// (1.1.1): its CHECK demands the IPv6 DNAT chain whenever ip6tables exists,
// although ADD made none for an IPv4-only pod, so CHECK always fails for
// such a pod with hostPorts. Then the list is checked without portmap and
// the IPv4 DNAT chain portmap made is verified here instead.
func (m *Manager) checkList(ctx context.Context, list *libcni.NetworkConfigList, rt *libcni.RuntimeConf, r Result) error {
	err := m.checkListOnce(ctx, list, rt, r)
	if err == nil {
		return nil
	}
	// udev may have given the host end of the veth a new MAC (udevmac.go).
	if changed, rerr := m.refreshHostMAC(list, rt, err); rerr != nil {
		return errors.Join(err, rerr)
	} else if changed {
		return m.checkListOnce(ctx, list, rt, r)
	}
	return err
}

func (m *Manager) checkListOnce(ctx context.Context, list *libcni.NetworkConfigList, rt *libcni.RuntimeConf, r Result) error {
	err := m.cni.CheckNetworkList(ctx, list, rt)
	if err == nil || !strings.Contains(err.Error(), "could not check ipv6 dnat") {
		return err
	}
	for _, ip := range r.IPs {
		if ip.To4() == nil {
			return err // a real IPv6 pod: the failure is genuine
		}
	}
	trimmed := *list
	trimmed.Plugins = nil
	for _, p := range list.Plugins {
		if p.Network == nil || p.Network.Type != "portmap" {
			trimmed.Plugins = append(trimmed.Plugins, p)
		}
	}
	if err := m.cni.CheckNetworkList(ctx, &trimmed, rt); err != nil {
		return err
	}
	chain := portmapDNATChain(list.Name, rt.ContainerID)
	if !natChainExists(ctx, "iptables", chain) {
		return fmt.Errorf("portmap: IPv4 DNAT chain %s of the pod's hostPorts is missing from the nat table", chain)
	}
	return nil
}

// Leftovers lists the attachments in the CNI cache. After a crash the
// caller tears down those whose UID is no longer a pod it runs.
func (m *Manager) Leftovers(ctx context.Context) ([]CachedAttachment, error) {
	atts, err := m.cni.GetCachedAttachments("")
	if err != nil {
		return nil, fmt.Errorf("network: read CNI cache %s: %w", m.cfg.cacheDir(), err)
	}
	var out []CachedAttachment
	for _, a := range atts {
		ca := CachedAttachment{Pod: refOf(a), Network: a.Network, IfName: a.IfName, NetnsPath: a.NetNS, HostPorts: fromCapabilityArgs(a.CapabilityArgs)}
		if list, err := libcni.ConfListFromBytes(a.Config); err == nil {
			rt := &libcni.RuntimeConf{ContainerID: a.ContainerID, IfName: a.IfName}
			if res, err := m.cni.GetNetworkListCachedResult(list, rt); err == nil && res != nil {
				if r, err := convertResult(res); err == nil {
					ca.IPs = r.IPs
				}
			}
		}
		out = append(out, ca)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Pod.UID < out[j].Pod.UID })
	return out, nil
}

func runtimeConf(pod PodNetwork, ports []HostPort) *libcni.RuntimeConf {
	rt := &libcni.RuntimeConf{
		ContainerID: pod.UID,
		NetNS:       pod.NetnsPath,
		IfName:      PodInterface,
		// The CNI_ARGS kubelet passes; IgnoreUnknown keeps plugins that do
		// not know them happy. They also land in the cache (Leftovers).
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", pod.Namespace},
			{"K8S_POD_NAME", pod.Name},
			{"K8S_POD_INFRA_CONTAINER_ID", pod.UID},
			{"K8S_POD_UID", pod.UID},
		},
	}
	if pm := toPortMappings(ports); len(pm) > 0 {
		rt.CapabilityArgs = map[string]any{"portMappings": pm}
	}
	return rt
}

func hasCapability(list *libcni.NetworkConfigList, capability string) bool {
	for _, p := range list.Plugins {
		if p.Network != nil && p.Network.Capabilities[capability] {
			return true
		}
	}
	return false
}

func refOf(a *libcni.NetworkAttachment) PodRef {
	r := PodRef{UID: a.ContainerID}
	for _, kv := range a.CniArgs {
		switch kv[0] {
		case "K8S_POD_NAMESPACE":
			r.Namespace = kv[1]
		case "K8S_POD_NAME":
			r.Name = kv[1]
		}
	}
	return r
}

func convertResult(res cnitypes.Result) (Result, error) {
	r, err := types100.NewResultFromResult(res)
	if err != nil {
		return Result{}, err
	}
	out := Result{Interface: PodInterface}
	for _, ipc := range r.IPs {
		out.IPs = append(out.IPs, ipc.Address.IP)
		if out.Gateway == nil && ipc.Gateway != nil {
			out.Gateway = ipc.Gateway
		}
		if ipc.Interface != nil && *ipc.Interface >= 0 && *ipc.Interface < len(r.Interfaces) {
			if i := r.Interfaces[*ipc.Interface]; i.Sandbox != "" {
				out.Interface = i.Name
			}
		}
	}
	return out, nil
}

// isNetns reports whether path is a network namespace file (nsfs).
func isNetns(path string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false
	}
	return st.Type == unix.NSFS_MAGIC
}

func mtime(path string) time.Time {
	fi, err := os.Stat(path)
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
}

// keyedMutex serialises operations per pod UID.
type keyedMutex struct {
	mu sync.Mutex
	m  map[string]*keyedEntry
}

type keyedEntry struct {
	mu  sync.Mutex
	ref int
}

func (k *keyedMutex) lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*keyedEntry{}
	}
	e := k.m[key]
	if e == nil {
		e = &keyedEntry{}
		k.m[key] = e
	}
	e.ref++
	k.mu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		k.mu.Lock()
		if e.ref--; e.ref == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
}
