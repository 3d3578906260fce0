package probe

import (
	"context"
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Target is where a container's probes go.
type Target struct {
	ContainerID string
	// PodIP is the default host of httpGet/tcpSocket and the grpc host.
	// hostNetwork pods pass the node's IP, as kubelet does.
	PodIP string
	// NetnsPath, when set, makes every network probe dial from inside the
	// pod's network namespace; for pods without a reachable IP (loopback
	// only), where the default host becomes 127.0.0.1.
	NetnsPath string
	// Ports of the container, to resolve named probe ports.
	Ports []corev1.ContainerPort
}

// Prober runs pod spec probes.
type Prober struct {
	Exec Execer // runs exec probes; nil makes them Unknown
}

// Run executes probe p of kind against t once, with the probe's timeout.
func (pr *Prober) Run(ctx context.Context, kind Kind, p *corev1.Probe, t Target) Result {
	spec := SpecFrom(kind, p)
	h := p.ProbeHandler
	switch {
	case h.Exec != nil:
		return ExecProbe(ctx, pr.Exec, t.ContainerID, h.Exec.Command, spec.Timeout)
	case h.HTTPGet != nil:
		port, err := ResolvePort(h.HTTPGet.Port, t.Ports)
		if err != nil {
			return Result{Unknown, err.Error()}
		}
		host, err := t.host(h.HTTPGet.Host)
		if err != nil {
			return Result{Unknown, err.Error()}
		}
		return HTTPProbe(ctx, HTTPRequest{Scheme: string(h.HTTPGet.Scheme), Host: host, Port: port, Path: h.HTTPGet.Path, Headers: h.HTTPGet.HTTPHeaders, NetnsPath: t.NetnsPath}, spec.Timeout)
	case h.TCPSocket != nil:
		port, err := ResolvePort(h.TCPSocket.Port, t.Ports)
		if err != nil {
			return Result{Unknown, err.Error()}
		}
		host, err := t.host(h.TCPSocket.Host)
		if err != nil {
			return Result{Unknown, err.Error()}
		}
		return TCPProbe(ctx, t.NetnsPath, host, port, spec.Timeout)
	case h.GRPC != nil:
		host, err := t.host("")
		if err != nil {
			return Result{Unknown, err.Error()}
		}
		service := ""
		if h.GRPC.Service != nil {
			service = *h.GRPC.Service
		}
		return GRPCProbe(ctx, t.NetnsPath, host, int(h.GRPC.Port), service, spec.Timeout)
	}
	return Result{Unknown, fmt.Sprintf("%s probe has no handler (exec, httpGet, tcpSocket or grpc)", kind)}
}

func (t Target) host(explicit string) (string, error) {
	switch {
	case explicit != "":
		return explicit, nil
	case t.PodIP != "":
		return t.PodIP, nil
	case t.NetnsPath != "":
		return "127.0.0.1", nil
	}
	return "", fmt.Errorf("container %s: pod has no IP and no network namespace to probe in", t.ContainerID)
}

// ResolvePort turns a probe port (number, named container port, or a
// number written as a string) into a port number, as kubelet does.
func ResolvePort(p intstr.IntOrString, ports []corev1.ContainerPort) (int, error) {
	port := -1
	switch p.Type {
	case intstr.Int:
		port = p.IntValue()
	case intstr.String:
		found := false
		for _, cp := range ports {
			if cp.Name == p.StrVal {
				port, found = int(cp.ContainerPort), true
				break
			}
		}
		if !found {
			n, err := strconv.Atoi(p.StrVal)
			if err != nil {
				return -1, fmt.Errorf("probe port %q: no container port has that name", p.StrVal)
			}
			port = n
		}
	}
	if port > 0 && port < 65536 {
		return port, nil
	}
	return port, fmt.Errorf("probe port %s: invalid port number %d", p.String(), port)
}
