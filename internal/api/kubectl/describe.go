package kubectl

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"

	"github.com/minikubelet/minikubelet/internal/api"
)

// describeTime is kubectl describe's time format.
const describeTime = time.RFC1123Z

// prefixWriter writes indented, tab-separated lines into kubectl describe's
// tabwriter (minwidth 0, tabwidth 8, padding 2).
type prefixWriter struct{ tw *tabwriter.Writer }

func (p prefixWriter) line(level int, format string, a ...any) {
	fmt.Fprintf(p.tw, strings.Repeat("  ", level)+format+"\n", a...)
}

// PodEvents selects the events about pod (by UID, or by namespace and
// name for events recorded before the UID was known), oldest first.
func PodEvents(all []v1.Event, pod *v1.Pod) []v1.Event {
	var out []v1.Event
	for _, e := range all {
		ref := e.InvolvedObject
		if ref.Kind != "" && ref.Kind != "Pod" {
			continue
		}
		if (ref.UID != "" && ref.UID == pod.UID) || (ref.UID == "" && ref.Namespace == pod.Namespace && ref.Name == pod.Name) {
			out = append(out, e)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return eventTime(out[i]).Before(eventTime(out[j])) })
	return out
}

func eventTime(e v1.Event) time.Time {
	if !e.LastTimestamp.IsZero() {
		return e.LastTimestamp.Time
	}
	if !e.EventTime.IsZero() {
		return e.EventTime.Time
	}
	return e.FirstTimestamp.Time
}

// Describe writes `describe pod` text: kubectl's sections plus the
// node-local ones (cgroup slice and scopes, limits, usage, backoff).
func Describe(w io.Writer, pod *v1.Pod, extra *api.PodExtra, events []v1.Event, now time.Time) error {
	if extra == nil {
		extra = &api.PodExtra{}
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	p := prefixWriter{tw}
	p.line(0, "Name:\t%s", pod.Name)
	p.line(0, "Namespace:\t%s", pod.Namespace)
	if pod.Spec.Priority != nil {
		p.line(0, "Priority:\t%d", *pod.Spec.Priority)
	}
	if pod.Spec.PriorityClassName != "" {
		p.line(0, "Priority Class Name:\t%s", pod.Spec.PriorityClassName)
	}
	if pod.Spec.NodeName == "" {
		p.line(0, "Node:\t<none>")
	} else {
		p.line(0, "Node:\t%s/%s", pod.Spec.NodeName, pod.Status.HostIP)
	}
	if pod.Status.StartTime != nil {
		p.line(0, "Start Time:\t%s", pod.Status.StartTime.Time.Format(describeTime))
	}
	writeMap(p, "Labels", pod.Labels)
	writeMap(p, "Annotations", pod.Annotations)
	if pod.DeletionTimestamp != nil {
		p.line(0, "Status:\tTerminating (lasts %s)", Age(*pod.DeletionTimestamp, now))
		if pod.DeletionGracePeriodSeconds != nil {
			p.line(0, "Termination Grace Period:\t%ds", *pod.DeletionGracePeriodSeconds)
		}
	} else {
		p.line(0, "Status:\t%s", orNone(string(pod.Status.Phase)))
	}
	if pod.Status.Reason != "" {
		p.line(0, "Reason:\t%s", pod.Status.Reason)
	}
	if pod.Status.Message != "" {
		p.line(0, "Message:\t%s", pod.Status.Message)
	}
	p.line(0, "IP:\t%s", pod.Status.PodIP)
	if len(pod.Status.PodIPs) == 0 {
		p.line(0, "IPs:\t<none>")
	} else {
		p.line(0, "IPs:")
		for _, ip := range pod.Status.PodIPs {
			p.line(1, "IP:\t%s", ip.IP)
		}
	}
	if extra.ManifestPath != "" {
		p.line(0, "Manifest:\t%s", extra.ManifestPath)
	}
	describeCgroup(p, extra, now)
	if len(pod.Spec.InitContainers) > 0 {
		p.line(0, "Init Containers:")
		describeContainers(p, pod.Spec.InitContainers, pod.Status.InitContainerStatuses, extra, now)
	}
	p.line(0, "Containers:")
	describeContainers(p, pod.Spec.Containers, pod.Status.ContainerStatuses, extra, now)
	if len(pod.Status.Conditions) > 0 {
		p.line(0, "Conditions:")
		p.line(1, "Type\tStatus")
		for _, c := range pod.Status.Conditions {
			p.line(1, "%v \t%v ", c.Type, c.Status)
		}
	}
	describeVolumes(p, pod.Spec.Volumes)
	p.line(0, "QoS Class:\t%s", orNone(string(pod.Status.QOSClass)))
	writeMap(p, "Node-Selectors", pod.Spec.NodeSelector)
	describeTolerations(p, pod.Spec.Tolerations)
	describeEvents(p, events, now)
	return tw.Flush()
}

func writeMap(p prefixWriter, title string, m map[string]string) {
	if len(m) == 0 {
		p.line(0, "%s:\t<none>", title)
		return
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		if i == 0 {
			p.line(0, "%s:\t%s=%s", title, k, m[k])
		} else {
			p.line(0, "\t%s=%s", k, m[k])
		}
	}
}

func describeCgroup(p prefixWriter, e *api.PodExtra, now time.Time) {
	if e.Slice == "" && e.CgroupPath == "" && len(e.Scopes) == 0 && e.Limits == nil && e.Usage == nil {
		p.line(0, "Cgroup:\t<none>")
		return
	}
	p.line(0, "Cgroup:")
	if e.CgroupDriver != "" {
		p.line(1, "Driver:\t%s", e.CgroupDriver)
	}
	cgroupfs := e.CgroupDriver == "cgroupfs"
	if !cgroupfs {
		p.line(1, "Slice:\t%s", orNone(e.Slice))
	}
	if e.CgroupPath != "" && e.CgroupPath != e.Slice {
		p.line(1, "Path:\t%s", e.CgroupPath)
	}
	if e.Limits != nil {
		p.line(1, "Limits:\t%s", FormatLimits(e.Limits))
	}
	if e.Usage != nil {
		p.line(1, "Usage:\t%s", FormatUsage(e.Usage, now))
	}
	if len(e.Scopes) > 0 {
		if cgroupfs {
			p.line(1, "Cgroups:") // paths, not systemd units
		} else {
			p.line(1, "Scopes:")
		}
		for _, s := range e.Scopes {
			who := s.Container
			if who == "" {
				who = "(sandbox)"
			}
			state := s.ActiveState
			if s.MainPID > 0 {
				state = strings.TrimSpace(fmt.Sprintf("%s pid %d", state, s.MainPID))
			}
			p.line(2, "%s\t%s\t%s", s.Unit, who, orNone(state))
		}
	}
}

// FormatLimits renders cgroup limits in Kubernetes quantities:
// "cpu: 500m (quota 50000us/100000us, shares 512), memory: 128Mi, pids: 1024".
func FormatLimits(l *api.CgroupLimits) string {
	period := l.CPUPeriodMicros
	if period == 0 {
		period = 100000
	}
	var parts []string
	cpu := "unlimited"
	if l.CPUQuotaMicros != nil && *l.CPUQuotaMicros > 0 {
		milli := *l.CPUQuotaMicros * 1000 / int64(period)
		cpu = fmt.Sprintf("%s (quota %dus/%dus)", resource.NewMilliQuantity(milli, resource.DecimalSI), *l.CPUQuotaMicros, period)
	}
	if l.CPUShares != nil {
		cpu += fmt.Sprintf(", shares %d", *l.CPUShares)
	}
	parts = append(parts, "cpu: "+cpu)
	mem := "unlimited"
	if l.MemoryLimit != nil && *l.MemoryLimit >= 0 {
		mem = resource.NewQuantity(*l.MemoryLimit, resource.BinarySI).String()
	}
	parts = append(parts, "memory: "+mem)
	pids := "unlimited"
	if l.PidsLimit != nil && *l.PidsLimit > 0 {
		pids = fmt.Sprint(*l.PidsLimit)
	}
	parts = append(parts, "pids: "+pids)
	return strings.Join(parts, ", ")
}

// FormatUsage renders usage as kubectl top would: cpu in millicores,
// memory (working set) in Mi.
func FormatUsage(u *api.Usage, now time.Time) string {
	cpu := "<unknown>"
	if u.UsageNanoCores != nil {
		cpu = fmt.Sprintf("%dm", *u.UsageNanoCores/1_000_000)
	}
	s := fmt.Sprintf("cpu: %s (%s total), memory: %dMi", cpu,
		time.Duration(u.UsageCoreNanoSeconds).Round(time.Millisecond), u.WorkingSetBytes/(1<<20))
	if u.PIDs > 0 {
		s += fmt.Sprintf(", pids: %d", u.PIDs)
	}
	if u.OOMKills > 0 {
		s += fmt.Sprintf(", oom kills: %d", u.OOMKills)
	}
	if !u.SampledAt.IsZero() {
		s += fmt.Sprintf(" (%s ago)", duration.HumanDuration(now.Sub(u.SampledAt)))
	}
	return s
}

func describeContainers(p prefixWriter, cs []v1.Container, statuses []v1.ContainerStatus, e *api.PodExtra, now time.Time) {
	byName := map[string]v1.ContainerStatus{}
	for _, s := range statuses {
		byName[s.Name] = s
	}
	for _, c := range cs {
		st, ok := byName[c.Name]
		p.line(1, "%s:", c.Name)
		if ok {
			p.line(2, "Container ID:\t%s", st.ContainerID)
		}
		p.line(2, "Image:\t%s", c.Image)
		if ok {
			p.line(2, "Image ID:\t%s", st.ImageID)
		}
		describePorts(p, c.Ports)
		writeList(p, "Command", c.Command)
		writeList(p, "Args", c.Args)
		if ok {
			describeState(p, "State", st.State)
			if st.LastTerminationState.Terminated != nil || st.LastTerminationState.Waiting != nil || st.LastTerminationState.Running != nil {
				describeState(p, "Last State", st.LastTerminationState)
			}
			if until, has := e.BackoffUntil[c.Name]; has && until.After(now) {
				p.line(2, "Back-off Remaining:\t%s", until.Sub(now).Round(time.Second))
			}
			p.line(2, "Ready:\t%v", printBool(st.Ready))
			p.line(2, "Restart Count:\t%d", st.RestartCount)
		} else {
			p.line(2, "State:\tWaiting")
			p.line(2, "Ready:\tFalse")
			p.line(2, "Restart Count:\t0")
		}
		if u, has := e.ContainerUsage[c.Name]; has {
			p.line(2, "Usage:\t%s", FormatUsage(&u, now))
		}
		writeResources(p, "Limits", c.Resources.Limits)
		writeResources(p, "Requests", c.Resources.Requests)
		describeProbe(p, "Liveness", c.LivenessProbe)
		describeProbe(p, "Readiness", c.ReadinessProbe)
		describeProbe(p, "Startup", c.StartupProbe)
		if len(c.Env) == 0 && len(c.EnvFrom) == 0 {
			p.line(2, "Environment:\t<none>")
		} else {
			p.line(2, "Environment:")
			for _, ev := range c.Env {
				p.line(3, "%s:\t%s", ev.Name, envValue(ev))
			}
		}
		if len(c.VolumeMounts) == 0 {
			p.line(2, "Mounts:\t<none>")
		} else {
			p.line(2, "Mounts:")
			for _, m := range c.VolumeMounts {
				flags := "rw"
				if m.ReadOnly {
					flags = "ro"
				}
				if m.SubPath != "" {
					flags += ",path=\"" + m.SubPath + "\""
				}
				p.line(3, "%s from %s (%s)", m.MountPath, m.Name, flags)
			}
		}
	}
}

func printBool(b bool) string {
	if b {
		return "True"
	}
	return "False"
}

func describePorts(p prefixWriter, ports []v1.ContainerPort) {
	if len(ports) == 0 {
		p.line(2, "Port:\t<none>")
		p.line(2, "Host Port:\t<none>")
		return
	}
	var cp, hp []string
	for _, port := range ports {
		proto := port.Protocol
		if proto == "" {
			proto = v1.ProtocolTCP
		}
		cp = append(cp, fmt.Sprintf("%d/%s", port.ContainerPort, proto))
		hp = append(hp, fmt.Sprintf("%d/%s", port.HostPort, proto))
	}
	title := "Port"
	if len(ports) > 1 {
		title = "Ports"
	}
	p.line(2, "%s:\t%s", title, strings.Join(cp, ", "))
	p.line(2, "Host %s:\t%s", title, strings.Join(hp, ", "))
}

func writeList(p prefixWriter, title string, items []string) {
	if len(items) == 0 {
		return
	}
	p.line(2, "%s:", title)
	for _, it := range items {
		for _, l := range strings.Split(it, "\n") {
			p.line(3, "%s", l)
		}
	}
}

func describeState(p prefixWriter, title string, s v1.ContainerState) {
	switch {
	case s.Running != nil:
		p.line(2, "%s:\tRunning", title)
		p.line(3, "Started:\t%s", s.Running.StartedAt.Time.Format(describeTime))
	case s.Waiting != nil:
		p.line(2, "%s:\tWaiting", title)
		if s.Waiting.Reason != "" {
			p.line(3, "Reason:\t%s", s.Waiting.Reason)
		}
		if s.Waiting.Message != "" {
			p.line(3, "Message:\t%s", s.Waiting.Message)
		}
	case s.Terminated != nil:
		t := s.Terminated
		p.line(2, "%s:\tTerminated", title)
		if t.Reason != "" {
			p.line(3, "Reason:\t%s", t.Reason)
		}
		if t.Message != "" {
			p.line(3, "Message:\t%s", t.Message)
		}
		p.line(3, "Exit Code:\t%d", t.ExitCode)
		if t.Signal > 0 {
			p.line(3, "Signal:\t%d", t.Signal)
		}
		p.line(3, "Started:\t%s", t.StartedAt.Time.Format(describeTime))
		p.line(3, "Finished:\t%s", t.FinishedAt.Time.Format(describeTime))
	default:
		p.line(2, "%s:\tWaiting", title)
	}
}

func writeResources(p prefixWriter, title string, rl v1.ResourceList) {
	if len(rl) == 0 {
		return
	}
	p.line(2, "%s:", title)
	names := make([]string, 0, len(rl))
	for n := range rl {
		names = append(names, string(n))
	}
	sort.Strings(names)
	for _, n := range names {
		q := rl[v1.ResourceName(n)]
		p.line(3, "%s:\t%s", n, q.String())
	}
}

func describeProbe(p prefixWriter, title string, pr *v1.Probe) {
	if pr == nil {
		return
	}
	var what string
	switch {
	case pr.Exec != nil:
		what = fmt.Sprintf("exec %v", pr.Exec.Command)
	case pr.HTTPGet != nil:
		scheme := strings.ToLower(string(pr.HTTPGet.Scheme))
		if scheme == "" {
			scheme = "http"
		}
		what = fmt.Sprintf("http-get %s://%s:%s%s", scheme, pr.HTTPGet.Host, pr.HTTPGet.Port.String(), pr.HTTPGet.Path)
	case pr.TCPSocket != nil:
		what = fmt.Sprintf("tcp-socket %s:%s", pr.TCPSocket.Host, pr.TCPSocket.Port.String())
	case pr.GRPC != nil:
		what = fmt.Sprintf("grpc <pod>:%d %s", pr.GRPC.Port, ptrStr(pr.GRPC.Service))
	default:
		what = "unknown"
	}
	p.line(2, "%s:\t%s delay=%ds timeout=%ds period=%ds #success=%d #failure=%d", title, what,
		pr.InitialDelaySeconds, pr.TimeoutSeconds, pr.PeriodSeconds, pr.SuccessThreshold, pr.FailureThreshold)
}

func ptrStr(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func envValue(ev v1.EnvVar) string {
	if ev.ValueFrom == nil {
		return ev.Value
	}
	switch {
	case ev.ValueFrom.FieldRef != nil:
		return fmt.Sprintf(" (%s:%s)", ev.ValueFrom.FieldRef.APIVersion, ev.ValueFrom.FieldRef.FieldPath)
	case ev.ValueFrom.ResourceFieldRef != nil:
		return fmt.Sprintf("%s (%s)", ev.ValueFrom.ResourceFieldRef.Resource, ev.ValueFrom.ResourceFieldRef.ContainerName)
	}
	return "<set from a source this node does not resolve>"
}

func describeVolumes(p prefixWriter, vols []v1.Volume) {
	if len(vols) == 0 {
		p.line(0, "Volumes:\t<none>")
		return
	}
	p.line(0, "Volumes:")
	for _, v := range vols {
		p.line(1, "%s:", v.Name)
		switch {
		case v.EmptyDir != nil:
			p.line(2, "Type:\tEmptyDir (a temporary directory that shares a pod's lifetime)")
			p.line(2, "Medium:\t%s", v.EmptyDir.Medium)
			if v.EmptyDir.SizeLimit != nil {
				p.line(2, "SizeLimit:\t%s", v.EmptyDir.SizeLimit.String())
			} else {
				p.line(2, "SizeLimit:\t<unset>")
			}
		case v.HostPath != nil:
			typ := ""
			if v.HostPath.Type != nil {
				typ = string(*v.HostPath.Type)
			}
			p.line(2, "Type:\tHostPath (bare host directory volume)")
			p.line(2, "Path:\t%s", v.HostPath.Path)
			p.line(2, "HostPathType:\t%s", typ)
		case v.DownwardAPI != nil:
			p.line(2, "Type:\tDownwardAPI (a volume populated by information about the pod)")
			p.line(2, "Items:")
			for _, it := range v.DownwardAPI.Items {
				if it.FieldRef != nil {
					p.line(3, "%s -> %s", it.FieldRef.FieldPath, it.Path)
				}
			}
		default:
			p.line(2, "Type:\t<unsupported on this node>")
		}
	}
}

func describeTolerations(p prefixWriter, ts []v1.Toleration) {
	if len(ts) == 0 {
		p.line(0, "Tolerations:\t<none>")
		return
	}
	for i, t := range ts {
		s := t.Key
		if t.Value != "" {
			s += "=" + t.Value
		}
		if t.Effect != "" {
			s += ":" + string(t.Effect)
		}
		if t.Operator == v1.TolerationOpExists && t.Value == "" {
			if t.Key != "" || t.Effect != "" {
				s += " op=Exists"
			} else {
				s = "op=Exists"
			}
		}
		if t.TolerationSeconds != nil {
			s += fmt.Sprintf(" for %ds", *t.TolerationSeconds)
		}
		if i == 0 {
			p.line(0, "Tolerations:\t%s", s)
		} else {
			p.line(0, "\t%s", s)
		}
	}
}

func describeEvents(p prefixWriter, events []v1.Event, now time.Time) {
	if len(events) == 0 {
		p.line(0, "Events:\t<none>")
		return
	}
	p.line(0, "Events:")
	p.line(1, "Type\tReason\tAge\tFrom\tMessage")
	p.line(1, "----\t------\t----\t----\t-------")
	for _, e := range events {
		var age string
		if e.Count > 1 {
			age = fmt.Sprintf("%s (x%d over %s)", since(e.LastTimestamp, now), e.Count, since(e.FirstTimestamp, now))
		} else {
			age = since(e.FirstTimestamp, now)
			if e.FirstTimestamp.IsZero() {
				age = since(metav1.NewTime(e.EventTime.Time), now)
			}
		}
		from := e.Source.Component
		if from == "" {
			from = e.ReportingController
		}
		p.line(1, "%v\t%v\t%s\t%v\t%v", e.Type, e.Reason, age, from, strings.TrimSpace(e.Message))
	}
}

func since(t metav1.Time, now time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t.Time))
}
