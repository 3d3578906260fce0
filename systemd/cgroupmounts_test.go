package systemd

import (
	"os"
	"reflect"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/minikubelet/minikubelet/internal/testnode"
)

// The cgroup mount table is read once and kept while the mount table does
// not change; a mount or an unmount anywhere makes the next lookup re-read
// it, and what it returns is always what a fresh read parses.
func TestCgroupMountTableFollowsMountChanges(t *testing.T) {
	testnode.RequireRoot(t)
	fresh := func() []cgroupMount {
		mi, err := os.ReadFile("/proc/self/mountinfo")
		if err != nil {
			t.Fatal(err)
		}
		known, err := os.ReadFile("/proc/cgroups")
		if err != nil {
			t.Fatal(err)
		}
		return parseCgroupMounts(mi, parseProcCgroups(known))
	}
	first, err := currentCgroupMounts()
	if err != nil {
		t.Fatal(err)
	}
	if len(first) == 0 {
		t.Fatal("no cgroup mount found")
	}
	if !reflect.DeepEqual(first, fresh()) {
		t.Errorf("cached table %+v differs from a fresh read %+v", first, fresh())
	}
	again, _ := currentCgroupMounts()
	if &again[0] != &first[0] {
		t.Error("mount table re-read although nothing was mounted")
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	afterMount, _ := currentCgroupMounts()
	if &afterMount[0] == &first[0] {
		t.Error("mount table not re-read after a mount")
	}
	if err := unix.Unmount(dir, 0); err != nil {
		t.Fatal(err)
	}
	afterUnmount, _ := currentCgroupMounts()
	if &afterUnmount[0] == &afterMount[0] {
		t.Error("mount table not re-read after an unmount")
	}
	if !reflect.DeepEqual(afterUnmount, fresh()) {
		t.Errorf("table after changes %+v differs from a fresh read %+v", afterUnmount, fresh())
	}
}
