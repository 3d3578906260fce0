package runtime

// dns.go: a pod's /etc/resolv.conf, composed with the kubelet's rules
// (pkg/kubelet/network/dns/dns.go): the host file as the base, dnsPolicy,
// --cluster-dns/--cluster-domain, spec.dnsConfig merged in, and the
// resolver's limits. Pure functions; the runtime reads the file and
// records the warnings as the pod's events.

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"

	v1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/util/validation"
)

// SystemdResolvedUpstream is the file systemd-resolved keeps with the
// node's real (upstream) nameservers; /etc/resolv.conf then points at its
// stub listener 127.0.0.53, which a pod in its own network namespace
// cannot reach. kubeadm configures the kubelet with this file in that case.
var SystemdResolvedUpstream = "/run/systemd/resolve/resolv.conf"

// The resolver's limits the kubelet applies (core validation, with
// ExpandedDNSConfig, GA since 1.28).
const (
	maxDNSNameservers     = 3
	maxDNSSearchPaths     = 32
	maxDNSSearchListChars = 2048
	maxResolvConfSize     = 10 << 20 // the kubelet reads at most 10 MB
)

// hostDNS is what the node's resolv.conf says.
type hostDNS struct {
	Servers, Searches, Options []string
}

// parseResolvConf reads a resolv.conf as the kubelet does: nameserver
// lines accumulate, the last search line wins (a trailing dot dropped,
// so "a." and "a" count once), the last options line wins.
func parseResolvConf(r io.Reader) (hostDNS, error) {
	h := hostDNS{Servers: []string{}, Searches: []string{}, Options: []string{}}
	sc := bufio.NewScanner(io.LimitReader(r, maxResolvConfSize))
	sc.Buffer(make([]byte, 64<<10), maxResolvConfSize)
	var errs []string
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";") {
			continue
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "nameserver":
			if len(f) < 2 {
				errs = append(errs, "nameserver list is empty")
				continue
			}
			h.Servers = append(h.Servers, f[1])
		case "search":
			h.Searches = []string{}
			for _, s := range f[1:] {
				h.Searches = append(h.Searches, strings.TrimSuffix(s, "."))
			}
		case "options":
			h.Options = f[1:]
		}
	}
	if err := sc.Err(); err != nil {
		return h, err
	}
	if len(errs) > 0 {
		return h, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return h, nil
}

func readResolvConf(path string) (hostDNS, error) {
	f, err := os.Open(path)
	if err != nil {
		return hostDNS{}, err
	}
	defer f.Close()
	h, err := parseResolvConf(f)
	if err != nil {
		return h, fmt.Errorf("%s: %w", path, err)
	}
	return h, nil
}

// isLoopback: 127.0.0.0/8 or ::1 (a zone or garbage is not loopback).
func isLoopback(server string) bool {
	a, err := netip.ParseAddr(server)
	return err == nil && a.Unmap().IsLoopback()
}

// isResolvedStub: every nameserver of the file is a loopback address (the
// stub's 127.0.0.53, or any local caching resolver) and there is one.
func isResolvedStub(h hostDNS) bool {
	for _, s := range h.Servers {
		if !isLoopback(s) {
			return false
		}
	}
	return len(h.Servers) > 0
}

// EffectiveResolvConf is the file a pod's DNS is based on: path, unless
// path's nameservers are all loopback (systemd-resolved's stub) and
// systemd-resolved's upstream file has a real one; then that file, as
// kubeadm configures the kubelet. The second result says it was swapped.
func EffectiveResolvConf(path string) (string, bool) {
	if path == "" || path == SystemdResolvedUpstream {
		return path, false
	}
	h, err := readResolvConf(path)
	if err != nil || !isResolvedStub(h) {
		return path, false
	}
	up, err := readResolvConf(SystemdResolvedUpstream)
	if err != nil {
		return path, false
	}
	for _, s := range up.Servers {
		if !isLoopback(s) {
			return SystemdResolvedUpstream, true
		}
	}
	return path, false
}

// dnsSettings are the node's DNS flags.
type dnsSettings struct {
	ResolvConf    string // the file read (after EffectiveResolvConf), for messages
	NoResolvConf  bool   // --resolv-conf="": no host DNS (the kubelet's "disable lookups")
	ClusterDNS    []string
	ClusterDomain string
}

// dnsWarning becomes a Warning event of the pod.
type dnsWarning struct{ Reason, Message string }

// podDNS is what goes into the pod's resolv.conf.
type podDNS struct {
	Servers, Searches, Options []string
}

// composePodDNS is the kubelet's GetPodDNS: the host's settings as the
// base; ClusterFirst (not with hostNetwork) and ClusterFirstWithHostNet
// use --cluster-dns alone with the cluster's search list before the host's
// and ndots:5, or fall back to Default without cluster DNS (a
// MissingClusterDNS warning); None starts empty; spec.dnsConfig is then
// appended (options of the same name replaced) and the limits applied.
//
// One rule beyond the kubelet: a pod in its own network namespace never
// gets a loopback nameserver taken from the node's file — nothing listens
// on the pod's own loopback, so such an entry only makes lookups time out.
// It is dropped with a DNSConfigForming warning that names the file (the
// kubelet would copy it and the pod could not resolve anything). Loopback
// servers the pod asks for in dnsConfig are kept: a sidecar may serve them.
func composePodDNS(pod *v1.Pod, host hostDNS, s dnsSettings) (podDNS, []dnsWarning) {
	var warns []dnsWarning
	d := podDNS{Servers: clone(host.Servers), Searches: clone(host.Searches), Options: clone(host.Options)}
	policy := pod.Spec.DNSPolicy
	if policy == "" {
		policy = v1.DNSClusterFirst
	}
	cluster := false
	switch policy {
	case v1.DNSNone:
		d = podDNS{}
	case v1.DNSClusterFirstWithHostNet:
		cluster = true
	case v1.DNSClusterFirst:
		cluster = !pod.Spec.HostNetwork
	}
	fromHost := policy != v1.DNSNone
	if cluster {
		if len(s.ClusterDNS) > 0 {
			d.Servers = clone(s.ClusterDNS)
			fromHost = false
			if s.ClusterDomain != "" {
				d.Searches = dedup(append([]string{pod.Namespace + ".svc." + s.ClusterDomain, "svc." + s.ClusterDomain, s.ClusterDomain}, d.Searches...))
			}
			d.Options = []string{"ndots:5"}
		} else {
			warns = append(warns, dnsWarning{"MissingClusterDNS", fmt.Sprintf("pod: %q. kubelet does not have ClusterDNS IP configured and cannot create Pod using %q policy. Falling back to %q policy.",
				pod.Name+"_"+pod.Namespace+"("+string(pod.UID)+")", v1.DNSClusterFirst, v1.DNSDefault)})
		}
	}
	if fromHost && s.NoResolvConf {
		// The kubelet's --resolv-conf="": lookups go to the local machine.
		d.Servers, d.Searches = []string{"127.0.0.1"}, []string{"."}
	} else if fromHost && !pod.Spec.HostNetwork {
		var kept, dropped []string
		for _, srv := range d.Servers {
			if isLoopback(srv) {
				dropped = append(dropped, srv)
			} else {
				kept = append(kept, srv)
			}
		}
		if len(dropped) > 0 {
			d.Servers = kept
			msg := fmt.Sprintf("Nameserver %s of %s is a loopback address the pod cannot reach from its own network namespace; it was omitted", strings.Join(dropped, ", "), s.ResolvConf)
			if len(kept) == 0 {
				msg += " and the pod has no nameserver: point --resolv-conf at a file with the node's upstream servers (with systemd-resolved: " + SystemdResolvedUpstream + ")"
			}
			warns = append(warns, dnsWarning{"DNSConfigForming", msg})
		}
	}
	if dc := pod.Spec.DNSConfig; dc != nil {
		d.Servers = dedup(append(d.Servers, dc.Nameservers...))
		d.Searches = dedup(append(d.Searches, dc.Searches...))
		d.Options = mergeDNSOptions(d.Options, dc.Options)
	}
	if len(d.Servers) > maxDNSNameservers {
		d.Servers = d.Servers[:maxDNSNameservers]
		warns = append(warns, dnsWarning{"DNSConfigForming", "Nameserver limits were exceeded, some nameservers have been omitted, the applied nameserver line is: " + strings.Join(d.Servers, " ")})
	}
	var over bool
	if d.Searches, over = searchFitsLimits(d.Searches); over {
		warns = append(warns, dnsWarning{"DNSConfigForming", "Search Line limits were exceeded, some search paths have been omitted, the applied search line is: " + strings.Join(d.Searches, " ")})
	}
	return d, warns
}

// searchFitsLimits keeps at most 32 paths, drops any longer than 253
// characters (glibc aborts on them) and cuts from the end until the line
// is at most 2048 characters, as the kubelet does.
func searchFitsLimits(s []string) ([]string, bool) {
	over := false
	if len(s) > maxDNSSearchPaths {
		s, over = s[:maxDNSSearchPaths], true
	}
	var out []string
	for _, x := range s {
		if len(x) > apivalidation.DNS1123SubdomainMaxLength {
			over = true
			continue
		}
		out = append(out, x)
	}
	for len(out) > 0 && len(strings.Join(out, " ")) > maxDNSSearchListChars {
		out, over = out[:len(out)-1], true
	}
	return out, over
}

// mergeDNSOptions: the pod's options replace the base's of the same name
// (ndots:2 replaces ndots:5). The kubelet rebuilds the list from a map, in
// no particular order; here the base's order is kept and new names follow,
// so the file is stable across restarts.
func mergeDNSOptions(base []string, pod []v1.PodDNSConfigOption) []string {
	var names []string
	vals := map[string]string{}
	set := func(name, val string) {
		if _, ok := vals[name]; !ok {
			names = append(names, name)
		}
		vals[name] = val
	}
	for _, o := range base {
		name, val, _ := strings.Cut(o, ":")
		set(name, val)
	}
	for _, o := range pod {
		val := ""
		if o.Value != nil {
			val = *o.Value
		}
		set(o.Name, val)
	}
	out := []string{}
	for _, n := range names {
		if vals[n] != "" {
			out = append(out, n+":"+vals[n])
		} else {
			out = append(out, n)
		}
	}
	return out
}

// render writes the file as containerd does from the CRI DNSConfig.
func (d podDNS) render() string {
	var b strings.Builder
	if len(d.Searches) > 0 {
		b.WriteString("search " + strings.Join(d.Searches, " ") + "\n")
	}
	for _, n := range d.Servers {
		b.WriteString("nameserver " + n + "\n")
	}
	if len(d.Options) > 0 {
		b.WriteString("options " + strings.Join(d.Options, " ") + "\n")
	}
	return b.String()
}

func clone(s []string) []string { return append([]string(nil), s...) }
