package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func validateOpts(explain bool) *validateOptions {
	return &validateOptions{nodeOptions: nodeOptions{nodeName: "node1", rootDir: "/var/lib/minikubelet"}, explain: explain, cgroupRoot: "kubepods", cgroupDriver: "systemd"}
}

// The kubeadm etcd manifest explained: the lines a newcomer needs.
func TestExplainKubeadmEtcd(t *testing.T) {
	var out, errOut bytes.Buffer
	if n := runValidate(&out, &errOut, []string{"../../manifests/testdata/etcd.yaml"}, validateOpts(true)); n != 0 {
		t.Fatalf("%d problems:\n%s", n, out.String())
	}
	text := out.String()
	uid := regexp.MustCompile(`uid\s+([0-9a-f]{32})`).FindStringSubmatch(text)
	if uid == nil {
		t.Fatalf("no UID line:\n%s", text)
	}
	wants := []string{
		"Pod kube-system/etcd-node1",
		"QoS class: Burstable",
		"kubepods.slice\n",
		"└─ kubepods-burstable.slice\n",
		"└─ kubepods-burstable-pod" + uid[1] + ".slice\n",
		"/sys/fs/cgroup/<controller>/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uid[1] + ".slice",
		"├─ minikubelet-<sandbox-id>.scope",
		"└─ minikubelet-<etcd-id>.scope",
		// cpu 100m request → shares 102; no limits → no quota, no memory max.
		"container etcd           cpu.shares=102 (CPUShares; v2 cpu.weight=4), cpu.cfs_quota_us=-1 (no cpu limit), memory: no limit",
		"pod slice                cpu.shares=102",
		"net     the HOST's (hostNetwork: true)",
		"uts     the HOST's",
		"ipc     the pod's own",
		"mnt     its own mount namespace",
		"pid     its own",
		"/var/lib/etcd                hostPath /var/lib/etcd (DirectoryOrCreate",
		"/etc/kubernetes/pki/etcd     hostPath /etc/kubernetes/pki/etcd (DirectoryOrCreate",
		"/etc/hosts                   /var/lib/minikubelet/pods/" + uid[1] + "/etc-hosts: a copy of the node's /etc/hosts",
		"/dev/shm                     /var/lib/minikubelet/pods/" + uid[1] + "/shm: the pod's 64 MiB tmpfs",
		"etcd (image registry.k8s.io/etcd:3.5.12-0, pull policy IfNotPresent):",
		"/etc/resolv.conf", "/etc/hostname", "/proc ", "/sys ",
		"etcd startup   GET http://127.0.0.1:2381/health?serializable=false; after 10s, every 10s, timeout 15s, 24 failure(s)",
		"etcd liveness  GET http://127.0.0.1:2381/health?exclude=NOSPACE&serializable=true",
		"priority   system-node-critical (2000001000)",
		"seccomp RuntimeDefault",
		"restart    Always",
		"terminationGracePeriodSeconds=30s",
	}
	for _, w := range wants {
		if !strings.Contains(text, w) {
			t.Errorf("explain output lacks %q", w)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", text)
	}
}

// On a cgroupfs host (or --cgroup-driver cgroupfs) the plan shows the real
// cgroup paths: no slices, scopes or systemctl hints.
func TestExplainCgroupfs(t *testing.T) {
	var out, errOut bytes.Buffer
	opts := validateOpts(true)
	opts.cgroupDriver = "cgroupfs"
	if n := runValidate(&out, &errOut, []string{"../../manifests/testdata/etcd.yaml"}, opts); n != 0 {
		t.Fatalf("%d problems:\n%s", n, out.String())
	}
	text := out.String()
	uid := regexp.MustCompile(`uid\s+([0-9a-f]{32})`).FindStringSubmatch(text)
	if uid == nil {
		t.Fatalf("no UID line:\n%s", text)
	}
	for _, w := range []string{
		"Cgroups (cgroupfs driver",
		"  /kubepods\n",
		"└─ /kubepods/burstable\n",
		"└─ /kubepods/burstable/pod" + uid[1] + "\n",
		"├─ /kubepods/burstable/pod" + uid[1] + "/<sandbox-id>",
		"└─ /kubepods/burstable/pod" + uid[1] + "/<etcd-id>",
		"pod cgroup               cpu.shares=102",
		"minikubelet describe pod etcd",
	} {
		if !strings.Contains(text, w) {
			t.Errorf("explain output lacks %q", w)
		}
	}
	for _, no := range []string{"systemctl", ".slice", ".scope", "CPUShares", "MemoryLimit", "TasksMax"} {
		if strings.Contains(text, no) {
			t.Errorf("cgroupfs explain mentions %q", no)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", text)
	}
}

// validate takes --cgroup-driver like run, and its help names the flags plainly.
func TestValidateCgroupDriverFlag(t *testing.T) {
	out, err := runCLI(t, "validate", "--explain", "--cgroup-driver", "cgroupfs", "../../manifests/testdata/etcd.yaml")
	if err != nil || !strings.Contains(out, "Cgroups (cgroupfs driver") {
		t.Fatalf("validate --cgroup-driver cgroupfs: %v\n%s", err, out)
	}
	if _, err := runCLI(t, "validate", "--cgroup-driver", "nope", "../../manifests/testdata/etcd.yaml"); err == nil || !strings.Contains(err.Error(), "--cgroup-driver") {
		t.Errorf("bad --cgroup-driver: %v", err)
	}
	help, _ := runCLI(t, "validate", "--help")
	if strings.Contains(help, "--cgroup-root run") || !strings.Contains(help, "--cgroup-driver string") {
		t.Errorf("validate --help:\n%s", help)
	}
}

// A Guaranteed pod sits under the root, and its limits are written.
func TestExplainGuaranteed(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "g.yaml")
	must(t, os.WriteFile(path, []byte(`apiVersion: v1
kind: Pod
metadata: {name: g}
spec:
  shareProcessNamespace: true
  volumes: [{name: cache, emptyDir: {}}]
  containers:
  - name: app
    image: busybox:1.36
    resources: {limits: {cpu: 500m, memory: 64Mi}}
    volumeMounts: [{name: cache, mountPath: /cache}]
`), 0o644))
	var out, errOut bytes.Buffer
	if n := runValidate(&out, &errOut, []string{path}, validateOpts(true)); n != 0 {
		t.Fatalf("%d problems:\n%s", n, out.String())
	}
	text := out.String()
	for _, w := range []string{
		"QoS class: Guaranteed",
		"└─ kubepods-pod",
		"Guaranteed pods sit directly under the root",
		"cpu.cfs_quota_us=50000 per cfs_period_us=100000 (CPUQuota=50%)",
		"memory.limit_in_bytes=67108864 (64Mi",
		"cpu.shares=512",
		"pid     the pod's (shareProcessNamespace: true)",
		"net     the pod's own",
		"/cache                       emptyDir cache: /var/lib/minikubelet/pods/",
	} {
		if !strings.Contains(text, w) {
			t.Errorf("explain output lacks %q", w)
		}
	}
	if strings.Contains(text, "kubepods-burstable") || strings.Contains(text, "pid     its own") {
		t.Errorf("Guaranteed/shared-pid pod explained wrongly")
	}
	if t.Failed() {
		t.Logf("output:\n%s", text)
	}
}

func TestValidateProblems(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		must(t, os.WriteFile(p, []byte(content), 0o644))
		return p
	}
	good := write("good.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {containers: [{name: c, image: busybox}]}\n")
	bad := write("bad.yaml", `apiVersion: v1
kind: Pod
metadata: {name: web2}
spec:
  containers:
  - name: c
    image: busybox
    resources: {limits: {memory: 12XB}}
    bogus: 1
  volumes: [{name: s, secret: {secretName: x}}]
`)
	dup := write("dup.yml", "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {containers: [{name: c, image: nginx}]}\n")
	backup := write("good.yaml~", "apiVersion: v1\nkind: Pod\nmetadata: {name: other}\nspec: {containers: [{name: c, image: busybox}]}\n")

	var out, errOut bytes.Buffer
	n := runValidate(&out, &errOut, []string{good, bad, dup, backup}, validateOpts(false))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if n != len(lines) {
		t.Errorf("%d problems counted, %d lines printed", n, len(lines))
	}
	for _, want := range []string{
		bad + ": spec.containers[0].bogus: unknown field",
		bad + ": spec.containers[0].resources.limits.memory: Invalid value: \"12XB\"",
		dup + ": metadata.name: Duplicate value: \"web\": pod default/web-node1 is already defined by " + good,
		backup + ": the daemon skips this file in the manifest folder (editor backup file)",
	} {
		found := false
		for _, l := range lines {
			if strings.HasPrefix(l, want) {
				found = true
			}
		}
		if !found {
			t.Errorf("no line starting with %q in:\n%s", want, out.String())
		}
	}
	if !strings.Contains(errOut.String(), good+": valid: static pod default/web-node1") {
		t.Errorf("no confirmation for the good file: %q", errOut.String())
	}

	// Through cobra: exit status 1 on problems, 0 when all valid.
	root := newRootCmd()
	root.SetOut(&bytes.Buffer{})
	root.SetErr(&bytes.Buffer{})
	root.SetArgs([]string{"validate", "--node-name", "node1", bad})
	var ee *exitError
	if err := root.Execute(); !errors.As(err, &ee) || ee.code != 1 {
		t.Errorf("validate of a bad file: %v, want exit status 1", err)
	}
	root = newRootCmd()
	root.SetOut(&bytes.Buffer{})
	root.SetErr(&bytes.Buffer{})
	root.SetArgs([]string{"validate", "--node-name", "node1", good, "../../manifests/testdata/kube-apiserver.yaml", "../../examples/manifests/demo.yaml"})
	if err := root.Execute(); err != nil {
		t.Errorf("validate of valid files: %v", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
