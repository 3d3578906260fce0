package shim

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"github.com/moby/sys/capability"
	"golang.org/x/sys/unix"
)

// File descriptors of a container init, set up by the supervisor.
const (
	initSpecFD   = 3 // JSON ContainerSpec, then EOF
	initGoFD     = 4 // one byte once the daemon has placed us in our scope
	initStatusFD = 5 // "ready\n" after setup; then EOF on exec or "error: ...\n"
	initPTYFD    = 6 // tty: true only: a unix socket to send the terminal's master on
)

// ContainerInitMain runs in a process born in fresh mount (and PID)
// namespaces, sharing the pod's net/ipc/uts. It builds the root, waits to be
// released, drops privileges on the thread that execs, and execs the
// workload. It never returns on success.
func ContainerInitMain() int {
	// Everything per-thread (caps, no_new_privs, seccomp, cgroup ns) is done
	// on this thread, and this thread execs.
	runtime.LockOSThread()
	// Other containers of the pod (shared PID namespace) must not open our
	// /proc/<pid>/exe — the host's binary — nor our fds (CVE-2019-5736).
	unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	status := os.NewFile(initStatusFD, "status")
	fail := func(err error) int {
		fmt.Fprintf(status, "error: %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
		return 128
	}
	var spec ContainerSpec
	if err := json.NewDecoder(os.NewFile(initSpecFD, "spec")).Decode(&spec); err != nil {
		return fail(fmt.Errorf("read container spec: %w", err))
	}
	unix.Close(initSpecFD)
	if err := setupRoot(&spec); err != nil {
		return fail(err)
	}
	if spec.TTY {
		if err := takeContainerTerminal(); err != nil {
			return fail(err)
		}
	}
	if _, err := status.Write([]byte("ready\n")); err != nil {
		return 1
	}
	// Held until the daemon has moved us into our scope with its limits:
	// nothing of the workload runs outside it.
	var b [1]byte
	if n, _ := os.NewFile(initGoFD, "go").Read(b[:]); n != 1 {
		return 1 // the supervisor gave up on us
	}
	unix.Close(initGoFD)
	if err := finishAndExec(&spec, status); err != nil {
		return fail(err)
	}
	return 0 // not reached
}

// setupRoot mounts the container's root and pivots into it. Runs in our own
// mount namespace: nothing propagates back to the host.
func setupRoot(spec *ContainerSpec) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return fmt.Errorf("make / rslave: %w", err)
	}
	root, err := filepath.Abs(spec.Rootfs)
	if err != nil || spec.Rootfs == "" {
		return fmt.Errorf("rootfs %q: must be an absolute path", spec.Rootfs)
	}
	if err := unix.Mount(root, root, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind rootfs %s: %w", root, err)
	}
	for i := range spec.Mounts {
		m := &spec.Mounts[i]
		if err := mountInRoot(root, m); err != nil {
			return err
		}
		// Devices right after /dev itself, so that later mounts (the
		// user's volumes) win over them, as with containerd.
		if m.Destination == "/dev" && m.Type == "tmpfs" {
			if err := setupDev(root, spec); err != nil {
				return err
			}
		}
	}
	if err := pivotRoot(root); err != nil {
		return err
	}
	// The /dev/null used to mask files is held by fd and checked to be the
	// real device, never a path looked up again (masked paths swapped).
	devnull, err := os.OpenFile("/dev/null", unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open /dev/null for masking: %w", err)
	}
	defer devnull.Close()
	var dst unix.Stat_t
	if err := unix.Fstat(int(devnull.Fd()), &dst); err != nil || dst.Mode&unix.S_IFMT != unix.S_IFCHR || dst.Rdev != unix.Mkdev(1, 3) {
		return errors.New("/dev/null in the container is not the null device")
	}
	for _, p := range spec.MaskedPaths {
		if err := maskPath(p, devnull); err != nil {
			return err
		}
	}
	for _, p := range spec.ReadonlyPaths {
		if err := readonlyPath(p); err != nil {
			return err
		}
	}
	// The working directory is the last target made before the root may
	// turn read-only (runc creates it in the same place). Inside the new
	// root nothing of the host is left to reach through a symlink.
	if spec.Cwd != "" {
		if err := os.MkdirAll(spec.Cwd, 0o755); err != nil {
			return fmt.Errorf("working directory %s: %w", spec.Cwd, err)
		}
	}
	// Read-only last, once every mount target exists (runc's order): an
	// image need not have any of them.
	if spec.RootfsReadOnly {
		if err := unix.Mount("", "/", "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
			return fmt.Errorf("remount / read-only: %w", err)
		}
	}
	return nil
}

// openInRoot resolves dest inside root without following symlinks out of it,
// creating it (a directory, or an empty file when file is set) if missing,
// and returns an O_PATH handle. Mounting on /proc/self/fd/<n> of that handle
// closes the race where the target is swapped for a symlink between check
// and mount (CVE-2021-30465).
func openInRoot(root, dest string, file bool) (*os.File, error) {
	rootF, err := os.OpenFile(root, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, err
	}
	defer rootF.Close()
	parent, name := filepath.Split(filepath.Clean("/" + dest))
	dir, err := pathrs.MkdirAllHandle(rootF, parent, 0o755)
	if err != nil {
		return nil, fmt.Errorf("mount target %s: %w", dest, err)
	}
	defer dir.Close()
	if name == "" {
		return os.OpenFile(procFD(dir), unix.O_PATH|unix.O_DIRECTORY, 0)
	}
	flags := unix.O_PATH | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := unix.Openat(int(dir.Fd()), name, flags, 0)
	if errors.Is(err, unix.ENOENT) {
		if file {
			cfd, cerr := unix.Openat(int(dir.Fd()), name, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
			if cerr != nil && !errors.Is(cerr, unix.EEXIST) {
				return nil, fmt.Errorf("create mount target %s: %w", dest, cerr)
			}
			if cerr == nil {
				unix.Close(cfd)
			}
		} else if merr := unix.Mkdirat(int(dir.Fd()), name, 0o755); merr != nil && !errors.Is(merr, unix.EEXIST) {
			return nil, fmt.Errorf("create mount target %s: %w", dest, merr)
		}
		fd, err = unix.Openat(int(dir.Fd()), name, flags, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("open mount target %s: %w", dest, err)
	}
	f := os.NewFile(uintptr(fd), dest)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
		f.Close()
		return nil, fmt.Errorf("mount target %s is a symlink", dest)
	}
	return f, nil
}

func procFD(f *os.File) string { return "/proc/self/fd/" + strconv.Itoa(int(f.Fd())) }

// resolveDest resolves a bind mount's destination inside root the way runc
// does (filepath-securejoin): a symlink, absolute or relative, is followed
// as if root were "/", never out of it, and a missing part is taken as
// written. An image whose /etc/resolv.conf links to
// ../run/systemd/resolve/stub-resolv.conf gets the pod's file there. The
// result is opened without following symlinks again (openInRoot), so a
// swap after this lookup fails the mount instead of redirecting it.
// Kernel filesystems (/proc, /sys, tmpfs ...) are never mounted through a
// symlink (runc refuses those too).
func resolveDest(root string, m *Mount) (string, error) {
	if m.Type != "bind" {
		return m.Destination, nil
	}
	p, err := securejoin.SecureJoin(root, m.Destination)
	if err != nil {
		return "", fmt.Errorf("mount target %s: %w", m.Destination, err)
	}
	rel, err := filepath.Rel(root, p)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("mount target %s: resolves outside the root (%s)", m.Destination, p)
	}
	return "/" + rel, nil
}

func mountInRoot(root string, m *Mount) error {
	if m.SubPath != "" {
		src, err := openSubPath(m)
		if err != nil {
			return err
		}
		defer src.Close()
		bind := *m
		bind.Source, bind.SubPath = procFD(src), ""
		if err := mountInRoot(root, &bind); err != nil {
			return fmt.Errorf("subPath %q of %s: %w", m.SubPath, m.Source, err)
		}
		return nil
	}
	dest, err := resolveDest(root, m)
	if err != nil {
		return err
	}
	target, err := openInRoot(root, dest, m.File)
	if err != nil {
		return err
	}
	defer target.Close()
	t := procFD(target)
	if m.Type == "bind" {
		flags := uintptr(unix.MS_BIND) | m.Flags&unix.MS_REC
		if err := unix.Mount(m.Source, t, "", flags, ""); err != nil {
			return fmt.Errorf("bind %s on %s: %w", m.Source, m.Destination, err)
		}
		// Bind mounts ignore other flags until a remount; reopen the
		// mounted path (the handle still points below the new mount).
		if rest := m.Flags &^ (unix.MS_BIND | unix.MS_REC); rest != 0 {
			mt, err := openInRoot(root, dest, m.File)
			if err != nil {
				return err
			}
			err = unix.Mount("", procFD(mt), "", unix.MS_BIND|unix.MS_REMOUNT|rest, "")
			mt.Close()
			if err != nil {
				return fmt.Errorf("remount %s with flags %#x: %w", m.Destination, rest, err)
			}
		}
	} else if err := unix.Mount(m.Source, t, m.Type, m.Flags, m.Data); err != nil {
		return fmt.Errorf("mount %s (%s) on %s: %w", m.Source, m.Type, m.Destination, err)
	}
	if m.Propagation != 0 {
		mt, err := openInRoot(root, dest, m.File)
		if err != nil {
			return err
		}
		defer mt.Close()
		if err := unix.Mount("", procFD(mt), "", m.Propagation, ""); err != nil {
			return fmt.Errorf("propagation of %s: %w", m.Destination, err)
		}
	}
	return nil
}

// setupDev fills the container's /dev tmpfs: the six standard devices bound
// from the host (no mknod needed, works the same in a user namespace) and
// the usual symlinks. Privileged containers get the host's /dev instead.
func setupDev(root string, spec *ContainerSpec) error {
	if spec.Privileged {
		return nil // the daemon asked for a recursive bind of the host /dev
	}
	for _, d := range []string{"null", "zero", "full", "random", "urandom", "tty"} {
		m := Mount{Source: "/dev/" + d, Destination: "/dev/" + d, Type: "bind", File: true}
		if err := mountInRoot(root, &m); err != nil {
			return err
		}
	}
	links := [][2]string{{"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"},
		{"/proc/self/fd/2", "stderr"}, {"pts/ptmx", "ptmx"}, {"/proc/kcore", "core"}}
	dev, err := openInRoot(root, "/dev", false)
	if err != nil {
		return err
	}
	defer dev.Close()
	for _, l := range links {
		if err := unix.Symlinkat(l[0], int(dev.Fd()), l[1]); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("symlink /dev/%s: %w", l[1], err)
		}
	}
	return nil
}

// pivotRoot makes root the new / and detaches the old one, so nothing of the
// host stays reachable (runc's pivot_root(".", ".") technique).
func pivotRoot(root string) error {
	if err := unix.Chdir(root); err != nil {
		return err
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root into %s: %w", root, err)
	}
	if err := unix.Mount("", ".", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return err
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach old root: %w", err)
	}
	return unix.Chdir("/")
}

func maskPath(p string, devnull *os.File) error {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return fmt.Errorf("mask %s: %w", p, err)
	}
	var err error
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		err = unix.Mount("tmpfs", p, "tmpfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size=0")
	} else {
		err = unix.Mount(procFD(devnull), p, "", unix.MS_BIND, "")
	}
	if err != nil {
		return fmt.Errorf("mask %s: %w", p, err)
	}
	return nil
}

func readonlyPath(p string) error {
	if err := unix.Mount(p, p, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return fmt.Errorf("read-only path %s: %w", p, err)
	}
	if err := unix.Mount("", p, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("read-only path %s: %w", p, err)
	}
	return nil
}

// finishAndExec applies the process settings in the order that keeps the
// privileges each step needs, on the locked thread that then execs.
func finishAndExec(spec *ContainerSpec, status *os.File) error {
	if spec.CgroupNS {
		// Now that we are in our scope, a private cgroup namespace rooted there.
		if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
			return fmt.Errorf("cgroup namespace: %w", err)
		}
		if err := mountCgroups(spec.Privileged); err != nil {
			return err
		}
	}
	if spec.OOMScoreAdj != nil {
		// Best effort and silent: stderr is the container's log. Raising
		// always works; lowering below the inherited value needs
		// CAP_SYS_RESOURCE, and then the inherited value stays.
		os.WriteFile("/proc/self/oom_score_adj", []byte(strconv.Itoa(*spec.OOMScoreAdj)), 0)
	}
	cwd := spec.Cwd
	if cwd == "" {
		cwd = "/"
	}
	if err := os.MkdirAll(cwd, 0o755); err != nil {
		return fmt.Errorf("working directory %s: %w", cwd, err)
	}
	path, err := lookPath(spec.Args, spec.Env, cwd)
	if err != nil {
		return err
	}
	caps, err := buildCaps(spec.Capabilities)
	if err != nil {
		return err
	}
	// Opened now (root, the host's /proc); entered just before the exec.
	aa, err := openAppArmorProfile(spec.AppArmorProfile, spec.appArmorAttr)
	if err != nil {
		return err
	}
	if spec.NoNewPrivileges {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("no_new_privs: %w", err)
		}
	}
	// Bounding set first, while we still hold CAP_SETPCAP.
	if err := caps.Apply(capability.BOUNDS); err != nil {
		return fmt.Errorf("capability bounding set: %w", err)
	}
	// Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: load it
	// now, while we are still root (runc does the same); the profile must
	// allow the few syscalls left before exec.
	if !spec.NoNewPrivileges {
		if err := loadSeccomp(spec.SeccompFilter); err != nil {
			return err
		}
	}
	// Keep the permitted set across setuid, then set it explicitly.
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
		return err
	}
	gids := make([]int, 0, len(spec.AdditionalGIDs))
	for _, g := range spec.AdditionalGIDs {
		gids = append(gids, int(g))
	}
	if err := unix.Setgroups(gids); err != nil {
		return fmt.Errorf("setgroups %v: %w", gids, err)
	}
	if err := unix.Setresgid(int(spec.GID), int(spec.GID), int(spec.GID)); err != nil {
		return fmt.Errorf("setgid %d: %w", spec.GID, err)
	}
	if err := unix.Setresuid(int(spec.UID), int(spec.UID), int(spec.UID)); err != nil {
		return fmt.Errorf("setuid %d: %w", spec.UID, err)
	}
	if err := caps.Apply(capability.CAPS | capability.AMBS); err != nil {
		return fmt.Errorf("capabilities: %w", err)
	}
	unix.Prctl(unix.PR_SET_KEEPCAPS, 0, 0, 0, 0)
	// A credential change clears the parent-death signal: set it again.
	unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0)
	if err := unix.Chdir(cwd); err != nil {
		return fmt.Errorf("working directory %s: %w", cwd, err)
	}
	// No fd of ours may reach the workload (CVE-2024-21626): everything
	// above 2 is close-on-exec, including the status pipe, whose EOF tells
	// the supervisor the exec succeeded.
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return fmt.Errorf("close_range: %w", err)
	}
	if err := aa.enter(); err != nil {
		return err
	}
	if spec.NoNewPrivileges {
		if err := loadSeccomp(spec.SeccompFilter); err != nil {
			return err
		}
	}
	if spec.forkExec != nil {
		return spec.forkExec(path) // the exec helper: fork the command from this thread
	}
	err = unix.Exec(path, spec.Args, spec.Env)
	return fmt.Errorf("exec %q: %w", spec.Args[0], err)
}

func buildCaps(names []string) (capability.Capabilities, error) {
	c, err := capability.NewPid2(0)
	if err != nil {
		return nil, err
	}
	c.Clear(capability.CAPS | capability.BOUNDS | capability.AMBS)
	byName := map[string]capability.Cap{}
	for _, k := range capability.ListKnown() {
		byName["CAP_"+strings.ToUpper(k.String())] = k
	}
	for _, n := range names {
		k, ok := byName[n]
		if !ok {
			continue // unknown to this kernel/library: skip, as containerd does
		}
		// Never inheritable (nor ambient, cleared above and applied with
		// CAPS): a set inheritable set lets an exec'd file with inheritable
		// file capabilities gain them (CVE-2022-24769; runc >= 1.1.2).
		c.Set(capability.BOUNDING|capability.PERMITTED|capability.EFFECTIVE, k)
	}
	return c, nil
}

// lookPath finds the file to exec: argv[0] itself when it has a slash,
// otherwise the first executable match in the container's PATH.
func lookPath(args, env []string, cwd string) (string, error) {
	if len(args) == 0 || args[0] == "" {
		return "", errors.New("no command: neither command nor the image entrypoint/cmd is set")
	}
	name := args[0]
	if strings.Contains(name, "/") {
		return name, nil
	}
	path := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(cwd, dir)
		}
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("exec: %q: executable file not found in $PATH", name)
}

// mountCgroups shows the container its own cgroup (the namespace root) at
// /sys/fs/cgroup, for v1 hierarchies and cgroup2 alike: read-only, or
// writable for a privileged container, as runc mounts it for containerd.
func mountCgroups(privileged bool) error {
	ro := uintptr(unix.MS_RDONLY)
	if privileged {
		ro = 0
	}
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return err
	}
	defer f.Close()
	type h struct{ dir, fstype, opts string }
	var hs []h
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			hs = append(hs, h{"unified", "cgroup2", ""})
		case strings.HasPrefix(parts[1], "name="):
			hs = append(hs, h{strings.TrimPrefix(parts[1], "name="), "cgroup", "none," + parts[1]})
		default:
			hs = append(hs, h{parts[1], "cgroup", parts[1]})
		}
	}
	if len(hs) == 1 && hs[0].fstype == "cgroup2" {
		if err := unix.Mount("cgroup2", "/sys/fs/cgroup", "cgroup2", ro|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
			return fmt.Errorf("mount cgroup2 on /sys/fs/cgroup: %w", err)
		}
		return nil
	}
	if err := unix.Mount("tmpfs", "/sys/fs/cgroup", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=755"); err != nil {
		return fmt.Errorf("mount tmpfs on /sys/fs/cgroup: %w", err)
	}
	for _, x := range hs {
		dir := "/sys/fs/cgroup/" + x.dir
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		// A hierarchy the node does not mount is skipped, never required.
		if err := unix.Mount("cgroup", dir, x.fstype, ro|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, x.opts); err != nil {
			os.Remove(dir)
		}
	}
	return unix.Mount("", "/sys/fs/cgroup", "", unix.MS_REMOUNT|ro|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=755")
}
