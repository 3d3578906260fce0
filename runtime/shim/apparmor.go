package shim

import (
	"errors"
	"fmt"
	"os"
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
	var err error
	for _, p := range []string{"/proc/thread-self/attr/apparmor/exec", "/proc/thread-self/attr/exec"} {
		var f *os.File
		if f, err = os.OpenFile(p, os.O_WRONLY, 0); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			break
		}
		_, err = f.Write([]byte("exec " + profile))
		f.Close()
		break
	}
	if err != nil {
		return fmt.Errorf("AppArmor profile %s: %w", profile, err)
	}
	return nil
}
