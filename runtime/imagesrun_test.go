package runtime

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/minikubelet/minikubelet/runtime/shim"
)

// specFor runs buildSpec for one container of pod on the given root (a
// directory shaped like an unpacked image) with an image config.
func specFor(t *testing.T, pod *v1.Pod, root string, img ImageConfig) (*shim.ContainerSpec, error) {
	t.Helper()
	base := t.TempDir()
	r := &Runtime{opt: Options{RootDir: base, LogDir: filepath.Join(base, "logs"), NodeName: "node1", ClusterDomain: "cluster.local"}}
	dir := filepath.Join(base, "ctr")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	cfg := ContainerConfig{Pod: pod, Container: &pod.Spec.Containers[0], Rootfs: Rootfs{Path: root}, Image: img}
	return r.buildSpec(&cfg, &sandboxMeta{Hostname: "h"}, "0123456789abcdef", dir)
}

func unitPod(c v1.Container) *v1.Pod {
	return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p-node1", Namespace: "default", UID: "11111111-2222-4333-8444-555555555555"},
		Spec: v1.PodSpec{Containers: []v1.Container{c}}}
}

// $(VAR) in command and args sees only the container's own env, as the
// kubelet expands them (issue 12, item 4): not the image's env, nor
// HOSTNAME or the default PATH the runtime adds.
func TestArgsExpandOnlyTheContainersOwnEnv(t *testing.T) {
	c := v1.Container{Name: "c",
		Command: []string{"/bin/run", "$(JAVA_HOME)", "$(HOSTNAME)", "$(PATH)", "$(MINE)", "$$(MINE)", "$(LATER)"},
		Args:    []string{"$(FROM_FIELD)", "$(MINE)$$"},
		Env: []v1.EnvVar{{Name: "MINE", Value: "mine"}, {Name: "FROM_FIELD", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
			{Name: "LATER", Value: "later"}, {Name: "MINE", Value: "mine2"}}}
	spec, err := specFor(t, unitPod(c), t.TempDir(), ImageConfig{Env: []string{"JAVA_HOME=/opt/java", "PATH=/img/bin"}})
	if err != nil {
		t.Fatal(err)
	}
	want := "/bin/run $(JAVA_HOME) $(HOSTNAME) $(PATH) mine2 $(MINE) later p-node1 mine2$"
	if got := strings.Join(spec.Args, " "); got != want {
		t.Errorf("argv = %q\nwant   %q", got, want)
	}
}

// A hostPath without a type whose path is missing is created as a 0755
// directory, as containerd does, not refused (issue 12, item 5).
func TestHostPathWithoutTypeIsCreated(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "not", "there")
	c := v1.Container{Name: "c", Command: []string{"/x"}, VolumeMounts: []v1.VolumeMount{{Name: "h", MountPath: "/data"}}}
	pod := unitPod(c)
	pod.Spec.Volumes = []v1.Volume{{Name: "h", VolumeSource: v1.VolumeSource{HostPath: &v1.HostPathVolumeSource{Path: missing}}}}
	spec, err := specFor(t, pod, t.TempDir(), ImageConfig{})
	if err != nil {
		t.Fatalf("hostPath without type on a missing path: %v", err)
	}
	st, err := os.Stat(missing)
	if err != nil || !st.IsDir() || st.Mode().Perm() != 0o755 {
		t.Fatalf("missing hostPath not created as a 0755 directory: %v %v", st, err)
	}
	found := false
	for _, m := range spec.Mounts {
		if m.Destination == "/data" && m.Source == missing && !m.File {
			found = true
		}
	}
	if !found {
		t.Errorf("no bind of %s on /data: %+v", missing, spec.Mounts)
	}
}

// userRoot writes an image root of the given files (see writeTree) and
// nothing else.
func userRoot(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	writeTree(t, root, files)
	return root
}

// writeTree writes files under root: each entry is a path and what it is —
// "dir/" for a folder, "->target" for a symlink, "|fifo" for a named pipe,
// "@busybox" for the static busybox binary, anything else the file's
// content.
func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, what := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch {
		case strings.HasSuffix(p, "/"):
			err = os.MkdirAll(full, 0o755)
		case strings.HasPrefix(what, "->"):
			err = os.Symlink(strings.TrimPrefix(what, "->"), full)
		case what == "|fifo":
			err = syscall.Mkfifo(full, 0o644)
		case what == "@busybox":
			var b []byte
			if b, err = os.ReadFile("/bin/busybox"); err == nil {
				err = os.WriteFile(full, b, 0o755)
			}
		default:
			err = os.WriteFile(full, []byte(what), 0o644)
		}
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
	}
}

const (
	testPasswd = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:app:/home/app:/bin/sh\n"
	testGroup  = "root:x:0:\napp:x:1001:\nextra:x:2000:other,app\nwheel:x:10:root\n"
)

// User resolution as containerd does it, inside the image's root (issue
// 12, item 3): USER 1000 takes its gid from the image's /etc/passwd, the
// supplementary groups come from its /etc/group plus fsGroup and
// supplementalGroups, HOME from passwd (default /) unless set;
// runAsUser/runAsGroup override as the kubelet does.
func TestUserResolvedLikeContainerd(t *testing.T) {
	withUser := userRoot(t, map[string]string{"etc/passwd": testPasswd, "etc/group": testGroup})
	scratch := userRoot(t, map[string]string{"app": "static binary"})
	fsGroup := int64(3000)
	strict := v1.SupplementalGroupsPolicyStrict
	for _, tc := range []struct {
		name      string
		root      string
		imageUser string
		imageEnv  []string
		sc        *v1.SecurityContext
		psc       *v1.PodSecurityContext
		want      string // uid gid groups HOME
		wantErr   string
	}{
		{name: "USER 1000", root: withUser, imageUser: "1000", want: "1000 1001 [1001 2000] /home/app"},
		{name: "USER app", root: withUser, imageUser: "app", want: "1000 1001 [1001 2000] /home/app"},
		{name: "no USER", root: withUser, want: "0 0 [0 10] /root"}, // root is listed in wheel
		{name: "USER 1000:50 (group dropped, as Kubernetes does)", root: withUser, imageUser: "1000:50", want: "1000 1001 [1001 2000] /home/app"},
		{name: "uid not in passwd", root: withUser, imageUser: "4242", want: "4242 0 [0] /"},
		{name: "runAsUser and runAsGroup", root: withUser, imageUser: "nobody-here", sc: &v1.SecurityContext{RunAsUser: ptr(int64(1000)), RunAsGroup: ptr(int64(5000))},
			want: "1000 5000 [5000 2000] /home/app"},
		{name: "runAsGroup keeps the image's user", root: withUser, imageUser: "app", sc: &v1.SecurityContext{RunAsGroup: ptr(int64(5000))}, want: "1000 5000 [5000 2000] /home/app"},
		{name: "fsGroup and supplementalGroups", root: withUser, imageUser: "1000", psc: &v1.PodSecurityContext{FSGroup: &fsGroup, SupplementalGroups: []int64{4000, 2000}},
			want: "1000 1001 [1001 2000 3000 4000] /home/app"},
		{name: "Strict ignores the image's groups", root: withUser, imageUser: "1000", psc: &v1.PodSecurityContext{SupplementalGroups: []int64{4000}, SupplementalGroupsPolicy: &strict},
			want: "1000 1001 [1001 4000] /home/app"},
		{name: "HOME set by the image stays", root: withUser, imageUser: "1000", imageEnv: []string{"HOME=/srv"}, want: "1000 1001 [1001 2000] /srv"},
		{name: "scratch, numeric", root: scratch, imageUser: "65532", want: "65532 0 [0] /"},
		{name: "scratch, name", root: scratch, imageUser: "app", wantErr: "unable to find user app"},
		{name: "runAsNonRoot with runAsUser 0", root: withUser, sc: &v1.SecurityContext{RunAsUser: ptr(int64(0)), RunAsNonRoot: ptr(true)}, wantErr: "runAsUser breaks non-root policy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := v1.Container{Name: "c", Command: []string{"/app"}, SecurityContext: tc.sc}
			pod := unitPod(c)
			pod.Spec.SecurityContext = tc.psc
			spec, err := specFor(t, pod, tc.root, ImageConfig{User: tc.imageUser, Env: tc.imageEnv})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			home := ""
			for _, e := range spec.Env {
				if v, ok := strings.CutPrefix(e, "HOME="); ok {
					home = v
				}
			}
			if got := fmt.Sprintf("%d %d %v %s", spec.UID, spec.GID, spec.AdditionalGIDs, home); got != tc.want {
				t.Errorf("uid gid groups HOME = %s, want %s", got, tc.want)
			}
		})
	}
}

// The image's account files are read inside its root (issue 12, holes
// item 3): an absolute symlink /etc/passwd does not read the host's file
// (a host gid came back before), and a FIFO or a /proc/kmsg target does
// not block the container's creation.
func TestEscapeViaImageAccountFiles(t *testing.T) {
	host := filepath.Join(t.TempDir(), "host-passwd")
	if err := os.WriteFile(host, []byte("app:x:1000:4242:host:/host-home:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	hostGroup := filepath.Join(t.TempDir(), "host-group")
	if err := os.WriteFile(hostGroup, []byte("hostonly:x:4343:app\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		files   map[string]string
		user    string
		want    string
		wantErr string
	}{
		{name: "absolute symlink to a host file", files: map[string]string{"etc/passwd": "->" + host, "etc/group": "->" + hostGroup}, user: "1000", want: "1000 0 [0] /"},
		{name: "absolute symlink to a host file, user by name", files: map[string]string{"etc/passwd": "->" + host}, user: "app", wantErr: "unable to find user app"},
		{name: "relative symlink climbing out", files: map[string]string{"etc/passwd": "->../../../../../../.." + host}, user: "1000", want: "1000 0 [0] /"},
		{name: "symlink inside the image is followed", files: map[string]string{"etc/passwd": "->/usr/lib/passwd", "usr/lib/passwd": testPasswd}, user: "1000", want: "1000 1001 [1001] /home/app"},
		{name: "passwd is a FIFO", files: map[string]string{"etc/passwd": "|fifo"}, user: "app", wantErr: "/etc/passwd is not a regular file"},
		{name: "group is a FIFO", files: map[string]string{"etc/passwd": testPasswd, "etc/group": "|fifo"}, user: "app:app", wantErr: "/etc/group is not a regular file"},
		{name: "passwd links to /proc/kmsg", files: map[string]string{"etc/passwd": "->/proc/kmsg", "etc/group": "->/proc/kmsg"}, user: "1000", want: "1000 0 [0] /"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := userRoot(t, tc.files)
			type result struct {
				spec *shim.ContainerSpec
				err  error
			}
			done := make(chan result, 1)
			go func() {
				spec, err := specFor(t, unitPod(v1.Container{Name: "c", Command: []string{"/app"}}), root, ImageConfig{User: tc.user})
				done <- result{spec, err}
			}()
			var r result
			select {
			case r = <-done:
			case <-time.After(10 * time.Second):
				// Unblock the reader so the test can end, then fail.
				if f, err := os.OpenFile(filepath.Join(root, "etc/passwd"), os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
					f.Close()
				}
				if f, err := os.OpenFile(filepath.Join(root, "etc/group"), os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
					f.Close()
				}
				<-done
				t.Fatal("creating the container blocked on the image's account files")
			}
			if tc.wantErr != "" {
				if r.err == nil || !strings.Contains(r.err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", r.err, tc.wantErr)
				}
				return
			}
			if r.err != nil {
				t.Fatal(r.err)
			}
			home := ""
			for _, e := range r.spec.Env {
				if v, ok := strings.CutPrefix(e, "HOME="); ok {
					home = v
				}
			}
			if got := fmt.Sprintf("%d %d %v %s", r.spec.UID, r.spec.GID, r.spec.AdditionalGIDs, home); got != tc.want {
				t.Errorf("uid gid groups HOME = %s, want %s", got, tc.want)
			}
		})
	}
}
