package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// sealedExe is a read-only in-memory copy of the helper binary (Options.Exe)
// that every pod supervisor and exec helper is started from, made once per
// daemon. A process a container can see — the supervisor as PID 1 of a pod
// that shares its PID namespace, the command an exec forks — then has a
// sealed memfd as its /proc/<pid>/exe, not the node's binary: a container
// holding CAP_SYS_PTRACE that opens it cannot rewrite what the node runs
// next (runc's answer to CVE-2019-5736).
type sealedExe struct {
	mu sync.Mutex
	f  *os.File
}

// sealedExeMinFD keeps the memfd above the descriptors a child is given
// (os/exec dups ExtraFiles onto 3, 4, ...), so that /proc/self/fd/<n> still
// names the memfd when the child execs it.
const sealedExeMinFD = 256

// command is exec.Command for the helper binary, run from the sealed copy;
// argv[0] stays the binary's path, for ps.
func (r *Runtime) command(ctx context.Context, args ...string) (*exec.Cmd, error) {
	f, err := r.exe.get(r.opt.Exe)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, "/proc/self/fd/"+strconv.Itoa(int(f.Fd())), args...)
	cmd.Args[0] = r.opt.Exe
	return cmd, nil
}

func (s *sealedExe) get(path string) (*os.File, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f != nil {
		return s.f, nil
	}
	f, err := sealedCopy(path)
	if err != nil {
		return nil, fmt.Errorf("sealed copy of the helper binary %s: %w", path, err)
	}
	s.f = f
	return f, nil
}

func sealedCopy(path string) (*os.File, error) {
	src, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	// MFD_EXEC says so where vm.memfd_noexec would otherwise make it
	// non-executable (Linux >= 6.3); older kernels do not know the flag.
	fd, err := unix.MemfdCreate("minikubelet-helper", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING|unix.MFD_EXEC)
	if errors.Is(err, unix.EINVAL) {
		fd, err = unix.MemfdCreate("minikubelet-helper", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	}
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	high, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, sealedExeMinFD)
	unix.Close(fd)
	if err != nil {
		return nil, fmt.Errorf("move memfd above fd %d: %w", sealedExeMinFD, err)
	}
	f := os.NewFile(uintptr(high), "memfd:minikubelet-helper")
	if _, err := io.Copy(f, src); err != nil {
		f.Close()
		return nil, err
	}
	if err := unix.Fchmod(high, 0o555); err != nil {
		f.Close()
		return nil, err
	}
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(uintptr(high), unix.F_ADD_SEALS, seals); err != nil {
		f.Close()
		return nil, fmt.Errorf("seal memfd: %w", err)
	}
	return f, nil
}
