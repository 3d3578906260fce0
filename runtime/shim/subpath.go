package shim

import (
	"errors"
	"fmt"
	"os"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"
)

// openSubPath opens the bind source of a volume mount with a subPath: the
// subPath resolved inside the volume's root (m.Source) without following a
// symlink out of it, created as a directory when missing (as the kubelet
// does), never through a symlink either. The caller mounts the returned
// O_PATH handle through /proc/self/fd/<n>, so the directory that was
// checked is the one mounted: another container sharing the volume cannot
// swap a component for a symlink to / in between (CVE-2017-1002101,
// CVE-2021-25741). It sets m.File from what was found.
func openSubPath(m *Mount) (*os.File, error) {
	root, err := os.OpenFile(m.Source, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("volume for %s: %w", m.Destination, err)
	}
	defer root.Close()
	h, err := pathrs.OpenatInRoot(root, m.SubPath)
	if errors.Is(err, os.ErrNotExist) {
		h, err = pathrs.MkdirAllHandle(root, m.SubPath, 0o777)
	}
	if err != nil {
		return nil, fmt.Errorf("subPath %q of the volume mounted on %s: %w", m.SubPath, m.Destination, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(h.Fd()), &st); err != nil {
		h.Close()
		return nil, fmt.Errorf("subPath %q of the volume mounted on %s: %w", m.SubPath, m.Destination, err)
	}
	m.File = st.Mode&unix.S_IFMT != unix.S_IFDIR
	return h, nil
}
