package images

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"
)

// Overlay's on-disk markers (see the package doc).
const (
	whiteoutPrefix     = ".wh."
	whiteoutMetaPrefix = ".wh..wh."
	whiteoutOpaque     = ".wh..wh..opq"
	overlayOpaqueXattr = "trusted.overlay.opaque"
)

// unpackLayer extracts the uncompressed layer tar r into dir (an existing,
// empty directory), converting OCI whiteouts to overlayfs whiteouts. Nothing is
// ever created outside dir; see the package doc for how.
func unpackLayer(r io.Reader, dir string) (written int64, err error) {
	root, err := os.OpenFile(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	u := &unpacker{root: root, asRoot: os.Geteuid() == 0}
	defer u.close()
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return written, fmt.Errorf("reading layer tar: %w", err)
		}
		n, err := u.entry(hdr, tr)
		written += n
		if err != nil {
			return written, fmt.Errorf("layer entry %q: %w", hdr.Name, err)
		}
	}
	// Directory times last: creating children changed them.
	for _, d := range u.dirs {
		pfd, err := u.parent(d.parent)
		if err != nil {
			return written, err
		}
		if err := setTimes(pfd, d.base, d.hdr); err != nil {
			return written, fmt.Errorf("layer entry %q: %w", d.hdr.Name, err)
		}
	}
	return written, nil
}

type pendingDir struct {
	parent, base string
	hdr          *tar.Header
}

type unpacker struct {
	root   *os.File // O_PATH handle of the layer dir
	asRoot bool
	dirs   []pendingDir

	cachedRel string   // last parent resolved (tar entries come grouped by directory)
	cached    *os.File // its O_PATH handle
}

func (u *unpacker) close() {
	u.dropCache()
	u.root.Close()
}

func (u *unpacker) dropCache() {
	if u.cached != nil {
		u.cached.Close()
		u.cached = nil
	}
}

// cleanEntryName maps a tar name into the layer: cleaned as if rooted, so
// "../x", "/x" and "a/../../x" all mean <layer>/x. "" is the layer root.
func cleanEntryName(n string) string {
	return strings.TrimPrefix(path.Clean("/"+n), "/")
}

// parent returns an O_PATH handle of the directory rel inside the layer,
// creating missing directories (0755); symlinks on the way resolve inside the
// layer. The handle is owned by the unpacker.
func (u *unpacker) parent(rel string) (int, error) {
	if rel == "" {
		return int(u.root.Fd()), nil
	}
	if u.cached != nil && u.cachedRel == rel {
		return int(u.cached.Fd()), nil
	}
	u.dropCache()
	h, err := pathrs.MkdirAllHandle(u.root, rel, 0o755)
	if err != nil {
		return -1, fmt.Errorf("parent directory %q: %w", rel, err)
	}
	u.cached, u.cachedRel = h, rel
	return int(h.Fd()), nil
}

func (u *unpacker) entry(hdr *tar.Header, r io.Reader) (int64, error) {
	rel := cleanEntryName(hdr.Name)
	if rel == "" || hdr.Typeflag == tar.TypeXGlobalHeader {
		return 0, nil // the layer root itself keeps the store's mode
	}
	parentRel, base := path.Split(rel)
	parentRel = strings.TrimSuffix(parentRel, "/")

	if strings.HasPrefix(base, whiteoutPrefix) {
		return 0, u.whiteout(parentRel, base)
	}
	pfd, err := u.parent(parentRel)
	if err != nil {
		return 0, err
	}
	mode := uint32(hdr.Mode & 0o7777)

	switch hdr.Typeflag {
	case tar.TypeDir:
		var st unix.Stat_t
		err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW)
		if err == nil && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			if err := u.remove(pfd, parentRel, base); err != nil {
				return 0, err
			}
			err = unix.ENOENT
		}
		if errors.Is(err, unix.ENOENT) {
			if err := unix.Mkdirat(pfd, base, 0o700); err != nil {
				return 0, err
			}
		} else if err != nil {
			return 0, err
		}
		if err := u.owner(pfd, base, hdr); err != nil {
			return 0, err
		}
		if err := unix.Fchmodat(pfd, base, mode, 0); err != nil {
			return 0, err
		}
		if err := u.dirXattrs(pfd, base, hdr); err != nil {
			return 0, err
		}
		u.dirs = append(u.dirs, pendingDir{parentRel, base, hdr})
		return 0, nil

	case tar.TypeReg, tar.TypeRegA:
		if err := u.remove(pfd, parentRel, base); err != nil {
			return 0, err
		}
		fd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return 0, err
		}
		f := os.NewFile(uintptr(fd), base)
		n, err := io.Copy(f, r)
		if err == nil && u.asRoot {
			err = f.Chown(hdr.Uid, hdr.Gid)
		}
		if err == nil {
			err = unix.Fchmod(fd, mode) // after chown, which clears setuid/setgid
		}
		if err == nil {
			err = setXattrs(fd, hdr)
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return n, err
		}
		return n, setTimes(pfd, base, hdr)

	case tar.TypeSymlink:
		if err := u.remove(pfd, parentRel, base); err != nil {
			return 0, err
		}
		// The target is stored as written: it is resolved later inside the
		// container's root, and never followed while unpacking.
		if err := unix.Symlinkat(hdr.Linkname, pfd, base); err != nil {
			return 0, err
		}
		if err := u.owner(pfd, base, hdr); err != nil {
			return 0, err
		}
		return 0, setTimes(pfd, base, hdr)

	case tar.TypeLink:
		target := cleanEntryName(hdr.Linkname)
		if target == "" {
			return 0, fmt.Errorf("hard link to the layer root")
		}
		tParent, tBase := path.Split(target)
		tfd := int(u.root.Fd())
		if tParent != "" {
			th, err := pathrs.OpenatInRoot(u.root, strings.TrimSuffix(tParent, "/"))
			if err != nil {
				return 0, fmt.Errorf("hard link target %q: %w", hdr.Linkname, err)
			}
			defer th.Close()
			tfd = int(th.Fd())
		}
		if err := u.remove(pfd, parentRel, base); err != nil {
			return 0, err
		}
		if pfd, err = u.parent(parentRel); err != nil { // remove may have dropped the cached handle
			return 0, err
		}
		// No AT_SYMLINK_FOLLOW: a link to a symlink links the symlink itself.
		if err := unix.Linkat(tfd, tBase, pfd, base, 0); err != nil {
			return 0, fmt.Errorf("hard link to %q: %w", hdr.Linkname, err)
		}
		return 0, nil

	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		if err := u.remove(pfd, parentRel, base); err != nil {
			return 0, err
		}
		kind := map[byte]uint32{tar.TypeChar: unix.S_IFCHR, tar.TypeBlock: unix.S_IFBLK, tar.TypeFifo: unix.S_IFIFO}[hdr.Typeflag]
		dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
		if err := unix.Mknodat(pfd, base, kind|mode, int(dev)); err != nil {
			return 0, fmt.Errorf("mknod: %w", err)
		}
		if err := u.owner(pfd, base, hdr); err != nil {
			return 0, err
		}
		if err := unix.Fchmodat(pfd, base, mode, 0); err != nil {
			return 0, err
		}
		return 0, setTimes(pfd, base, hdr)
	}
	return 0, fmt.Errorf("unsupported tar entry type %q", string(hdr.Typeflag))
}

// whiteout converts an OCI whiteout into overlay's form in this layer.
func (u *unpacker) whiteout(parentRel, base string) error {
	switch {
	case base == whiteoutOpaque:
		pfd, err := u.parent(parentRel)
		if err != nil {
			return err
		}
		// Upgrade the O_PATH handle to a real one (fsetxattr needs it)
		// without walking the path again.
		dfd, err := unix.Openat(pfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(dfd)
		if err := unix.Fsetxattr(dfd, overlayOpaqueXattr, []byte("y"), 0); err != nil {
			return fmt.Errorf("marking %q opaque (needs root): %w", parentRel, err)
		}
		return nil
	case strings.HasPrefix(base, whiteoutMetaPrefix):
		return nil // aufs bookkeeping (.wh..wh.plnk ...): meaningless here
	}
	name := strings.TrimPrefix(base, whiteoutPrefix)
	if name == "" || name == "." || name == ".." {
		return fmt.Errorf("invalid whiteout name %q", base)
	}
	pfd, err := u.parent(parentRel)
	if err != nil {
		return err
	}
	if err := u.remove(pfd, parentRel, name); err != nil {
		return err
	}
	if err := unix.Mknodat(pfd, name, unix.S_IFCHR, 0); err != nil {
		return fmt.Errorf("whiteout %q (a 0/0 device, needs root): %w", path.Join(parentRel, name), err)
	}
	return nil
}

// remove deletes whatever exists at pfd/base (a later tar entry replaces an
// earlier one), recursively for directories, never following symlinks.
// pfd is the handle of parentRel.
func (u *unpacker) remove(pfd int, parentRel, base string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return unix.Unlinkat(pfd, base, 0)
	}
	// A cached handle at or below the directory that goes away would be stale.
	gone := path.Join(parentRel, base)
	if u.cached != nil && (u.cachedRel == gone || strings.HasPrefix(u.cachedRel, gone+"/")) {
		u.dropCache()
	}
	return removeAllAt(pfd, base)
}

func removeAllAt(pfd int, base string) error {
	fd, err := unix.Openat(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	d := os.NewFile(uintptr(fd), base)
	names, err := d.Readdirnames(-1)
	if err == nil {
		for _, n := range names {
			var st unix.Stat_t
			if err = unix.Fstatat(fd, n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				break
			}
			if st.Mode&unix.S_IFMT == unix.S_IFDIR {
				err = removeAllAt(fd, n)
			} else {
				err = unix.Unlinkat(fd, n, 0)
			}
			if err != nil {
				break
			}
		}
	}
	d.Close()
	if err != nil {
		return err
	}
	return unix.Unlinkat(pfd, base, unix.AT_REMOVEDIR)
}

func (u *unpacker) owner(pfd int, base string, hdr *tar.Header) error {
	if !u.asRoot {
		return nil // unprivileged: files stay ours
	}
	return unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW)
}

func (u *unpacker) dirXattrs(pfd int, base string, hdr *tar.Header) error {
	if !hasXattrs(hdr) {
		return nil
	}
	fd, err := unix.Openat(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return setXattrs(fd, hdr)
}

func hasXattrs(hdr *tar.Header) bool {
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "SCHILY.xattr.") {
			return true
		}
	}
	return false
}

// setXattrs applies the entry's xattrs (file capabilities and the like).
// trusted.* is never taken from an image: trusted.overlay.* would let a layer
// forge overlay metadata (redirects, opaque markers) on the node.
func setXattrs(fd int, hdr *tar.Header) error {
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok || strings.HasPrefix(name, "trusted.") {
			continue
		}
		if err := unix.Fsetxattr(fd, name, []byte(v), 0); err != nil {
			if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EPERM) && !strings.HasPrefix(name, "security.") {
				continue // the store's filesystem or our privileges cannot hold it
			}
			return fmt.Errorf("xattr %s: %w", name, err)
		}
	}
	return nil
}

func setTimes(pfd int, base string, hdr *tar.Header) error {
	at := hdr.AccessTime
	if at.IsZero() {
		at = hdr.ModTime
	}
	ts := []unix.Timespec{unix.NsecToTimespec(at.UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
	return unix.UtimesNanoAt(pfd, base, ts, unix.AT_SYMLINK_NOFOLLOW)
}
