// Package heldproc holds the test helpers the systemd and cgroupfs driver
// tests share: a test binary that doubles as a held workload (placed in its
// scope before it runs), and checks of OOM watch channels.
package heldproc

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// A test binary importing this package doubles as the workload of its
// tests: with MKL_CGFS_HELPER set it runs a tiny program instead of the
// tests. It first
// waits for one byte on stdin, so the test can place it in its cgroup
// before it allocates anything (the "held stopped" contract of StartScope).
const cgfsHelperEnv = "MKL_CGFS_HELPER"

func init() {
	if mode := os.Getenv(cgfsHelperEnv); mode != "" {
		os.Exit(cgfsHelper(mode))
	}
}

var cgfsHeap [][]byte // kept reachable so the allocation stays resident

func cgfsHelper(mode string) int {
	one := make([]byte, 1)
	if _, err := os.Stdin.Read(one); err != nil {
		return 3
	}
	switch {
	case mode == "oom":
		// Allocate and touch 1 MiB at a time until the OOM killer ends us.
		for {
			b := make([]byte, 1<<20)
			for i := 0; i < len(b); i += 4096 {
				b[i] = 1
			}
			cgfsHeap = append(cgfsHeap, b)
		}
	case strings.HasPrefix(mode, "alloc:"):
		n, _ := strconv.Atoi(strings.TrimPrefix(mode, "alloc:"))
		b := make([]byte, n)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		cgfsHeap = append(cgfsHeap, b)
		// Burn a little cpu (≈200 ms of work, not measured against time).
		x := uint64(1)
		for i := 0; i < 200_000_000; i++ {
			x = x*6364136223846793005 + 1442695040888963407
		}
		fmt.Printf("ready %d\n", x&1)
		os.Stdin.Read(one) // until EOF or killed
		return 0
	case mode == "ignore-term":
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ready")
		os.Stdin.Read(one)
		return 0
	}
	return 2
}

// Process is a helper process waiting for its release byte.
type Process struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

// Start starts the test binary as a helper in mode (oom, alloc:<bytes>,
// ignore-term), held until Release.
func Start(t *testing.T, mode string) *Process {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), cgfsHelperEnv+"="+mode, "GOMAXPROCS=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &Process{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
	t.Cleanup(func() {
		cmd.Process.Kill() // by PID; a no-op once reaped
		stdin.Close()
		h.Wait()
	})
	return h
}

// Release lets the helper run.
func (h *Process) Release(t *testing.T) {
	t.Helper()
	if _, err := h.stdin.Write([]byte{1}); err != nil {
		t.Fatalf("release pid %d: %v", h.cmd.Process.Pid, err)
	}
}

// ReadLine reads one line the helper printed.
func (h *Process) ReadLine(t *testing.T) string {
	t.Helper()
	s, err := h.out.ReadString('\n')
	if err != nil {
		t.Fatalf("pid %d output: %v", h.cmd.Process.Pid, err)
	}
	return strings.TrimSpace(s)
}

var (
	waitedMu sync.Mutex
	waited   = map[*exec.Cmd]error{}
)

// Wait reaps the helper (once; later calls return the same result).
func (h *Process) Wait() error {
	waitedMu.Lock()
	defer waitedMu.Unlock()
	if err, ok := waited[h.cmd]; ok {
		return err
	}
	err := h.cmd.Wait()
	waited[h.cmd] = err
	return err
}

// Sleep starts a sleep 300 that the test's cleanup kills.
func Sleep(t *testing.T) *exec.Cmd {
	t.Helper()
	c := exec.Command("sleep", "300")
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Process.Kill(); c.Wait() })
	return c
}

// PID is the helper's process ID.
func (h *Process) PID() int { return h.cmd.Process.Pid }

// WaitStatus is the wait status of an exited command's error.
func WaitStatus(err error) (syscall.WaitStatus, bool) {
	ee, ok := err.(*exec.ExitError)
	if !ok {
		return 0, false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ws, ok
}

// ExpectOOM waits for one value on an OOM channel.
func ExpectOOM(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case _, ok := <-ch:
		if !ok {
			t.Fatalf("%s: OOM channel closed before a kill was reported", what)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("%s: no OOM kill reported", what)
	}
}

// ExpectNoOOM fails when a kill was reported already.
func ExpectNoOOM(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case _, ok := <-ch:
		if ok {
			t.Fatalf("%s: OOM kill reported for a cgroup that had none", what)
		}
	default:
	}
}

// ExpectClosed waits for the channel to close, with no value before.
func ExpectClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
			t.Fatalf("%s: unexpected OOM value while waiting for close", what)
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: OOM channel not closed after its cgroup was removed", what)
		}
	}
}

// ReadFile is the trimmed content of a cgroup file.
func ReadFile(t *testing.T, dir, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}
