package shim

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// appArmorProfile is a container's AppArmor profile, entered just before
// the workload's execve by a change_profile on this thread ("changeprofile
// <name>" written to its attr/apparmor/current; attr/current on kernels
// before 5.8, where the LSM has no directory of its own).
//
// Why not runc's "exec <name>" on attr/exec (the profile entered by the
// execve itself): AppArmor makes a profile transition at exec a secure exec
// (AT_SECURE), and the kernel then clears the parent-death signal, so the
// workload would outlive its pod's supervisor ("pause dies, the pod dies";
// found on a Debian 12 host, where TestPauseDeathKillsContainers failed).
// After a change_profile the execve stays in the same profile: no
// transition, the death signal holds. The few steps between the change and
// the execve (a write, a close, the seccomp load, the execve) are what the
// profile must allow; every profile a container can run under allows its
// own programs to run.
//
// The attribute file is opened early, while this thread is root and /proc
// is still the host's (see openAppArmorProfile); nil: unconfined.
type appArmorProfile struct {
	name string
	attr *os.File
}

// openAppArmorProfile prepares profile for enter; "" is unconfined (nil).
// pre is the attr file when the caller opened it already: the exec helper
// does, before it joins the container's mount namespace, because /proc
// there is the container's PID namespace's and has no entry for the
// helper's thread.
func openAppArmorProfile(profile string, pre *os.File) (*appArmorProfile, error) {
	if profile == "" {
		return nil, nil
	}
	f := pre
	var err error
	if f == nil {
		if f, err = openAppArmorAttr(); err != nil {
			return nil, fmt.Errorf("AppArmor profile %s: %w", profile, err)
		}
	}
	return &appArmorProfile{name: profile, attr: f}, nil
}

// enter confines this thread to the profile now.
func (p *appArmorProfile) enter() error {
	if p == nil {
		return nil
	}
	_, err := p.attr.Write([]byte("changeprofile " + p.name))
	p.attr.Close()
	if err != nil {
		return fmt.Errorf("AppArmor profile %s: %w", p.name, err)
	}
	return nil
}

// openAppArmorAttr opens the calling thread's AppArmor current attribute.
func openAppArmorAttr() (*os.File, error) {
	var err error
	for _, p := range []string{"/proc/thread-self/attr/apparmor/current", "/proc/thread-self/attr/current"} {
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
