package main

// exec.go: `minikubelet exec POD [-c C] [-i] [-t] -- CMD...`, kubectl exec's
// shape. The daemon only names the pod's UID and container IDs; the command
// itself is started by this process through the runtime (as `runc exec`
// would: the container's namespaces, cgroup, user, capabilities and seccomp),
// so a busy or restarting daemon never sits between a user and a shell.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	v1 "k8s.io/api/core/v1"

	"github.com/minikubelet/minikubelet/internal/api/kubectl"
	"github.com/minikubelet/minikubelet/runtime"
)

func init() { registerCommand(newExecCmd) }

type execOptions struct {
	apiClientOptions
	rootDir   string
	container string
	stdin     bool
	tty       bool
}

func newExecCmd() *cobra.Command {
	var o execOptions
	cmd := &cobra.Command{
		Use:   "exec POD [-c CONTAINER] [-i] [-t] -- COMMAND [ARG...]",
		Short: "Run a command in a running container, as kubectl exec does",
		Example: `  minikubelet exec web -- sh -c 'echo $HOSTNAME'
  minikubelet exec -it etcd -n kube-system -- sh`,
		Args: func(cmd *cobra.Command, args []string) error {
			if cmd.ArgsLenAtDash() != 1 || len(args) < 2 {
				return errors.New("exec needs POD, then -- and the command: minikubelet exec POD -- COMMAND [ARG...]")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			pod := args[0]
			if t, n, ok := strings.Cut(pod, "/"); ok && (t == "pod" || t == "pods" || t == "po") {
				pod = n
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM)
			defer stop()
			logDir := defaultLogDir
			if !cmd.Flags().Changed("root-dir") {
				// The daemon knows where its pods live: --socket is enough.
				cfg, err := daemonConfig(ctx, o.socket)
				if err != nil {
					return kubectlExit(fmt.Errorf("cannot learn the daemon's root dir from %s (pass --root-dir): %w", o.socket, err))
				}
				o.rootDir, logDir = cfg.RootDir, cfg.LogDir
			}
			if _, err := os.Stat(filepath.Join(o.rootDir, "pods")); err != nil {
				return kubectlExit(fmt.Errorf("no pod state in %s (is it the daemon's --root-dir?): %w", o.rootDir, err))
			}
			code, err := runExec(ctx, o, logDir, pod, args[1:], os.Stdin, cmd.OutOrStdout(), cmd.ErrOrStderr())
			if err != nil {
				return kubectlExit(err)
			}
			if code != 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "command terminated with exit code %d\n", code)
				return &exitError{code: code}
			}
			return nil
		},
	}
	o.addFlags(cmd.Flags(), false)
	fs := cmd.Flags()
	fs.StringVar(&o.rootDir, "root-dir", defaultRootDir, "root dir of the daemon (pod state lives in <root-dir>/pods; default: asked from the daemon on --socket)")
	fs.StringVarP(&o.container, "container", "c", "", "container name (default: the default-container annotation, else the first container)")
	fs.BoolVarP(&o.stdin, "stdin", "i", false, "pass stdin to the command")
	fs.BoolVarP(&o.tty, "tty", "t", false, "run the command on a terminal (stdin must be a terminal)")
	return cmd
}

// runExec resolves POD through the API and runs argv in its container.
func runExec(ctx context.Context, o execOptions, logDir, podName string, argv []string, stdin *os.File, stdout, stderr io.Writer) (int, error) {
	pod, err := o.client().GetPod(ctx, o.namespace, podName)
	if err != nil {
		return 0, err
	}
	name, err := execContainer(pod, o.container, stderr)
	if err != nil {
		return 0, err
	}
	st, err := kubectl.RunningContainer(pod, name, "exec into")
	if err != nil {
		return 0, err
	}
	id := kubectl.ContainerIDOf(st)
	rt, err := runtime.New(runtime.Options{RootDir: o.rootDir, LogDir: logDir})
	if err != nil {
		return 0, err
	}
	cfg := runtime.ExecConfig{Cmd: argv, Stdout: stdout, Stderr: stderr}
	if o.stdin {
		cfg.Stdin = stdin
	}
	if o.tty {
		fd := int(stdin.Fd())
		if !term.IsTerminal(fd) {
			fmt.Fprintln(stderr, "Unable to use a TTY - input is not a terminal or the right kind of file")
		} else {
			cfg.TTY = true
			old, err := term.MakeRaw(fd)
			if err != nil {
				return 0, fmt.Errorf("terminal raw mode: %w", err)
			}
			defer term.Restore(fd, old)
			cfg.Resize = watchWindowSize(ctx, fd)
		}
	}
	return rt.Exec(ctx, pod.UID, id, cfg)
}

// execContainer picks the container as kubectl exec does: -c, else the
// default-container annotation, else the first one (said on stderr when the
// pod has several).
func execContainer(pod *v1.Pod, want string, stderr io.Writer) (string, error) {
	var names []string
	for _, c := range pod.Spec.Containers {
		names = append(names, c.Name)
	}
	if want != "" {
		for _, c := range pod.Spec.InitContainers {
			if c.Name == want {
				return want, nil
			}
		}
		for _, n := range names {
			if n == want {
				return want, nil
			}
		}
		return "", fmt.Errorf("container %s is not valid for pod %s", want, pod.Name)
	}
	if a := pod.Annotations[kubectl.DefaultContainerAnnotation]; a != "" {
		return a, nil
	}
	kubectl.DefaultedContainerNotice(stderr, pod)
	return names[0], nil
}

// watchWindowSize sends the terminal's size now and on every SIGWINCH.
func watchWindowSize(ctx context.Context, fd int) <-chan runtime.WindowSize {
	ch := make(chan runtime.WindowSize, 1)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGWINCH)
	send := func() {
		if w, h, err := term.GetSize(fd); err == nil {
			select {
			case ch <- runtime.WindowSize{Rows: uint16(h), Cols: uint16(w)}:
			default:
			}
		}
	}
	send()
	go func() {
		defer signal.Stop(sig)
		for {
			select {
			case <-ctx.Done():
				return
			case <-sig:
				send()
			}
		}
	}()
	return ch
}
