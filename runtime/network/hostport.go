package network

import (
	"fmt"
	"net"
	"strings"
	"sync"
)

// HostPort is one container port published on the node (a containerPort
// with a hostPort in the pod spec).
type HostPort struct {
	HostPort      int32
	ContainerPort int32
	Protocol      string // TCP (default), UDP or SCTP, as in the pod spec
	HostIP        string // "" or 0.0.0.0/:: = every address
}

func (p HostPort) proto() string {
	if p.Protocol == "" {
		return "TCP"
	}
	return strings.ToUpper(p.Protocol)
}

func (p HostPort) wildcard() bool {
	if p.HostIP == "" {
		return true
	}
	ip := net.ParseIP(p.HostIP)
	return ip != nil && ip.IsUnspecified()
}

func (p HostPort) String() string {
	ip := p.HostIP
	if ip == "" {
		ip = "0.0.0.0"
	}
	return fmt.Sprintf("%s:%d/%s", ip, p.HostPort, p.proto())
}

// overlaps reports whether two host ports would claim the same socket: same
// protocol and port, and host IPs equal or either one the wildcard (the
// scheduler's NodePorts rule).
func (p HostPort) overlaps(q HostPort) bool {
	if p.HostPort != q.HostPort || p.proto() != q.proto() {
		return false
	}
	if p.wildcard() || q.wildcard() {
		return true
	}
	a, b := net.ParseIP(p.HostIP), net.ParseIP(q.HostIP)
	if a != nil && b != nil {
		return a.Equal(b)
	}
	return p.HostIP == q.HostIP
}

// PodRef names the pod holding something.
type PodRef struct {
	Namespace, Name, UID string
}

func (r PodRef) String() string {
	if r.Name == "" {
		return "uid " + r.UID
	}
	return fmt.Sprintf("%s/%s (uid %s)", r.Namespace, r.Name, r.UID)
}

// HostPortConflictError is returned by Setup when a requested hostPort is
// already held by another pod. Kubernetes' scheduler reports the same case
// as the NodePorts predicate failing; the reconciler surfaces Reason.
type HostPortConflictError struct {
	Pod    PodRef   // the pod that asked
	Port   HostPort // what it asked for
	Holder PodRef   // who holds it
	Held   HostPort // the holder's mapping
}

// Reason is the short CamelCase reason for status and events.
func (e *HostPortConflictError) Reason() string { return "HostPortConflict" }

func (e *HostPortConflictError) Error() string {
	return fmt.Sprintf("pod %s: hostPort %s is already allocated to pod %s (its mapping %s)", e.Pod, e.Port, e.Holder, e.Held)
}

// hostPorts is the node's hostPort registry. It lives in memory and is
// rebuilt from the CNI cache (which records each attachment's portMappings)
// when a Manager starts, so a daemon crash does not forget who holds what.
type hostPorts struct {
	mu    sync.Mutex
	byUID map[string]podPorts
}

type podPorts struct {
	pod   PodRef
	ports []HostPort
}

func newHostPorts() *hostPorts { return &hostPorts{byUID: map[string]podPorts{}} }

// reserve records ports for pod, or returns a conflict naming the holder.
// A pod never conflicts with itself (a re-setup of the same UID).
func (h *hostPorts) reserve(pod PodRef, ports []HostPort) error {
	if len(ports) == 0 {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, want := range ports {
		for uid, held := range h.byUID {
			if uid == pod.UID {
				continue
			}
			for _, hp := range held.ports {
				if want.overlaps(hp) {
					return &HostPortConflictError{Pod: pod, Port: want, Holder: held.pod, Held: hp}
				}
			}
		}
	}
	h.byUID[pod.UID] = podPorts{pod: pod, ports: append([]HostPort(nil), ports...)}
	return nil
}

// add records ports without checking (rebuilding from the cache: what is
// in the cache is what the plugins did).
func (h *hostPorts) add(pod PodRef, ports []HostPort) {
	if len(ports) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	cur := h.byUID[pod.UID]
	cur.pod = pod
	cur.ports = append(cur.ports, ports...)
	h.byUID[pod.UID] = cur
}

func (h *hostPorts) release(uid string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.byUID, uid)
}

// holders returns a copy of the registry (for status and tests).
func (h *hostPorts) holders() map[string][]HostPort {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string][]HostPort{}
	for uid, p := range h.byUID {
		out[uid] = append([]HostPort(nil), p.ports...)
	}
	return out
}

// portMapping is the CNI "portMappings" capability entry (portmap plugin).
type portMapping struct {
	HostPort      int32  `json:"hostPort"`
	ContainerPort int32  `json:"containerPort"`
	Protocol      string `json:"protocol"`
	HostIP        string `json:"hostIP,omitempty"`
}

func toPortMappings(ports []HostPort) []portMapping {
	var out []portMapping
	for _, p := range ports {
		if p.HostPort <= 0 {
			continue
		}
		out = append(out, portMapping{HostPort: p.HostPort, ContainerPort: p.ContainerPort, Protocol: strings.ToLower(p.proto()), HostIP: p.HostIP})
	}
	return out
}

// fromCapabilityArgs reads portMappings back from a cached attachment's
// capability args (decoded JSON: []any of map[string]any).
func fromCapabilityArgs(args map[string]any) []HostPort {
	raw, ok := args["portMappings"].([]any)
	if !ok {
		return nil
	}
	var out []HostPort
	for _, r := range raw {
		m, ok := r.(map[string]any)
		if !ok {
			continue
		}
		num := func(k string) int32 {
			f, _ := m[k].(float64)
			return int32(f)
		}
		str := func(k string) string { s, _ := m[k].(string); return s }
		hp := HostPort{HostPort: num("hostPort"), ContainerPort: num("containerPort"), Protocol: strings.ToUpper(str("protocol")), HostIP: str("hostIP")}
		if hp.HostPort > 0 {
			out = append(out, hp)
		}
	}
	return out
}
