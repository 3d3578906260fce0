package systemd

import (
	"fmt"
	"os"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// inotifyHub shares one inotify instance among every watcher of the
// process. One instance per watched cgroup would run into
// fs.inotify.max_user_instances (128 by default) on a node with many pods.
// Watchers get a coalescing wake-up channel and re-read the file they care
// about; the hub never interprets events beyond routing them.
type inotifyHub struct {
	mu   sync.Mutex
	f    *os.File
	subs map[int32]map[*inotifyWatch]struct{}
}

// inotifyWatch is one subscription; c receives (coalesced) when the file
// changes or its watch goes away (IN_IGNORED: file removed).
type inotifyWatch struct {
	wd int32
	c  chan struct{}
}

var (
	hubOnce sync.Once
	hub     *inotifyHub
	hubErr  error
)

func sharedInotify() *inotifyHub {
	hubOnce.Do(func() {
		fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
		if err != nil {
			hubErr = fmt.Errorf("inotify_init1: %w", err)
			return
		}
		hub = &inotifyHub{f: os.NewFile(uintptr(fd), "inotify"), subs: map[int32]map[*inotifyWatch]struct{}{}}
		go hub.run()
	})
	if hub == nil {
		return &inotifyHub{} // watch reports hubErr; callers fall back to polling
	}
	return hub
}

// WatchFile wakes the returned channel (coalesced) when path is modified or
// removed, through the process's one shared inotify instance; stop ends the
// subscription. The cgroupfs driver waits on cgroup.events with it.
func WatchFile(path string) (wake <-chan struct{}, stop func(), err error) {
	h := sharedInotify()
	w, err := h.watch(path)
	if err != nil {
		return nil, nil, err
	}
	return w.c, func() { h.unwatch(w) }, nil
}

// watch subscribes to modifications of path.
func (h *inotifyHub) watch(path string) (*inotifyWatch, error) {
	if h.f == nil {
		return nil, hubErr
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	// The same inode watched twice yields the same wd: subscriptions share it.
	wd, err := unix.InotifyAddWatch(int(h.f.Fd()), path, unix.IN_MODIFY|unix.IN_DELETE_SELF)
	if err != nil {
		return nil, fmt.Errorf("inotify watch %s: %w", path, err)
	}
	w := &inotifyWatch{wd: int32(wd), c: make(chan struct{}, 1)}
	if h.subs[w.wd] == nil {
		h.subs[w.wd] = map[*inotifyWatch]struct{}{}
	}
	h.subs[w.wd][w] = struct{}{}
	return w, nil
}

func (h *inotifyHub) unwatch(w *inotifyWatch) {
	if h.f == nil || w == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	set, ok := h.subs[w.wd]
	if !ok {
		return
	}
	delete(set, w)
	if len(set) == 0 {
		delete(h.subs, w.wd)
		unix.InotifyRmWatch(int(h.f.Fd()), uint32(w.wd)) // EINVAL if already gone: fine
	}
}

func (h *inotifyHub) run() {
	buf := make([]byte, 64*(unix.SizeofInotifyEvent+unix.PathMax))
	for {
		n, err := h.f.Read(buf)
		if err != nil {
			// The poller already retries EAGAIN/EINTR; anything else means
			// the instance is unusable. Watchers keep their slow poll.
			return
		}
		h.mu.Lock()
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			for w := range h.subs[ev.Wd] {
				select {
				case w.c <- struct{}{}:
				default: // a wake-up is already pending
				}
			}
			if ev.Mask&unix.IN_IGNORED != 0 {
				delete(h.subs, ev.Wd) // the kernel dropped the watch
			}
			off += unix.SizeofInotifyEvent + int(ev.Len)
		}
		h.mu.Unlock()
	}
}
