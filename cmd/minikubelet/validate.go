package main

// validate.go: `minikubelet validate FILE...` checks manifests offline
// exactly as the daemon will read them (same parser, defaults, identity and
// validation), and with --explain prints where and how each pod will run.

import (
	"errors"
	"fmt"
	"github.com/minikubelet/minikubelet/runtime/images"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/minikubelet/minikubelet/internal/layout"
	"github.com/minikubelet/minikubelet/manifests"
	mklruntime "github.com/minikubelet/minikubelet/runtime"
	"github.com/minikubelet/minikubelet/systemd"
)

func init() { registerCommand(newValidateCmd) }

type validateOptions struct {
	nodeOptions
	explain      bool
	cgroupRoot   string
	cgroupDriver string // as run's --cgroup-driver; "auto" resolved in RunE
}

func newValidateCmd() *cobra.Command {
	var opts validateOptions
	cmd := &cobra.Command{
		Use:   "validate FILE...",
		Short: "Check Pod manifests offline, as the daemon will read them",
		Long: `Validate parses each file as minikubelet run would (strict decoding, the
API server's defaults and validation, static pod identity) and prints one line
per problem: FILE: field.path: reason. It exits 0 when every file is a valid
static pod, 1 otherwise.

With --explain it prints, for each valid pod, the plan: the static pod's name
and UID, its QoS class, the cgroups it gets (systemd slice and scopes, or
cgroupfs paths, as --cgroup-driver and this host decide) with the cpu,
memory and pids values written, which namespaces are shared and which are
private, and every mount of every container.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// The driver `run` would use here, so the plan shows this host's tree.
			d, err := systemd.DetectDriver(opts.cgroupDriver)
			if err != nil {
				return err
			}
			opts.cgroupDriver = d
			if n := runValidate(cmd.OutOrStdout(), cmd.ErrOrStderr(), args, &opts); n > 0 {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	opts.nodeOptions.addFlags(cmd.Flags())
	cmd.Flags().BoolVar(&opts.explain, "explain", false, "print the plan for each valid pod: identity, QoS, slices and scopes, cgroup values, namespaces, mounts, probes")
	cmd.Flags().StringVar(&opts.cgroupRoot, "cgroup-root", defaultCgroupRoot, "name of the root of the pod cgroup tree, as given to run, for --explain")
	cmd.Flags().StringVar(&opts.cgroupDriver, "cgroup-driver", "auto", "auto|systemd|cgroupfs, as given to run, for --explain (auto: what run would detect on this host)")
	return cmd
}

// runValidate checks every file, prints problems to out (one per line) and
// plans with --explain, and returns the number of problems.
func runValidate(out, errOut io.Writer, files []string, opts *validateOptions) int {
	problems := 0
	problem := func(file, msg string) {
		problems++
		fmt.Fprintf(out, "%s: %s\n", file, msg)
	}
	type claim struct{ file string }
	claimed := map[string]claim{}
	for _, file := range files {
		abs, err := filepath.Abs(file)
		if err != nil {
			problem(file, err.Error())
			continue
		}
		if why := manifests.SkipReason(filepath.Base(abs)); why != "" {
			problem(file, fmt.Sprintf("the daemon skips this file in the manifest folder (%s): name it *.yaml, *.yml or *.json", why))
		}
		pods, err := manifests.ReadFile(abs, opts.nodeName)
		if err != nil {
			var fe *manifests.FileError
			if errors.As(err, &fe) {
				for _, line := range (&manifests.FileError{Path: file, Errs: fe.Errs}).Lines() {
					problems++
					fmt.Fprintln(out, line)
				}
			} else {
				problem(file, err.Error())
			}
			continue
		}
		dup := false
		for _, pod := range pods {
			key := pod.Namespace + "/" + pod.Name
			if prev, taken := claimed[key]; taken {
				problem(file, fmt.Sprintf("metadata.name: Duplicate value: %q: pod %s is already defined by %s; the daemon runs the first and rejects this file",
					strings.TrimSuffix(pod.Name, "-"+strings.ToLower(opts.nodeName)), key, prev.file))
				dup = true
			}
		}
		if dup {
			continue
		}
		for _, pod := range pods {
			claimed[pod.Namespace+"/"+pod.Name] = claim{file}
		}
		for _, pod := range pods {
			if opts.explain {
				explainPod(out, abs, pod, opts)
			} else {
				fmt.Fprintf(errOut, "%s: valid: static pod %s/%s, uid %s\n", file, pod.Namespace, pod.Name, pod.UID)
			}
		}
	}
	return problems
}

// explainPod prints the plan of one valid pod. Everything shown is computed
// by the code the daemon runs: manifests (identity, defaults), systemd.PlanPod
// (QoS, slices, cgroup values) and the runtime's layout and defaults.
func explainPod(w io.Writer, file string, pod *v1.Pod, opts *validateOptions) {
	plan := systemd.PlanPod(pod, systemd.PlanOptions{CgroupRoot: opts.cgroupRoot})
	spec := &pod.Spec
	podDir := layout.Root(opts.rootDir).Pod(pod.UID) // the folder the runtime and the shell write
	origName := strings.TrimSuffix(pod.Name, "-"+strings.ToLower(opts.nodeName))

	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	p("%s: valid", file)
	p("")
	p("Pod %s/%s", pod.Namespace, pod.Name)
	p("  name       %s   (metadata.name %q + \"-\" + node name %q, as the kubelet names static pods)", pod.Name, origName, opts.nodeName)
	p("  namespace  %s", pod.Namespace)
	p("  uid        %s", pod.UID)
	p("             md5 of the defaulted pod + node name + file path: reformatting the file keeps")
	p("             this UID; any real change makes a new UID, i.e. a new pod replaces the old one")
	p("  annotations %s=%s, %s=%s", manifests.ConfigHashAnnotation, pod.UID, manifests.ConfigSourceAnnotation, manifests.ConfigSourceFile)
	p("             (%s: the time the daemon first sees the file)", manifests.ConfigSeenAnnotation)
	if spec.PriorityClassName != "" || spec.Priority != nil {
		prio := ""
		if spec.Priority != nil {
			prio = fmt.Sprintf(" (%d)", *spec.Priority)
		}
		p("  priority   %s%s", spec.PriorityClassName, prio)
	}
	p("  restart    %s", restartPolicyText(spec.RestartPolicy))
	p("  stop       SIGTERM, then SIGKILL after terminationGracePeriodSeconds=%ds when the file is removed or changed", *spec.TerminationGracePeriodSeconds)
	p("  state      %s/  (sandbox, containers/<id>/ exit records, pod files, volumes)", podDir.Dir())
	p("  logs       %s/%s_%s_%s/<container>/<restart count>.log (CRI format; --log-dir of run)", defaultLogDir, pod.Namespace, pod.Name, pod.UID)

	p("")
	p("QoS class: %s", plan.QOS)
	p("  %s", qosReason(plan.QOS))

	p("")
	names := containerNames(pod)
	if opts.cgroupDriver == "cgroupfs" {
		explainCgroupfs(p, plan, names, opts.cgroupRoot, origName)
	} else {
		explainSystemd(p, plan, names, opts.cgroupRoot)
	}
	p("")
	viaSystemd := opts.cgroupDriver != "cgroupfs"
	if viaSystemd {
		p("Values written (cgroup v1 file / systemd property; on cgroup v2: cpu.weight, cpu.max, memory.max)")
	} else {
		p("Values written (cgroup v1 file; on cgroup v2: cpu.weight, cpu.max, memory.max)")
	}
	podUnit := "pod slice"
	if opts.cgroupDriver == "cgroupfs" {
		podUnit = "pod cgroup"
	}
	p("  %-24s %s", podUnit, resourcesDetail(plan.Pod, viaSystemd))
	p("  %-24s %s", "sandbox (pause)", resourcesDetail(plan.Sandbox, viaSystemd))
	for _, c := range names {
		p("  %-24s %s", c.kind+" "+c.name, resourcesDetail(plan.Containers[c.name], viaSystemd))
	}
	if plan.Pod.PidsLimit == nil {
		p("  pids: no limit (the kubelet's default; --pod-pids-limit sets pids.max on the pod's %s)", podUnit[len("pod "):])
	}

	p("")
	p("Namespaces")
	netText := "the pod's own, created by the pause process (loopback + a pod IP from CNI); containers reach each other on localhost"
	utsText := fmt.Sprintf("the pod's own: hostname %q", podHostname(pod))
	if spec.HostNetwork {
		netText = "the HOST's (hostNetwork: true): ports bind directly on the node's interfaces"
		utsText = "the HOST's (implied by hostNetwork): the node's hostname"
	}
	ipcText := "the pod's own, shared by its containers (System V IPC, POSIX queues)"
	if spec.HostIPC {
		ipcText = "the HOST's (hostIPC: true)"
	}
	p("  shared by all containers of the pod:")
	p("    net     %s", netText)
	p("    uts     %s", utsText)
	p("    ipc     %s", ipcText)
	share := spec.ShareProcessNamespace != nil && *spec.ShareProcessNamespace
	switch {
	case spec.HostPID:
		p("    pid     the HOST's (hostPID: true): containers see every process of the node")
	case share:
		p("    pid     the pod's (shareProcessNamespace: true): the pause is PID 1, containers see each other's processes")
	}
	p("  private to each container:")
	p("    mnt     its own mount namespace, root = overlay of its image (mounts below)")
	if !spec.HostPID && !share {
		p("    pid     its own: the workload is PID 1 and sees only its own processes")
	}
	p("    cgroup  its own cgroup namespace: /sys/fs/cgroup shows its scope as the root")
	p("  not namespaced: user (container UIDs are host UIDs; user namespaces are not supported yet)")

	p("")
	p("Mounts")
	explainCommonMounts(w, pod, podDir)
	for _, c := range names {
		explainMounts(w, pod, c.c, podDir)
	}

	p("")
	p("Images (store %s)", layout.Root(opts.rootDir).Images())
	explainImages(w, names, opts.rootDir)

	if hasProbes(pod) {
		p("")
		p("Probes (run by the daemon; failures counted per period)")
		for _, c := range names {
			for _, pr := range []struct {
				kind string
				pr   *v1.Probe
				what string
			}{
				{"startup", c.c.StartupProbe, "liveness and readiness wait until it succeeds; failing → container restarted"},
				{"liveness", c.c.LivenessProbe, "failing → container killed and restarted per restartPolicy"},
				{"readiness", c.c.ReadinessProbe, "failing → pod not Ready (no restart)"},
			} {
				if pr.pr != nil {
					p("  %s %-9s %s", c.name, pr.kind, probeText(pr.pr, pod))
					p("  %s %-9s   %s", strings.Repeat(" ", len(c.name)), "", pr.what)
				}
			}
		}
	}

	p("")
	p("Security")
	sc := spec.SecurityContext
	for _, c := range names {
		p("  %s: %s", c.name, securityText(sc, c.c))
	}
	p("")
}

type namedContainer struct {
	name, kind string
	c          *v1.Container
}

func containerNames(pod *v1.Pod) []namedContainer {
	var out []namedContainer
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		kind := "init container"
		if c.RestartPolicy != nil && *c.RestartPolicy == v1.ContainerRestartPolicyAlways {
			kind = "sidecar"
		}
		out = append(out, namedContainer{c.Name, kind, c})
	}
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		out = append(out, namedContainer{c.Name, "container", c})
	}
	return out
}

func restartPolicyText(rp v1.RestartPolicy) string {
	switch rp {
	case v1.RestartPolicyOnFailure:
		return "OnFailure: a container that exits non-zero is restarted (CrashLoopBackOff: 10s, 20s, 40s ... at most 5m)"
	case v1.RestartPolicyNever:
		return "Never: containers are not restarted"
	}
	return "Always: containers are restarted whenever they exit (CrashLoopBackOff: 10s, 20s, 40s ... at most 5m, reset after 10m running)"
}

func qosReason(q systemd.QOSClass) string {
	switch q {
	case v1.PodQOSGuaranteed:
		return "why: every container sets cpu and memory limits equal to its requests; the pod slice gets hard limits and is the last to be OOM-killed"
	case v1.PodQOSBestEffort:
		return "why: no container requests or limits cpu or memory; the pod gets the minimum cpu weight and is the first to be OOM-killed"
	}
	return "why: some container requests cpu or memory, but not every container has cpu and memory limits equal to its requests"
}

func podHostname(pod *v1.Pod) string {
	h := pod.Spec.Hostname
	if h == "" {
		h = pod.Name
	}
	if len(h) > 63 {
		h = h[:63]
	}
	return h
}

// resourcesText is a one-line summary for the tree.
func resourcesText(r systemd.Resources) string {
	var parts []string
	if r.CPUShares != nil {
		parts = append(parts, fmt.Sprintf("cpu.shares %d", *r.CPUShares))
	}
	if r.CPUQuotaMicros != nil {
		parts = append(parts, "cpu max "+milliText(*r.CPUQuotaMicros, period(r)))
	}
	if r.MemoryLimit != nil {
		parts = append(parts, "memory max "+bytesText(*r.MemoryLimit))
	}
	if r.PidsLimit != nil {
		parts = append(parts, fmt.Sprintf("pids max %d", *r.PidsLimit))
	}
	if r.CPUQuotaMicros == nil && r.MemoryLimit == nil {
		parts = append(parts, "no cpu/memory limit")
	}
	return strings.Join(parts, ", ")
}

// resourcesDetail names every file and property with its value.
func resourcesDetail(r systemd.Resources, viaSystemd bool) string {
	// prop names the systemd property beside the file, with the systemd driver only.
	prop := func(withSystemd, without string) string {
		if viaSystemd {
			return withSystemd
		}
		return without
	}
	var parts []string
	if r.CPUShares != nil {
		parts = append(parts, fmt.Sprintf("cpu.shares=%d (%sv2 cpu.weight=%d)", *r.CPUShares, prop("CPUShares; ", ""), systemd.CPUSharesToWeight(*r.CPUShares)))
	}
	if r.CPUQuotaMicros != nil {
		parts = append(parts, fmt.Sprintf("cpu.cfs_quota_us=%d per cfs_period_us=%d (%s%s)", *r.CPUQuotaMicros, period(r),
			prop("CPUQuota=", ""), cpuQuotaPercent(*r.CPUQuotaMicros, period(r))))
	} else {
		parts = append(parts, "cpu.cfs_quota_us=-1 (no cpu limit)")
	}
	if r.MemoryLimit != nil {
		parts = append(parts, fmt.Sprintf("memory.limit_in_bytes=%d (%s%s)", *r.MemoryLimit, bytesText(*r.MemoryLimit), prop("; MemoryLimit / v2 MemoryMax", "; v2 memory.max")))
	} else {
		parts = append(parts, "memory: no limit")
	}
	if r.PidsLimit != nil {
		parts = append(parts, fmt.Sprintf("pids.max=%d%s", *r.PidsLimit, prop(" (TasksMax)", "")))
	}
	return strings.Join(parts, ", ")
}

func period(r systemd.Resources) uint64 {
	if r.CPUPeriodMicros == 0 {
		return systemd.QuotaPeriod
	}
	return r.CPUPeriodMicros
}

func milliText(quota int64, period uint64) string {
	return fmt.Sprintf("%dm", quota*1000/int64(period))
}

func cpuQuotaPercent(quota int64, period uint64) string {
	return fmt.Sprintf("%d%%", quota*100/int64(period))
}

func bytesText(b int64) string {
	return resource.NewQuantity(b, resource.BinarySI).String()
}

func hasProbes(pod *v1.Pod) bool {
	for _, c := range containerNames(pod) {
		if c.c.LivenessProbe != nil || c.c.ReadinessProbe != nil || c.c.StartupProbe != nil {
			return true
		}
	}
	return false
}

func probeText(pr *v1.Probe, pod *v1.Pod) string {
	var what string
	switch {
	case pr.HTTPGet != nil:
		h := pr.HTTPGet
		host := h.Host
		if host == "" {
			host = "<pod IP>"
			if pod.Spec.HostNetwork {
				host = "<node IP>"
			}
		}
		what = fmt.Sprintf("GET %s://%s:%s%s", strings.ToLower(string(h.Scheme)), host, h.Port.String(), h.Path)
		if h.Scheme == v1.URISchemeHTTPS {
			what += " (certificate not verified)"
		}
	case pr.TCPSocket != nil:
		host := pr.TCPSocket.Host
		if host == "" {
			host = "<pod IP>"
		}
		what = fmt.Sprintf("TCP connect %s:%s", host, pr.TCPSocket.Port.String())
	case pr.GRPC != nil:
		what = fmt.Sprintf("gRPC health check on port %d", pr.GRPC.Port)
	case pr.Exec != nil:
		what = fmt.Sprintf("exec %q in the container", pr.Exec.Command)
	}
	return fmt.Sprintf("%s; after %ds, every %ds, timeout %ds, %d failure(s) → failed, %d success(es) → ok",
		what, pr.InitialDelaySeconds, pr.PeriodSeconds, pr.TimeoutSeconds, pr.FailureThreshold, pr.SuccessThreshold)
}

// explainCommonMounts lists what the runtime mounts in every container
// (runtime.containerMounts), before the volumes.
func explainCommonMounts(w io.Writer, pod *v1.Pod, podDir layout.Pod) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	row := func(dest, what string) { p("    %-28s %s", dest, what) }
	p("  every container (unless a volume is mounted at the same path):")
	row("/proc", "proc of its pid namespace; masked: "+strings.Join(trimProc(mklruntime.MaskedPaths, "/proc/"), " ")+
		"; read-only: "+strings.Join(trimProc(mklruntime.ReadonlyPaths, "/proc/"), " "))
	row("/dev", "tmpfs with the standard devices, its own /dev/pts and /dev/mqueue (privileged: the host's /dev)")
	row("/sys", "sysfs, read-only, /sys/firmware masked (privileged: read-write)")
	shm := podDir.Shm() + ": the pod's 64 MiB tmpfs, shared by its containers"
	if pod.Spec.HostIPC {
		shm = "the host's /dev/shm (hostIPC)"
	}
	row("/dev/shm", shm)
	hosts := podDir.EtcHosts() + ": localhost and the pod IP"
	if pod.Spec.HostNetwork {
		hosts = podDir.EtcHosts() + ": a copy of the node's /etc/hosts"
	}
	row("/etc/hosts", hosts)
	row("/etc/hostname", podDir.EtcHostname())
	row("/etc/resolv.conf", podDir.ResolvConf()+": "+dnsText(pod))
	row("<terminationMessagePath>", "a file of its own for the termination message (default /dev/termination-log)")
}

// explainMounts lists a container's own root and volume mounts.
func explainMounts(w io.Writer, pod *v1.Pod, c *v1.Container, podDir layout.Pod) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	privileged := c.SecurityContext != nil && c.SecurityContext.Privileged != nil && *c.SecurityContext.Privileged
	readOnlyRoot := c.SecurityContext != nil && c.SecurityContext.ReadOnlyRootFilesystem != nil && *c.SecurityContext.ReadOnlyRootFilesystem
	row := func(dest, what string) { p("    %-28s %s", dest, what) }
	p("  %s (image %s, pull policy %s):", c.Name, c.Image, c.ImagePullPolicy)
	root := "overlay: the image's layers (read-only) + a writable layer of its own"
	if readOnlyRoot {
		root = "overlay of the image's layers, read-only (readOnlyRootFilesystem)"
	}
	row("/", root)
	if privileged {
		row("/dev, /sys", "the host's /dev and a read-write /sys (privileged); nothing masked")
	}
	vols := map[string]*v1.Volume{}
	for i := range pod.Spec.Volumes {
		vols[pod.Spec.Volumes[i].Name] = &pod.Spec.Volumes[i]
	}
	for _, m := range c.VolumeMounts {
		vol := vols[m.Name]
		mode := "read-write"
		if m.ReadOnly || (vol != nil && vol.DownwardAPI != nil) {
			mode = "read-only"
		}
		var what string
		switch {
		case vol == nil:
			what = "volume " + m.Name
		case vol.HostPath != nil:
			what = "hostPath " + vol.HostPath.Path
			if t := hostPathTypeText(vol.HostPath.Type); t != "" {
				what += " (" + t + ")"
			}
		case vol.EmptyDir != nil:
			dir := podDir.EmptyDir(m.Name)
			what = "emptyDir " + m.Name + ": " + dir
			if vol.EmptyDir.Medium == v1.StorageMediumMemory {
				size := ""
				if vol.EmptyDir.SizeLimit != nil {
					size = " of " + vol.EmptyDir.SizeLimit.String()
				}
				what = "emptyDir " + m.Name + ": a tmpfs" + size + " (medium Memory, counted in the pod's memory) at " + dir
			}
		case vol.DownwardAPI != nil:
			what = "downwardAPI " + m.Name + ": " + podDir.DownwardAPI(m.Name)
		}
		if m.SubPath != "" {
			what += ", subPath " + m.SubPath
		}
		if m.MountPropagation != nil && *m.MountPropagation != v1.MountPropagationNone {
			what += ", propagation " + string(*m.MountPropagation)
		}
		row(m.MountPath, what+", "+mode)
	}
	if tmp := c.TerminationMessagePath; tmp != v1.TerminationMessagePathDefault {
		row(tmp, "its termination message file (terminationMessagePath)")
	}
}

func dnsText(pod *v1.Pod) string {
	switch pod.Spec.DNSPolicy {
	case v1.DNSDefault:
		return "dnsPolicy Default: the node's resolvers"
	case v1.DNSNone:
		return "dnsPolicy None: only spec.dnsConfig"
	}
	return "dnsPolicy " + string(pod.Spec.DNSPolicy) + ": cluster DNS when the daemon has one, else the node's resolvers"
}

func trimProc(paths []string, prefix string) []string {
	var out []string
	for _, s := range paths {
		if strings.HasPrefix(s, prefix) {
			out = append(out, strings.TrimPrefix(s, prefix))
		}
	}
	sort.Strings(out)
	return out
}

func hostPathTypeText(t *v1.HostPathType) string {
	if t == nil {
		return ""
	}
	switch *t {
	case v1.HostPathDirectoryOrCreate:
		return "DirectoryOrCreate: created 0755 if missing"
	case v1.HostPathFileOrCreate:
		return "FileOrCreate: created empty 0644 if missing"
	case v1.HostPathUnset:
		return "no type check"
	}
	return string(*t) + ": must already exist as that type"
}

// capabilitiesText is the effective capability set in words: the runtime's
// default set, minus drops (ALL drops every default), plus adds.
func capabilitiesText(c *v1.Capabilities) string {
	if c == nil || (len(c.Add) == 0 && len(c.Drop) == 0) {
		return fmt.Sprintf("the %d default capabilities (%s)", len(mklruntime.DefaultCapabilities), strings.Join(mklruntime.DefaultCapabilities, " "))
	}
	norm := func(s v1.Capability) string {
		u := strings.ToUpper(string(s))
		if u != "ALL" && !strings.HasPrefix(u, "CAP_") {
			u = "CAP_" + u
		}
		return u
	}
	dropped := map[string]bool{}
	for _, d := range c.Drop {
		dropped[norm(d)] = true
	}
	var keep []string
	for _, d := range mklruntime.DefaultCapabilities {
		if !dropped["ALL"] && !dropped[d] {
			keep = append(keep, d)
		}
	}
	for _, a := range c.Add {
		keep = append(keep, norm(a))
	}
	if len(keep) == 0 {
		return "no capabilities"
	}
	return "capabilities " + strings.Join(keep, " ")
}

func securityText(psc *v1.PodSecurityContext, c *v1.Container) string {
	csc := c.SecurityContext
	if csc == nil {
		csc = &v1.SecurityContext{}
	}
	var parts []string
	user := "the image's user"
	if csc.RunAsUser != nil {
		user = fmt.Sprintf("uid %d", *csc.RunAsUser)
	} else if psc != nil && psc.RunAsUser != nil {
		user = fmt.Sprintf("uid %d", *psc.RunAsUser)
	}
	parts = append(parts, "runs as "+user)
	seccomp := "Unconfined (the kubelet's default when none is set)"
	if csc.SeccompProfile != nil {
		seccomp = string(csc.SeccompProfile.Type)
	} else if psc != nil && psc.SeccompProfile != nil {
		seccomp = string(psc.SeccompProfile.Type)
	}
	parts = append(parts, "seccomp "+seccomp)
	if csc.Privileged != nil && *csc.Privileged {
		parts = append(parts, "PRIVILEGED: all capabilities, host devices, no masked paths")
	} else {
		parts = append(parts, capabilitiesText(csc.Capabilities))
	}
	if csc.AllowPrivilegeEscalation != nil && !*csc.AllowPrivilegeEscalation {
		parts = append(parts, "no_new_privs")
	}
	return strings.Join(parts, "; ")
}

// explainImages resolves each container's image in the local store, read-only:
// a store that does not exist yet is reported, not created (validate is offline).
func explainImages(w io.Writer, names []namedContainer, rootDir string) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	var store *images.Store
	if st, err := os.Stat(layout.Root(rootDir).Images()); err == nil && st.IsDir() {
		if s, err := images.Open(rootDir, images.Options{}); err == nil {
			store = s
		} else {
			p("  (cannot open the image store: %v)", err)
		}
	}
	for _, c := range names {
		ref := c.c.Image
		if norm, err := images.ParseReference(ref); err == nil {
			ref = norm.String()
		}
		if store == nil {
			p("  %-12s %s: no image store under --root-dir yet; it will be pulled per imagePullPolicy %s", c.c.Name, ref, c.c.ImagePullPolicy)
			continue
		}
		rec, found, err := store.Lookup(c.c.Image)
		switch {
		case err != nil:
			p("  %-12s %s: %v", c.c.Name, ref, err)
		case !found:
			p("  %-12s %s: not in the store; it will be pulled per imagePullPolicy %s", c.c.Name, ref, c.c.ImagePullPolicy)
		default:
			p("  %-12s %s", c.c.Name, ref)
			p("  %-12s   present: digest %s, image ID %s, %s, %d layer(s)", "", rec.Digest(), rec.ID, rec.Platform, len(rec.Layers))
		}
	}
}

// explainSystemd draws the systemd driver's slice and scope tree. Each unit
// on its own line, what it is on the next, so long pod slice names stay
// readable.
func explainSystemd(p func(string, ...any), plan systemd.PodPlan, names []namedContainer, cgroupRoot string) {
	p("Cgroups (systemd driver)")
	p("  %s", plan.RootSlice)
	p("  │   root of every pod (--cgroup-root %s)", cgroupRoot)
	ind := "  "
	if plan.QOSSlice != "" {
		p("  └─ %s", plan.QOSSlice)
		p("     │   %s", qosCgroupText(plan.QOS))
		ind = "     "
	}
	p("%s└─ %s", ind, plan.PodSlice)
	explainScopes(p, plan, names, ind+"   ", systemd.ScopeUnitName)
	p("  cgroup path  /sys/fs/cgroup/<controller>/%s", plan.SlicePath)
	p("  The <...-id> parts are random IDs given when the sandbox or container is created")
	p("  (a restarted container gets a new one); see them with: systemctl status %s", plan.PodSlice)
}

// explainCgroupfs draws the cgroupfs driver's tree: plain cgroup paths,
// one folder per container under the pod's (no systemd units).
func explainCgroupfs(p func(string, ...any), plan systemd.PodPlan, names []namedContainer, cgroupRoot, podName string) {
	podPath := plan.CgroupfsPath
	qosPath := path.Dir(podPath)
	rootPath := qosPath
	if plan.QOSSlice != "" {
		rootPath = path.Dir(qosPath)
	}
	p("Cgroups (cgroupfs driver: no systemd; paths below each hierarchy, /sys/fs/cgroup/<controller> on v1, /sys/fs/cgroup on v2)")
	p("  %s", rootPath)
	p("  │   root of every pod (--cgroup-root %s)", cgroupRoot)
	ind := "  "
	if plan.QOSSlice != "" {
		p("  └─ %s", qosPath)
		p("     │   %s", qosCgroupText(plan.QOS))
		ind = "     "
	}
	p("%s└─ %s", ind, podPath)
	explainScopes(p, plan, names, ind+"   ", func(id string) string { return podPath + "/" + id })
	p("  The <...-id> parts are random IDs given when the sandbox or container is created")
	p("  (a restarted container gets a new one); see them with: minikubelet describe pod %s", podName)
}

func qosCgroupText(qos v1.PodQOSClass) string {
	if qos == v1.PodQOSBestEffort {
		return "every BestEffort pod; cpu.shares 2, the minimum: they run when nothing else wants the cpu"
	}
	return "every Burstable pod; its cpu.shares follow the sum of their cpu requests"
}

// explainScopes prints the pod's values and its sandbox and container
// cgroups below it; name turns an ID into the unit or path shown.
func explainScopes(p func(string, ...any), plan systemd.PodPlan, names []namedContainer, ind string, name func(string) string) {
	where := "this pod"
	if plan.QOSSlice == "" {
		where = "this pod (Guaranteed pods sit directly under the root)"
	}
	p("%s│   %s: %s", ind, where, resourcesText(plan.Pod))
	p("%s├─ %s", ind, name("<sandbox-id>"))
	p("%s│     the pause process, holding the pod's namespaces: %s", ind, resourcesText(plan.Sandbox))
	for i, c := range names {
		branch, cont := "├─", "│ "
		if i == len(names)-1 {
			branch, cont = "└─", "  "
		}
		p("%s%s %s", ind, branch, name("<"+c.name+"-id>"))
		p("%s%s    %s %s: %s", ind, cont, c.kind, c.name, resourcesText(plan.Containers[c.name]))
	}
}
