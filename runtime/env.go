package runtime

import (
	"fmt"
	"math"
	"os"
	goruntime "runtime"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/minikubelet/minikubelet/systemd"
)

// containerEnv is what the workload gets, in containerd's order: HOSTNAME,
// the image's env (with a default PATH), then the container's env with
// $(VAR) expanded against the container env defined before it, as kubelet does.
// own is the container's env alone (the kubelet's view, last definition
// wins): the only variables $(VAR) in command and args may use.
func (r *Runtime) containerEnv(cfg *ContainerConfig, sb *sandboxMeta) (env []string, own map[string]string, err error) {
	pod, c := cfg.Pod, cfg.Container
	hostname := sb.Hostname
	if hostname == "" {
		hostname, _ = os.Hostname()
	}
	var order []string
	vals := map[string]string{}
	set := func(k, v string) {
		if _, ok := vals[k]; !ok {
			order = append(order, k)
		}
		vals[k] = v
	}
	set("HOSTNAME", hostname)
	hasPath := false
	for _, e := range cfg.Image.Env {
		k, v, _ := strings.Cut(e, "=")
		if k == "PATH" {
			hasPath = true
		}
		set(k, v)
	}
	if !hasPath {
		set("PATH", defaultPath)
	}
	if len(c.EnvFrom) > 0 {
		return nil, nil, fmt.Errorf("container %s: envFrom needs ConfigMaps or Secrets, which static pods cannot use", c.Name)
	}
	// $(VAR) in a value sees the container's variables defined before it
	// (mine grows as the loop goes), never the image's, HOSTNAME or the
	// default PATH; once complete, mine is what command and args expand
	// against.
	mine := map[string]string{}
	for _, e := range c.Env {
		var v string
		switch {
		case e.ValueFrom == nil:
			v = expand(e.Value, mine)
		case e.ValueFrom.FieldRef != nil:
			fv, err := fieldValue(pod, e.ValueFrom.FieldRef.FieldPath, r.opt.NodeName, cfg.PodIP, cfg.HostIP)
			if err != nil {
				return nil, nil, fmt.Errorf("container %s env %s: %w", c.Name, e.Name, err)
			}
			v = fv
		case e.ValueFrom.ResourceFieldRef != nil:
			rv, err := resourceValue(pod, c, e.ValueFrom.ResourceFieldRef)
			if err != nil {
				return nil, nil, fmt.Errorf("container %s env %s: %w", c.Name, e.Name, err)
			}
			v = rv
		default:
			return nil, nil, fmt.Errorf("container %s env %s: configMapKeyRef/secretKeyRef need an API server, which static pods cannot use", c.Name, e.Name)
		}
		mine[e.Name] = v
		set(e.Name, v)
	}
	out := make([]string, 0, len(order))
	for _, k := range order {
		out = append(out, k+"="+vals[k])
	}
	return out, mine, nil
}

// containerArgs merges command/args with the image's Entrypoint/Cmd the
// Kubernetes way and expands $(VAR) in command and args against vars, the
// container's own env (never the image's env, HOSTNAME or the default PATH:
// the kubelet expands before the runtime adds those); the image's
// Entrypoint and Cmd are taken as they are.
func containerArgs(c *v1.Container, img ImageConfig, vars map[string]string) []string {
	exp := func(in []string) []string {
		out := make([]string, len(in))
		for i, a := range in {
			out[i] = expand(a, vars)
		}
		return out
	}
	var argv []string
	switch {
	case len(c.Command) > 0:
		argv = append(exp(c.Command), exp(c.Args)...)
	case len(c.Args) > 0:
		argv = append(append(argv, img.Entrypoint...), exp(c.Args)...)
	default:
		argv = append(append(argv, img.Entrypoint...), img.Cmd...)
	}
	return argv
}

// expand replaces $(VAR) with its value when defined; $$ escapes a $;
// anything else is left as written: an undefined $(VAR), an unclosed $(,
// a $ before any other character (the kubelet's
// third_party/forked/golang/expansion rules).
func expand(s string, vars map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := vars[name]; ok && name != "" {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

// fieldValue answers a downward API fieldRef.
func fieldValue(pod *v1.Pod, path, node, podIP, hostIP string) (string, error) {
	if k, ok := subscript(path, "metadata.labels"); ok {
		return pod.Labels[k], nil
	}
	if k, ok := subscript(path, "metadata.annotations"); ok {
		return pod.Annotations[k], nil
	}
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "spec.nodeName":
		if pod.Spec.NodeName != "" {
			return pod.Spec.NodeName, nil
		}
		return node, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.podIP", "status.podIPs":
		if podIP == "" {
			podIP = pod.Status.PodIP
		}
		return podIP, nil
	case "status.hostIP", "status.hostIPs":
		if hostIP == "" {
			hostIP = pod.Status.HostIP
		}
		return hostIP, nil
	}
	return "", fmt.Errorf("unsupported fieldRef %q", path)
}

func subscript(path, prefix string) (string, bool) {
	rest, ok := strings.CutPrefix(path, prefix+"['")
	if !ok || !strings.HasSuffix(rest, "']") {
		return "", false
	}
	return strings.TrimSuffix(rest, "']"), true
}

// resourceValue answers a resourceFieldRef; without a limit the node's
// capacity stands in, as kubelet does with allocatable.
func resourceValue(pod *v1.Pod, c *v1.Container, ref *v1.ResourceFieldSelector) (string, error) {
	target := c
	if ref.ContainerName != "" && ref.ContainerName != c.Name {
		target = nil
		for i := range pod.Spec.Containers {
			if pod.Spec.Containers[i].Name == ref.ContainerName {
				target = &pod.Spec.Containers[i]
			}
		}
		if target == nil {
			return "", fmt.Errorf("resourceFieldRef: no container %q", ref.ContainerName)
		}
	}
	divisor := ref.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	var q resource.Quantity
	var ok bool
	switch ref.Resource {
	case "limits.cpu":
		q, ok = target.Resources.Limits[v1.ResourceCPU]
		if !ok {
			q, ok = *resource.NewQuantity(int64(goruntime.NumCPU()), resource.DecimalSI), true
		}
	case "requests.cpu":
		q, ok = target.Resources.Requests[v1.ResourceCPU]
	case "limits.memory":
		q, ok = target.Resources.Limits[v1.ResourceMemory]
		if !ok {
			q, ok = *resource.NewQuantity(int64(memTotal()), resource.BinarySI), true
		}
	case "requests.memory":
		q, ok = target.Resources.Requests[v1.ResourceMemory]
	case "limits.ephemeral-storage", "requests.ephemeral-storage":
		q, ok = target.Resources.Limits[v1.ResourceEphemeralStorage]
		if ref.Resource == "requests.ephemeral-storage" {
			q, ok = target.Resources.Requests[v1.ResourceEphemeralStorage]
		}
	default:
		return "", fmt.Errorf("unsupported resourceFieldRef %q", ref.Resource)
	}
	if !ok {
		return "0", nil
	}
	if strings.HasSuffix(ref.Resource, ".cpu") {
		v := math.Ceil(float64(q.MilliValue()) / float64(divisor.MilliValue()))
		return strconv.FormatInt(int64(v), 10), nil
	}
	v := math.Ceil(float64(q.Value()) / float64(divisor.Value()))
	return strconv.FormatInt(int64(v), 10), nil
}

func memTotal() uint64 {
	b, _ := os.ReadFile("/proc/meminfo")
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "MemTotal:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				n, _ := strconv.ParseUint(f[0], 10, 64)
				return n * 1024
			}
		}
	}
	return 0
}

// containerOOMScoreAdj is kubelet's policy: node-critical and Guaranteed
// -997, BestEffort 1000, Burstable 1000 - 1000*request/capacity in [3, 999].
func containerOOMScoreAdj(pod *v1.Pod, c *v1.Container) int {
	if pod.Spec.PriorityClassName == "system-node-critical" {
		return -997
	}
	switch systemd.GetPodQOS(pod) {
	case v1.PodQOSGuaranteed:
		return -997
	case v1.PodQOSBestEffort:
		return 1000
	}
	capacity := int64(memTotal())
	req := c.Resources.Requests.Memory().Value()
	if capacity == 0 {
		return 999
	}
	adj := 1000 - (1000*req)/capacity
	if adj < 3 {
		return 3
	}
	if adj >= 1000 {
		return 999
	}
	return int(adj)
}
