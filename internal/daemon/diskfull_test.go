package daemon

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestDiskWatchNamesTheFullDisk (issue 14, scenario 4): a disk that fills
// up is said once, by flag and folder, in the log and as a Warning event,
// and once more when space returns; the other disk is not mentioned.
func TestDiskWatchNamesTheFullDisk(t *testing.T) {
	var logBuf bytes.Buffer
	type ev struct{ typ, reason, msg string }
	var events []ev
	w := newDiskWatch("/r", "/l", slog.New(slog.NewTextHandler(&logBuf, nil)), func(typ, reason, msg string) {
		events = append(events, ev{typ, reason, msg})
	})
	free := map[string]uint64{"/r": 1 << 20, "/l": 1 << 20} // in 1 KiB blocks
	w.statfs = func(path string, st *unix.Statfs_t) error {
		*st = unix.Statfs_t{Bsize: 1024, Blocks: 1 << 21, Bfree: free[path], Bavail: free[path], Files: 1000, Ffree: 500}
		return nil
	}
	w.check()
	if len(events) != 0 {
		t.Fatalf("events with space on both disks: %v", events)
	}
	free["/l"] = 3
	w.check()
	w.check()
	if len(events) != 1 || events[0].typ != "Warning" || events[0].reason != "DiskFull" ||
		!strings.Contains(events[0].msg, "--log-dir /l") || !strings.Contains(events[0].msg, "dropped and counted") {
		t.Fatalf("want one Warning DiskFull naming --log-dir /l, got %v", events)
	}
	if c := strings.Count(logBuf.String(), "disk full"); c != 1 || !strings.Contains(logBuf.String(), "dir=/l") {
		t.Fatalf("want one log line naming /l, got %d:\n%s", c, logBuf.String())
	}
	free["/l"] = 1 << 20
	w.check()
	if len(events) != 2 || events[1].reason != "DiskSpaceAvailable" || !strings.Contains(events[1].msg, "--log-dir /l") {
		t.Fatalf("want DiskSpaceAvailable for /l, got %v", events)
	}
	// No inodes left is full too.
	w.statfs = func(path string, st *unix.Statfs_t) error {
		*st = unix.Statfs_t{Bsize: 1024, Blocks: 1 << 21, Bfree: 1 << 20, Files: 1000, Ffree: 0}
		return nil
	}
	w.check()
	if len(events) != 4 || !strings.Contains(events[2].msg, "--root-dir /r") || !strings.Contains(events[2].msg, "0 inodes free") {
		t.Fatalf("want both disks full of inodes, got %v", events[2:])
	}
}
