package shell

import (
	"syscall"
	"testing"
)

func TestStopSignal(t *testing.T) {
	for in, want := range map[string]syscall.Signal{"": syscall.SIGTERM, "SIGQUIT": syscall.SIGQUIT, "quit": syscall.SIGQUIT,
		"9": syscall.SIGKILL, "SIGRTMIN+3": syscall.SIGTERM, "bogus": syscall.SIGTERM, "SIGUSR1": syscall.SIGUSR1} {
		if got := stopSignal(in); got != want {
			t.Errorf("stopSignal(%q) = %v, want %v", in, got, want)
		}
	}
}
