package runtime

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func memPod(limits ...string) *v1.Pod {
	p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "6f3c2b1e-0d4a-4c1b-9e8f-1a2b3c4d5e6f"}}
	for i, l := range limits {
		c := v1.Container{Name: string(rune('a' + i))}
		if l != "" {
			c.Resources.Limits = v1.ResourceList{v1.ResourceMemory: resource.MustParse(l)}
		}
		p.Spec.Containers = append(p.Spec.Containers, c)
	}
	return p
}

func TestEmptyDirMemorySize(t *testing.T) {
	q := func(s string) *resource.Quantity { v := resource.MustParse(s); return &v }
	const node = 8 << 30
	for _, c := range []struct {
		name string
		pod  *v1.Pod
		ed   v1.EmptyDirVolumeSource
		want int64
	}{
		{"no limits: node allocatable", memPod(""), v1.EmptyDirVolumeSource{}, node},
		{"pod memory limit", memPod("64Mi", "32Mi"), v1.EmptyDirVolumeSource{}, 96 << 20},
		{"one container without a limit: the pod has none", memPod("64Mi", ""), v1.EmptyDirVolumeSource{}, node},
		{"smaller sizeLimit wins", memPod("64Mi"), v1.EmptyDirVolumeSource{SizeLimit: q("16Mi")}, 16 << 20},
		{"larger sizeLimit is bounded by the pod", memPod("64Mi"), v1.EmptyDirVolumeSource{SizeLimit: q("1Gi")}, 64 << 20},
		{"sizeLimit without pod limit", memPod(""), v1.EmptyDirVolumeSource{SizeLimit: q("1Gi")}, 1 << 30},
		{"zero sizeLimit is ignored", memPod("64Mi"), v1.EmptyDirVolumeSource{SizeLimit: q("0")}, 64 << 20},
	} {
		if got := emptyDirMemorySize(c.pod, &c.ed, node); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
}

// The tmpfs of a medium: Memory emptyDir without sizeLimit is as large as
// the pod's memory limit (the kernel's default would be half the RAM).
func TestMemoryEmptyDirBoundedByPodLimit(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounts a tmpfs: needs root")
	}
	r := &Runtime{opt: Options{RootDir: t.TempDir()}}
	pod := memPod("48Mi")
	pod.Spec.Volumes = []v1.Volume{{Name: "cache", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{Medium: v1.StorageMediumMemory}}}}
	dir := r.emptyDirPath(pod, "cache")
	t.Cleanup(func() { unmountUnder(r.PodDir(pod.UID)) })
	if err := r.setupVolumes(pod); err != nil {
		t.Fatal(err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	if size := int64(st.Blocks) * st.Bsize; size != 48<<20 {
		t.Errorf("tmpfs size %d, want the pod's memory limit %d", size, 48<<20)
	}
	// Disk usage of a disk emptyDir: what du counts.
	disk := &v1.Pod{ObjectMeta: pod.ObjectMeta}
	disk.Spec.Volumes = []v1.Volume{{Name: "d", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}}}
	if err := r.setupVolumes(disk); err != nil {
		t.Fatal(err)
	}
	if u, err := r.EmptyDirUsage(disk.UID, "d"); err != nil || u > 64<<10 {
		t.Fatalf("empty volume uses %d (%v)", u, err)
	}
	if err := os.WriteFile(filepath.Join(r.emptyDirPath(disk, "d"), "f"), make([]byte, 3<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if u, err := r.EmptyDirUsage(disk.UID, "d"); err != nil || u < 3<<20 {
		t.Errorf("after writing 3 MiB the volume uses %d (%v)", u, err)
	}
	if u, _ := r.EmptyDirUsage(disk.UID, "missing"); u != 0 {
		t.Errorf("a missing volume uses %d", u)
	}
}
