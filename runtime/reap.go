package runtime

import (
	"errors"
	"os"
	"os/exec"

	"golang.org/x/sys/unix"
)

// reapWhenExits collects the exit status of a child started by cmd (a pod
// supervisor) once it exits, so it does not stay a zombie while the daemon
// lives. cmd.Wait would park one OS thread per pod in waitid for the pod's
// whole life (500 pods: 500 threads); here a pidfd of the child waits in
// the runtime's network poller, which holds no thread, and the child is
// reaped (waitid P_PIDFD, WNOHANG) when the poller reports it readable,
// i.e. exited. Only that child is reaped: other children of the daemon
// (CNI plugins, iptables, exec'd hooks) stay with their own Cmd.Wait.
// Kernels without pidfds (< 5.4) fall back to cmd.Wait.
func reapWhenExits(cmd *exec.Cmd) {
	fd, err := unix.PidfdOpen(cmd.Process.Pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		go cmd.Wait()
		return
	}
	// A non-blocking fd given to os.NewFile is registered with the poller.
	f := os.NewFile(uintptr(fd), "pidfd")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		go cmd.Wait()
		return
	}
	go func() {
		err := rc.Read(func(fd uintptr) bool {
			var info unix.Siginfo
			err := unix.Waitid(unix.P_PIDFD, int(fd), &info, unix.WEXITED|unix.WNOHANG, nil)
			if errors.Is(err, unix.EINTR) {
				return false
			}
			// Reaped (Signo SIGCHLD), or an error (ECHILD: already reaped):
			// done. Signo 0: not exited yet, wait for readiness again.
			return err != nil || info.Signo != 0
		})
		f.Close()
		if err != nil {
			// The poller refused the pidfd: wait the blocking way.
			cmd.Wait()
			return
		}
		// cmd.Process keeps a pidfd of its own until released.
		cmd.Process.Release()
	}()
}
