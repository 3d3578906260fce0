package runtime

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/minikubelet/minikubelet/runtime/images"
	"github.com/minikubelet/minikubelet/runtime/images/imagebuild"
)

// An image shape: the files of its one layer, written by writeTree.
// Nothing else is there: no etc/, proc/, sys/, dev/ or tmp/ unless listed.
type imageShape map[string]string

// scratchBusybox is a scratch image: one static binary, nothing else.
func scratchBusybox() imageShape { return imageShape{"busybox": "@busybox"} }

// imageRoot builds shape into a one-layer image, imports it into an image
// store of the fixture and prepares and mounts a container root from it
// the way the daemon does (reconciler createAndStart).
func (f *fixture) imageRoot(name string, shape imageShape, cfg imagebuild.Config, readOnly bool) (Rootfs, ImageConfig) {
	t := f.t
	t.Helper()
	stage := t.TempDir()
	writeTree(t, stage, shape)
	ref := "localhost/" + name + ":1"
	archive := filepath.Join(t.TempDir(), name+".tar")
	if err := imagebuild.WriteDirArchive(archive, stage, ref, cfg); err != nil {
		t.Fatal(err)
	}
	store, err := images.Open(filepath.Join(f.base, "images"), images.Options{})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := store.Import(context.Background(), archive, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(f.base, "rootfs", name)
	merged := filepath.Join(dir, "merged")
	if err := os.MkdirAll(merged, 0o755); err != nil {
		t.Fatal(err)
	}
	rf, err := store.PrepareRootfs(context.Background(), name, recs[0], dir, readOnly)
	if err != nil {
		t.Fatal(err)
	}
	if err := rf.Mount(merged); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := rf.Unmount(merged); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	ic := recs[0].Config
	return Rootfs{Path: merged, ReadOnly: readOnly},
		ImageConfig{Entrypoint: ic.Entrypoint, Cmd: ic.Cmd, Env: ic.Env, WorkingDir: ic.WorkingDir, User: ic.User}
}

// runImage runs pod (one container) on a root built from shape.
func (f *fixture) runImage(ctx context.Context, pod *v1.Pod, shape imageShape, cfg imagebuild.Config) CreatedContainer {
	f.t.Helper()
	c := &pod.Spec.Containers[0]
	ro := c.SecurityContext != nil && c.SecurityContext.ReadOnlyRootFilesystem != nil && *c.SecurityContext.ReadOnlyRootFilesystem
	rootfs, ic := f.imageRoot(pod.Labels["app"], shape, cfg, ro)
	_, ccs := f.run(ctx, pod, func(cc *ContainerConfig) { cc.Rootfs, cc.Image = rootfs, ic })
	return ccs[c.Name]
}

// A scratch image (one static binary, no /etc, /proc, /sys, /dev, /tmp)
// runs with a read-only root and with a writable one; every mount target
// is made before the root turns read-only, as runc does: /etc/hosts,
// /etc/hostname, /etc/resolv.conf, /proc, /sys, /dev, /dev/shm, a volume's
// mountPath, terminationMessagePath, workingDir (issue 12, item 1). With
// readOnlyRootFilesystem the pod's /etc files are read-only too, as
// containerd mounts them (issue 12, holes item 6).
func TestScratchImageRunsReadOnlyAndReadWrite(t *testing.T) {
	for _, ro := range []bool{true, false} {
		t.Run(fmt.Sprintf("readOnly=%v", ro), func(t *testing.T) {
			f := newFixture(t)
			ctx := context.Background()
			script := `B=/busybox
$B cat /etc/hostname
$B test -f /etc/hosts && $B test -f /etc/resolv.conf && echo etc-files
echo cwd=$($B pwd)
echo x > /data/vol/x && echo volume-writable
echo bye > /var/log/term && echo termination-log-writable
$B test -c /dev/null && $B test -d /dev/shm && $B test -d /proc/self && $B test -d /sys/kernel && echo dev-proc-sys
if $B touch /newfile 2>/dev/null; then echo root=rw; else echo root=ro; fi
for p in /etc/hosts /etc/hostname /etc/resolv.conf; do
  if echo x >> $p 2>/dev/null; then echo $p=rw; else echo $p=ro; fi
done
echo done
exec $B sleep 1000`
			c := v1.Container{Name: "c", Command: []string{"/busybox", "sh", "-c", script}, WorkingDir: "/work/dir",
				TerminationMessagePath: "/var/log/term", VolumeMounts: []v1.VolumeMount{{Name: "vol", MountPath: "/data/vol"}},
				SecurityContext: &v1.SecurityContext{ReadOnlyRootFilesystem: &ro}}
			pod := testPod(fmt.Sprintf("scratch-%v", ro), c)
			pod.Spec.Volumes = []v1.Volume{{Name: "vol", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}}}
			log := f.waitLog(f.runImage(ctx, pod, scratchBusybox(), imagebuild.Config{}), "done")
			want := []string{pod.Name, "etc-files", "cwd=/work/dir", "volume-writable", "termination-log-writable", "dev-proc-sys"}
			mode := "rw"
			if ro {
				mode = "ro"
			}
			want = append(want, "root="+mode, "/etc/hosts="+mode, "/etc/hostname="+mode, "/etc/resolv.conf="+mode)
			for _, w := range want {
				if !strings.Contains(log, w+"\n") {
					t.Errorf("want %q in the log:\n%s", w, log)
				}
			}
		})
	}
}

// An image whose /etc/resolv.conf, /etc/hosts and /etc/hostname are
// symlinks (systemd-based images: ../run/systemd/resolve/stub-resolv.conf,
// a target that does not exist in the image) gets the pod's files at the
// symlinks' targets inside its root, as runc resolves mount destinations
// (issue 12, item 2) — also read-only.
func TestSymlinkedEtcFilesAreResolvedInsideTheRoot(t *testing.T) {
	for _, ro := range []bool{false, true} {
		t.Run(fmt.Sprintf("readOnly=%v", ro), func(t *testing.T) {
			f := newFixture(t)
			ctx := context.Background()
			shape := imageShape{"bin/busybox": "@busybox", "bin/sh": "->busybox", "bin/cat": "->busybox", "bin/readlink": "->busybox",
				"etc/resolv.conf": "->../run/systemd/resolve/stub-resolv.conf",
				"etc/hosts":       "->/usr/share/hosts", // absolute: inside the root, not the host's
				"etc/hostname":    "->../../../../../run/hostname",
				"usr/share/hosts": "# image hosts\n", "run/": ""}
			script := `echo link=$(readlink /etc/resolv.conf); cat /run/systemd/resolve/stub-resolv.conf >/dev/null && echo stub-there
cat /etc/hosts | head -1; cat /usr/share/hosts | head -1; cat /run/hostname; echo done; exec sleep 1000`
			c := v1.Container{Name: "c", Command: []string{"/bin/sh", "-c", script}, SecurityContext: &v1.SecurityContext{ReadOnlyRootFilesystem: &ro}}
			pod := testPod(fmt.Sprintf("systemd-%v", ro), c)
			log := f.waitLog(f.runImage(ctx, pod, shape, imagebuild.Config{Env: []string{"PATH=/bin"}}), "done")
			for _, w := range []string{"link=../run/systemd/resolve/stub-resolv.conf", "stub-there", "# Kubernetes-managed hosts file.\n# Kubernetes-managed hosts file.", pod.Name + "\ndone"} {
				if !strings.Contains(log, w) {
					t.Errorf("want %q in the log:\n%s", w, log)
				}
			}
		})
	}
}

// Privileged containers get a writable /sys/fs/cgroup, as with runc
// (issue 12, item 9); others a read-only one.
func TestPrivilegedGetsWritableCgroupfs(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	yes := true
	script := `grep ' /sys/fs/cgroup' /proc/mounts | while read dev dir typ opts rest; do echo "$dir ${opts%%,*}"; done
echo done; exec sleep 1000`
	priv := sh("priv", script)
	priv.SecurityContext = &v1.SecurityContext{Privileged: &yes}
	plain := sh("plain", script)
	pod := testPod("cgpriv", priv, plain)
	_, ccs := f.run(ctx, pod, nil)
	for name, want := range map[string]string{"priv": "rw", "plain": "ro"} {
		log := f.waitLog(ccs[name], "done")
		n := 0
		for _, l := range strings.Split(log, "\n") {
			dir, opt, ok := strings.Cut(l, " ")
			if !ok || !strings.HasPrefix(dir, "/sys/fs/cgroup") {
				continue
			}
			n++
			if opt != want {
				t.Errorf("%s: %s is %s, want %s", name, dir, opt, want)
			}
		}
		if n == 0 {
			t.Errorf("%s: no /sys/fs/cgroup mount:\n%s", name, log)
		}
	}
}

// An image with USER and its own /etc/passwd and /etc/group runs as the
// user containerd would pick: gid from passwd, groups from the image's
// group file plus the pod's, HOME from passwd (issue 12, item 3).
func TestImageUserWithPasswdAndGroup(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	shape := imageShape{"bin/busybox": "@busybox", "bin/sh": "->busybox", "bin/id": "->busybox",
		"etc/passwd": testPasswd, "etc/group": testGroup, "home/app/": ""}
	pod := testPod("userimg", sh("c", `echo "$(id) home=$HOME"; echo done; exec sleep 1000`))
	pod.Spec.SecurityContext = &v1.PodSecurityContext{SupplementalGroups: []int64{4000}}
	log := f.waitLog(f.runImage(ctx, pod, shape, imagebuild.Config{User: "1000", Env: []string{"PATH=/bin"}}), "done")
	if want := "uid=1000(app) gid=1001(app) groups=1001(app),2000(extra),4000 home=/home/app\n"; !strings.Contains(log, want) {
		t.Errorf("want %q in the log:\n%s", want, log)
	}
}
