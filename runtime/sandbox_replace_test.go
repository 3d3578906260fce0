package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// podMounts lists mount points under the pod dir, read from mountinfo.
func podMounts(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			out = append(out, f[4])
		}
	}
	return out
}

// A RunSandbox that fails in an existing pod dir (the pod's earlier
// sandbox died) removes what it made and keeps the records of before.
func TestFailedRunSandboxKeepsEarlierPodState(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	pod := testPod("keep", sh("c", "true"))
	size := resource.MustParse("1Mi")
	pod.Spec.Volumes = []v1.Volume{{Name: "mem", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{Medium: v1.StorageMediumMemory, SizeLimit: &size}}}}
	// Refused after /dev/shm and the volumes are mounted, before the pause starts.
	pod.Spec.SecurityContext = &v1.PodSecurityContext{Sysctls: []v1.Sysctl{{Name: "kernel.panic", Value: "1"}}}
	dir := f.rt.PodDir(pod.UID)
	earlier := map[string]string{
		"status.json":                     `{"phase":"Running"}`,
		"mkl/pod.json":                    `{"pod":{}}`,
		"containers/0123abcd/exit.json":   `{"exitCode":3}`,
		"containers/0123abcd/daemon.json": `{"name":"c","attempt":0}`,
	}
	for name, content := range earlier {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o750)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.rt.RunSandbox(ctx, SandboxConfig{Pod: pod}); err == nil || !strings.Contains(err.Error(), "kernel.panic") {
		t.Fatalf("RunSandbox with an unsafe sysctl: %v", err)
	}
	for name, content := range earlier {
		if b, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(b) != content {
			t.Errorf("%s after the failed RunSandbox: %q %v, want %q", name, b, err, content)
		}
	}
	if m := podMounts(t, dir); len(m) > 0 {
		t.Errorf("mounts left by the failed RunSandbox: %v", m)
	}
	for _, made := range []string{"sandbox", "shm", "volumes", "etc-hosts", "resolv.conf"} {
		if _, err := os.Lstat(filepath.Join(dir, made)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s, made by the failed RunSandbox, left behind: %v", made, err)
		}
	}

	// A fresh pod's dir is all the call's own: it goes entirely.
	fresh := testPod("fresh", sh("c", "true"))
	fresh.Spec.SecurityContext = pod.Spec.SecurityContext
	if _, err := f.rt.RunSandbox(ctx, SandboxConfig{Pod: fresh}); err == nil {
		t.Fatal("RunSandbox with an unsafe sysctl succeeded")
	}
	if _, err := os.Stat(f.rt.PodDir(fresh.UID)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("fresh pod dir left behind: %v", err)
	}
}

// A sandbox replaced in its pod dir: the stale netns pin that StopSandbox
// keeps (for CNI DEL) does not stop the next RunSandbox; a failed
// replacement keeps the exit records of the containers that ran; and
// RemoveSandbox leaves no mount.
func TestSandboxReplacedInSamePodDir(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	pod := testPod("again", sh("c", "exit 3"))
	sb1, ccs := f.run(ctx, pod, nil)
	id := ccs["c"].ID
	if st, err := f.rt.WaitContainer(ctx, pod.UID, id); err != nil || st.ExitCode != 3 {
		t.Fatalf("WaitContainer: %+v %v", st, err)
	}
	if err := f.rt.StopSandbox(ctx, pod.UID); err != nil {
		t.Fatal(err)
	}
	if st, _ := f.rt.SandboxStatus(ctx, pod.UID); st.NetNSPath == "" {
		t.Fatalf("StopSandbox dropped the netns pin (CNI DEL needs it): %+v", st)
	}
	exitFile := filepath.Join(f.rt.PodDir(pod.UID), "containers", id, "exit.json")
	record, err := os.ReadFile(exitFile)
	if err != nil {
		t.Fatal(err)
	}

	// A replacement that fails late (the pause is up and pinned, placing
	// it fails) keeps what the earlier sandbox left.
	_, err = f.rt.RunSandbox(ctx, SandboxConfig{Pod: pod, Place: func(ctx context.Context, pids []int) error {
		return errors.New("no scope for you")
	}})
	if err == nil || !strings.Contains(err.Error(), "no scope for you") {
		t.Fatalf("replacement with a failing Place: %v", err)
	}
	if b, err := os.ReadFile(exitFile); err != nil || string(b) != string(record) {
		t.Errorf("exit record after the failed replacement: %q %v, want %q", b, err, record)
	}
	if st, err := f.rt.ContainerStatus(ctx, pod.UID, id); err != nil || st.State != ContainerExited || st.ExitCode != 3 {
		t.Errorf("container status after the failed replacement: %+v %v", st, err)
	}

	sb2, err := f.rt.RunSandbox(ctx, SandboxConfig{Pod: pod})
	if err != nil {
		t.Fatalf("RunSandbox again in the same pod dir: %v", err)
	}
	if sb2.PID == 0 || sb2.PID == sb1.PID || sb2.NetNSPath == "" {
		t.Fatalf("second sandbox: %+v (first %+v)", sb2, sb1)
	}
	var pinned, live os.FileInfo
	if pinned, err = os.Stat(sb2.NetNSPath); err == nil {
		live, err = os.Stat(fmt.Sprintf("/proc/%d/ns/net", sb2.PID))
	}
	if err != nil || !os.SameFile(pinned, live) {
		t.Errorf("the pin %s is not the new pause's network namespace (%v)", sb2.NetNSPath, err)
	}
	if n := strings.Count(strings.Join(podMounts(t, f.rt.PodDir(pod.UID)), "\n"), "/sandbox/netns"); n != 1 {
		t.Errorf("%d netns pins in the pod dir, want 1", n)
	}
	if _, err := os.Stat(exitFile); err != nil {
		t.Errorf("exit record gone after the replacement: %v", err)
	}

	if err := f.rt.RemoveSandbox(ctx, pod.UID); err != nil {
		t.Fatal(err)
	}
	if m := podMounts(t, f.rt.PodDir(pod.UID)); len(m) > 0 {
		t.Errorf("mounts left by RemoveSandbox: %v", m)
	}
}
