package runtime

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/moby/sys/capability"
	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"

	"github.com/minikubelet/minikubelet/runtime/shim"
)

// DefaultCapabilities is containerd's default set (the 14 a Kubernetes
// container gets unless its securityContext changes them).
var DefaultCapabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// MaskedPaths and ReadonlyPaths are containerd's defaults for unprivileged containers.
var (
	MaskedPaths = []string{"/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
		"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
		"/sys/devices/virtual/powercap"}
	ReadonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
)

const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// buildSpec turns the pod and container into what the container init needs.
func (r *Runtime) buildSpec(cfg *ContainerConfig, sb *sandboxMeta, id, dir string) (*shim.ContainerSpec, error) {
	pod, c := cfg.Pod, cfg.Container
	sc := effectiveSecurity(pod, c)
	spec := &shim.ContainerSpec{
		ID: id, Name: c.Name,
		Rootfs:         cfg.Rootfs.Path,
		RootfsReadOnly: cfg.Rootfs.ReadOnly || (sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem),
		NewPIDNS:       !sb.PIDInit && !pod.Spec.HostPID,
		CgroupNS:       true,
		LogPath:        r.LogPath(pod, c.Name, cfg.Attempt),
		LogMaxSize:     r.opt.LogMaxSize,
		LogMaxFiles:    r.opt.LogMaxFiles,
		Privileged:     sc.Privileged != nil && *sc.Privileged,
		Stdin:          c.Stdin,
		StdinOnce:      c.StdinOnce,
		TTY:            c.TTY,
	}
	if spec.Rootfs == "" {
		return nil, fmt.Errorf("container %s: no root filesystem", c.Name)
	}
	// Process: env, then command/args with $(VAR) expanded against the
	// container's own env only (as the kubelet does).
	env, own, err := r.containerEnv(cfg, sb)
	if err != nil {
		return nil, err
	}
	spec.Env = env
	spec.Args = containerArgs(c, cfg.Image, own)
	spec.Cwd = c.WorkingDir
	if spec.Cwd == "" {
		spec.Cwd = cfg.Image.WorkingDir
	}
	// User.
	if err := resolveUser(spec, pod, c, sc, cfg.Image.User); err != nil {
		return nil, err
	}
	// Capabilities.
	if spec.Privileged {
		spec.Capabilities = nodeCapabilities()
	} else {
		spec.Capabilities = containerCapabilities(sc.Capabilities)
		if sc.ProcMount == nil || *sc.ProcMount != v1.UnmaskedProcMount {
			spec.MaskedPaths = MaskedPaths
			spec.ReadonlyPaths = ReadonlyPaths
		} else {
			// procMount Unmasked: /proc as is, /sys still masked.
			for _, p := range MaskedPaths {
				if strings.HasPrefix(p, "/sys/") {
					spec.MaskedPaths = append(spec.MaskedPaths, p)
				}
			}
		}
	}
	spec.NoNewPrivileges = sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation && !spec.Privileged
	seccomp, err := seccompProfile(pod, c)
	if err != nil {
		return nil, err
	}
	if spec.Privileged {
		seccomp = "unconfined" // containerd: privileged containers are never confined
	}
	spec.Seccomp = seccomp
	if spec.SeccompFilter, err = r.seccompFilter(seccomp, spec.Capabilities); err != nil {
		return nil, fmt.Errorf("container %s: %w", c.Name, err)
	}
	if spec.AppArmorProfile, err = r.containerAppArmor(pod, c, spec.Privileged); err != nil {
		return nil, err
	}
	adj := containerOOMScoreAdj(pod, c)
	spec.OOMScoreAdj = &adj
	// Mounts.
	mounts, err := r.containerMounts(cfg, sb, spec.Privileged, spec.RootfsReadOnly, dir)
	if err != nil {
		return nil, err
	}
	spec.Mounts = mounts
	return spec, nil
}

// effectiveSecurity merges pod- and container-level settings (container wins).
func effectiveSecurity(pod *v1.Pod, c *v1.Container) v1.SecurityContext {
	var out v1.SecurityContext
	if p := pod.Spec.SecurityContext; p != nil {
		out.RunAsUser, out.RunAsGroup, out.RunAsNonRoot = p.RunAsUser, p.RunAsGroup, p.RunAsNonRoot
		out.SeccompProfile = p.SeccompProfile
	}
	if cs := c.SecurityContext; cs != nil {
		if cs.RunAsUser != nil {
			out.RunAsUser = cs.RunAsUser
		}
		if cs.RunAsGroup != nil {
			out.RunAsGroup = cs.RunAsGroup
		}
		if cs.RunAsNonRoot != nil {
			out.RunAsNonRoot = cs.RunAsNonRoot
		}
		if cs.SeccompProfile != nil {
			out.SeccompProfile = cs.SeccompProfile
		}
		out.Capabilities, out.Privileged, out.ReadOnlyRootFilesystem = cs.Capabilities, cs.Privileged, cs.ReadOnlyRootFilesystem
		out.AllowPrivilegeEscalation, out.ProcMount = cs.AllowPrivilegeEscalation, cs.ProcMount
	}
	return out
}

// containerCapabilities applies add/drop over the default set in
// containerd's order: add ALL, drop ALL, then the named adds and drops.
func containerCapabilities(caps *v1.Capabilities) []string {
	set := map[string]bool{}
	for _, c := range DefaultCapabilities {
		set[c] = true
	}
	norm := func(c v1.Capability) string {
		s := strings.ToUpper(string(c))
		if s != "ALL" && !strings.HasPrefix(s, "CAP_") {
			s = "CAP_" + s
		}
		return s
	}
	if caps != nil {
		for _, a := range caps.Add {
			if norm(a) == "ALL" {
				for _, c := range nodeCapabilities() {
					set[c] = true
				}
			}
		}
		for _, d := range caps.Drop {
			if norm(d) == "ALL" {
				set = map[string]bool{}
			}
		}
		for _, a := range caps.Add {
			if n := norm(a); n != "ALL" {
				set[n] = true
			}
		}
		for _, d := range caps.Drop {
			delete(set, norm(d))
		}
	}
	out := make([]string, 0, len(set))
	for c := range set {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

// nodeCapabilities is every capability this process may hand out ("all
// capabilities" means what the node itself holds: its bounding set).
func nodeCapabilities() []string {
	var out []string
	last, _ := capability.LastCap()
	for _, c := range capability.ListKnown() {
		if c > last {
			continue
		}
		if ok, err := capability.GetBound(c); err == nil && ok {
			out = append(out, "CAP_"+strings.ToUpper(c.String()))
		}
	}
	return out
}

// seccompProfile maps the seccompProfile field (container wins over pod).
func seccompProfile(pod *v1.Pod, c *v1.Container) (string, error) {
	var p *v1.SeccompProfile
	if pod.Spec.SecurityContext != nil {
		p = pod.Spec.SecurityContext.SeccompProfile
	}
	if c.SecurityContext != nil && c.SecurityContext.SeccompProfile != nil {
		p = c.SecurityContext.SeccompProfile
	}
	if p == nil {
		return "unconfined", nil // kubelet's default when no profile is given
	}
	switch p.Type {
	case v1.SeccompProfileTypeUnconfined:
		return "unconfined", nil
	case v1.SeccompProfileTypeRuntimeDefault:
		return "runtime/default", nil
	case v1.SeccompProfileTypeLocalhost:
		if p.LocalhostProfile == nil || *p.LocalhostProfile == "" {
			return "", fmt.Errorf("container %s: seccompProfile Localhost needs localhostProfile", c.Name)
		}
		return "localhost/" + *p.LocalhostProfile, nil
	}
	return "", fmt.Errorf("container %s: unknown seccompProfile type %q", c.Name, p.Type)
}

// containerMounts lists the mounts in the order they are made: the CRI
// defaults, the pod's /etc files and /dev/shm, then the volume mounts.
func (r *Runtime) containerMounts(cfg *ContainerConfig, sb *sandboxMeta, privileged, readOnlyRoot bool, dir string) ([]shim.Mount, error) {
	pod, c := cfg.Pod, cfg.Container
	const nsd = unix.MS_NOSUID | unix.MS_NOEXEC | unix.MS_NODEV
	ms := []shim.Mount{
		{Source: "proc", Destination: "/proc", Type: "proc", Flags: nsd},
	}
	if privileged {
		// The host's devices; its pts and mqueue are replaced below.
		ms = append(ms, shim.Mount{Source: "/dev", Destination: "/dev", Type: "bind", Flags: unix.MS_BIND | unix.MS_REC})
	} else {
		ms = append(ms, shim.Mount{Source: "tmpfs", Destination: "/dev", Type: "tmpfs", Flags: unix.MS_NOSUID | unix.MS_STRICTATIME, Data: "mode=755,size=65536k"})
	}
	ms = append(ms,
		shim.Mount{Source: "devpts", Destination: "/dev/pts", Type: "devpts", Flags: unix.MS_NOSUID | unix.MS_NOEXEC, Data: "newinstance,ptmxmode=0666,mode=0620,gid=5"},
		shim.Mount{Source: "mqueue", Destination: "/dev/mqueue", Type: "mqueue", Flags: nsd},
	)
	sysFlags := uintptr(nsd)
	if !privileged {
		sysFlags |= unix.MS_RDONLY
	}
	ms = append(ms, shim.Mount{Source: "sysfs", Destination: "/sys", Type: "sysfs", Flags: sysFlags})
	p := r.pod(pod.UID)
	shm := p.Shm()
	if sb.ShmHost {
		shm = "/dev/shm"
	}
	ms = append(ms, shim.Mount{Source: shm, Destination: "/dev/shm", Type: "bind", Flags: unix.MS_BIND | nsd})
	// With readOnlyRootFilesystem the pod's /etc files are read-only too,
	// as containerd mounts them; they are shared by the pod's containers.
	etcFlags := uintptr(unix.MS_BIND)
	if readOnlyRoot {
		etcFlags |= unix.MS_RDONLY
	}
	for _, f := range [][2]string{{p.EtcHosts(), "/etc/hosts"}, {p.EtcHostname(), "/etc/hostname"}, {p.ResolvConf(), "/etc/resolv.conf"}} {
		if hasMountAt(c, f[1]) {
			continue
		}
		ms = append(ms, shim.Mount{Source: f[0], Destination: f[1], Type: "bind", Flags: etcFlags, File: true})
	}
	vms, err := r.volumeMounts(pod, c)
	if err != nil {
		return nil, err
	}
	ms = append(ms, vms...)
	// terminationMessagePath: a per-container file the container may write.
	tmp := c.TerminationMessagePath
	if tmp == "" {
		tmp = v1.TerminationMessagePathDefault
	}
	if !hasMountAt(c, tmp) {
		tf := filepath.Join(dir, "termination-log")
		if err := os.WriteFile(tf, nil, 0o666); err != nil {
			return nil, err
		}
		os.Chmod(tf, 0o666)
		ms = append(ms, shim.Mount{Source: tf, Destination: tmp, Type: "bind", Flags: unix.MS_BIND, File: true})
	}
	return ms, nil
}

func hasMountAt(c *v1.Container, path string) bool {
	for _, m := range c.VolumeMounts {
		if filepath.Clean(m.MountPath) == filepath.Clean(path) {
			return true
		}
	}
	return false
}
