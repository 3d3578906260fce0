package shim

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// appArmorOnExec makes this thread's next execve enter profile, as runc's
// apparmor.ApplyProfile: "exec <profile>" written to the thread's
// attr/apparmor/exec (attr/exec on kernels before 5.8, where the LSM has
// no directory of its own). It is set before no_new_privs, while we are
// unconfined, which the kernel allows. "" leaves the process unconfined.
func appArmorOnExec(profile string) error {
	if profile == "" {
		return nil
	}
	f := preopenedAppArmorAttr
	preopenedAppArmorAttr = nil
	var err error
	if f == nil {
		f, err = openAppArmorAttr()
	}
	if err == nil {
		_, err = f.Write([]byte("exec " + profile))
		f.Close()
	}
	if err != nil {
		return fmt.Errorf("AppArmor profile %s: %w", profile, err)
	}
	return nil
}

// preopenedAppArmorAttr is this thread's attr file, opened by the exec
// helper before it enters the container's mount namespace: /proc there is
// the container's PID namespace's, which has no entry for the helper's
// thread (found on a Debian 12 host with AppArmor enabled).
var preopenedAppArmorAttr *os.File

// openAppArmorAttr opens the calling thread's AppArmor exec attribute.
func openAppArmorAttr() (*os.File, error) {
	var err error
	for _, p := range []string{"/proc/thread-self/attr/apparmor/exec", "/proc/thread-self/attr/exec"} {
		var f *os.File
		if f, err = os.OpenFile(p, os.O_WRONLY|syscall.O_CLOEXEC, 0); err == nil {
			return f, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			break
		}
	}
	return nil, err
}
