package systemd

// Cgroup file access shared by both drivers: where a cgroup's directories
// are (from the mount table, never from the caller's own /proc/self/cgroup:
// the daemon may sit in another cgroup namespace than the tree it drives),
// what a cgroup used, and when its memory controller killed a process.
//
// Directory maps (the result of CgroupDirs) are keyed by controller:
//
//	v1 / hybrid: "memory", "cpu", "cpuacct", "pids", "cpuset", "blkio",
//	             "devices", "freezer", ... (co-mounted controllers such as
//	             "cpu,cpuacct" give one key per controller, same dir),
//	             "systemd" for the named name=systemd hierarchy, and
//	             "unified" for the cgroup2 mount of a hybrid host.
//	pure v2:     the single key "" (the unified hierarchy).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// Keys of a CgroupDirs map that are not controller names.
const (
	UnifiedKey  = ""        // pure cgroup v2: the only key
	HybridV2Key = "unified" // the cgroup2 mount beside v1 hierarchies
)

// cgroupMount is one cgroup filesystem mount from mountinfo.
type cgroupMount struct {
	root       string   // field 4: the hierarchy path mounted there
	mountpoint string   // field 5
	v2         bool     // cgroup2
	keys       []string // v1: controllers and named hierarchies (name= stripped)
}

// CgroupDirs maps a cgroup path relative to the hierarchy roots (systemd's
// ControlGroup property, or a cgroupfs path like /kubepods/pod<uid>/<id>) to
// the absolute directory of that cgroup in every mounted hierarchy.
// Controllers listed in /proc/cgroups but not mounted are simply absent.
func CgroupDirs(cgroupPath string) (map[string]string, error) {
	mounts, err := currentCgroupMounts()
	if err != nil {
		return nil, err
	}
	return cgroupDirsFrom(mounts, cgroupPath)
}

// parseProcCgroups returns the controller names /proc/cgroups lists
// (enabled or not, mounted or not).
func parseProcCgroups(b []byte) map[string]bool {
	out := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		out[f[0]] = true
	}
	return out
}

// readCgroupMounts extracts the cgroup and cgroup2 mounts of a mountinfo
// file (parsed by moby/sys/mountinfo, which also undoes the kernel's octal
// escapes). A v1 mount's keys are its super options that /proc/cgroups
// names as controllers, plus name=X as X; generic mount options (rw, xattr,
// release_agent=...) are not controllers and are dropped that way.
func readCgroupMounts(mi []byte, known map[string]bool) ([]cgroupMount, error) {
	infos, err := mountinfo.GetMountsFromReader(bytes.NewReader(mi), mountinfo.FSTypeFilter("cgroup", "cgroup2"))
	if err != nil {
		return nil, fmt.Errorf("/proc/self/mountinfo: %w", err)
	}
	var out []cgroupMount
	for _, info := range infos {
		m := cgroupMount{root: info.Root, mountpoint: info.Mountpoint}
		if info.FSType == "cgroup2" {
			m.v2 = true
		} else {
			for _, o := range strings.Split(info.VFSOptions, ",") {
				switch {
				case strings.HasPrefix(o, "name="):
					m.keys = append(m.keys, strings.TrimPrefix(o, "name="))
				case known[o]:
					m.keys = append(m.keys, o)
				}
			}
			if len(m.keys) == 0 {
				continue
			}
		}
		out = append(out, m)
	}
	return out, nil
}

// cgroupDirsFrom resolves cgroupPath against parsed mounts. A mount whose
// root contains the path wins (the longest such root, when a hierarchy is
// mounted more than once); a path outside every mount's root is taken
// relative to the mount, as libcontainer's fs driver does for absolute
// paths. The host is pure v2 when no v1 controller is mounted; then only
// the cgroup2 mount counts, under the key "".
func cgroupDirsFrom(mounts []cgroupMount, cgroupPath string) (map[string]string, error) {
	if cgroupPath == "" {
		return nil, errors.New("empty cgroup path")
	}
	p := path.Clean("/" + cgroupPath)
	v1 := false
	for _, m := range mounts {
		if !m.v2 && !isNamedOnly(m) {
			v1 = true
		}
	}
	type pick struct {
		dir    string
		inside bool
		root   int
	}
	best := map[string]pick{}
	consider := func(key string, m cgroupMount) {
		rel, inside := relToRoot(p, m.root)
		c := pick{dir: filepath.Join(m.mountpoint, rel), inside: inside, root: len(m.root)}
		old, ok := best[key]
		if !ok || (c.inside && !old.inside) || (c.inside == old.inside && c.root > old.root) {
			best[key] = c
		}
	}
	for _, m := range mounts {
		switch {
		case m.v2 && v1:
			consider(HybridV2Key, m)
		case m.v2:
			consider(UnifiedKey, m)
		case v1:
			for _, k := range m.keys {
				consider(k, m)
			}
		}
	}
	if len(best) == 0 {
		return nil, fmt.Errorf("cgroup %s: no cgroup hierarchy is mounted (see /proc/self/mountinfo)", p)
	}
	out := make(map[string]string, len(best))
	for k, v := range best {
		out[k] = v.dir
	}
	return out, nil
}

func isNamedOnly(m cgroupMount) bool {
	// Named hierarchies (name=systemd) hold no controller: a pure v2 host
	// that still mounts one for old software is not a v1 host.
	return len(m.keys) == 1 && m.keys[0] == "systemd"
}

// relToRoot returns p relative to a mount root and whether p lies inside it.
func relToRoot(p, root string) (string, bool) {
	root = path.Clean("/" + root)
	if root == "/" {
		return p, true
	}
	if p == root {
		return "/", true
	}
	if strings.HasPrefix(p, root+"/") {
		return strings.TrimPrefix(p, root), true
	}
	return p, false
}

// IsV2Dirs reports whether a dirs map is of a pure cgroup v2 host.
func IsV2Dirs(dirs map[string]string) bool {
	_, ok := dirs[UnifiedKey]
	return ok
}

// ReadUsage reads what a cgroup used. Memory is the working set as the
// kubelet (cadvisor) computes it: usage minus inactive file pages, floored
// at 0. OOMKills counts kills in the cgroup and below on both hierarchies
// (v2's memory.events is hierarchical; v1 counts a kill only in the
// victim's own cgroup, so descendants are summed). A controller that is not
// mounted or not enabled leaves its field 0; a cgroup that does not exist
// is an error.
func ReadUsage(dirs map[string]string) (Usage, error) {
	var u Usage
	if IsV2Dirs(dirs) {
		dir := dirs[UnifiedKey]
		if _, err := os.Stat(dir); err != nil {
			return u, fmt.Errorf("cgroup %s: %w", dir, err)
		}
		cur, err := readUintFile(dir, "memory.current")
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return u, err
		}
		if err == nil {
			inactive, err := readKeyedFile(dir, "memory.stat", "inactive_file")
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return u, err
			}
			u.MemoryBytes = workingSet(cur, inactive)
		}
		usec, err := readKeyedFile(dir, "cpu.stat", "usage_usec")
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return u, err
		}
		u.CPUUsageNanos = usec * 1000
		if u.PIDs, err = readUintFile(dir, "pids.current"); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return u, err
		}
		if u.OOMKills, err = readKeyedFile(dir, "memory.events", "oom_kill"); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return u, err
		}
		return u, nil
	}
	exists := false
	if dir, ok := dirs["memory"]; ok {
		usage, err := readUintFile(dir, "memory.usage_in_bytes")
		switch {
		case err == nil:
			exists = true
			inactive, err := readKeyedFile(dir, "memory.stat", "total_inactive_file")
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return u, err
			}
			u.MemoryBytes = workingSet(usage, inactive)
			if u.OOMKills, err = sumOOMKillsV1(dir); err != nil {
				return u, err
			}
		case !errors.Is(err, fs.ErrNotExist):
			return u, err
		}
	}
	cpuFound := false
	if dir, ok := dirs["cpuacct"]; ok {
		ns, err := readUintFile(dir, "cpuacct.usage")
		switch {
		case err == nil:
			exists, cpuFound = true, true
			u.CPUUsageNanos = ns
		case !errors.Is(err, fs.ErrNotExist):
			return u, err
		}
	}
	if dir, ok := dirs[HybridV2Key]; ok && !cpuFound {
		// systemd does not create its units' cgroups in a cpuacct hierarchy
		// mounted apart from cpu (as on the build machine), but on a hybrid
		// host every cgroup2 directory counts cpu time in cpu.stat, with or
		// without the cpu controller.
		usec, err := readKeyedFile(dir, "cpu.stat", "usage_usec")
		switch {
		case err == nil:
			u.CPUUsageNanos = usec * 1000
		case !errors.Is(err, fs.ErrNotExist):
			return u, err
		}
	}
	if dir, ok := dirs["pids"]; ok {
		n, err := readUintFile(dir, "pids.current")
		switch {
		case err == nil:
			exists = true
			u.PIDs = n
		case !errors.Is(err, fs.ErrNotExist):
			return u, err
		}
	}
	if !exists {
		return u, fmt.Errorf("cgroup %v: no memory, cpuacct or pids directory exists", dirs)
	}
	return u, nil
}

func workingSet(usage, inactiveFile uint64) uint64 {
	if inactiveFile >= usage {
		return 0
	}
	return usage - inactiveFile
}

// sumOOMKillsV1 adds the oom_kill counters of a v1 memory cgroup and its
// descendants.
func sumOOMKillsV1(dir string) (uint64, error) {
	var total uint64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p != dir && errors.Is(err, fs.ErrNotExist) {
				return nil // a child removed while walking
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		n, err := readKeyedFile(p, "memory.oom_control", "oom_kill")
		if err != nil {
			if p != dir && errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		total += n
		return nil
	})
	return total, err
}

// readUintFile reads a file holding one number ("max" reads as 0).
func readUintFile(dir, file string) (uint64, error) {
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", filepath.Join(dir, file), err)
	}
	return n, nil
}

// readKeyedFile reads the value of key from a flat-keyed file ("key value"
// lines: memory.stat, cpu.stat, memory.events, memory.oom_control). A
// missing key reads as 0: kernels add keys over time.
func readKeyedFile(dir, file, key string) (uint64, error) {
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if !ok || k != key {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %s: %w", filepath.Join(dir, file), key, err)
		}
		return n, nil
	}
	return 0, nil
}

// oomKillCount reads the kill counter watchOOM follows: the cgroup's own
// (v1 memory.oom_control, local to the victim's cgroup) or hierarchical
// (v2 memory.events) count.
func oomKillCount(dirs map[string]string) (uint64, error) {
	if IsV2Dirs(dirs) {
		return readKeyedFile(dirs[UnifiedKey], "memory.events", "oom_kill")
	}
	dir, ok := dirs["memory"]
	if !ok {
		return 0, errors.New("no v1 memory hierarchy is mounted")
	}
	return sumOOMKillsV1(dir)
}

// WatchOOMDirs delivers one value per OOM kill in the cgroup (and below) from
// now on, and closes the channel when the cgroup is removed or ctx ends.
// Call it before the workload runs, so no kill goes unseen.
//
// v1: an eventfd registered on memory.oom_control through
// cgroup.event_control; it fires when the cgroup (or an ancestor) is under
// OOM, also when the kernel then reclaims without killing, and when the
// cgroup is removed. So each wake-up re-reads the oom_kill counter (the
// kill is counted just after the notification, hence a short settle loop)
// and checks the directory still exists; a slow tick (5s) re-reads it too,
// for kills the eventfd does not signal (a container below a watched pod
// hitting its own limit). A kill whose emptied scope systemd removed before
// the watcher looked is told by the count of notifications: the removal's
// and one before it.
// v2: memory.events changes are signalled through inotify (IN_MODIFY); a
// slow poll catches the cgroup's removal and stands in when inotify is
// unavailable. A kill the cgroup's removal hid (systemd removes an empty
// scope at once) is read from the parent's hierarchical counter.
func WatchOOMDirs(ctx context.Context, dirs map[string]string) (<-chan struct{}, error) {
	base, err := oomKillCount(dirs)
	if err != nil {
		return nil, fmt.Errorf("watch OOM: %w", err)
	}
	if IsV2Dirs(dirs) {
		return watchOOMV2(ctx, dirs[UnifiedKey], base)
	}
	return watchOOMV1(ctx, dirs, base)
}

// oomV1BeforeStat, when a test sets it, runs on each notification before
// the v1 watcher looks for the cgroup's directory: it lets a test remove the
// cgroup first, as a loaded host does.
var oomV1BeforeStat func(dir string)

func watchOOMV1(ctx context.Context, dirs map[string]string, base uint64) (<-chan struct{}, error) {
	dir := dirs["memory"]
	// The watch lives as long as the container: keep only what it reads,
	// not the path of every hierarchy.
	dirs = map[string]string{"memory": dir}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("eventfd for %s: %w", dir, err)
	}
	// Through os.File the runtime poller waits on the eventfd, so Close
	// (on ctx end) unblocks the reader.
	ev := os.NewFile(uintptr(efd), "oom-eventfd")
	ctl, err := os.Open(filepath.Join(dir, "memory.oom_control"))
	if err != nil {
		ev.Close()
		return nil, err
	}
	reg := fmt.Sprintf("%d %d", efd, ctl.Fd())
	if err := os.WriteFile(filepath.Join(dir, "cgroup.event_control"), []byte(reg), 0); err != nil {
		ev.Close()
		ctl.Close()
		return nil, fmt.Errorf("register OOM eventfd in %s/cgroup.event_control: %w", dir, err)
	}
	// base was read before registering: a kill in between had no
	// notification, and the first report below still counts it.
	out := make(chan struct{}, 16)
	go func() {
		defer close(out)
		defer ctl.Close()
		stop := context.AfterFunc(ctx, func() { ev.Close() })
		defer stop()
		defer ev.Close()
		seen := base
		report := func() bool {
			n, err := oomKillCount(dirs)
			if err != nil {
				return false
			}
			for ; seen < n; seen++ {
				select {
				case out <- struct{}{}:
				case <-ctx.Done():
					return false
				}
			}
			return true
		}
		if !report() {
			return
		}
		// The eventfd is read by a goroutine of its own so the loop below can
		// also re-check on a slow tick: the eventfd of a pod's cgroup does not
		// fire when one of its containers hits its own, lower limit (v1
		// notifies the cgroup under OOM and its descendants, not its
		// ancestors), and the tick also notices a removal.
		// notes counts the eventfd's notifications (a read returns how many
		// were signalled since the last one); handled is how many had been
		// seen when the directory was last found, so their kills were read
		// from the kernel's counter. The cgroup's removal is one more
		// notification: two past handled mean an OOM was signalled before
		// the removal, which won the race to the Lstat (a loaded host).
		var notes atomic.Uint64
		var handled uint64
		fired := make(chan struct{}, 1)
		// removedAfterOOM waits a little for the removal's own notification
		// (the kernel signals it when the cgroup goes offline, after an RCU
		// grace period) and says whether another came before it.
		removedAfterOOM := func() bool {
			deadline := time.NewTimer(100 * time.Millisecond)
			defer deadline.Stop()
			for notes.Load()-handled < 2 {
				select {
				case _, ok := <-fired:
					if !ok {
						return notes.Load()-handled >= 2
					}
				case <-deadline.C:
					return false
				case <-ctx.Done():
					return false
				}
			}
			return true
		}
		go func() {
			defer close(fired)
			buf := make([]byte, 8)
			for {
				if _, err := ev.Read(buf); err != nil {
					return // closed (ctx, or the watch ended), or broken
				}
				notes.Add(binary.NativeEndian.Uint64(buf))
				select {
				case fired <- struct{}{}:
				default: // a wake-up is already pending
				}
			}
		}()
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		for {
			select {
			case _, ok := <-fired:
				if !ok {
					return
				}
			case <-tick.C:
				// The walk is only for kills below the cgroup; one without
				// child cgroups (a container's scope) has its own kills and
				// its removal signalled on the eventfd. A stat says which
				// (kernfs counts a directory's subdirectories in its link
				// count), so hundreds of watched scopes cost no walk.
				if fi, err := os.Lstat(dir); err == nil && !hasChildDirs(fi) {
					continue
				}
				if !report() {
					return
				}
				continue
			case <-ctx.Done():
				return
			}
			// The kill is counted a few microseconds after the notification,
			// and an emptied cgroup may be removed (systemd collects empty
			// scopes) soon after that: read at once and poll tightly, then
			// more slowly. A read that fails means the cgroup is gone (the
			// eventfd also fires on rmdir).
			// An rmdir removes the directory before it signals the eventfd, so
			// a notification while the directory is still there is an OOM.
			seenNotes := notes.Load()
			if oomV1BeforeStat != nil {
				oomV1BeforeStat(dir)
			}
			_, statErr := os.Lstat(dir)
			oomNotified := statErr == nil
			if oomNotified {
				handled = seenNotes
			} else {
				oomNotified = removedAfterOOM()
			}
			before := seen
			for i := 0; i < 100 && seen == before; i++ {
				if !report() {
					if oomNotified && seen == before && ctx.Err() == nil {
						// The kill emptied the cgroup and it was removed
						// (systemd collects empty scopes) before the kernel's
						// counter could be read: count the kill the
						// notification announced.
						select {
						case out <- struct{}{}:
						case <-ctx.Done():
						}
					}
					return
				}
				if seen != before {
					break
				}
				wait := 100 * time.Microsecond
				if i >= 50 {
					wait = 10 * time.Millisecond
				}
				select {
				case <-time.After(wait):
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}

// hasChildDirs reports whether a directory has subdirectories, from its
// link count (2 + subdirectories on kernfs, as on most filesystems); a
// count it cannot read says yes.
func hasChildDirs(fi os.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return !ok || st.Nlink != 2
}

func watchOOMV2(ctx context.Context, dir string, base uint64) (<-chan struct{}, error) {
	file := filepath.Join(dir, "memory.events")
	out := make(chan struct{}, 16)
	// systemd removes a scope as soon as its last process is gone, so an
	// OOM-killed workload's cgroup can vanish before this goroutine reads
	// the counter its kill raised (seen on a slow host). The parent's
	// counter is hierarchical: others is how many of the parent's kills are
	// not this cgroup's, so a rise beyond others+seen once this cgroup is
	// gone is this cgroup's last kill. A sibling's kill wakes this watch
	// through the parent's file and is counted in others; the kernel counts
	// a kill in the cgroup before its parents, so reading the parent first
	// never takes one of this cgroup's kills for a sibling's. others only
	// grows (a kill of this cgroup's between the two reads looks like one
	// sibling kill less, for a moment).
	parent := filepath.Dir(dir)
	others, parentOK := uint64(0), false
	if pn, err := readKeyedFile(parent, "memory.events", "oom_kill"); err == nil && pn >= base {
		others, parentOK = pn-base, true
	}
	w, werr := sharedInotify().watch(file)
	pw, pwerr := sharedInotify().watch(filepath.Join(parent, "memory.events"))
	go func() {
		defer close(out)
		var wake, parentWake <-chan struct{}
		if werr == nil {
			defer sharedInotify().unwatch(w)
			wake = w.c
		}
		if pwerr == nil {
			defer sharedInotify().unwatch(pw)
			parentWake = pw.c
		}
		seen := base
		delay := 100 * time.Millisecond
		for {
			pn, perr := readKeyedFile(parent, "memory.events", "oom_kill")
			n, err := readKeyedFile(dir, "memory.events", "oom_kill")
			if err != nil {
				// Removed (or unreadable): the cgroup is gone.
				if pn, perr := readKeyedFile(parent, "memory.events", "oom_kill"); perr == nil && parentOK && pn > others+seen {
					select {
					case out <- struct{}{}:
					case <-ctx.Done():
					}
				}
				return
			}
			if perr == nil && pn >= n && pn-n > others {
				others = pn - n
			}
			if n > seen {
				delay = 100 * time.Millisecond
			}
			for ; seen < n; seen++ {
				select {
				case out <- struct{}{}:
				case <-ctx.Done():
					return
				}
			}
			if wake != nil {
				delay = 2 * time.Second // only to notice removal
			} else if delay < 5*time.Second {
				delay *= 2
			}
			select {
			case <-wake:
			case <-parentWake:
			case <-time.After(delay):
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}
