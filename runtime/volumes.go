package runtime

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"

	"github.com/minikubelet/minikubelet/runtime/shim"
)

func (r *Runtime) emptyDirPath(pod *v1.Pod, name string) string {
	return r.pod(pod.UID).EmptyDir(name)
}

// setupVolumes prepares the pod's volumes once per sandbox: emptyDir folders
// (0777 like kubelet, tmpfs for medium Memory) and hostPath type checks.
func (r *Runtime) setupVolumes(pod *v1.Pod) error {
	for _, vol := range pod.Spec.Volumes {
		switch {
		case vol.EmptyDir != nil:
			dir := r.emptyDirPath(pod, vol.Name)
			if err := os.MkdirAll(dir, 0o777); err != nil {
				return fmt.Errorf("volume %s: %w", vol.Name, err)
			}
			if vol.EmptyDir.Medium == v1.StorageMediumMemory && !mounted(dir) {
				opt := "mode=0777"
				if size := emptyDirMemorySize(pod, vol.EmptyDir, int64(memTotal())); size > 0 {
					opt += fmt.Sprintf(",size=%d", size)
				}
				if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opt); err != nil {
					return fmt.Errorf("volume %s: mount tmpfs: %w", vol.Name, err)
				}
			}
			if err := os.Chmod(dir, 0o777); err != nil {
				return err
			}
			if sc := pod.Spec.SecurityContext; sc != nil && sc.FSGroup != nil {
				os.Chown(dir, -1, int(*sc.FSGroup))
				os.Chmod(dir, 0o777|fs.ModeSetgid)
			}
		case vol.HostPath != nil:
			if err := checkHostPath(vol.Name, vol.HostPath); err != nil {
				return err
			}
		case vol.DownwardAPI != nil:
			if err := r.writeDownwardAPI(pod, &vol); err != nil {
				return err
			}
		case vol.Projected != nil, vol.ConfigMap != nil, vol.Secret != nil:
			return fmt.Errorf("volume %s: this volume type is not supported yet", vol.Name)
		default:
			return fmt.Errorf("volume %s: unsupported volume type (static pods support emptyDir, hostPath and downwardAPI)", vol.Name)
		}
	}
	return nil
}

// checkHostPath applies the hostPath type rules of Kubernetes, creating
// what DirectoryOrCreate/FileOrCreate ask for.
func checkHostPath(name string, hp *v1.HostPathVolumeSource) error {
	t := v1.HostPathUnset
	if hp.Type != nil {
		t = *hp.Type
	}
	p := hp.Path
	st, err := os.Stat(p)
	exists := err == nil
	bad := func(what string) error {
		return fmt.Errorf("volume %s: hostPath type check failed: %s is not a %s", name, p, what)
	}
	switch t {
	case v1.HostPathUnset:
		return nil
	case v1.HostPathDirectoryOrCreate:
		if !exists {
			if err := os.MkdirAll(p, 0o755); err != nil {
				return fmt.Errorf("volume %s: create %s: %w", name, p, err)
			}
			return nil
		}
		if !st.IsDir() {
			return bad("directory")
		}
	case v1.HostPathFileOrCreate:
		if !exists {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
			if err != nil && !errors.Is(err, os.ErrExist) {
				return fmt.Errorf("volume %s: create %s: %w", name, p, err)
			}
			if f != nil {
				f.Close()
			}
			return nil
		}
		if !st.Mode().IsRegular() {
			return bad("file")
		}
	default:
		if !exists {
			return fmt.Errorf("volume %s: hostPath type check failed: %s does not exist", name, p)
		}
		m := st.Mode()
		ok := map[v1.HostPathType]bool{
			v1.HostPathDirectory: m.IsDir(),
			v1.HostPathFile:      m.IsRegular(),
			v1.HostPathSocket:    m&fs.ModeSocket != 0,
			v1.HostPathCharDev:   m&fs.ModeCharDevice != 0,
			v1.HostPathBlockDev:  m&fs.ModeDevice != 0 && m&fs.ModeCharDevice == 0,
		}
		valid, known := ok[t]
		if !known {
			return fmt.Errorf("volume %s: unknown hostPath type %q", name, t)
		}
		if !valid {
			return bad(string(t))
		}
	}
	return nil
}

// createUntypedHostPath creates a missing hostPath that has no type as a
// 0755 directory, as containerd does for a bind source that does not exist
// (typed ones were checked, or created, by checkHostPath).
func createUntypedHostPath(hp *v1.HostPathVolumeSource) error {
	if hp.Type != nil && *hp.Type != v1.HostPathUnset {
		return nil
	}
	if _, err := os.Lstat(hp.Path); !errors.Is(err, os.ErrNotExist) {
		return nil // there (a dangling symlink fails below, at its stat)
	}
	if err := os.MkdirAll(hp.Path, 0o755); err != nil {
		return fmt.Errorf("create hostPath %s: %w", hp.Path, err)
	}
	return nil
}

// volumeMounts turns volumeMounts into bind mounts; subPath is resolved
// inside the volume without following symlinks out of it.
func (r *Runtime) volumeMounts(pod *v1.Pod, c *v1.Container) ([]shim.Mount, error) {
	vols := map[string]*v1.Volume{}
	for i := range pod.Spec.Volumes {
		vols[pod.Spec.Volumes[i].Name] = &pod.Spec.Volumes[i]
	}
	var out []shim.Mount
	for _, vm := range c.VolumeMounts {
		vol := vols[vm.Name]
		if vol == nil {
			return nil, fmt.Errorf("container %s: volumeMount %s: no such volume", c.Name, vm.Name)
		}
		var src string
		switch {
		case vol.EmptyDir != nil:
			src = r.emptyDirPath(pod, vol.Name)
		case vol.HostPath != nil:
			src = vol.HostPath.Path
			if err := createUntypedHostPath(vol.HostPath); err != nil {
				return nil, fmt.Errorf("container %s: volume %s: %w", c.Name, vm.Name, err)
			}
		case vol.DownwardAPI != nil:
			src = r.downwardAPIPath(pod, vol.Name)
			vm.ReadOnly = true // as kubelet: the files are the pod's, not the container's
		default:
			return nil, fmt.Errorf("container %s: volume %s: unsupported type", c.Name, vm.Name)
		}
		if vm.SubPathExpr != "" {
			return nil, fmt.Errorf("container %s: volumeMount %s: subPathExpr is not supported yet", c.Name, vm.Name)
		}
		if vm.SubPath != "" {
			if filepath.IsAbs(vm.SubPath) || strings.HasPrefix(filepath.Clean(vm.SubPath), "..") {
				return nil, fmt.Errorf("container %s: volumeMount %s: subPath %q must be a relative path inside the volume", c.Name, vm.Name, vm.SubPath)
			}
			if err := makeSubPath(src, vm.SubPath); err != nil {
				return nil, fmt.Errorf("container %s: volumeMount %s: subPath %q: %w", c.Name, vm.Name, vm.SubPath, err)
			}
		}
		st, err := os.Stat(src)
		if err != nil {
			return nil, fmt.Errorf("container %s: volume %s: %w", c.Name, vm.Name, err)
		}
		flags := uintptr(unix.MS_BIND | unix.MS_REC)
		if vm.ReadOnly {
			flags |= unix.MS_RDONLY
		}
		// A subPath is not resolved here: a path string checked now could
		// be a symlink by the time it is mounted (another container shares
		// the volume). The init opens it inside the volume and mounts that
		// handle (shim.Mount.SubPath).
		m := shim.Mount{Source: src, SubPath: vm.SubPath, Destination: vm.MountPath, Type: "bind", Flags: flags, File: !st.IsDir(),
			Propagation: unix.MS_REC | unix.MS_PRIVATE} // None (the default): nothing crosses
		if vm.MountPropagation != nil {
			switch *vm.MountPropagation {
			case v1.MountPropagationHostToContainer:
				// The container's mounts are slaves of the node's: new
				// mounts below a shared source show up inside.
				m.Propagation = unix.MS_REC | unix.MS_SLAVE
			case v1.MountPropagationBidirectional:
				// Kubernetes allows it for privileged containers only. Mounts
				// made inside propagate to the container's own peers; back
				// to the node they do not (the root is a slave): a known gap.
				if c.SecurityContext == nil || c.SecurityContext.Privileged == nil || !*c.SecurityContext.Privileged {
					return nil, fmt.Errorf("container %s: volumeMount %s: Bidirectional mount propagation needs a privileged container", c.Name, vm.Name)
				}
				m.Propagation = unix.MS_REC | unix.MS_SHARED
			}
		}
		out = append(out, m)
	}
	return out, nil
}

func (r *Runtime) downwardAPIPath(pod *v1.Pod, name string) string {
	return r.pod(pod.UID).DownwardAPI(name)
}

// writeDownwardAPI writes the files of a downwardAPI volume (labels and
// annotations as key="value" lines, sorted, like kubelet).
func (r *Runtime) writeDownwardAPI(pod *v1.Pod, vol *v1.Volume) error {
	dir := r.downwardAPIPath(pod, vol.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	mode := os.FileMode(0o644)
	if vol.DownwardAPI.DefaultMode != nil {
		mode = os.FileMode(*vol.DownwardAPI.DefaultMode)
	}
	for _, item := range vol.DownwardAPI.Items {
		if item.Path == "" || filepath.IsAbs(item.Path) || strings.HasPrefix(filepath.Clean(item.Path), "..") {
			return fmt.Errorf("volume %s: item path %q must be relative and inside the volume", vol.Name, item.Path)
		}
		var val string
		switch {
		case item.FieldRef != nil:
			switch item.FieldRef.FieldPath {
			case "metadata.labels":
				val = formatMap(pod.Labels)
			case "metadata.annotations":
				val = formatMap(pod.Annotations)
			default:
				v, err := fieldValue(pod, item.FieldRef.FieldPath, r.opt.NodeName, pod.Status.PodIP, pod.Status.HostIP)
				if err != nil {
					return fmt.Errorf("volume %s item %s: %w", vol.Name, item.Path, err)
				}
				val = v
			}
		case item.ResourceFieldRef != nil:
			var c *v1.Container
			for i := range pod.Spec.Containers {
				if pod.Spec.Containers[i].Name == item.ResourceFieldRef.ContainerName {
					c = &pod.Spec.Containers[i]
				}
			}
			if c == nil {
				return fmt.Errorf("volume %s item %s: no container %q", vol.Name, item.Path, item.ResourceFieldRef.ContainerName)
			}
			v, err := resourceValue(pod, c, item.ResourceFieldRef)
			if err != nil {
				return fmt.Errorf("volume %s item %s: %w", vol.Name, item.Path, err)
			}
			val = v
		default:
			return fmt.Errorf("volume %s item %s: fieldRef or resourceFieldRef required", vol.Name, item.Path)
		}
		m := mode
		if item.Mode != nil {
			m = os.FileMode(*item.Mode)
		}
		p, err := securejoin.SecureJoin(dir, item.Path)
		if err != nil {
			return err
		}
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(val), m); err != nil {
			return fmt.Errorf("volume %s item %s: %w", vol.Name, item.Path, err)
		}
		os.Chmod(p, m)
	}
	return nil
}

func formatMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%s=%q", k, m[k])
	}
	return b.String()
}

// makeSubPath creates a missing subPath as a directory inside the volume, as
// the kubelet does, so that one that cannot be (a file in the way) is a
// configuration error. No symlink is followed out of the volume (pathrs-lite
// MkdirAllHandle); what this finds is not what gets mounted: the init opens
// the subPath again where it mounts it (shim.Mount.SubPath).
func makeSubPath(volume, subPath string) error {
	root, err := os.OpenFile(volume, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer root.Close()
	h, err := pathrs.OpenatInRoot(root, subPath)
	if errors.Is(err, os.ErrNotExist) {
		h, err = pathrs.MkdirAllHandle(root, subPath, 0o777)
	}
	if err != nil {
		return err
	}
	return h.Close()
}
