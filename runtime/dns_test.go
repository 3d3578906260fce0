package runtime

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestParseResolvConfLikeKubelet(t *testing.T) {
	h, err := parseResolvConf(strings.NewReader(`# generated
; also a comment
nameserver 192.0.2.1
search first.example
options rotate
nameserver 192.0.2.2
search a.example. b.example
options ndots:2 timeout:1
domain ignored.example
`))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(h.Servers) != "[192.0.2.1 192.0.2.2]" || fmt.Sprint(h.Searches) != "[a.example b.example]" || fmt.Sprint(h.Options) != "[ndots:2 timeout:1]" {
		t.Errorf("nameservers accumulate, the last search and options lines win: %+v", h)
	}
	if _, err := parseResolvConf(strings.NewReader("nameserver\n")); err == nil {
		t.Error("an empty nameserver line is an error")
	}
}

func TestComposePodDNS(t *testing.T) {
	host := hostDNS{Servers: []string{"192.0.2.1"}, Searches: []string{"corp.example"}, Options: []string{"edns0", "ndots:1"}}
	pod := func(policy v1.DNSPolicy, hostNet bool, dc *v1.PodDNSConfig) *v1.Pod {
		return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u"},
			Spec: v1.PodSpec{DNSPolicy: policy, HostNetwork: hostNet, DNSConfig: dc}}
	}
	cluster := dnsSettings{ResolvConf: "/etc/resolv.conf", ClusterDNS: []string{"10.96.0.10"}, ClusterDomain: "cluster.local"}
	noCluster := dnsSettings{ResolvConf: "/etc/resolv.conf", ClusterDomain: "cluster.local"}
	two := "2"
	many := &v1.PodDNSConfig{Nameservers: []string{"192.0.2.7", "192.0.2.8", "192.0.2.9"}}
	cases := []struct {
		name      string
		pod       *v1.Pod
		host      hostDNS
		s         dnsSettings
		want      string
		warnWants []string // reasons
	}{
		{"ClusterFirst", pod(v1.DNSClusterFirst, false, nil), host, cluster,
			"search ns.svc.cluster.local svc.cluster.local cluster.local corp.example\nnameserver 10.96.0.10\noptions ndots:5\n", nil},
		{"empty policy is ClusterFirst", pod("", false, nil), host, cluster,
			"search ns.svc.cluster.local svc.cluster.local cluster.local corp.example\nnameserver 10.96.0.10\noptions ndots:5\n", nil},
		{"ClusterFirst without cluster domain keeps the host's search", pod(v1.DNSClusterFirst, false, nil), host, dnsSettings{ClusterDNS: []string{"10.96.0.10"}},
			"search corp.example\nnameserver 10.96.0.10\noptions ndots:5\n", nil},
		{"ClusterFirst with hostNetwork is Default", pod(v1.DNSClusterFirst, true, nil), host, cluster,
			"search corp.example\nnameserver 192.0.2.1\noptions edns0 ndots:1\n", nil},
		{"ClusterFirstWithHostNet", pod(v1.DNSClusterFirstWithHostNet, true, nil), host, cluster,
			"search ns.svc.cluster.local svc.cluster.local cluster.local corp.example\nnameserver 10.96.0.10\noptions ndots:5\n", nil},
		{"ClusterFirst without cluster DNS falls back to Default", pod(v1.DNSClusterFirst, false, nil), host, noCluster,
			"search corp.example\nnameserver 192.0.2.1\noptions edns0 ndots:1\n", []string{"MissingClusterDNS"}},
		{"Default", pod(v1.DNSDefault, false, nil), host, cluster,
			"search corp.example\nnameserver 192.0.2.1\noptions edns0 ndots:1\n", nil},
		{"None with dnsConfig", pod(v1.DNSNone, false, &v1.PodDNSConfig{Nameservers: []string{"1.1.1.1"}, Searches: []string{"a.b"},
			Options: []v1.PodDNSConfigOption{{Name: "ndots", Value: &two}, {Name: "rotate"}}}), host, cluster,
			"search a.b\nnameserver 1.1.1.1\noptions ndots:2 rotate\n", nil},
		{"dnsConfig appended, same option replaced", pod(v1.DNSClusterFirst, false, &v1.PodDNSConfig{Nameservers: []string{"10.96.0.10", "192.0.2.5"},
			Searches: []string{"svc.cluster.local", "extra.example"}, Options: []v1.PodDNSConfigOption{{Name: "ndots", Value: &two}, {Name: "edns0"}}}), host, cluster,
			"search ns.svc.cluster.local svc.cluster.local cluster.local corp.example extra.example\nnameserver 10.96.0.10\nnameserver 192.0.2.5\noptions ndots:2 edns0\n", nil},
		{"more than three nameservers", pod(v1.DNSDefault, false, many), host, cluster,
			"search corp.example\nnameserver 192.0.2.1\nnameserver 192.0.2.7\nnameserver 192.0.2.8\noptions edns0 ndots:1\n", []string{"DNSConfigForming"}},
		{"--resolv-conf empty disables lookups", pod(v1.DNSDefault, false, nil), hostDNS{}, dnsSettings{NoResolvConf: true},
			"search .\nnameserver 127.0.0.1\n", nil},
		// A stub's loopback nameserver is unreachable from the pod's netns.
		{"loopback only", pod(v1.DNSDefault, false, nil), hostDNS{Servers: []string{"127.0.0.53"}, Searches: []string{"lan"}, Options: []string{"edns0", "trust-ad"}}, cluster,
			"search lan\noptions edns0 trust-ad\n", []string{"DNSConfigForming"}},
		{"loopback among others", pod(v1.DNSDefault, false, nil), hostDNS{Servers: []string{"127.0.0.1", "192.0.2.1", "::1"}}, cluster,
			"nameserver 192.0.2.1\n", []string{"DNSConfigForming"}},
		{"loopback kept with hostNetwork", pod(v1.DNSDefault, true, nil), hostDNS{Servers: []string{"127.0.0.53"}}, cluster,
			"nameserver 127.0.0.53\n", nil},
		{"loopback the pod asks for is kept", pod(v1.DNSNone, false, &v1.PodDNSConfig{Nameservers: []string{"127.0.0.1"}}), host, cluster,
			"nameserver 127.0.0.1\n", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, warns := composePodDNS(c.pod, c.host, c.s)
			if got := d.render(); got != c.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, c.want)
			}
			var reasons []string
			for _, w := range warns {
				reasons = append(reasons, w.Reason)
			}
			if fmt.Sprint(reasons) != fmt.Sprint(c.warnWants) {
				t.Errorf("warnings %v, want reasons %v", warns, c.warnWants)
			}
		})
	}
}

func TestSearchLimits(t *testing.T) {
	var s []string
	for i := 0; i < 40; i++ {
		s = append(s, fmt.Sprintf("d%02d.example", i))
	}
	got, over := searchFitsLimits(s)
	if !over || len(got) != 32 || got[31] != "d31.example" {
		t.Errorf("32 paths at most: %v %v", len(got), over)
	}
	long := strings.Repeat("a", 254)
	if got, over := searchFitsLimits([]string{"a.example", long, "b.example"}); !over || fmt.Sprint(got) != "[a.example b.example]" {
		t.Errorf("a path longer than 253 is dropped: %v", got)
	}
	var wide []string
	for i := 0; i < 20; i++ {
		wide = append(wide, fmt.Sprintf("%03d.%s", i, strings.Repeat("x", 200)))
	}
	got, over = searchFitsLimits(wide)
	if !over || len(strings.Join(got, " ")) > 2048 || len(got) != 9 || got[0] != wide[0] {
		t.Errorf("the line is cut from the end to 2048 characters: %d paths, %d chars", len(got), len(strings.Join(got, " ")))
	}
}

// systemd-resolved's stub file is swapped for its upstream file, as kubeadm
// configures the kubelet; any other file is used as given.
func TestEffectiveResolvConf(t *testing.T) {
	dir := t.TempDir()
	stub := filepath.Join(dir, "stub-resolv.conf")
	plain := filepath.Join(dir, "resolv.conf")
	up := filepath.Join(dir, "upstream.conf")
	os.WriteFile(stub, []byte("nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n"), 0o644)
	os.WriteFile(plain, []byte("nameserver 192.0.2.1\n"), 0o644)
	defer func(old string) { SystemdResolvedUpstream = old }(SystemdResolvedUpstream)
	SystemdResolvedUpstream = up
	if got, swapped := EffectiveResolvConf(stub); got != stub || swapped {
		t.Errorf("no upstream file: keep the stub (%s %v)", got, swapped)
	}
	os.WriteFile(up, []byte("nameserver 192.0.2.53\nsearch lan\n"), 0o644)
	if got, swapped := EffectiveResolvConf(stub); got != up || !swapped {
		t.Errorf("stub with an upstream file: %s %v", got, swapped)
	}
	if got, _ := EffectiveResolvConf(plain); got != plain {
		t.Errorf("a real file is kept: %s", got)
	}
	os.WriteFile(up, []byte("nameserver 127.0.0.1\n"), 0o644)
	if got, _ := EffectiveResolvConf(stub); got != stub {
		t.Errorf("an upstream file with only loopback servers is no better: %s", got)
	}
}
