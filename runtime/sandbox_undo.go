package runtime

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
)

// sandboxUndo remembers what one RunSandbox call is about to create in the
// pod dir, so that a failure removes exactly that. A pod dir that already
// exists belongs to a pod whose earlier sandbox died: its exit records, the
// reconciler's records and status.json must survive a failed replacement.
type sandboxUndo struct {
	podDir       string
	roots        string // the containers' roots (the shell's): never rolled back here
	mountsBefore map[string]bool
	created      []string // paths that did not exist before the call, outermost first
	bound        []string // mounts the call made over paths that were mount points before (the netns pin)
}

// noteSandboxState is called before RunSandbox creates anything.
func (r *Runtime) noteSandboxState(pod *v1.Pod) *sandboxUndo {
	p := r.pod(pod.UID)
	podDir := p.Dir()
	u := &sandboxUndo{podDir: podDir, roots: p.ContainerRoots(), mountsBefore: map[string]bool{}}
	for _, m := range mountPoints(podDir) {
		u.mountsBefore[m] = true
	}
	paths := []string{podDir, p.Sandbox(), p.Containers(), p.EtcHosts(), p.EtcHostname(), p.ResolvConf(), p.Shm(), p.Volumes()}
	for _, vol := range pod.Spec.Volumes {
		switch {
		case vol.EmptyDir != nil:
			p := r.emptyDirPath(pod, vol.Name)
			paths = append(paths, filepath.Dir(p), p)
		case vol.DownwardAPI != nil:
			p := r.downwardAPIPath(pod, vol.Name)
			paths = append(paths, filepath.Dir(p), p)
		}
	}
	for _, p := range paths {
		if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
			u.created = append(u.created, p)
		}
	}
	return u
}

// rollback unmounts the mounts the call made (the pod's /dev/shm, memory
// emptyDirs, the netns pin) and removes the paths it created, innermost
// first. Mounts and files that were there before are left alone.
func (u *sandboxUndo) rollback() {
	for _, m := range mountPoints(u.podDir) { // deepest first
		if u.mountsBefore[m] || strings.HasPrefix(m, u.roots+"/") {
			continue // not ours: an earlier sandbox's, or a container root
		}
		if err := unix.Unmount(m, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			slog.Warn("failed sandbox: unmount", "path", m, "err", err)
		}
	}
	for _, m := range u.bound {
		if err := unix.Unmount(m, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			slog.Warn("failed sandbox: unmount", "path", m, "err", err)
		}
	}
	for i := len(u.created) - 1; i >= 0; i-- {
		p := u.created[i]
		if len(mountPoints(p)) > 0 {
			// Something still mounted there (an unmount failed): removing
			// would reach into it.
			slog.Warn("failed sandbox: left behind, still mounted", "path", p)
			continue
		}
		os.RemoveAll(p)
	}
}
