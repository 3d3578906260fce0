package procfs

import (
	"os"
	"strings"
	"testing"
)

func TestParseStat(t *testing.T) {
	// A command name with a space and a ")" inside: only the last ")" ends it.
	line := "4242 (a b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 123456 1000 100 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
	st, err := ParseStat(line)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != 'S' || st.UTime != 7 || st.STime != 3 || st.StartTicks != 123456 {
		t.Errorf("got %+v, want state S, utime 7, stime 3, start 123456", st)
	}
	for _, bad := range []string{"", "1 (x", "1 (x) S 1 2"} {
		if _, err := ParseStat(bad); err == nil {
			t.Errorf("%q: parsed, want an error", bad)
		}
	}
}

func TestReadStatSelf(t *testing.T) {
	st, err := ReadStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if st.StartTicks == 0 || !Alive(os.Getpid()) {
		t.Errorf("own stat %+v: want a start time and alive", st)
	}
	if Alive(-1) {
		t.Error("pid -1 alive")
	}
}

// Keys are what /proc/self/cgroup names each hierarchy, so a caller can
// join the two files.
func TestCgroupMountPointsMatchProcSelfCgroup(t *testing.T) {
	mounts, err := CgroupMountPoints()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		key := parts[1]
		if parts[0] == "0" && key == "" {
			key = "cgroup2"
		}
		if _, ok := mounts[key]; ok {
			found++
		}
	}
	if len(mounts) > 0 && found == 0 {
		t.Errorf("no hierarchy of /proc/self/cgroup (%q) is a key of %v", b, mounts)
	}
}
