package runtime

// emptydir.go: the size of memory-backed emptyDirs and the disk usage of
// the others, with the kubelet's rules.

import (
	"errors"
	"io/fs"
	"path/filepath"
	"syscall"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/minikubelet/minikubelet/systemd"
)

// emptyDirMemorySize is the tmpfs size of a medium: Memory emptyDir, as the
// kubelet's calculateEmptyDirMemorySize: node allocatable memory, lowered
// to the pod's memory limit when it has one (the limit of its cgroup:
// every container limited), lowered to sizeLimit when that is smaller. A
// tmpfs without a size would get half of the node's RAM whatever the pod
// may use, and its pages are charged to the pod, so an unbounded one only
// moves the pod's OOM kill into the volume.
func emptyDirMemorySize(pod *v1.Pod, ed *v1.EmptyDirVolumeSource, nodeAllocatable int64) int64 {
	size := nodeAllocatable
	if lim := systemd.PodResources(pod, nil).MemoryLimit; lim != nil && *lim > 0 && (size <= 0 || *lim <= size) {
		size = *lim
	}
	if sl := ed.SizeLimit; sl != nil && sl.Sign() > 0 && (size <= 0 || sl.Value() <= size) {
		size = sl.Value()
	}
	return size
}

// EmptyDirUsage is the disk usage in bytes of a pod's emptyDir volume, as
// the kubelet measures it with du: allocated blocks, not crossing into
// other filesystems. A volume not created yet uses nothing.
func (r *Runtime) EmptyDirUsage(uid types.UID, name string) (int64, error) {
	root := r.pod(uid).EmptyDir(name)
	var rootDev uint64
	var total int64
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while walking
			}
			return err
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		if p == root {
			rootDev = st.Dev
		} else if st.Dev != rootDev {
			return fs.SkipDir // another filesystem mounted inside (du -x)
		}
		total += st.Blocks * 512
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	return total, err
}
