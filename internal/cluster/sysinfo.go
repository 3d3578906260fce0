package cluster

// sysinfo.go: what the Node object says about this machine (capacity,
// nodeInfo, addresses), read from /proc, /sys and statfs.

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// KubernetesVersion is the Kubernetes release whose kubelet behaviour
// minikubelet follows; the Node's nodeInfo.kubeletVersion says it, so
// version-skew checks of the control plane see a kubelet they accept.
const KubernetesVersion = "v1.37.2"

// Version is minikubelet's own version (containerRuntimeVersion
// minikubelet://<Version>); release builds set it with -ldflags -X.
var Version = "0.1.0"

// machineCapacity is the node's capacity (kubelet: pkg/kubelet/nodestatus/setters.go
// MachineInfo: cpu, memory from the machine, ephemeral-storage from the
// root dir's filesystem, pods from maxPods, hugepages per page size).
func machineCapacity(rootDir string, maxPods int) v1.ResourceList {
	rl := v1.ResourceList{
		v1.ResourceCPU:  *resource.NewQuantity(int64(goruntime.NumCPU()), resource.DecimalSI),
		v1.ResourcePods: *resource.NewQuantity(int64(maxPods), resource.DecimalSI),
	}
	if mem, err := memTotal(); err == nil {
		rl[v1.ResourceMemory] = *resource.NewQuantity(mem, resource.BinarySI)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(rootDir, &st); err == nil {
		rl[v1.ResourceEphemeralStorage] = *resource.NewQuantity(int64(st.Blocks)*st.Bsize, resource.BinarySI)
	}
	// kubelet: pkg/kubelet/cm/container_manager_linux.go reports every
	// supported page size, 0 when none are reserved.
	ents, _ := os.ReadDir("/sys/kernel/mm/hugepages")
	for _, e := range ents {
		// hugepages-2048kB
		kb, ok := strings.CutPrefix(e.Name(), "hugepages-")
		if !ok {
			continue
		}
		kb, ok = strings.CutSuffix(kb, "kB")
		size, err := strconv.ParseInt(kb, 10, 64)
		if !ok || err != nil {
			continue
		}
		n, _ := readInt(filepath.Join("/sys/kernel/mm/hugepages", e.Name(), "nr_hugepages"))
		q := resource.NewQuantity(size*1024, resource.BinarySI)
		rl[v1.ResourceName(v1.ResourceHugePagesPrefix+q.String())] = *resource.NewQuantity(n*size*1024, resource.BinarySI)
	}
	return rl
}

func memTotal() (int64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/meminfo MemTotal: %w", err)
			}
			return kb * 1024, nil
		}
	}
	return 0, fmt.Errorf("/proc/meminfo: no MemTotal")
}

func readInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

func readTrim(path string) string {
	b, _ := os.ReadFile(path)
	return strings.TrimSpace(string(b))
}

// nodeInfo fills status.nodeInfo (kubelet: pkg/kubelet/nodestatus/setters.go
// MachineInfo and VersionInfo).
func nodeInfo() v1.NodeSystemInfo {
	var u unix.Utsname
	_ = unix.Uname(&u)
	return v1.NodeSystemInfo{
		MachineID:               readTrim("/etc/machine-id"),
		SystemUUID:              strings.ToLower(readTrim("/sys/class/dmi/id/product_uuid")),
		BootID:                  readTrim("/proc/sys/kernel/random/boot_id"),
		KernelVersion:           string(bytes.TrimRight(u.Release[:], "\x00")),
		OSImage:                 osImage(),
		ContainerRuntimeVersion: "minikubelet://" + Version,
		KubeletVersion:          KubernetesVersion,
		OperatingSystem:         goruntime.GOOS,
		Architecture:            goruntime.GOARCH,
	}
}

// osImage is PRETTY_NAME of os-release, as cadvisor reports it.
func osImage() string {
	for _, p := range []string{"/etc/os-release", "/usr/lib/os-release"} {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "PRETTY_NAME="); ok {
				return strings.Trim(v, `"'`)
			}
		}
	}
	return "Linux"
}

// DefaultNodeIP is the kubelet's --node-ip default in spirit: the IPv4
// address of the interface of the default route, else the first global
// IPv4 address of the host (kubelet: pkg/kubelet/nodestatus/setters.go
// NodeAddress falls back to the host's default-route address). "" when
// the host has none (a namespace with only lo).
func DefaultNodeIP() string {
	if ifname := defaultRouteInterface(); ifname != "" {
		if ifc, err := net.InterfaceByName(ifname); err == nil {
			if ip := firstIPv4(ifc); ip != "" {
				return ip
			}
		}
	}
	ifcs, _ := net.Interfaces()
	for i := range ifcs {
		if ifcs[i].Flags&net.FlagLoopback != 0 || ifcs[i].Flags&net.FlagUp == 0 {
			continue
		}
		if ip := firstIPv4(&ifcs[i]); ip != "" {
			return ip
		}
	}
	return ""
}

func firstIPv4(ifc *net.Interface) string {
	addrs, _ := ifc.Addrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsGlobalUnicast() {
			return n.IP.String()
		}
	}
	return ""
}

// defaultRouteInterface reads /proc/net/route for the 0.0.0.0/0 route.
func defaultRouteInterface() string {
	b, err := os.ReadFile("/proc/net/route")
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(l)
		if len(f) > 7 && f[1] == "00000000" && f[7] == "00000000" {
			return f[0]
		}
	}
	return ""
}
