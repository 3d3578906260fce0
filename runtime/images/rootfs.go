package images

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// RootfsRecord registers that a container uses an image (rootfs/<id>.json).
type RootfsRecord struct {
	ID           string    `json:"id"`
	ImageID      string    `json:"imageID"`
	Image        string    `json:"image"`  // the reference the container asked for
	Layers       []string  `json:"layers"` // diffIDs, bottom first: kept by GC while the record exists
	ContainerDir string    `json:"containerDir"`
	ReadOnly     bool      `json:"readOnly"`
	Created      time.Time `json:"created"`
}

// Rootfs is a container's root filesystem: the image layers as read-only
// overlay lowerdirs and an upper/work pair in the container's own directory
// (kept across restarts of the same container).
type Rootfs struct {
	ID       string
	Lower    []string // absolute lowerdirs, top layer first
	Upper    string   // "": no upper layer (then ReadOnly must be set)
	Work     string
	ReadOnly bool   // mount the overlay read-only (PrepareRootfs never asks for it)
	linkDir  string // where short symlinks to the lowerdirs go for the mount(2) fallback
}

var validRootfsID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,200}$`)

// PrepareRootfs registers container id's use of image img and returns its
// root filesystem description; Mount it on the container's root. The upper
// and work dirs are containerDir/upper and containerDir/work (created when
// missing, kept when present). readOnly (readOnlyRootFilesystem) is
// recorded, but the root still gets its upper layer and is mounted
// read-write: the runtime creates the mount targets the image lacks in it
// (/etc/hosts, /proc, /dev, volume mount points, the working directory) and
// makes the container's root read-only last, as runc does on containerd's
// snapshot — an overlay without upper layer cannot get a single new mount
// target. Calling it again for the same id (a restart) keeps the upper
// layer.
func (s *Store) PrepareRootfs(ctx context.Context, id string, img Record, containerDir string, readOnly bool) (*Rootfs, error) {
	if !validRootfsID.MatchString(id) {
		return nil, fmt.Errorf("rootfs id %q: must match %s", id, validRootfsID)
	}
	if !filepath.IsAbs(containerDir) {
		return nil, fmt.Errorf("rootfs %s: container dir %q is not absolute", id, containerDir)
	}
	rf := &Rootfs{ID: id, linkDir: filepath.Join(containerDir, "l")}
	rec := RootfsRecord{ID: id, ImageID: img.ID, Image: firstOr(img.RepoTags, img.ID), ContainerDir: containerDir, ReadOnly: readOnly, Created: time.Now().UTC()}
	for i := len(img.Layers) - 1; i >= 0; i-- {
		rf.Lower = append(rf.Lower, filepath.Join(s.layerDir(img.Layers[i].DiffID), "diff"))
	}
	for _, l := range img.Layers {
		rec.Layers = append(rec.Layers, l.DiffID)
	}
	// An image without layers still needs a lowerdir; an empty one changes
	// nothing.
	if len(rf.Lower) == 0 {
		rf.Lower = append(rf.Lower, filepath.Join(s.dir, "empty"))
	}
	rf.Upper, rf.Work = filepath.Join(containerDir, "upper"), filepath.Join(containerDir, "work")
	for _, d := range []string{rf.Upper, rf.Work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("rootfs %s: %w", id, err)
		}
	}
	b, _ := json.MarshalIndent(rec, "", "  ")
	l, err := s.lock("lock", unix.LOCK_EX)
	if err != nil {
		return nil, err
	}
	defer unlock(l)
	// Under the lock GC cannot run: the image's layers must still be there.
	for _, d := range rec.Layers {
		if !s.layerPresent(d) {
			return nil, fmt.Errorf("rootfs %s: image %s: layer %s is missing from %s (removed meanwhile? pull it again)", id, rec.Image, d, s.dir)
		}
	}
	if err := writeFileAtomic(s.rootfsPath(id), b, 0o600); err != nil {
		return nil, err
	}
	return rf, nil
}

// MountRootfs is PrepareRootfs followed by Mount on target: all a caller
// that never looks inside a Rootfs needs (the reconciler's shell).
func (s *Store) MountRootfs(ctx context.Context, id string, img Record, containerDir string, readOnly bool, target string) error {
	rf, err := s.PrepareRootfs(ctx, id, img, containerDir, readOnly)
	if err != nil {
		return err
	}
	if err := rf.Mount(target); err != nil {
		return fmt.Errorf("mount root %s: %w", target, err)
	}
	return nil
}

func (s *Store) rootfsPath(id string) string { return filepath.Join(s.dir, "rootfs", id+".json") }

// ReleaseRootfs drops container id's use of its image; the caller has
// unmounted the root and removes the container dir itself.
func (s *Store) ReleaseRootfs(id string) error {
	if !validRootfsID.MatchString(id) {
		return fmt.Errorf("rootfs id %q: invalid", id)
	}
	l, err := s.lock("lock", unix.LOCK_EX)
	if err != nil {
		return err
	}
	defer unlock(l)
	if err := os.Remove(s.rootfsPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// RootfsRecords lists every registered container root (for adoption after a
// daemon restart and for "in use").
func (s *Store) RootfsRecords() ([]RootfsRecord, error) { return s.rootfsRecords() }

func (s *Store) rootfsRecords() ([]RootfsRecord, error) {
	ents, err := os.ReadDir(filepath.Join(s.dir, "rootfs"))
	if err != nil {
		return nil, err
	}
	var out []RootfsRecord
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue // temp files of an interrupted write
		}
		b, err := os.ReadFile(filepath.Join(s.dir, "rootfs", e.Name()))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var r RootfsRecord
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(s.dir, "rootfs", e.Name()), err)
		}
		out = append(out, r)
	}
	return out, nil
}

// useMountSyscall forces the mount(2) path (tests cover both).
var useMountSyscall = false

// Mount mounts the overlay on target (an existing directory). Where the
// kernel's overlay takes "lowerdir+" through the new mount API (Linux ≥ 6.8)
// every lowerdir is passed on its own, so there is no option-length limit;
// otherwise mount(2) is used, with short relative symlink names when the
// option string would exceed a page.
func (rf *Rootfs) Mount(target string) error {
	if !useMountSyscall && lowerdirPlusSupported() {
		err := rf.mountFsconfig(target)
		if err == nil {
			return nil
		}
		if !errors.Is(err, errNoNewMountAPI) {
			return fmt.Errorf("rootfs %s: overlay on %s: %w", rf.ID, target, err)
		}
	}
	if err := rf.mountLegacy(target); err != nil {
		return fmt.Errorf("rootfs %s: overlay on %s: %w", rf.ID, target, err)
	}
	return nil
}

var errNoNewMountAPI = errors.New("new mount API or lowerdir+ unsupported")

// lowerdirPlusSupported tells, once per process, whether overlayfs parses
// its options natively through fsconfig and knows "lowerdir+". Kernels
// before 6.5 give overlay the VFS's legacy context, which accepts any key
// (it only appends "key=value" to a mount(2)-style string) and fails at
// FSCONFIG_CMD_CREATE, or earlier with "Cumulative options too large"; 6.5
// to 6.7 parse natively but reject "lowerdir+". So: a key no filesystem
// has must be refused (native parser), and "lowerdir+" accepted.
var lowerdirPlusSupported = sync.OnceValue(func() bool {
	fd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	if unix.FsconfigSetString(fd, "minikubelet-probe", "1") == nil {
		return false // the legacy context: anything goes until create
	}
	return unix.FsconfigSetString(fd, "lowerdir+", "/") == nil
})

func (rf *Rootfs) mountFsconfig(target string) error {
	fd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
			return errNoNewMountAPI
		}
		return err
	}
	defer unix.Close(fd)
	set := func(k, v string) error {
		if err := unix.FsconfigSetString(fd, k, v); err != nil {
			return fmt.Errorf("%s=%s: %w%s", k, v, err, fsLog(fd))
		}
		return nil
	}
	if err := set("source", "overlay"); err != nil {
		return err
	}
	for _, l := range rf.Lower {
		if err := unix.FsconfigSetString(fd, "lowerdir+", l); err != nil {
			if errors.Is(err, unix.EINVAL) {
				// A kernel whose overlay lacks lowerdir+ (see
				// lowerdirPlusSupported): on the legacy context this
				// can come at any layer, when the options outgrow a page.
				return fmt.Errorf("%w: lowerdir+=%s: %v%s", errNoNewMountAPI, l, err, fsLog(fd))
			}
			return fmt.Errorf("lowerdir+=%s: %w%s", l, err, fsLog(fd))
		}
	}
	if rf.Upper != "" {
		if err := set("upperdir", rf.Upper); err != nil {
			return err
		}
		if err := set("workdir", rf.Work); err != nil {
			return err
		}
	}
	if err := unix.FsconfigCreate(fd); err != nil {
		return fmt.Errorf("creating overlay: %w%s", err, fsLog(fd))
	}
	var attr int
	if rf.ReadOnly {
		attr = unix.MOUNT_ATTR_RDONLY
	}
	mfd, err := unix.Fsmount(fd, unix.FSMOUNT_CLOEXEC, attr)
	if err != nil {
		return fmt.Errorf("fsmount: %w%s", err, fsLog(fd))
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount: %w", err)
	}
	return nil
}

// fsLog reads the kernel's messages for a filesystem context (why it refused).
func fsLog(fd int) string {
	var msgs []string
	buf := make([]byte, 1024)
	for range 16 {
		n, err := unix.Read(fd, buf)
		if err != nil || n <= 0 {
			break
		}
		msgs = append(msgs, strings.TrimSpace(string(buf[:n])))
	}
	if len(msgs) == 0 {
		return ""
	}
	return " (" + strings.Join(msgs, "; ") + ")"
}

func (rf *Rootfs) mountLegacy(target string) error {
	var flags uintptr
	if rf.ReadOnly {
		flags |= unix.MS_RDONLY
	}
	opts := func(lower []string) string {
		o := "lowerdir=" + strings.Join(lower, ":")
		if rf.Upper != "" {
			o += ",upperdir=" + rf.Upper + ",workdir=" + rf.Work
		}
		return o
	}
	data := opts(rf.Lower)
	if len(data) < os.Getpagesize()-1 {
		return unix.Mount("overlay", target, "overlay", flags, data)
	}
	// Too long for one page: short symlinks 0,1,2... to the lowerdirs, and
	// the mount made from inside that folder with relative names (overlayfs
	// resolves them against the caller's cwd and follows the symlinks).
	if err := os.RemoveAll(rf.linkDir); err != nil {
		return err
	}
	if err := os.Mkdir(rf.linkDir, 0o700); err != nil {
		return err
	}
	short := make([]string, len(rf.Lower))
	for i, l := range rf.Lower {
		short[i] = strconv.Itoa(i)
		if err := os.Symlink(l, filepath.Join(rf.linkDir, short[i])); err != nil {
			return err
		}
	}
	data = opts(short)
	if len(data) >= os.Getpagesize()-1 {
		return fmt.Errorf("%d layers: mount options too long even with short names", len(rf.Lower))
	}
	errc := make(chan error, 1)
	go func() {
		// A thread of our own with a private cwd: chdir must not move the
		// rest of the process. The thread is not returned to the scheduler
		// (no UnlockOSThread), so it dies with this goroutine.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			errc <- fmt.Errorf("unshare(CLONE_FS): %w", err)
			return
		}
		if err := unix.Chdir(rf.linkDir); err != nil {
			errc <- err
			return
		}
		errc <- unix.Mount("overlay", target, "overlay", flags, data)
	}()
	return <-errc
}

// Unmount unmounts the overlay from target; not mounted is not an error. A
// busy mount is detached (lazily unmounted).
func (rf *Rootfs) Unmount(target string) error { return UnmountRootfs(target) }

// UnmountRootfs unmounts a container root by path (after a daemon restart,
// when only the path is known).
func UnmountRootfs(target string) error {
	for {
		err := unix.Unmount(target, unix.UMOUNT_NOFOLLOW)
		switch {
		case err == nil:
			continue // stacked mounts: until nothing is left
		case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
			return nil
		case errors.Is(err, unix.EBUSY):
			if err := unix.Unmount(target, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); err != nil && !errors.Is(err, unix.EINVAL) {
				return fmt.Errorf("unmount %s: %w", target, err)
			}
			return nil
		case errors.Is(err, unix.EINTR):
			continue
		default:
			return fmt.Errorf("unmount %s: %w", target, err)
		}
	}
}
