package network

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/containernetworking/cni/libcni"
	"github.com/spf13/pflag"
)

// Defaults of the command-line contract (--cni-conf-dir, --cni-bin-dir, --pod-cidr).
const (
	DefaultConfDir = "/etc/cni/net.d"
	DefaultBinDirs = "/usr/lib/cni:/opt/cni/bin"
	// DefaultPodCIDR is chosen to stay clear of the ranges other tools on the
	// same host commonly take: podman/containerd 10.88.0.0/16, podman's
	// netavark extra networks 10.89.x.0/24, CRI-O 10.85.0.0/16, k3s
	// 10.42/10.43, kubeadm's service range 10.96.0.0/12, flannel
	// 10.244.0.0/16, calico 192.168.0.0/16 and docker 172.17+.
	DefaultPodCIDR = "10.86.0.0/16"

	// DefaultNetworkName is the CNI network name of the written default
	// conflist; it also names the per-pod iptables chains the plugins make.
	DefaultNetworkName = "minikubelet"
	// DefaultBridge is the dedicated bridge of the default conflist, so pods
	// never land on a bridge another tool owns (cni0, cni-podman0, docker0).
	DefaultBridge = "mkl0"
	// DefaultConfFile is the default conflist's file name, under
	// <root-dir>/cni/net.d (never in the shared --cni-conf-dir).
	DefaultConfFile = "87-minikubelet-bridge.conflist"

	// PodInterface is the interface name inside the pod, as kubelet uses.
	PodInterface = "eth0"
)

// Config is what New needs. Zero fields take the defaults above.
type Config struct {
	ConfDir string   // --cni-conf-dir: first config in lexical order is used
	BinDirs []string // --cni-bin-dir: plugin search path
	RootDir string   // --root-dir: IPAM state under <root>/cni/ipam, CNI cache under <root>/cni/cache
	PodCIDR string   // --pod-cidr: subnet of the default conflist
}

// AddFlags registers --cni-conf-dir, --cni-bin-dir and --pod-cidr on fs,
// bound to c (RootDir comes from the node's --root-dir).
func (c *Config) AddFlags(fs *pflag.FlagSet) {
	if c.ConfDir == "" {
		c.ConfDir = DefaultConfDir
	}
	if c.PodCIDR == "" {
		c.PodCIDR = DefaultPodCIDR
	}
	if c.BinDirs == nil {
		c.BinDirs = strings.Split(DefaultBinDirs, ":")
	}
	fs.StringVar(&c.ConfDir, "cni-conf-dir", c.ConfDir, "folder of CNI network configs; the first .conflist/.conf/.json in lexical order is used; when it holds none, minikubelet's default bridge conflist under <root-dir>/cni/net.d is used (nothing is written here)")
	fs.Var((*binDirsValue)(&c.BinDirs), "cni-bin-dir", "colon-separated folders searched for CNI plugins; without them pods get loopback only")
	fs.StringVar(&c.PodCIDR, "pod-cidr", c.PodCIDR, "subnet of the default conflist's host-local IPAM (ignored when a CNI config exists)")
}

type binDirsValue []string

func (v *binDirsValue) String() string { return strings.Join(*v, ":") }
func (v *binDirsValue) Set(s string) error {
	*v = splitBinDirs(s)
	return nil
}
func (v *binDirsValue) Type() string { return "paths" }

func splitBinDirs(s string) []string {
	var out []string
	for _, d := range strings.Split(s, ":") {
		if d = strings.TrimSpace(d); d != "" {
			out = append(out, d)
		}
	}
	return out
}

func (c Config) withDefaults() (Config, error) {
	if c.ConfDir == "" {
		c.ConfDir = DefaultConfDir
	}
	if len(c.BinDirs) == 0 {
		c.BinDirs = splitBinDirs(DefaultBinDirs)
	}
	if c.PodCIDR == "" {
		c.PodCIDR = DefaultPodCIDR
	}
	if c.RootDir == "" {
		return c, errors.New("network: Config.RootDir is required (IPAM and CNI cache state live under <root-dir>/cni)")
	}
	if _, _, err := net.ParseCIDR(c.PodCIDR); err != nil {
		return c, fmt.Errorf("network: --pod-cidr %q: %w", c.PodCIDR, err)
	}
	return c, nil
}

func (c Config) cacheDir() string { return filepath.Join(c.RootDir, "cni", "cache") }
func (c Config) ipamDir() string  { return filepath.Join(c.RootDir, "cni", "ipam") }

// defaultConfDir holds the default conflist, used when ConfDir has none.
func (c Config) defaultConfDir() string { return filepath.Join(c.RootDir, "cni", "net.d") }

// DefaultConfPath is where the default conflist of a daemon with this root
// dir lives (used only while --cni-conf-dir holds no config).
func DefaultConfPath(rootDir string) string {
	return filepath.Join(rootDir, "cni", "net.d", DefaultConfFile)
}

// DefaultConflist renders the default conflist (used when the conf dir
// holds none): bridge (gateway, hairpin so a pod reaches itself through its
// own hostPort) with host-local IPAM over podCIDR keeping its state in
// ipamDir, and portmap for hostPort with SNAT (which also makes hostPort on
// 127.0.0.1 work, see the package doc). Masquerade and the FORWARD accept
// are node-level rules the manager makes (noderules.go), not the bridge
// plugin's ipMasq and the firewall plugin, whose per-pod rules cost ~20
// iptables commands per ADD and DEL.
func DefaultConflist(podCIDR, ipamDir string) ([]byte, error) {
	_, subnet, err := net.ParseCIDR(podCIDR)
	if err != nil {
		return nil, fmt.Errorf("pod CIDR %q: %w", podCIDR, err)
	}
	defRoute := "0.0.0.0/0"
	if subnet.IP.To4() == nil {
		defRoute = "::/0"
	}
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       DefaultNetworkName,
		"plugins": []any{
			map[string]any{
				"type":        "bridge",
				"bridge":      DefaultBridge,
				"isGateway":   true,
				"ipMasq":      false,
				"hairpinMode": true,
				"ipam": map[string]any{
					"type":    "host-local",
					"ranges":  [][]map[string]string{{{"subnet": subnet.String()}}},
					"routes":  []map[string]string{{"dst": defRoute}},
					"dataDir": ipamDir,
				},
			},
			map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}, "snat": true},
		},
	}
	b, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// loadedNetwork is the network config in use and where it came from.
type loadedNetwork struct {
	file string
	list *libcni.NetworkConfigList
}

// findConfig returns the first valid network config in dir in lexical order
// (.conf, .conflist, .json; a single-plugin .conf is wrapped into a list), as
// kubelet's CNI network plugin does. Invalid files are skipped with a note
// so one broken file does not take pod networking down. It returns (nil,
// notes, nil) when the folder holds no usable config.
func findConfig(dir string) (*loadedNetwork, []string, error) {
	files, err := libcni.ConfFiles(dir, []string{".conf", ".conflist", ".json"})
	if errors.Is(err, syscall.ENOTDIR) {
		return nil, nil, nil // like a missing folder: no config
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read CNI conf dir %s: %w", dir, err)
	}
	sort.Strings(files)
	var notes []string
	for _, f := range files {
		var list *libcni.NetworkConfigList
		if strings.HasSuffix(f, ".conflist") {
			list, err = libcni.ConfListFromFile(f)
		} else {
			var conf *libcni.NetworkConfig
			conf, err = libcni.ConfFromFile(f)
			if err == nil {
				list, err = libcni.ConfListFromConf(conf)
			}
		}
		if err != nil {
			notes = append(notes, fmt.Sprintf("skipping CNI config %s: %v", f, err))
			continue
		}
		if len(list.Plugins) == 0 {
			notes = append(notes, fmt.Sprintf("skipping CNI config %s: no plugins", f))
			continue
		}
		return &loadedNetwork{file: f, list: list}, notes, nil
	}
	return nil, notes, nil
}

// writeDefaultConfig writes the default conflist into dir atomically (temp
// file + rename) and returns its path.
func writeDefaultConfig(dir string, data []byte) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create CNI conf dir %s: %w", dir, err)
	}
	path := filepath.Join(dir, DefaultConfFile)
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		// Already there (every start after the first): nothing to write,
		// so a full --root-dir does not cost the node its network.
		return path, nil
	}
	tmp, err := os.CreateTemp(dir, "."+DefaultConfFile+".tmp-")
	if err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return path, nil
}

// pluginTypes lists the binaries a network list needs: each plugin's type
// and its IPAM type.
func pluginTypes(list *libcni.NetworkConfigList) []string {
	seen := map[string]bool{}
	var out []string
	add := func(t string) {
		if t != "" && !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	for _, p := range list.Plugins {
		if p.Network == nil {
			continue
		}
		add(p.Network.Type)
		add(p.Network.IPAM.Type)
	}
	return out
}
