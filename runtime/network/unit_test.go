package network

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
)

func TestHostPortOverlaps(t *testing.T) {
	cases := []struct {
		a, b HostPort
		want bool
	}{
		{HostPort{HostPort: 80}, HostPort{HostPort: 80, Protocol: "TCP"}, true},     // TCP is the default
		{HostPort{HostPort: 80}, HostPort{HostPort: 80, Protocol: "udp"}, false},    // other protocol
		{HostPort{HostPort: 80}, HostPort{HostPort: 81}, false},                     // other port
		{HostPort{HostPort: 80}, HostPort{HostPort: 80, HostIP: "127.0.0.1"}, true}, // wildcard vs specific
		{HostPort{HostPort: 80, HostIP: "0.0.0.0"}, HostPort{HostPort: 80, HostIP: "10.0.0.1"}, true},
		{HostPort{HostPort: 80, HostIP: "::"}, HostPort{HostPort: 80, HostIP: "10.0.0.1"}, true},
		{HostPort{HostPort: 80, HostIP: "127.0.0.1"}, HostPort{HostPort: 80, HostIP: "10.0.0.1"}, false},
		{HostPort{HostPort: 80, HostIP: "127.0.0.1"}, HostPort{HostPort: 80, HostIP: "127.0.0.1"}, true},
	}
	for _, c := range cases {
		if got := c.a.overlaps(c.b); got != c.want {
			t.Errorf("%v overlaps %v = %v, want %v", c.a, c.b, got, c.want)
		}
		if got := c.b.overlaps(c.a); got != c.want {
			t.Errorf("%v overlaps %v = %v, want %v (symmetry)", c.b, c.a, got, c.want)
		}
	}
}

func TestHostPortRegistry(t *testing.T) {
	h := newHostPorts()
	a := PodRef{"default", "a-node", "ua"}
	b := PodRef{"default", "b-node", "ub"}
	if err := h.reserve(a, []HostPort{{HostPort: 8080, ContainerPort: 80}}); err != nil {
		t.Fatal(err)
	}
	if err := h.reserve(a, []HostPort{{HostPort: 8080, ContainerPort: 80}}); err != nil {
		t.Fatalf("a pod must not conflict with itself: %v", err)
	}
	err := h.reserve(b, []HostPort{{HostPort: 9090}, {HostPort: 8080, HostIP: "127.0.0.1"}})
	var c *HostPortConflictError
	if !errors.As(err, &c) || c.Holder != a || c.Port.HostPort != 8080 || c.Reason() != "HostPortConflict" {
		t.Fatalf("conflict = %v", err)
	}
	for _, want := range []string{"default/b-node", "127.0.0.1:8080/TCP", "default/a-node (uid ua)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if _, ok := h.holders()["ub"]; ok {
		t.Fatal("a refused pod must hold nothing")
	}
	if err := h.reserve(b, []HostPort{{HostPort: 8080, Protocol: "UDP"}}); err != nil {
		t.Fatalf("UDP 8080 is free: %v", err)
	}
	h.release("ua")
	if err := h.reserve(PodRef{UID: "uc"}, []HostPort{{HostPort: 8080}}); err != nil {
		t.Fatalf("released port: %v", err)
	}
}

func TestPortMappingsRoundTripThroughCacheJSON(t *testing.T) {
	in := []HostPort{{HostPort: 80, ContainerPort: 8080, Protocol: "TCP", HostIP: "127.0.0.1"}, {HostPort: 53, ContainerPort: 53, Protocol: "UDP"}, {ContainerPort: 9000}}
	b, err := json.Marshal(map[string]any{"portMappings": toPortMappings(in)})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"protocol":"tcp"`) {
		t.Errorf("portmap wants lower-case protocols: %s", b)
	}
	var args map[string]any
	json.Unmarshal(b, &args)
	out := fromCapabilityArgs(args)
	if len(out) != 2 || out[0] != in[0] || out[1] != in[1] {
		t.Fatalf("round trip = %+v, want %+v (port without hostPort dropped)", out, in[:2])
	}
}

// The name the Debian bridge plugin gives its masquerade chain, observed
// with CNI_CONTAINERID=abc on network "mkl".
func TestMasqChainName(t *testing.T) {
	if got := masqChainName("mkl", "abc"); got != "CNI-097329f483573878884a7a51" {
		t.Fatalf("masqChainName = %s", got)
	}
}

func TestDefaultConflist(t *testing.T) {
	b, err := DefaultConflist("10.86.0.0/16", "/var/lib/minikubelet/cni/ipam")
	if err != nil {
		t.Fatal(err)
	}
	list, err := libcni.ConfListFromBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(pluginTypes(list), ","); got != "bridge,host-local,portmap" {
		t.Fatalf("plugin types = %s", got)
	}
	for _, want := range []string{`"bridge": "mkl0"`, `"subnet": "10.86.0.0/16"`, `"dataDir": "/var/lib/minikubelet/cni/ipam"`, `"portMappings": true`, `"snat": true`, `"ipMasq": false`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("default conflist lacks %s:\n%s", want, b)
		}
	}
	if _, err := DefaultConflist("10.86.0.0/33", "/x"); err == nil {
		t.Error("bad CIDR accepted")
	}
}

func TestFirstValidConfigInLexicalOrderAndNoDefaultWritten(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("05-broken.conflist", `{"cniVersion": "1.0.0", "name": `)
	write("20-b.conflist", `{"cniVersion":"1.0.0","name":"b","plugins":[{"type":"bridge"}]}`)
	write("10-a.conf", `{"cniVersion":"1.0.0","name":"a","type":"ptp"}`)
	write("README", `not a config`)
	m, err := New(Config{ConfDir: dir, RootDir: t.TempDir(), BinDirs: []string{t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	st := m.Status()
	if st.ConfFile != filepath.Join(dir, "10-a.conf") || st.Network != "a" || st.WroteDefault {
		t.Fatalf("status = %+v, want 10-a.conf (05-broken skipped)", st)
	}
	if !st.LoopbackOnly || !strings.Contains(st.Reason, "ptp") {
		t.Fatalf("ptp is not in an empty bin dir: status = %+v", st)
	}
	if _, err := os.Stat(filepath.Join(dir, DefaultConfFile)); !os.IsNotExist(err) {
		t.Fatal("default conflist written although a config exists")
	}
}

func TestNewRequiresRootDirAndValidCIDR(t *testing.T) {
	if _, err := New(Config{ConfDir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "RootDir") {
		t.Errorf("missing RootDir: %v", err)
	}
	if _, err := New(Config{ConfDir: t.TempDir(), RootDir: t.TempDir(), PodCIDR: "nope"}); err == nil || !strings.Contains(err.Error(), "--pod-cidr") {
		t.Errorf("bad CIDR: %v", err)
	}
}

// The default conflist lives under the root dir, never in the conf dir
// (another runtime would pick it up there); an unusable conf dir (here:
// below a regular file) does not fail the node either.
func TestDefaultConflistUnderRootDir(t *testing.T) {
	confDir, root := t.TempDir(), t.TempDir()
	m, err := New(Config{ConfDir: confDir, RootDir: root, BinDirs: []string{t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	if st := m.Status(); st.ConfFile != DefaultConfPath(root) || !st.WroteDefault {
		t.Fatalf("status %+v, want the default under the root dir", st)
	}
	if ents, _ := os.ReadDir(confDir); len(ents) != 0 {
		t.Fatalf("the conf dir %s was written: %v", confDir, ents)
	}
}

func TestDefaultConflistConfDirUnusable(t *testing.T) {
	tmp := t.TempDir()
	blocker := filepath.Join(tmp, "file")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	m, err := New(Config{ConfDir: filepath.Join(blocker, "net.d"), RootDir: root, BinDirs: []string{t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	if st := m.Status(); st.ConfFile != filepath.Join(root, "cni", "net.d", DefaultConfFile) || !st.WroteDefault {
		t.Fatalf("status %+v, want the default under the root dir", st)
	}
}

// TestDefaultConflistOnAFullRootDir (issue 14, chaos scenario 4): a daemon
// started while --root-dir is full used to lose pod networking for its whole
// life ("the default cannot be written": loopback only, even once space
// returned). The default already on disk is not written again, and one that
// cannot be written (here: net.d is a regular file) is used from memory.
func TestDefaultConflistOnAFullRootDir(t *testing.T) {
	root := t.TempDir()
	cfg := Config{ConfDir: t.TempDir(), RootDir: root, BinDirs: []string{t.TempDir()}}
	if _, err := New(cfg); err != nil {
		t.Fatal(err)
	}
	path := DefaultConfPath(root)
	// Read-only: a rewrite would fail only for non-root, so compare the inode.
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(cfg); err != nil {
		t.Fatalf("second start: %v", err)
	}
	after, _ := os.Stat(path)
	if !os.SameFile(before, after) {
		t.Fatalf("%s was written again although its content did not change", path)
	}

	root2 := t.TempDir()
	os.MkdirAll(filepath.Join(root2, "cni"), 0o755)
	if err := os.WriteFile(filepath.Join(root2, "cni", "net.d"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := New(Config{ConfDir: t.TempDir(), RootDir: root2, BinDirs: []string{t.TempDir()}})
	if err != nil {
		t.Fatalf("a default conflist that cannot be written failed the network: %v", err)
	}
	if st := m.Status(); st.Network != "minikubelet" || st.ConfFile != DefaultConfPath(root2) {
		t.Fatalf("status %+v, want the default network used from memory", st)
	}
}
