package procfs

import (
	"fmt"
	"strings"

	"github.com/moby/sys/mountinfo"
)

// CgroupMountPoints maps each cgroup hierarchy mounted at its root in this
// mount namespace to its mount point, keyed as /proc/<pid>/cgroup names the
// hierarchy: "cpu,cpuacct", "memory", "name=systemd" for v1, "cgroup2" for
// the unified one. The exec helper joins a container's cgroups with it and
// the test harness finds the hierarchies to delegate.
func CgroupMountPoints() (map[string]string, error) {
	mounts, err := mountinfo.GetMounts(mountinfo.FSTypeFilter("cgroup", "cgroup2"))
	if err != nil {
		return nil, fmt.Errorf("/proc/self/mountinfo: %w", err)
	}
	out := map[string]string{}
	for _, m := range mounts {
		if m.Root != "/" {
			continue
		}
		if m.FSType == "cgroup2" {
			out["cgroup2"] = m.Mountpoint
			continue
		}
		// The super options are the controllers, name=X, and generic
		// flags that are no part of the hierarchy's name.
		var keys []string
		for _, o := range strings.Split(m.VFSOptions, ",") {
			switch o {
			case "rw", "ro", "relatime", "noatime", "nosuid", "nodev", "noexec", "none",
				"clone_children", "xattr", "noprefix", "cpuset_v2_mode", "favordynmods":
				continue
			}
			if strings.Contains(o, "=") && !strings.HasPrefix(o, "name=") {
				continue // release_agent=...
			}
			keys = append(keys, o)
		}
		out[strings.Join(keys, ",")] = m.Mountpoint
	}
	return out, nil
}
