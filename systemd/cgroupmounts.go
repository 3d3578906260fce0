package systemd

import (
	"os"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// cgroupMountTable is the cgroup part of the mount table, kept between
// calls. /proc/self/mountinfo lists every mount of the node (each pod adds
// its /dev/shm, netns pin and one overlay root per container), so parsing
// it for every cgroup lookup made each lookup cost O(pods) and a round of
// usage reads or OOM watches O(pods²). The table is re-read only when the
// kernel says the mount table changed: poll(2) on an open mountinfo file
// reports POLLPRI|POLLERR once after any mount or unmount in the
// namespace (proc(5)), so a lookup after a change never sees a stale table.
var cgroupMountTable struct {
	mu     sync.Mutex
	fd     int // open /proc/self/mountinfo, polled for changes; -1: none
	mounts []cgroupMount
	valid  bool
}

func init() { cgroupMountTable.fd = -1 }

// currentCgroupMounts returns the cgroup mounts of the daemon's mount
// namespace (callers must not modify the result).
func currentCgroupMounts() ([]cgroupMount, error) {
	t := &cgroupMountTable
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.fd < 0 {
		// Opened before reading: a change after the open and before the
		// read is in what is read; one after the read is reported by poll.
		if fd, err := unix.Open("/proc/self/mountinfo", unix.O_RDONLY|unix.O_CLOEXEC, 0); err == nil {
			t.fd = fd
		}
	}
	if t.valid && t.fd >= 0 && !mountTableChanged(t.fd) {
		return t.mounts, nil
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	known, err := os.ReadFile("/proc/cgroups")
	if err != nil {
		return nil, err
	}
	mounts, err := readCgroupMounts(mi, parseProcCgroups(known))
	if err != nil {
		return nil, err
	}
	// The table outlives this read: hold copies, not substrings keeping
	// the whole mountinfo text alive.
	for i := range mounts {
		m := &mounts[i]
		m.root, m.mountpoint = strings.Clone(m.root), strings.Clone(m.mountpoint)
		for j := range m.keys {
			m.keys[j] = strings.Clone(m.keys[j])
		}
	}
	t.mounts, t.valid = mounts, t.fd >= 0
	return mounts, nil
}

// mountTableChanged polls fd (an open mountinfo) without blocking; an
// error counts as a change (the caller re-reads).
func mountTableChanged(fd int) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLPRI}}
	for {
		n, err := unix.Poll(fds, 0)
		if err == unix.EINTR {
			continue
		}
		return err != nil || n != 0
	}
}
