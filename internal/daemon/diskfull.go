package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"golang.org/x/sys/unix"
)

// diskWatch says when --root-dir or --log-dir runs out of space (or of
// inodes) and when space returns (issue 14, scenario 4). A full disk is no
// reason to stop anything: running pods keep running, their supervisors
// drop log lines and count them (runtime/crilog) instead of blocking the
// container, and writes of state fail with ENOSPC and are retried by the
// next rounds. Without this the only trace was a stream of ENOSPC errors
// from whatever happened to write; now one Warning line and one node event
// name the disk, and one more says when it is usable again.
type diskWatch struct {
	disks []watchedDisk
	every time.Duration
	log   *slog.Logger
	// event records a node event (Warning DiskFull, Normal DiskSpaceAvailable).
	event func(typ, reason, msg string)
	// statfs is unix.Statfs (a test may replace it).
	statfs func(path string, st *unix.Statfs_t) error
}

type watchedDisk struct {
	flag, dir, consequence string
	full                   bool
}

// minFreeBytes is the space below which a disk counts as full: a log line
// or a state file no longer fits for sure.
const minFreeBytes = 64 << 10

func newDiskWatch(rootDir, logDir string, log *slog.Logger, event func(typ, reason, msg string)) *diskWatch {
	return &diskWatch{every: 2 * time.Second, log: log, event: event, statfs: unix.Statfs, disks: []watchedDisk{
		{flag: "--root-dir", dir: rootDir, consequence: "pod state and new containers cannot be written (running pods keep running)"},
		{flag: "--log-dir", dir: logDir, consequence: "container log lines are dropped and counted until space returns (containers never block on their logs)"},
	}}
}

// full reports whether dir's filesystem has no room left, and says how
// much it has.
func (w *diskWatch) full(dir string) (bool, string, error) {
	var st unix.Statfs_t
	if err := w.statfs(dir, &st); err != nil {
		return false, "", err
	}
	// The daemon runs as root: it may use the blocks reserved for root
	// (Bfree), not only those of users (Bavail).
	free := st.Bfree * uint64(st.Bsize)
	noInodes := st.Files > 0 && st.Ffree == 0
	desc := fmt.Sprintf("%d KiB free of %d KiB, %d inodes free", free>>10, (st.Blocks*uint64(st.Bsize))>>10, st.Ffree)
	return free < minFreeBytes || noInodes, desc, nil
}

// check looks at each disk once and says what changed.
func (w *diskWatch) check() {
	for i := range w.disks {
		d := &w.disks[i]
		full, desc, err := w.full(d.dir)
		if err != nil || full == d.full {
			continue
		}
		d.full = full
		if full {
			msg := fmt.Sprintf("No space left on %s %s (%s): %s", d.flag, d.dir, desc, d.consequence)
			w.log.Warn("disk full", "disk", d.flag, "dir", d.dir, "free", desc, "consequence", d.consequence)
			w.event("Warning", "DiskFull", msg)
		} else {
			w.log.Info("disk space available again", "disk", d.flag, "dir", d.dir, "free", desc)
			w.event("Normal", "DiskSpaceAvailable", fmt.Sprintf("Space is available again on %s %s (%s)", d.flag, d.dir, desc))
		}
	}
}

// run checks every w.every until ctx ends.
func (w *diskWatch) run(ctx context.Context) {
	t := time.NewTicker(w.every)
	defer t.Stop()
	for {
		w.check()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
