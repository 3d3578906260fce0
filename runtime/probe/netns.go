package probe

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// InNetns runs fn on a fresh OS thread that has joined the network
// namespace at netnsPath, and waits for it.
//
// Why it is safe in a Go program: the goroutine locks its thread and never
// unlocks it, so when fn returns the runtime terminates that thread instead
// of handing it, still inside the pod's namespace, to other goroutines; and
// while a thread is locked the runtime creates new threads from its
// template thread, not from this one, so none inherits the namespace.
// setns(CLONE_NEWNET) affects only the calling thread (unlike mount or user
// namespaces, it is allowed in a multithreaded process).
//
// Sockets created by fn keep the namespace for life and may be used from any
// goroutine afterwards. Name resolution may run on other threads: give fn
// IP addresses, not host names.
func InNetns(netnsPath string, fn func() error) error {
	f, err := os.Open(netnsPath)
	if err != nil {
		return fmt.Errorf("open netns %s: %w", netnsPath, err)
	}
	defer f.Close()
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &st); err != nil || st.Type != unix.NSFS_MAGIC {
		return fmt.Errorf("%s is not a network namespace", netnsPath)
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: see above; the thread dies with this goroutine.
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", netnsPath, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// DialInNetns dials network/addr (an IP address and port) from inside the
// network namespace at netnsPath. An empty netnsPath dials from the
// caller's namespace.
func DialInNetns(ctx context.Context, netnsPath, network, addr string) (net.Conn, error) {
	var d net.Dialer
	if netnsPath == "" {
		return d.DialContext(ctx, network, addr)
	}
	var conn net.Conn
	err := InNetns(netnsPath, func() error {
		var err error
		conn, err = d.DialContext(ctx, network, addr)
		return err
	})
	return conn, err
}

// ListenInNetns opens a listener inside the network namespace at netnsPath.
func ListenInNetns(netnsPath, network, addr string) (net.Listener, error) {
	var l net.Listener
	err := InNetns(netnsPath, func() error {
		var err error
		l, err = net.Listen(network, addr)
		return err
	})
	return l, err
}
