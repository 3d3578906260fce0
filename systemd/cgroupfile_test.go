package systemd

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// /proc/cgroups of the build machine: net_cls, net_prio, perf_event and
// hugetlb are listed but not mounted as v1 hierarchies.
const procCgroupsHere = `#subsys_name	hierarchy	num_cgroups	enabled
cpuset	3	1	1
cpu	1	1	1
cpuacct	2	1	1
blkio	7	1	1
memory	4	31	1
devices	5	1	1
freezer	6	1	1
net_cls	0	1	1
perf_event	0	1	1
net_prio	0	1	1
hugetlb	0	1	1
pids	8	1	1
`

// mountinfo of the build machine (hybrid; cpu and cpuacct mounted apart).
const mountinfoHere = `22 28 0:20 / /sys rw,nosuid,nodev,noexec,relatime - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`

// A classic systemd hybrid host: cpu,cpuacct co-mounted with symlinks, xattr
// and release_agent options on the named hierarchy.
const mountinfoHybridSystemd = `25 24 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:4 - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:5 - cgroup2 cgroup2 rw,nsdelegate
27 25 0:24 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:6 - cgroup cgroup rw,xattr,name=systemd,release_agent=/lib/systemd/systemd-cgroups-agent
30 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct
31 25 0:28 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,memory
32 25 0:29 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,net_cls,net_prio
33 25 0:30 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,pids
`

// A pure cgroup v2 host (Debian 12 / Fedora default).
const mountinfoPureV2 = `22 28 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
26 22 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
`

const procCgroupsV2 = `#subsys_name	hierarchy	num_cgroups	enabled
cpuset	0	120	1
cpu	0	120	1
cpuacct	0	120	1
memory	0	120	1
pids	0	120	1
`

// A container without its own cgroup namespace: the hierarchy is mounted
// from /docker/abc, and a space in a mount point is escaped.
const mountinfoContainer = `100 90 0:30 /docker/abc /sys/fs/cgroup/memory ro,nosuid - cgroup cgroup rw,memory
101 90 0:31 /docker/abc /sys/fs/cgroup/my\040pids ro,nosuid - cgroup cgroup rw,pids
`

// On v1 hierarchies every mounted controller (and the named and hybrid
// unified ones) resolves to its mount point plus the cgroup path; a
// controller that is listed but not mounted has no entry.
func TestCgroupDirsV1(t *testing.T) {
	for _, tc := range []struct {
		name, mountinfo, path string
		mounts                []string // folders under /sys/fs/cgroup, named by their controllers
		absent                []string
	}{
		{name: "hybrid here", mountinfo: mountinfoHere, path: "/kubepods.slice/kubepods-pod1.slice/minikubelet-x.scope",
			mounts: []string{"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "systemd", "unified"},
			absent: []string{"net_cls", "net_prio", "perf_event", "hugetlb", ""}},
		{name: "co-mounted and named", mountinfo: mountinfoHybridSystemd, path: "kubepods/burstable/podu/c1",
			mounts: []string{"cpu,cpuacct", "memory", "pids", "net_cls,net_prio", "systemd", "unified"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := cgroupDirsFrom(parseCgroupMounts([]byte(tc.mountinfo), parseProcCgroups([]byte(procCgroupsHere))), tc.path)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{}
			for _, m := range tc.mounts {
				for _, ctrl := range strings.Split(m, ",") {
					want[ctrl] = "/sys/fs/cgroup/" + m + "/" + strings.TrimPrefix(tc.path, "/")
				}
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("dirs:\n got %v\nwant %v", got, want)
			}
			for _, absent := range tc.absent {
				if _, ok := got[absent]; ok {
					t.Errorf("unmounted or v2-only key %q present", absent)
				}
			}
		})
	}
}

func TestCgroupDirsPureV2(t *testing.T) {
	got, err := cgroupDirsFrom(parseCgroupMounts([]byte(mountinfoPureV2), parseProcCgroups([]byte(procCgroupsV2))), "/kubepods.slice/x.scope")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"": "/sys/fs/cgroup/kubepods.slice/x.scope"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if !IsV2Dirs(got) {
		t.Fatal("pure v2 map not recognised as v2")
	}
	// A named v1 hierarchy kept for old software does not make it v1.
	mi := mountinfoPureV2 + "40 26 0:40 / /run/sdcompat cgroup rw - cgroup cgroup rw,name=systemd\n"
	got, err = cgroupDirsFrom(parseCgroupMounts([]byte(mi), parseProcCgroups([]byte(procCgroupsV2))), "/a")
	if err != nil || !reflect.DeepEqual(got, map[string]string{"": "/sys/fs/cgroup/a"}) {
		t.Fatalf("with named v1 hierarchy: %v %v", got, err)
	}
}

func TestCgroupDirsMountRoot(t *testing.T) {
	mounts := parseCgroupMounts([]byte(mountinfoContainer), parseProcCgroups([]byte(procCgroupsHere)))
	// Inside the mounted root: the root prefix is stripped.
	got, err := cgroupDirsFrom(mounts, "/docker/abc/kubepods/pod1")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"memory": "/sys/fs/cgroup/memory/kubepods/pod1", "pids": "/sys/fs/cgroup/my pids/kubepods/pod1"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	// Outside it: relative to the mount (libcontainer's reading).
	got, _ = cgroupDirsFrom(mounts, "/kubepods/pod1")
	if got["memory"] != "/sys/fs/cgroup/memory/kubepods/pod1" {
		t.Fatalf("outside root: %v", got)
	}
	// ".." cannot climb above the mount.
	got, _ = cgroupDirsFrom(mounts, "/../../etc")
	if got["memory"] != "/sys/fs/cgroup/memory/etc" {
		t.Fatalf("dot-dot: %v", got)
	}
	if _, err := cgroupDirsFrom(nil, "/x"); err == nil {
		t.Fatal("no mounts: want an error")
	}
	if _, err := cgroupDirsFrom(mounts, ""); err == nil {
		t.Fatal("empty path: want an error")
	}
}

func TestCgroupDirsOfThisProcess(t *testing.T) {
	// Whatever the machine, the root cgroup resolves to existing dirs.
	dirs, err := CgroupDirs("/")
	if err != nil {
		t.Skipf("no cgroup mounts here: %v", err)
	}
	for k, d := range dirs {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%q: %v", k, err)
		}
	}
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestReadUsageV1(t *testing.T) {
	root := t.TempDir()
	mem := filepath.Join(root, "memory/kubepods/podu")
	writeFiles(t, mem, map[string]string{
		"memory.usage_in_bytes": "10485760\n",
		"memory.stat":           "cache 4096\ninactive_file 1\ntotal_inactive_file 2097152\ntotal_active_file 8192\n",
		"memory.oom_control":    "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
	})
	// v1 counts a kill in the victim's cgroup only: the pod sums its scopes.
	writeFiles(t, filepath.Join(mem, "c1"), map[string]string{"memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"})
	writeFiles(t, filepath.Join(mem, "c2"), map[string]string{"memory.oom_control": "oom_kill_disable 0\nunder_oom 0\n"}) // old kernel: no key
	cpuacct := filepath.Join(root, "cpuacct/kubepods/podu")
	writeFiles(t, cpuacct, map[string]string{"cpuacct.usage": "123456789\n"})
	pids := filepath.Join(root, "pids/kubepods/podu")
	writeFiles(t, pids, map[string]string{"pids.current": "3\n"})
	dirs := map[string]string{"memory": mem, "cpuacct": cpuacct, "cpu": cpuacct, "pids": pids,
		"freezer": filepath.Join(root, "freezer/none")}
	u, err := ReadUsage(dirs)
	if err != nil {
		t.Fatal(err)
	}
	want := Usage{MemoryBytes: 10485760 - 2097152, CPUUsageNanos: 123456789, PIDs: 3, OOMKills: 3}
	if u != want {
		t.Fatalf("usage %+v, want %+v", u, want)
	}
	// No cpuacct cgroup (systemd skips a cpuacct hierarchy mounted apart
	// from cpu): the hybrid unified directory's cpu.stat stands in.
	unified := filepath.Join(root, "unified/kubepods/podu")
	writeFiles(t, unified, map[string]string{"cpu.stat": "usage_usec 777\nuser_usec 700\nsystem_usec 77\n"})
	noAcct := map[string]string{"memory": mem, "cpuacct": filepath.Join(root, "cpuacct/missing"), "unified": unified}
	if u, err := ReadUsage(noAcct); err != nil || u.CPUUsageNanos != 777000 {
		t.Fatalf("cpu from unified cpu.stat: %+v %v", u, err)
	}
	if u, _ := ReadUsage(dirs); u.CPUUsageNanos != 123456789 {
		t.Fatalf("cpuacct.usage must win when present: %+v", u)
	}
	// Inactive file pages above usage floor the working set at 0.
	writeFiles(t, mem, map[string]string{"memory.stat": "total_inactive_file 99999999\n"})
	if u, _ := ReadUsage(dirs); u.MemoryBytes != 0 {
		t.Fatalf("working set %d, want 0", u.MemoryBytes)
	}
	// A scope that is gone is an error, naming it.
	if _, err := ReadUsage(map[string]string{"memory": filepath.Join(root, "gone"), "pids": filepath.Join(root, "gone")}); err == nil {
		t.Fatal("missing cgroup: want an error")
	}
	// A garbled counter names its file.
	writeFiles(t, pids, map[string]string{"pids.current": "many\n"})
	if _, err := ReadUsage(dirs); err == nil || !strings.Contains(err.Error(), "pids.current") {
		t.Fatalf("garbled pids.current: %v", err)
	}
}

func TestReadUsageV2(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "kubepods.slice/x.scope")
	writeFiles(t, dir, map[string]string{
		"memory.current": "8388608\n",
		"memory.stat":    "anon 4096\nfile 1048576\nactive_file 4096\ninactive_file 1048576\n",
		"cpu.stat":       "usage_usec 2500\nuser_usec 2000\nsystem_usec 500\n",
		"pids.current":   "2\n",
		"memory.events":  "low 0\nhigh 0\nmax 7\noom 2\noom_kill 2\noom_group_kill 0\n",
	})
	u, err := ReadUsage(map[string]string{"": dir})
	if err != nil {
		t.Fatal(err)
	}
	want := Usage{MemoryBytes: 8388608 - 1048576, CPUUsageNanos: 2500000, PIDs: 2, OOMKills: 2}
	if u != want {
		t.Fatalf("usage %+v, want %+v", u, want)
	}
	// Controllers not enabled for the cgroup leave zeros, not errors.
	bare := filepath.Join(t.TempDir(), "bare")
	writeFiles(t, bare, map[string]string{"cgroup.procs": ""})
	if u, err := ReadUsage(map[string]string{"": bare}); err != nil || u != (Usage{}) {
		t.Fatalf("bare cgroup: %+v %v", u, err)
	}
	if _, err := ReadUsage(map[string]string{"": filepath.Join(bare, "gone")}); err == nil {
		t.Fatal("missing v2 cgroup: want an error")
	}
}

// TestWatchOOMV2Fake drives the v2 watcher with a fake memory.events: one
// value per counted kill (two at once give two), nothing for other event
// lines or for kills before the watch, and the channel closes when the
// cgroup goes; exactly two values come before the close.
func TestWatchOOMV2Fake(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "x.scope")
	events := func(oom, kills int) string {
		return "low 0\nhigh 0\nmax 0\noom " + strconv.Itoa(oom) + "\noom_kill " + strconv.Itoa(kills) + "\n"
	}
	writeFiles(t, dir, map[string]string{"memory.events": events(1, 1)}) // a kill before the watch: not reported
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ch, err := WatchOOMDirs(ctx, map[string]string{"": dir})
	if err != nil {
		t.Fatal(err)
	}
	expectOne := func() {
		t.Helper()
		select {
		case _, ok := <-ch:
			if !ok {
				t.Fatal("channel closed, want a kill")
			}
		case <-ctx.Done():
			t.Fatal("no kill reported")
		}
	}
	writeFiles(t, dir, map[string]string{"memory.events": events(2, 1)}) // oom without kill
	writeFiles(t, dir, map[string]string{"memory.events": events(4, 3)})
	expectOne()
	expectOne()
	// No time window proves that nothing else came: the channel closes with
	// the cgroup, and a value before the close is one too many (the kill
	// before the watch, the oom without a kill, or a third kill).
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	select {
	case _, ok := <-ch:
		if ok {
			t.Fatal("a third value before the close: a kill reported that did not happen")
		}
	case <-ctx.Done():
		t.Fatal("channel not closed after the cgroup was removed")
	}
}

// TestWatchOOMV2KillHiddenByRemoval: systemd removes an OOM-killed
// workload's scope as soon as it is empty, and on a slow host before the
// watcher read the scope's counter. The kill is then read from the parent's
// hierarchical counter, once; the parent's kills from before the watch
// (siblings') are never taken for the scope's. The fake files change in
// the kernel's order: the scope's counter, then the parent's, then the
// removal.
func TestWatchOOMV2KillHiddenByRemoval(t *testing.T) {
	events := func(kills int) map[string]string {
		return map[string]string{"memory.events": "oom 0\noom_kill " + strconv.Itoa(kills) + "\n"}
	}
	// values counts what the watch delivers up to its close.
	values := func(t *testing.T, ch <-chan struct{}, ctx context.Context) int {
		t.Helper()
		n := 0
		for {
			select {
			case _, ok := <-ch:
				if !ok {
					return n
				}
				n++
			case <-ctx.Done():
				t.Fatal("channel not closed after the cgroup was removed")
			}
		}
	}
	for _, tc := range []struct {
		name  string
		kill  bool // the scope's workload is OOM-killed before the removal
		write func(t *testing.T, parent, dir string)
	}{
		{"siblings' kills before the watch, no kill of its own", false, func(t *testing.T, parent, dir string) {}},
		{"a kill, then the removal", true, func(t *testing.T, parent, dir string) {
			writeFiles(t, dir, events(1))
			writeFiles(t, parent, events(8))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := filepath.Join(t.TempDir(), "pod.slice")
			dir := filepath.Join(parent, "c.scope")
			writeFiles(t, parent, events(7))
			writeFiles(t, dir, events(0))
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			ch, err := WatchOOMDirs(ctx, map[string]string{"": dir})
			if err != nil {
				t.Fatal(err)
			}
			tc.write(t, parent, dir)
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
			want := 0
			if tc.kill {
				want = 1
			}
			if got := values(t, ch, ctx); got != want {
				t.Fatalf("%d kills reported, want %d", got, want)
			}
		})
	}
}

// parseCgroupMounts is readCgroupMounts for fixtures, which always parse.
func parseCgroupMounts(mi []byte, known map[string]bool) []cgroupMount {
	m, err := readCgroupMounts(mi, known)
	if err != nil {
		panic(err)
	}
	return m
}
