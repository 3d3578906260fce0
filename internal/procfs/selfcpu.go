package procfs

import (
	"syscall"
	"time"
)

// SelfCPU is the user and system CPU time this process has used, from
// getrusage(2): nanoseconds, where /proc/self/stat counts clock ticks (10
// ms), too coarse for the per-round figures the benchmarks report.
func SelfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
