package runtime

import (
	"errors"
	"fmt"
	"github.com/moby/sys/mountinfo"
	"os"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
)

// podHostname is spec.hostname or the pod name (truncated to 63 characters
// like kubelet, without a trailing '-' or '.').
func podHostname(pod *v1.Pod) (string, error) {
	h := pod.Spec.Hostname
	if h == "" {
		h = pod.Name
	}
	if len(h) > 63 {
		h = strings.TrimRight(h[:63], "-.")
	}
	if h == "" {
		return "", errors.New("pod has neither spec.hostname nor metadata.name")
	}
	return h, nil
}

// utsHostname is the pod's kernel hostname: the short one, or with
// setHostnameAsFQDN and a subdomain the FQDN (at most 64 characters).
func utsHostname(pod *v1.Pod, short, clusterDomain string) (string, error) {
	if pod.Spec.SetHostnameAsFQDN == nil || !*pod.Spec.SetHostnameAsFQDN || pod.Spec.Subdomain == "" {
		return short, nil
	}
	fqdn := fmt.Sprintf("%s.%s.%s.svc.%s", short, pod.Spec.Subdomain, pod.Namespace, clusterDomain)
	if len(fqdn) > 64 {
		return "", fmt.Errorf("pod %s: setHostnameAsFQDN: %q is longer than 64 characters", pod.Name, fqdn)
	}
	return fqdn, nil
}

// writePodFiles writes the pod's /etc/hosts, /etc/hostname and
// /etc/resolv.conf, bind-mounted into each container.
func (r *Runtime) writePodFiles(pod *v1.Pod, hostname string) error {
	files, warns, err := r.podFiles(pod, hostname)
	if err != nil {
		return err
	}
	if r.opt.Event != nil {
		for _, w := range warns {
			r.opt.Event(pod, v1.EventTypeWarning, w.Reason, w.Message)
		}
	}
	for path, content := range files {
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// podFiles renders the pod's etc-hosts, etc-hostname and resolv.conf, with
// the warnings of composing the latter.
func (r *Runtime) podFiles(pod *v1.Pod, hostname string) (map[string]string, []dnsWarning, error) {
	if pod.Spec.HostNetwork {
		hostname, _ = os.Hostname()
	}
	var hosts strings.Builder
	if pod.Spec.HostNetwork {
		b, err := os.ReadFile("/etc/hosts")
		if err == nil {
			hosts.Write(b)
		}
	} else {
		hosts.WriteString("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" +
			"fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n")
		ip := pod.Status.PodIP
		if ip != "" {
			if pod.Spec.Subdomain != "" {
				fmt.Fprintf(&hosts, "%s\t%s.%s.%s.svc.%s\t%s\n", ip, hostname, pod.Spec.Subdomain, pod.Namespace, r.opt.ClusterDomain, hostname)
			} else {
				fmt.Fprintf(&hosts, "%s\t%s\n", ip, hostname)
			}
		}
	}
	if len(pod.Spec.HostAliases) > 0 {
		hosts.WriteString("\n# Entries added by HostAliases.\n")
		for _, a := range pod.Spec.HostAliases {
			fmt.Fprintf(&hosts, "%s\t%s\n", a.IP, strings.Join(a.Hostnames, "\t"))
		}
	}
	resolv, warns, err := r.resolvConf(pod)
	if err != nil {
		return nil, nil, err
	}
	uts := hostname
	if !pod.Spec.HostNetwork {
		if uts, err = utsHostname(pod, hostname, r.opt.ClusterDomain); err != nil {
			return nil, nil, err
		}
	}
	p := r.pod(pod.UID)
	return map[string]string{p.EtcHosts(): hosts.String(), p.EtcHostname(): uts + "\n", p.ResolvConf(): resolv}, warns, nil
}

// resolvConf composes the pod's resolv.conf (dns.go) from the node's file
// (--resolv-conf, or systemd-resolved's upstream file when that is its
// stub). The warnings are the kubelet's DNS events of the pod.
func (r *Runtime) resolvConf(pod *v1.Pod) (string, []dnsWarning, error) {
	s := dnsSettings{NoResolvConf: r.opt.NoHostResolvConf, ClusterDNS: r.opt.ClusterDNS, ClusterDomain: r.opt.ClusterDomain}
	var host hostDNS
	if !s.NoResolvConf && pod.Spec.DNSPolicy != v1.DNSNone {
		s.ResolvConf, _ = EffectiveResolvConf(r.opt.HostResolvConf)
		var err error
		if host, err = readResolvConf(s.ResolvConf); err != nil {
			return "", nil, fmt.Errorf("pod %s: the node's DNS settings (--resolv-conf): %w", pod.Name, err)
		}
	}
	switch pod.Spec.DNSPolicy {
	case "", v1.DNSClusterFirst, v1.DNSClusterFirstWithHostNet, v1.DNSDefault, v1.DNSNone:
	default:
		return "", nil, fmt.Errorf("pod %s: unknown dnsPolicy %q", pod.Name, pod.Spec.DNSPolicy)
	}
	d, warns := composePodDNS(pod, host, s)
	return d.render(), warns, nil
}

func dedup(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// mountPodShm mounts the pod's 64 MiB /dev/shm, shared by its containers.
func mountPodShm(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if mounted(dir) {
		return nil
	}
	if err := unix.Mount("shm", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=1777,size=67108864"); err != nil {
		return fmt.Errorf("mount pod /dev/shm at %s: %w", dir, err)
	}
	return nil
}

// mountPoints lists mount points at or below dir, deepest first.
func mountPoints(dir string) []string {
	ms, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return nil
	}
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		out = append(out, m.Mountpoint)
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// mounted reports whether dir is a mount point. statx answers for the path
// alone (STATX_ATTR_MOUNT_ROOT, Linux 5.8+); the mount table, which lists
// every mount of every pod, is read only on kernels that do not say.
func mounted(dir string) bool {
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, dir, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_BASIC_STATS, &stx); err == nil &&
		stx.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT != 0 {
		return stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0
	} else if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return false
	}
	for _, m := range mountPoints(dir) {
		if m == dir {
			return true
		}
	}
	return false
}

// unmountUnder detaches every mount at or below dir.
func unmountUnder(dir string) error {
	for _, m := range mountPoints(dir) {
		if err := unix.Unmount(m, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("unmount %s: %w", m, err)
		}
	}
	return nil
}

// SetPodIP records the pod's IP once the network is set up (after
// RunSandbox): /etc/hosts gets the pod's own entry. The file is rewritten in
// place, since containers hold it by a bind mount of its inode.
func (r *Runtime) SetPodIP(pod *v1.Pod, ip string) error {
	p := pod.DeepCopy()
	p.Status.PodIP = ip
	hostname, err := podHostname(p)
	if err != nil {
		return err
	}
	files, _, err := r.podFiles(p, hostname) // the DNS warnings were given at RunSandbox
	if err != nil {
		return err
	}
	f, err := os.OpenFile(r.pod(pod.UID).EtcHosts(), os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.WriteString(files[r.pod(pod.UID).EtcHosts()])
	return err
}

// safeSysctls is Kubernetes' safe set: namespaced, and harmless to the node.
var safeSysctls = map[string]bool{
	"kernel.shm_rmid_forced": true, "net.ipv4.ip_local_port_range": true, "net.ipv4.tcp_syncookies": true,
	"net.ipv4.ping_group_range": true, "net.ipv4.ip_unprivileged_port_start": true, "net.ipv4.ip_local_reserved_ports": true,
	"net.ipv4.tcp_keepalive_time": true, "net.ipv4.tcp_fin_timeout": true, "net.ipv4.tcp_keepalive_intvl": true,
	"net.ipv4.tcp_keepalive_probes": true, "net.ipv4.tcp_rmem": true, "net.ipv4.tcp_wmem": true,
}

// podSysctls checks securityContext.sysctls like kubelet: the safe set, or
// names allowed by AllowedUnsafeSysctls; only namespaced ones (net.* with
// the pod's network, IPC ones with the pod's IPC namespace).
func (r *Runtime) podSysctls(pod *v1.Pod) (map[string]string, error) {
	sc := pod.Spec.SecurityContext
	if sc == nil || len(sc.Sysctls) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, s := range sc.Sysctls {
		name := strings.ReplaceAll(s.Name, "/", ".")
		allowed := safeSysctls[name]
		for _, a := range r.opt.AllowedUnsafeSysctls {
			if a == name || strings.HasSuffix(a, "*") && strings.HasPrefix(name, strings.TrimSuffix(a, "*")) {
				allowed = true
			}
		}
		if !allowed {
			return nil, fmt.Errorf("pod %s: sysctl %q is not in the safe set and not allowed by --allowed-unsafe-sysctls", pod.Name, s.Name)
		}
		ipc := strings.HasPrefix(name, "kernel.shm") || strings.HasPrefix(name, "kernel.msg") || name == "kernel.sem" || strings.HasPrefix(name, "fs.mqueue.")
		switch {
		case strings.HasPrefix(name, "net.") && pod.Spec.HostNetwork:
			return nil, fmt.Errorf("pod %s: sysctl %q would change the host's network (hostNetwork)", pod.Name, s.Name)
		case ipc && pod.Spec.HostIPC:
			return nil, fmt.Errorf("pod %s: sysctl %q would change the host's IPC (hostIPC)", pod.Name, s.Name)
		case !ipc && !strings.HasPrefix(name, "net."):
			return nil, fmt.Errorf("pod %s: sysctl %q is not namespaced", pod.Name, s.Name)
		}
		out[name] = s.Value
	}
	return out, nil
}
