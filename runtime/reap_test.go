package runtime

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A child handed to reapWhenExits is collected when it exits (no zombie),
// whether it ends by itself or is killed, and no thread waits for it.
func TestReapWhenExits(t *testing.T) {
	short := exec.Command("sleep", "0.1")
	long := exec.Command("sleep", "60")
	for _, c := range []*exec.Cmd{short, long} {
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		pid := c.Process.Pid
		t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
		reapWhenExits(c)
	}
	// Parked in the poller, not in a blocking wait: no thread of this
	// process sits in waitid (247) or wait4 (61) for the long one.
	time.Sleep(50 * time.Millisecond)
	if n := threadsInSyscall(t, "247", "61"); n != 0 {
		t.Errorf("%d threads blocked in waitid/wait4; want none", n)
	}
	waitGone(t, short.Process.Pid)
	if err := syscall.Kill(long.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitGone(t, long.Process.Pid)
}

// waitGone waits until pid is neither running nor a zombie.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return // reaped
		}
		if time.Now().After(deadline) {
			t.Fatalf("child %d not reaped: %s", pid, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func threadsInSyscall(t *testing.T, nrs ...string) int {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, task := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + task.Name() + "/syscall")
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		for _, nr := range nrs {
			if len(f) > 0 && f[0] == nr {
				n++
			}
		}
	}
	return n
}
