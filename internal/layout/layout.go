// Package layout owns the on-disk layout under --root-dir: every path of a
// pod's folder is named here, once, and the packages that write there (the
// runtime, the reconciler's shell) and those that show it (validate
// --explain) ask. Log folders under --log-dir are podlogs' (the kubelet's
// CRI layout), not this package's.
//
//	<root-dir>/images/                      Images(): the image store (runtime/images)
//	<root-dir>/pods/<uid>/                  Pod(uid)
//	  sandbox/                              the supervisor's socket, records, log   (runtime)
//	  sandbox/netns                         bind mount pinning the pod's netns      (runtime; the shell unpins it after CNI DEL)
//	  containers/<id>/                      a container's spec, state and exit      (runtime)
//	  etc-hosts, etc-hostname, resolv.conf  the pod's /etc files                    (runtime)
//	  shm/                                  the pod's /dev/shm tmpfs                (runtime)
//	  volumes/kubernetes.io~empty-dir/<v>/  emptyDir volumes                        (runtime)
//	  volumes/kubernetes.io~downward-api/<v>/ downwardAPI volumes                   (runtime)
//	  rootfs/<container>-<attempt>/         overlay upper, work and mount point     (shell)
//	  mkl/                                  the shell's records (shell/observe_state.go)
//	  status.json                           the pod's last status                   (shell)
package layout

import (
	"encoding/hex"
	"path/filepath"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/types"
)

// Root is the --root-dir.
type Root string

// Images is <root-dir>/images, the image store (runtime/images owns what is
// inside).
func (r Root) Images() string { return filepath.Join(string(r), "images") }

// Pods is <root-dir>/pods, the parent of every pod's folder.
func (r Root) Pods() string { return filepath.Join(string(r), "pods") }

// Pod is the folder of the pod with that UID.
func (r Root) Pod(uid types.UID) Pod { return Pod(filepath.Join(r.Pods(), PodDirName(uid))) }

// PodDirName is the pod's directory name under <root-dir>/pods: its UID.
// The manifests package refuses UIDs that are not a plain name; this is the
// defence behind it, for every path joined from a UID: a UID that is not a
// single path component ("", ".", "..", anything with '/' or NUL) maps to
// a name of its own that cannot leave the pods folder, so a removal can
// never reach outside it.
func PodDirName(uid types.UID) string {
	s := string(uid)
	if s == "" || s == "." || s == ".." || strings.ContainsAny(s, "/\x00") {
		return "invalid-uid-" + hex.EncodeToString([]byte(s))
	}
	return s
}

// Pod is <root-dir>/pods/<uid>.
type Pod string

// Dir is the pod's folder itself.
func (p Pod) Dir() string { return string(p) }

func (p Pod) join(elem ...string) string {
	return filepath.Join(append([]string{string(p)}, elem...)...)
}

// Sandbox is the supervisor's folder.
func (p Pod) Sandbox() string { return p.join("sandbox") }

// NetnsPin is the bind mount that keeps the pod's network namespace alive
// for CNI until the sandbox is removed.
func (p Pod) NetnsPin() string { return p.join("sandbox", "netns") }

// Containers holds one folder per container (the runtime's records).
func (p Pod) Containers() string { return p.join("containers") }

// Container is one container's folder.
func (p Pod) Container(id string) string { return p.join("containers", id) }

// EtcHosts, EtcHostname and ResolvConf are the pod's /etc files.
func (p Pod) EtcHosts() string    { return p.join("etc-hosts") }
func (p Pod) EtcHostname() string { return p.join("etc-hostname") }
func (p Pod) ResolvConf() string  { return p.join("resolv.conf") }

// Shm is the pod's /dev/shm.
func (p Pod) Shm() string { return p.join("shm") }

// Volumes is the parent of every volume folder.
func (p Pod) Volumes() string { return p.join("volumes") }

// EmptyDir is the emptyDir volume's folder (the kubelet's plugin name).
func (p Pod) EmptyDir(volume string) string {
	return p.join("volumes", "kubernetes.io~empty-dir", volume)
}

// DownwardAPI is the downwardAPI volume's folder.
func (p Pod) DownwardAPI(volume string) string {
	return p.join("volumes", "kubernetes.io~downward-api", volume)
}

// ContainerRoots is the parent of the containers' root filesystems; the
// runtime leaves the mounts under it alone when it rolls a sandbox back.
func (p Pod) ContainerRoots() string { return p.join("rootfs") }

// ContainerRoot is one container instance's overlay folder (upper, work,
// merged).
func (p Pod) ContainerRoot(name string, attempt uint32) string {
	return p.join("rootfs", name+"-"+strconv.FormatUint(uint64(attempt), 10))
}

// Records is the reconciler shell's records folder.
func (p Pod) Records() string { return p.join("mkl") }

// Status is the pod's last status, as the shell persisted it.
func (p Pod) Status() string { return p.join("status.json") }
