package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/apimachinery/pkg/types"

	"github.com/minikubelet/minikubelet/runtime/shim"
)

// ExecConfig is one command to run inside a running container.
type ExecConfig struct {
	Cmd    []string
	Env    []string // added to the container's environment
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer // unused with TTY: a terminal has one output
	// TTY runs the command on a pseudo-terminal (kubectl exec -t); Resize
	// carries window size changes (optional).
	TTY    bool
	Resize <-chan WindowSize
}

// WindowSize of a terminal.
type WindowSize struct{ Rows, Cols uint16 }

// Exec runs a command in a running container's namespaces, cgroups, user,
// capabilities and seccomp filter (like `runc exec`), and returns its exit
// status (126 when it cannot be started; the reason is on Stderr).
func (r *Runtime) Exec(ctx context.Context, uid types.UID, id string, cfg ExecConfig) (int, error) {
	if len(cfg.Cmd) == 0 {
		return 0, errors.New("exec: no command")
	}
	st, err := r.ContainerStatus(ctx, uid, id)
	if err != nil {
		return 0, err
	}
	if st.State != ContainerRunning {
		return 0, fmt.Errorf("exec in container %s: it is %s, not running", st.Name, st.State)
	}
	var spec shim.ContainerSpec
	if err := shim.ReadJSON(filepath.Join(r.containerDir(uid, id), shim.ContainerSpecFile), &spec); err != nil {
		return 0, err
	}
	var meta sandboxMeta
	if err := shim.ReadJSON(filepath.Join(r.sandboxDir(uid), sandboxMetaFile), &meta); err != nil {
		return 0, err
	}
	pid := st.PID
	if meta.PIDInit {
		if pid, err = outerPID(meta.PID, st.PID); err != nil {
			return 0, err
		}
	}
	es := shim.ExecSpec{PID: pid, Spec: &spec, Args: cfg.Cmd, Env: cfg.Env, TTY: cfg.TTY}
	if cfg.TTY {
		// An initial size already queued is set before the command starts.
		select {
		case ws, ok := <-cfg.Resize:
			if ok {
				es.Rows, es.Cols = ws.Rows, ws.Cols
			}
		default:
		}
	}
	b, err := json.Marshal(es)
	if err != nil {
		return 0, err
	}
	specR, specW, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	cmd, err := r.command(ctx, shim.ExecCommand)
	if err != nil {
		specR.Close()
		specW.Close()
		return 0, fmt.Errorf("exec in container %s: %w", st.Name, err)
	}
	// Cancelled: the helper kills the command and exits with its status.
	cmd.Cancel = func() error { return cmd.Process.Signal(unix.SIGTERM) }
	cmd.Dir = "/"
	cmd.Env = []string{"GOMAXPROCS=1"}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = cfg.Stdin, cfg.Stdout, cfg.Stderr
	cmd.ExtraFiles = []*os.File{specR}
	// With TTY the terminal is opened by the helper on the container's own
	// devpts and its master handed to us over a socket (shim.ExecPTYFD);
	// the helper's own errors are kept and written after the terminal's
	// output, so that one writer at a time touches Stdout.
	var sock, sockChild *os.File
	var helperErr strings.Builder
	if cfg.TTY {
		if sock, sockChild, err = shim.SocketPair(); err != nil {
			specR.Close()
			specW.Close()
			return 0, fmt.Errorf("exec in container %s: terminal: %w", st.Name, err)
		}
		defer sock.Close()
		cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, nil, &helperErr
		cmd.ExtraFiles = append(cmd.ExtraFiles, sockChild)
	}
	// A stdin that is not a file (a stream from the kubelet API) is copied
	// through a pipe of our own, closed once the command is over: os/exec
	// would otherwise wait in Wait for the caller's stdin to end, and a
	// `kubectl exec -i` whose command has exited would hang.
	var stdinR, stdinW *os.File
	if _, isFile := cfg.Stdin.(*os.File); cfg.Stdin != nil && !isFile && !cfg.TTY {
		if stdinR, stdinW, err = os.Pipe(); err != nil {
			specR.Close()
			specW.Close()
			return 0, fmt.Errorf("exec in container %s: stdin: %w", st.Name, err)
		}
		defer stdinW.Close()
		cmd.Stdin = stdinR
		go func() {
			io.Copy(stdinW, cfg.Stdin)
			stdinW.Close()
		}()
	}
	err = cmd.Start()
	specR.Close()
	if stdinR != nil {
		stdinR.Close()
	}
	if sockChild != nil {
		sockChild.Close()
	}
	if err != nil {
		specW.Close()
		return 0, fmt.Errorf("exec in container %s: %w", st.Name, err)
	}
	_, werr := specW.Write(b)
	specW.Close()
	outDone := make(chan struct{})
	var pty *os.File
	if cfg.TTY {
		// nil when the helper failed before it had a terminal.
		if pty, err = shim.RecvFD(sock, true); err != nil {
			pty = nil
		}
	}
	if pty != nil {
		defer pty.Close()
		if cfg.Stdin != nil {
			go io.Copy(pty, cfg.Stdin)
		}
		go func() {
			defer close(outDone)
			if cfg.Stdout != nil {
				io.Copy(cfg.Stdout, pty)
			} else {
				io.Copy(io.Discard, pty)
			}
		}()
		if cfg.Resize != nil {
			go func() {
				for ws := range cfg.Resize {
					unix.IoctlSetWinsize(int(pty.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: ws.Rows, Col: ws.Cols})
				}
			}()
		}
	} else {
		close(outDone)
	}
	err = cmd.Wait()
	select {
	case <-outDone:
	case <-time.After(2 * time.Second):
		// A background process of the command still holds the terminal.
		pty.Close()
		<-outDone
	}
	if helperErr.Len() > 0 && cfg.Stdout != nil {
		io.WriteString(cfg.Stdout, helperErr.String())
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, nil
	case ctx.Err() != nil:
		// Cancelled or timed out (a probe's timeout): the helper killed the
		// command and exited 137; the caller wants to know why.
		return 0, ctx.Err()
	case errors.As(err, &ee) && ee.ExitCode() >= 0:
		return ee.ExitCode(), nil
	case werr != nil:
		return 0, fmt.Errorf("exec in container %s: %w", st.Name, werr)
	}
	return 0, fmt.Errorf("exec in container %s: %w", st.Name, err)
}
