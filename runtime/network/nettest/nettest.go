// Package nettest gives network tests a node of their own: the test binary
// re-executes itself under `unshare --net --mount`, so it runs in a fresh
// network namespace (only lo) with a private mount namespace, a sysfs that
// shows that namespace's links and a private tmpfs on /run (iptables'
// xtables.lock, `ip netns` state). Bridges, veths, iptables rules and
// net.ipv4.ip_forward are per network namespace, so nothing the tests or
// the CNI plugins do reaches the host, and everything vanishes with the
// process even if it is killed: the namespaces die with their last user.
//
// NewNetns makes further namespaces ("pods") bound to files in t.TempDir().
package nettest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

const envInside = "MKL_NETTEST_INSIDE"

// Inside reports whether this process is the re-executed test binary.
func Inside() bool { return os.Getenv(envInside) != "" }

// Main is the TestMain of a package with network tests. As root (and
// without MKL_SKIP_INTEGRATION) it runs the tests in a private network and
// mount namespace; otherwise it runs them as they are and root tests skip.
func Main(m *testing.M) {
	if Inside() {
		if err := prepareInside(); err != nil {
			fmt.Fprintf(os.Stderr, "nettest: prepare namespaces: %v\n", err)
			os.Exit(1)
		}
		os.Exit(m.Run())
	}
	if os.Geteuid() != 0 || os.Getenv("MKL_SKIP_INTEGRATION") != "" {
		os.Exit(m.Run())
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "nettest:", err)
		os.Exit(1)
	}
	cmd := exec.Command("unshare", append([]string{"--net", "--mount", "--propagation", "private", "--", self}, os.Args[1:]...)...)
	cmd.Env = append(os.Environ(), envInside+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() > 0 {
			os.Exit(ee.ExitCode())
		}
		fmt.Fprintln(os.Stderr, "nettest: test binary in private namespaces:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// prepareInside runs in the fresh namespaces (single purpose, before any
// test): what `ip netns exec` does for /sys, plus a private /run.
func prepareInside() error {
	if err := unix.Unmount("/sys", unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("unmount /sys: %w", err)
	}
	if err := unix.Mount("sysfs", "/sys", "sysfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount sysfs: %w", err)
	}
	if err := unix.Mount("tmpfs", "/run", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=755"); err != nil {
		return fmt.Errorf("mount /run: %w", err)
	}
	return SetLinkUp("lo")
}

// NewNetns creates a network namespace with lo up, bound to a file in
// t.TempDir(), and returns that file's path. Cleanup unmounts it; the
// namespace dies when nothing else holds it.
func NewNetns(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "netns")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// Never unlocked: this thread leaves the test's netns and must die
		// with the goroutine rather than serve others.
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unshare net: %w", err)
			return
		}
		if err := SetLinkUp("lo"); err != nil {
			errc <- err
			return
		}
		src := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		if err := unix.Mount(src, path, "", unix.MS_BIND, ""); err != nil {
			errc <- fmt.Errorf("bind %s to %s: %w", src, path, err)
			return
		}
		errc <- nil
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// EINVAL: a test unmounted it already (to kill the namespace).
		if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			t.Errorf("unmount netns %s: %v", path, err)
		}
	})
	return path
}

// SetLinkUp brings the named link of the calling thread's netns up.
func SetLinkUp(name string) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("get flags of %s: %w", name, err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("set %s up: %w", name, err)
	}
	return nil
}
