package shim

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// openContainerPTY opens a terminal pair on the devpts instance mounted at
// /dev/pts of the caller's root (the container's own, newinstance), never
// the node's: the master through /dev/pts/ptmx, checked to be on devpts, and
// the slave from the master (TIOCGPTPEER), so no path the container
// controls is looked up for it.
func openContainerPTY(rows, cols uint16) (master, slave *os.File, err error) {
	fd, err := unix.Open("/dev/pts/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open the container's /dev/pts/ptmx: %w", err)
	}
	master = os.NewFile(uintptr(fd), "/dev/pts/ptmx")
	var fs unix.Statfs_t
	if err := unix.Fstatfs(fd, &fs); err != nil || fs.Type != unix.DEVPTS_SUPER_MAGIC {
		master.Close()
		return nil, nil, errors.New("the container's /dev/pts/ptmx is not on a devpts file system")
	}
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("unlock terminal: %w", err)
	}
	if rows != 0 || cols != 0 {
		unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols})
	}
	sfd, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TIOCGPTPEER, uintptr(unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC))
	if errno != 0 {
		master.Close()
		return nil, nil, fmt.Errorf("open the terminal's slave: %w", errno)
	}
	return master, os.NewFile(sfd, "pts"), nil
}

// sendFD passes f over the unix socket sock (SCM_RIGHTS).
func sendFD(sock, f *os.File) error {
	return unix.Sendmsg(int(sock.Fd()), []byte{'t'}, unix.UnixRights(int(f.Fd())), nil, 0)
}

// RecvFD receives one file passed with SCM_RIGHTS on sock; nil without an
// error when the peer closed its end without sending one. A nonblock file
// is served by Go's poller, so that Close interrupts a pending read.
func RecvFD(sock *os.File, nonblock bool) (*os.File, error) {
	buf := make([]byte, 1)
	oob := make([]byte, unix.CmsgSpace(4))
	for {
		n, oobn, _, _, err := unix.Recvmsg(int(sock.Fd()), buf, oob, unix.MSG_CMSG_CLOEXEC)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n == 0 && oobn == 0 {
			return nil, nil
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			fds, err := unix.ParseUnixRights(&m)
			if err != nil {
				return nil, err
			}
			for i, fd := range fds {
				if i > 0 {
					unix.Close(fd)
				}
			}
			if len(fds) > 0 {
				if nonblock {
					unix.SetNonblock(fds[0], true)
				}
				return os.NewFile(uintptr(fds[0]), "pty"), nil
			}
		}
		return nil, errors.New("no file descriptor in the message")
	}
}

// SocketPair returns the two ends of a unix stream socket pair (close-on-exec).
func SocketPair() (*os.File, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	return os.NewFile(uintptr(fds[0]), "socket"), os.NewFile(uintptr(fds[1]), "socket"), nil
}

// takeContainerTerminal, in a tty: true container's init after its root is
// built, opens the terminal on the container's devpts, sends the master to
// the supervisor (initPTYFD) and makes the slave its stdio and controlling
// terminal (the init is a session leader: Setsid).
func takeContainerTerminal() error {
	sock := os.NewFile(initPTYFD, "pty-socket")
	defer sock.Close()
	master, slave, err := openContainerPTY(0, 0)
	if err != nil {
		return err
	}
	err = sendFD(sock, master)
	master.Close()
	if err != nil {
		slave.Close()
		return fmt.Errorf("hand the terminal to the supervisor: %w", err)
	}
	defer slave.Close()
	for fd := 0; fd <= 2; fd++ {
		if err := unix.Dup3(int(slave.Fd()), fd, 0); err != nil {
			return fmt.Errorf("terminal as fd %d: %w", fd, err)
		}
	}
	if err := unix.IoctlSetInt(0, unix.TIOCSCTTY, 0); err != nil {
		return fmt.Errorf("controlling terminal: %w", err)
	}
	return nil
}
