package runtime

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/elastic/go-seccomp-bpf/arch"
	mobyseccomp "github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/minikubelet/minikubelet/runtime/shim"
	"github.com/minikubelet/minikubelet/systemd"
)

func TestExpand(t *testing.T) {
	vars := map[string]string{"A": "1", "B": "two"}
	for in, want := range map[string]string{
		"$(A)":         "1",
		"x$(B)y":       "xtwoy",
		"$(MISSING)":   "$(MISSING)",
		"$$(A)":        "$(A)",
		"$$":           "$",
		"$A":           "$A",
		"$(A":          "$(A",
		"$()":          "$()",
		"$(A)$(B)$$$$": "1two$$",
	} {
		if got := expand(in, vars); got != want {
			t.Errorf("expand(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestContainerArgsMergeWithImage(t *testing.T) {
	img := ImageConfig{Entrypoint: []string{"/ep"}, Cmd: []string{"$(X)"}}
	env := map[string]string{"X": "expanded"}
	cases := []struct {
		c    v1.Container
		want string
	}{
		{v1.Container{}, "/ep $(X)"}, // image parts are not expanded
		{v1.Container{Args: []string{"a", "$(X)"}}, "/ep a expanded"},
		{v1.Container{Command: []string{"sh", "$(X)"}}, "sh expanded"},
		{v1.Container{Command: []string{"sh"}, Args: []string{"-c", "$$(X)"}}, "sh -c $(X)"},
	}
	for _, c := range cases {
		if got := strings.Join(containerArgs(&c.c, img, env), " "); got != c.want {
			t.Errorf("%+v: argv = %q, want %q", c.c, got, c.want)
		}
	}
}

func TestContainerEnvOrderAndFieldRefs(t *testing.T) {
	r := &Runtime{opt: Options{NodeName: "node1"}}
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p-node1", Namespace: "ns", UID: "u1", Labels: map[string]string{"app": "web"}}}
	c := &v1.Container{Name: "c", Env: []v1.EnvVar{
		{Name: "A", Value: "a"},
		{Name: "B", Value: "$(A)-$(PATH)"}, // image env is not visible to expansion
		{Name: "NAME", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
		{Name: "APP", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.labels['app']"}}},
		{Name: "NODE", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}},
		{Name: "IP", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
		{Name: "MEM", ValueFrom: &v1.EnvVarSource{ResourceFieldRef: &v1.ResourceFieldSelector{Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}}},
		{Name: "CPU", ValueFrom: &v1.EnvVarSource{ResourceFieldRef: &v1.ResourceFieldSelector{Resource: "requests.cpu", Divisor: resource.MustParse("1m")}}},
	}}
	c.Resources.Limits = v1.ResourceList{v1.ResourceMemory: resource.MustParse("64Mi")}
	c.Resources.Requests = v1.ResourceList{v1.ResourceCPU: resource.MustParse("250m")}
	env, _, err := r.containerEnv(&ContainerConfig{Pod: pod, Container: c, PodIP: "10.0.0.5", Image: ImageConfig{Env: []string{"PATH=/img", "A=image"}}}, &sandboxMeta{Hostname: "p-node1"})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(env, " ")
	want := "HOSTNAME=p-node1 PATH=/img A=a B=a-$(PATH) NAME=p-node1 APP=web NODE=node1 IP=10.0.0.5 MEM=64 CPU=250"
	if got != want {
		t.Errorf("env =\n %s\nwant\n %s", got, want)
	}
	env, _, _ = r.containerEnv(&ContainerConfig{Pod: pod, Container: &v1.Container{Name: "d"}}, &sandboxMeta{Hostname: "h"})
	if strings.Join(env, " ") != "HOSTNAME=h PATH="+defaultPath {
		t.Errorf("default env = %v", env)
	}
	bad := &v1.Container{Name: "s", Env: []v1.EnvVar{{Name: "S", ValueFrom: &v1.EnvVarSource{SecretKeyRef: &v1.SecretKeySelector{Key: "k"}}}}}
	if _, _, err := r.containerEnv(&ContainerConfig{Pod: pod, Container: bad}, &sandboxMeta{}); err == nil || !strings.Contains(err.Error(), "env S") {
		t.Errorf("secretKeyRef: %v", err)
	}
}

func TestCapabilitiesAddDrop(t *testing.T) {
	def := strings.Join(containerCapabilities(nil), ",")
	if n := len(containerCapabilities(nil)); n != 14 {
		t.Fatalf("default set has %d capabilities: %s", n, def)
	}
	got := containerCapabilities(&v1.Capabilities{Drop: []v1.Capability{"ALL"}, Add: []v1.Capability{"NET_BIND_SERVICE"}})
	if strings.Join(got, ",") != "CAP_NET_BIND_SERVICE" {
		t.Errorf("drop ALL add NET_BIND_SERVICE = %v", got)
	}
	got = containerCapabilities(&v1.Capabilities{Add: []v1.Capability{"NET_ADMIN", "cap_sys_time"}, Drop: []v1.Capability{"MKNOD", "NET_ADMIN"}})
	s := strings.Join(got, ",")
	if strings.Contains(s, "CAP_MKNOD") || strings.Contains(s, "CAP_NET_ADMIN") || !strings.Contains(s, "CAP_SYS_TIME") || len(got) != 14 {
		t.Errorf("add NET_ADMIN,SYS_TIME drop MKNOD,NET_ADMIN = %v (containerd drops after adding)", got)
	}
}

func TestResolvConf(t *testing.T) {
	host := filepath.Join(t.TempDir(), "resolv.conf")
	os.WriteFile(host, []byte("# comment\nnameserver 192.0.2.1\nsearch example.org\noptions edns0\n"), 0o644)
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns"}}
	r := &Runtime{opt: Options{HostResolvConf: host, ClusterDomain: "cluster.local"}}
	get := func() string {
		s, _, err := r.resolvConf(pod)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if got := get(); got != "search example.org\nnameserver 192.0.2.1\noptions edns0\n" {
		t.Errorf("ClusterFirst without cluster DNS falls back to the host's:\n%s", got)
	}
	r.opt.ClusterDNS = []string{"10.96.0.10"}
	if got := get(); got != "search ns.svc.cluster.local svc.cluster.local cluster.local example.org\nnameserver 10.96.0.10\noptions ndots:5\n" {
		t.Errorf("ClusterFirst:\n%s", got)
	}
	two := "2"
	pod.Spec.DNSPolicy = v1.DNSNone
	pod.Spec.DNSConfig = &v1.PodDNSConfig{Nameservers: []string{"1.1.1.1"}, Searches: []string{"a.b"}, Options: []v1.PodDNSConfigOption{{Name: "ndots", Value: &two}, {Name: "rotate"}}}
	if got := get(); got != "search a.b\nnameserver 1.1.1.1\noptions ndots:2 rotate\n" {
		t.Errorf("None + dnsConfig:\n%s", got)
	}
	pod.Spec.DNSPolicy = v1.DNSDefault
	pod.Spec.DNSConfig = nil
	if got := get(); !strings.Contains(got, "nameserver 192.0.2.1") || strings.Contains(got, "10.96") {
		t.Errorf("Default:\n%s", got)
	}
}

func TestHostPathTypes(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	os.WriteFile(file, nil, 0o644)
	ty := func(s v1.HostPathType) *v1.HostPathType { return &s }
	ok := []v1.HostPathVolumeSource{
		{Path: filepath.Join(dir, "nothing")}, // "" checks nothing
		{Path: dir, Type: ty(v1.HostPathDirectory)},
		{Path: file, Type: ty(v1.HostPathFile)},
		{Path: "/dev/null", Type: ty(v1.HostPathCharDev)},
		{Path: filepath.Join(dir, "new/dir"), Type: ty(v1.HostPathDirectoryOrCreate)},
		{Path: filepath.Join(dir, "new2/file"), Type: ty(v1.HostPathFileOrCreate)},
	}
	for _, hp := range ok {
		if err := checkHostPath("v", &hp); err != nil {
			t.Errorf("%s %v: %v", hp.Path, *orEmpty(hp.Type), err)
		}
	}
	if st, err := os.Stat(filepath.Join(dir, "new2/file")); err != nil || !st.Mode().IsRegular() {
		t.Error("FileOrCreate did not create a file")
	}
	bad := []v1.HostPathVolumeSource{
		{Path: file, Type: ty(v1.HostPathDirectory)},
		{Path: dir, Type: ty(v1.HostPathFile)},
		{Path: file, Type: ty(v1.HostPathSocket)},
		{Path: "/dev/null", Type: ty(v1.HostPathBlockDev)},
		{Path: filepath.Join(dir, "missing"), Type: ty(v1.HostPathDirectory)},
		{Path: file, Type: ty(v1.HostPathDirectoryOrCreate)},
	}
	for _, hp := range bad {
		if err := checkHostPath("v", &hp); err == nil || !strings.Contains(err.Error(), "volume v") {
			t.Errorf("%s %v: want a type error naming the volume, got %v", hp.Path, *hp.Type, err)
		}
	}
}

func orEmpty(t *v1.HostPathType) *v1.HostPathType {
	if t == nil {
		e := v1.HostPathUnset
		return &e
	}
	return t
}

func TestOOMScoreAdjPolicy(t *testing.T) {
	mk := func(req, lim v1.ResourceList) *v1.Pod {
		return &v1.Pod{Spec: v1.PodSpec{Containers: []v1.Container{{Name: "c", Resources: v1.ResourceRequirements{Requests: req, Limits: lim}}}}}
	}
	one := v1.ResourceList{v1.ResourceCPU: resource.MustParse("1"), v1.ResourceMemory: resource.MustParse("1Gi")}
	if p := mk(one, one); containerOOMScoreAdj(p, &p.Spec.Containers[0]) != -997 || systemd.GetPodQOS(p) != v1.PodQOSGuaranteed {
		t.Error("Guaranteed should get -997")
	}
	if p := mk(nil, nil); containerOOMScoreAdj(p, &p.Spec.Containers[0]) != 1000 || systemd.GetPodQOS(p) != v1.PodQOSBestEffort {
		t.Error("BestEffort should get 1000")
	}
	p := mk(v1.ResourceList{v1.ResourceMemory: resource.MustParse("1Mi")}, nil)
	if got := containerOOMScoreAdj(p, &p.Spec.Containers[0]); systemd.GetPodQOS(p) != v1.PodQOSBurstable || got < 3 || got > 999 {
		t.Errorf("Burstable with a tiny request = %d, want within [3, 999]", got)
	}
	huge := mk(v1.ResourceList{v1.ResourceMemory: resource.MustParse("100Ti")}, nil)
	if got := containerOOMScoreAdj(huge, &huge.Spec.Containers[0]); got != 3 {
		t.Errorf("Burstable with a request above capacity = %d, want 3", got)
	}
}

func TestHostnameAndUser(t *testing.T) {
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: strings.Repeat("a", 62) + "-node1"}}
	if h, _ := podHostname(pod); len(h) > 63 || strings.HasSuffix(h, "-") {
		t.Errorf("hostname %q", h)
	}
	pod.Spec.Hostname = "web"
	if h, _ := podHostname(pod); h != "web" {
		t.Errorf("spec.hostname ignored: %q", h)
	}
	yes := true
	pod.Namespace, pod.Spec.Subdomain, pod.Spec.SetHostnameAsFQDN = "ns", "svc1", &yes
	if h, err := utsHostname(pod, "web", "cluster.local"); err != nil || h != "web.svc1.ns.svc.cluster.local" {
		t.Errorf("setHostnameAsFQDN: %q %v", h, err)
	}
	if _, err := utsHostname(pod, strings.Repeat("x", 60), "cluster.local"); err == nil {
		t.Error("an FQDN longer than 64 characters was accepted")
	}
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0::/:/bin/sh\nwww:x:33:44::/:/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/group"), []byte("staff:x:50:\n"), 0o644)
	c := &v1.Container{Name: "c"}
	for _, tc := range []struct {
		image   string
		sc      v1.SecurityContext
		uid     uint32
		gid     uint32
		wantErr string
	}{
		{image: "", uid: 0, gid: 0},
		{image: "www", uid: 33, gid: 44},
		// The group part of USER is dropped, as by the kubelet with
		// containerd (kubernetes#61967, containerd#11607).
		{image: "www:staff", uid: 33, gid: 44},
		{image: "1234:5", uid: 1234, gid: 0},
		{image: "nobody-here", wantErr: "unable to find user"},
		// runAsUser replaces the image's user; uid 7 has no passwd entry.
		{image: "www", sc: v1.SecurityContext{RunAsUser: ptr(int64(7))}, uid: 7, gid: 0},
		{image: "", sc: v1.SecurityContext{RunAsUser: ptr(int64(33))}, uid: 33, gid: 44},
		{image: "", sc: v1.SecurityContext{RunAsNonRoot: ptr(true)}, wantErr: "image will run as root"},
		{image: "www", sc: v1.SecurityContext{RunAsNonRoot: ptr(true)}, wantErr: "non-numeric user (www)"},
		{image: "1000", sc: v1.SecurityContext{RunAsNonRoot: ptr(true), RunAsGroup: ptr(int64(9))}, uid: 1000, gid: 9},
	} {
		spec := &struct{ UID, GID uint32 }{}
		s := newSpecForTest(root)
		err := resolveUser(s, &v1.Pod{}, c, tc.sc, tc.image)
		spec.UID, spec.GID = s.UID, s.GID
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("user %q %+v: err %v, want %q", tc.image, tc.sc, err, tc.wantErr)
			}
			continue
		}
		if err != nil || spec.UID != tc.uid || spec.GID != tc.gid {
			t.Errorf("user %q %+v: %d:%d %v, want %d:%d", tc.image, tc.sc, spec.UID, spec.GID, err, tc.uid, tc.gid)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func newSpecForTest(root string) *shim.ContainerSpec { return &shim.ContainerSpec{Rootfs: root} }

// seccompData lays out struct seccomp_data the way the compiled program
// reads it; x/net/bpf's VM loads words big-endian, so each word is stored
// big-endian at the offset the (little-endian) program expects.
func seccompData(nr uint32, auditArch uint32, args ...uint64) []byte {
	b := make([]byte, 64)
	binary.BigEndian.PutUint32(b[offNr:], nr)
	binary.BigEndian.PutUint32(b[offArch:], auditArch)
	for i, a := range args {
		lo, hi := argOffsets(uint(i))
		binary.BigEndian.PutUint32(b[lo:], uint32(a))
		binary.BigEndian.PutUint32(b[hi:], uint32(a>>32))
	}
	return b
}

func runFilter(t *testing.T, prog []unix.SockFilter, data []byte) uint32 {
	t.Helper()
	raw := make([]bpf.RawInstruction, len(prog))
	for i, f := range prog {
		raw[i] = bpf.RawInstruction{Op: f.Code, Jt: f.Jt, Jf: f.Jf, K: f.K}
	}
	ins, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatal("cannot disassemble the program")
	}
	vm, err := bpf.NewVM(ins)
	if err != nil {
		t.Fatal(err)
	}
	v, err := vm.Run(data)
	if err != nil {
		t.Fatal(err)
	}
	return uint32(v)
}

func TestSeccompCompilerSemantics(t *testing.T) {
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("the VM check assumes a little-endian host")
	}
	info := arch.X86_64
	enosys := uint(unix.ENOSYS)
	ls := &specs.LinuxSeccomp{
		DefaultAction: specs.ActErrno,
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"read", "write"}, Action: specs.ActAllow},
			{Names: []string{"personality"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Value: 0x20008, Op: specs.OpEqualTo}}},
			{Names: []string{"clone"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Value: 0x7E020000, ValueTwo: 0, Op: specs.OpMaskedEqual}}},
			{Names: []string{"socket"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Value: 40, Op: specs.OpNotEqual}}},
			{Names: []string{"ioctl"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 1, Value: 1 << 33, Op: specs.OpLessThan}}},
			{Names: []string{"clone3"}, Action: specs.ActErrno, ErrnoRet: &enosys},
		},
	}
	prog, err := compileSeccomp(ls, info)
	if err != nil {
		t.Fatal(err)
	}
	id := uint32(info.ID)
	nr := func(n string) uint32 { return uint32(info.SyscallNames[n]) }
	eperm := uint32(retErrno) | uint32(unix.EPERM)
	for _, tc := range []struct {
		name string
		data []byte
		want uint32
	}{
		{"read", seccompData(nr("read"), id), retAllow},
		{"mount (not listed)", seccompData(nr("mount"), id), eperm},
		{"personality(0x20008)", seccompData(nr("personality"), id, 0x20008), retAllow},
		{"personality(0x1)", seccompData(nr("personality"), id, 1), eperm},
		{"personality(hi bits set)", seccompData(nr("personality"), id, 1<<32|0x20008), eperm},
		{"clone(SIGCHLD)", seccompData(nr("clone"), id, uint64(unix.SIGCHLD)), retAllow},
		{"clone(CLONE_NEWUSER)", seccompData(nr("clone"), id, unix.CLONE_NEWUSER), eperm},
		{"socket(AF_INET)", seccompData(nr("socket"), id, unix.AF_INET), retAllow},
		{"socket(AF_VSOCK)", seccompData(nr("socket"), id, unix.AF_VSOCK), eperm},
		{"ioctl(x, 5)", seccompData(nr("ioctl"), id, 3, 5), retAllow},
		{"ioctl(x, 1<<34)", seccompData(nr("ioctl"), id, 3, 1<<34), eperm},
		{"clone3", seccompData(nr("clone3"), id), retErrno | uint32(unix.ENOSYS)},
		{"x32 ABI", seccompData(nr("read")|x32SyscallBit, id), eperm},
		{"i386 not listed in the profile", seccompData(nr("read"), uint32(arch.I386.ID)), eperm},
		{"other arch", seccompData(nr("read"), uint32(arch.AARCH64.ID)), eperm},
	} {
		if got := runFilter(t, prog, tc.data); got != tc.want {
			t.Errorf("%s: filter returned %#x, want %#x", tc.name, got, tc.want)
		}
	}
}

func TestDefaultProfileCompiles(t *testing.T) {
	caps := DefaultCapabilities
	ls, err := mobyseccomp.GetDefaultProfile(&specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: caps}}})
	if err != nil {
		t.Fatal(err)
	}
	prog, err := compileSeccomp(ls, arch.X86_64)
	if err != nil {
		t.Fatal(err)
	}
	id := uint32(arch.X86_64.ID)
	nr := func(n string) uint32 { return uint32(arch.X86_64.SyscallNames[n]) }
	for name, want := range map[string]uint32{"read": retAllow, "execve": retAllow, "mount": retErrno | uint32(unix.EPERM),
		"kexec_load": retErrno | uint32(unix.EPERM), "clone3": retErrno | uint32(unix.ENOSYS)} {
		if got := runFilter(t, prog, seccompData(nr(name), id)); got != want {
			t.Errorf("default profile: %s → %#x, want %#x", name, got, want)
		}
		// The same names with i386's numbers (the profile lists x86 for amd64).
		if n, ok := arch.I386.SyscallNames[name]; ok {
			if got := runFilter(t, prog, seccompData(uint32(n), uint32(arch.I386.ID))); got != want {
				t.Errorf("default profile, i386 ABI: %s (%d) → %#x, want %#x", name, n, got, want)
			}
		}
	}
	// socketcall exists on i386 only: its rule must use i386's number.
	if n, ok := arch.I386.SyscallNames["socketcall"]; ok {
		if got := runFilter(t, prog, seccompData(uint32(n), uint32(arch.I386.ID))); got != retAllow {
			t.Errorf("i386 socketcall → %#x, want allow", got)
		}
	}
	t.Logf("default profile: %d BPF instructions", len(prog))
}

// Status is read from the records alone once a container has exited: the
// daemon needs no supervisor for it (after a reboot, say).
func TestStatusFromRecordsAndOOMMark(t *testing.T) {
	base := t.TempDir()
	r, err := New(Options{RootDir: base, LogDir: filepath.Join(base, "logs"), Exe: "/bin/true"})
	if err != nil {
		t.Fatal(err)
	}
	uid, id := types.UID("u-1"), "0123456789abcdef"
	dir := r.ContainerDir(uid, id)
	os.MkdirAll(dir, 0o750)
	shim.WriteJSONAtomic(filepath.Join(dir, containerMetaFile), containerMeta{ID: id, PodUID: uid, Name: "c", Attempt: 2})
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	shim.WriteJSONAtomic(filepath.Join(dir, shim.ContainerStateFile), shim.ContainerState{ID: id, PID: 42, CreatedAt: start, StartedAt: start})
	shim.WriteJSONAtomic(filepath.Join(dir, shim.ExitFile), shim.ExitRecord{ID: id, ExitCode: 137, Signal: 9, Reason: "Error", StartedAt: start, FinishedAt: start.Add(time.Minute)})
	st, err := r.ContainerStatus(context.Background(), uid, id)
	if err != nil || st.State != ContainerExited || st.ExitCode != 137 || st.Reason != "Error" || st.Attempt != 2 || !st.FinishedAt.Equal(start.Add(time.Minute)) {
		t.Fatalf("status = %+v, %v", st, err)
	}
	if err := r.RecordOOMKill(uid, id); err != nil {
		t.Fatal(err)
	}
	if st, _ := r.ContainerStatus(context.Background(), uid, id); st.Reason != "OOMKilled" || st.ExitCode != 137 {
		t.Errorf("after RecordOOMKill: %+v", st)
	}
	if err := r.RecordOOMKill(uid, "no-such-container"); err == nil {
		t.Error("RecordOOMKill of an unknown container succeeded")
	}
	list, _ := r.ListContainers(context.Background(), uid)
	if len(list) != 1 || list[0].ID != id {
		t.Errorf("ListContainers = %+v", list)
	}
}
