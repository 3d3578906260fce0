package shim

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// loadSeccomp installs filter on the calling thread only (no TSYNC): the
// thread execs, and the workload inherits it. Without no_new_privs the
// kernel requires CAP_SYS_ADMIN, so the caller loads it while still root.
func loadSeccomp(filter []unix.SockFilter) error {
	if len(filter) == 0 {
		return nil
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	if _, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&prog))); errno != 0 {
		return fmt.Errorf("load seccomp filter (%d instructions): %w", len(filter), errno)
	}
	return nil
}
