package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/minikubelet/minikubelet/internal/procfs"
)

// mklRoot is the daemon's --cgroup-root in the benchmark: kubepods.slice
// belongs to the kubelet peer (see kubeletPeer).
const mklRoot = "mklbench"

// podProcesses lists the PIDs whose systemd cgroup lies in the daemon's pod
// tree (sandbox supervisors and workloads of minikubelet's pods).
func podProcesses() []int { return processesUnder("/" + mklRoot + ".slice/") }

// processesUnder lists the PIDs whose systemd cgroup path starts with prefix.
func processesUnder(prefix string) []int {
	var out []int
	for _, pid := range allPIDs() {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			var path string
			if i := strings.Index(l, ":name=systemd:"); i >= 0 {
				path = l[i+len(":name=systemd:"):]
			} else if strings.HasPrefix(l, "0::") {
				path = l[3:]
			}
			if strings.HasPrefix(path, prefix) {
				out = append(out, pid)
				break
			}
		}
	}
	return out
}

func allPIDs() []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

// isWorkload tells a container's workload (the busybox image's binary,
// exec'd) from the supervisors around it.
func isWorkload(pid int) bool {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	return err == nil && strings.HasSuffix(strings.TrimSuffix(exe, " (deleted)"), "/busybox")
}

// envOf returns the value of key in a process's initial environment.
func envOf(pid int, key string) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		return ""
	}
	for _, kv := range bytes.Split(b, []byte{0}) {
		if bytes.HasPrefix(kv, []byte(key+"=")) {
			return string(kv[len(key)+1:])
		}
	}
	return ""
}

// workloadPIDs maps BENCH_ID values to the PIDs of exec'd workloads carrying them.
func workloadPIDs() map[string]int {
	out := map[string]int{}
	for _, pid := range podProcesses() {
		if !isWorkload(pid) {
			continue
		}
		if id := envOf(pid, "BENCH_ID"); id != "" {
			if old, ok := out[id]; !ok || pid < old {
				out[id] = pid // the container's first process, not a child such as wget
			}
		}
	}
	return out
}

// memOf returns a process's RSS and PSS in bytes (PSS shares a binary's
// pages among the processes mapping it: the honest per-pod cost).
func memOf(pid int) (rss, pss int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "Rss:":
			rss = v << 10
		case "Pss:":
			pss = v << 10
		}
	}
	return rss, pss
}

// cpuTicks is utime+stime of a process in clock ticks (USER_HZ = 100).
func cpuTicks(pid int) int64 {
	st, err := procfs.ReadStat(pid)
	if err != nil {
		return -1
	}
	return int64(st.UTime + st.STime)
}

// fileWatch records when files first appear in a folder, with inotify: the
// workloads touch marker files (web, client, ok) in a hostPath folder and
// the kernel wakes us at once, so no polling skews the figures.
type fileWatch struct {
	f    *os.File
	mu   sync.Mutex
	seen map[string]time.Time
	cond chan struct{} // closed and replaced on every event
}

func watchDir(dir string) (*fileWatch, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("inotify: %w", err)
	}
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_CREATE|unix.IN_MOVED_TO); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("inotify watch %s: %w", dir, err)
	}
	w := &fileWatch{f: os.NewFile(uintptr(fd), "inotify:"+dir), seen: map[string]time.Time{}, cond: make(chan struct{})}
	go w.loop()
	return w, nil
}

func (w *fileWatch) loop() {
	buf := make([]byte, 64<<10)
	for {
		n, err := w.f.Read(buf)
		now := time.Now()
		if err != nil {
			return
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			l := int(uint32(buf[off+12]) | uint32(buf[off+13])<<8 | uint32(buf[off+14])<<16 | uint32(buf[off+15])<<24)
			name := string(bytes.TrimRight(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+l], "\x00"))
			w.mu.Lock()
			if _, ok := w.seen[name]; !ok {
				w.seen[name] = now
			}
			close(w.cond)
			w.cond = make(chan struct{})
			w.mu.Unlock()
			off += unix.SizeofInotifyEvent + l
		}
	}
}

// forget drops a name so its next creation is recorded again.
func (w *fileWatch) forget(name string) {
	w.mu.Lock()
	delete(w.seen, name)
	w.mu.Unlock()
}

// wait returns when every name has appeared (their times) or at deadline.
func (w *fileWatch) wait(deadline time.Time, names ...string) (map[string]time.Time, bool) {
	for {
		w.mu.Lock()
		got := map[string]time.Time{}
		for _, n := range names {
			if t, ok := w.seen[n]; ok {
				got[n] = t
			}
		}
		c := w.cond
		w.mu.Unlock()
		if len(got) == len(names) {
			return got, true
		}
		left := time.Until(deadline)
		if left <= 0 {
			return got, false
		}
		select {
		case <-c:
		case <-time.After(left):
		}
	}
}

func (w *fileWatch) close() { w.f.Close() }

func mustMkdir(p string) string { os.MkdirAll(p, 0o777); return p }

var _ = filepath.Join
