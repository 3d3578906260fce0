package shim

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/minikubelet/minikubelet/runtime/crilog"
)

// ReadyFD is the fd on which a starting supervisor reports "ok" or an error.
const ReadyFD = 3

// container is the supervisor's view of one container process.
type container struct {
	spec     *ContainerSpec
	dir      string
	pid      int
	goW      *os.File // writing one byte releases the held init
	statusR  *os.File // init's status: "ready\n", then EOF on exec or an error line
	log      *crilog.Writer
	state    ContainerState
	startErr string
	// createFailed: the init died or refused during create; no exit record.
	createFailed bool
	// startDone closes once start has learned whether the exec worked, so
	// the exit record of a failed exec says StartError with its message.
	startDone chan struct{}
	exited    chan struct{}
	stdinW    *os.File // held open for stdin: true (a later attach writes here)
	pty       *os.File // terminal master for tty: true
	exit      *ExitRecord
}

type supervisor struct {
	dir  string
	spec SandboxSpec
	self string // path to re-exec for the container init

	mu         sync.Mutex
	containers map[string]*container
	byPID      map[int]*container
	stopping   bool
}

// SupervisorMain runs the pod supervisor for the sandbox directory dir. It
// returns only on a fatal error or after a shutdown request.
func SupervisorMain(dir string) int {
	// Nobody but root on the host may read our memory, fds or /proc/<pid>/exe
	// (a container in a shared PID namespace sees us as PID 1: CVE-2019-5736).
	unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	ready := os.NewFile(ReadyFD, "ready")
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "pod supervisor %s: %v\n", dir, err)
		if ready != nil {
			fmt.Fprintf(ready, "error: %v\n", err)
			ready.Close()
		}
		return 1
	}
	s := &supervisor{dir: dir, containers: map[string]*container{}, byPID: map[int]*container{}}
	if err := ReadJSON(filepath.Join(dir, SandboxSpecFile), &s.spec); err != nil {
		return fail(err)
	}
	// The very binary we run, even after an upgrade replaced the file on
	// disk: a container init must speak this supervisor's protocol.
	s.self = "/proc/self/exe"
	if s.spec.Hostname != "" {
		if err := unix.Sethostname([]byte(s.spec.Hostname)); err != nil {
			return fail(fmt.Errorf("set hostname %q: %w", s.spec.Hostname, err))
		}
	}
	if s.spec.OwnNetwork {
		if err := loopbackUp(); err != nil {
			return fail(fmt.Errorf("bring lo up: %w", err))
		}
	}
	setOOMScoreAdj(s.spec.OOMScoreAdj)
	for k, v := range s.spec.Sysctls {
		// /proc/sys/net/* and the IPC keys show the writer's namespaces.
		p := "/proc/sys/" + strings.ReplaceAll(k, ".", "/")
		if err := os.WriteFile(p, []byte(v), 0); err != nil {
			return fail(fmt.Errorf("sysctl %s=%s: %w", k, v, err))
		}
	}
	if err := os.Chdir(dir); err != nil {
		return fail(err)
	}
	// Relative name: the absolute path may exceed sun_path's 108 bytes.
	os.Remove(SocketFile)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: SocketFile, Net: "unix"})
	if err != nil {
		return fail(fmt.Errorf("listen on %s/%s: %w", dir, SocketFile, err))
	}
	l.SetUnlinkOnClose(false)
	os.Chmod(SocketFile, 0o600)
	os.Chdir("/")

	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, unix.SIGCHLD, unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGPIPE)
	st := SandboxState{PID: os.Getpid(), StartedAt: time.Now().UTC()}
	if err := WriteJSONAtomic(filepath.Join(dir, SandboxStateFile), st); err != nil {
		return fail(err)
	}
	fmt.Fprintln(ready, "ok")
	ready.Close()
	ready = nil

	go func() {
		for {
			c, err := l.AcceptUnix()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				time.Sleep(10 * time.Millisecond)
				continue
			}
			go s.serve(c, st)
		}
	}()
	for sig := range sigs {
		switch sig {
		case unix.SIGCHLD:
			s.reap()
		case unix.SIGTERM:
			s.shutdown()
			l.Close()
			return 0
		default: // SIGINT, SIGHUP, SIGPIPE: a pause ignores them
		}
	}
	return 0
}

func (s *supervisor) serve(c *net.UnixConn, st SandboxState) {
	defer c.Close()
	var req Request
	dec := json.NewDecoder(c)
	if err := dec.Decode(&req); err != nil {
		return
	}
	if req.Op == "attach" {
		// After the answer the connection is the container's stdin.
		s.attach(c, io.MultiReader(dec.Buffered(), c), req.ID, st)
		return
	}
	resp := s.handle(&req)
	resp.Sandbox = st
	json.NewEncoder(c).Encode(resp)
}

// attach copies the caller's bytes into the container's stdin (its pipe or
// terminal) until the caller closes its side. With stdinOnce the container's
// stdin is closed after the first attach, as kubelet does.
func (s *supervisor) attach(c *net.UnixConn, in io.Reader, id string, st SandboxState) {
	s.mu.Lock()
	ct := s.containers[id]
	var dst *os.File
	if ct != nil {
		dst = ct.stdinW
		if ct.pty != nil {
			dst = ct.pty
		}
	}
	s.mu.Unlock()
	if dst == nil {
		json.NewEncoder(c).Encode(Response{Error: "container " + id + " has no stdin (stdin: true) to attach to", Sandbox: st})
		return
	}
	if err := json.NewEncoder(c).Encode(Response{Sandbox: st}); err != nil {
		return
	}
	io.Copy(dst, in)
	if ct.spec.StdinOnce && ct.pty == nil {
		s.mu.Lock()
		if ct.stdinW != nil {
			ct.stdinW.Close()
			ct.stdinW = nil
		}
		s.mu.Unlock()
	}
}

func (s *supervisor) handle(req *Request) Response {
	switch req.Op {
	case "ping":
		return Response{}
	case "create":
		pid, err := s.create(req.Spec, req.Dir)
		if err != nil {
			return Response{Error: err.Error()}
		}
		return Response{PID: pid}
	case "start":
		if err := s.start(req.ID); err != nil {
			return Response{Error: err.Error()}
		}
		return Response{}
	case "signal":
		return errResp(s.signal(req.ID, syscall.Signal(req.Signal)))
	case "wait":
		s.mu.Lock()
		c := s.containers[req.ID]
		s.mu.Unlock()
		if c == nil {
			return Response{Error: "no container " + req.ID}
		}
		<-c.exited
		return Response{Exit: c.exit}
	case "resize":
		s.mu.Lock()
		c := s.containers[req.ID]
		s.mu.Unlock()
		if c == nil || c.pty == nil {
			return Response{Error: "container " + req.ID + " has no terminal"}
		}
		return errResp(unix.IoctlSetWinsize(int(c.pty.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: req.Rows, Col: req.Cols}))
	case "forget":
		s.mu.Lock()
		defer s.mu.Unlock()
		c := s.containers[req.ID]
		if c == nil {
			return Response{}
		}
		select {
		case <-c.exited:
			delete(s.containers, req.ID)
			return Response{}
		default:
			return Response{Error: "container " + req.ID + " is still running"}
		}
	case "list":
		s.mu.Lock()
		defer s.mu.Unlock()
		var ids []string
		for id := range s.containers {
			ids = append(ids, id)
		}
		return Response{Containers: ids}
	}
	return Response{Error: "unknown op " + req.Op}
}

func errResp(err error) Response {
	if err != nil {
		return Response{Error: err.Error()}
	}
	return Response{}
}

// create clones a container init into fresh mount (and PID) namespaces; it
// inherits the pod's net, ipc and uts namespaces from us. It returns once the
// init has built the container's root and is held waiting for start.
func (s *supervisor) create(spec *ContainerSpec, dir string) (int, error) {
	if spec == nil || spec.ID == "" || dir == "" {
		return 0, errors.New("create: spec, id and dir are required")
	}
	s.mu.Lock()
	if _, ok := s.containers[spec.ID]; ok {
		s.mu.Unlock()
		return 0, fmt.Errorf("container %s exists", spec.ID)
	}
	if s.stopping {
		s.mu.Unlock()
		return 0, errors.New("sandbox is stopping")
	}
	s.mu.Unlock()

	lw, err := crilog.Open(spec.LogPath, spec.LogMaxSize, spec.LogMaxFiles)
	if err != nil {
		return 0, err
	}
	var closers []*os.File
	closeAll := func() {
		for _, f := range closers {
			f.Close()
		}
	}
	pipe := func() (*os.File, *os.File) {
		r, w, err2 := os.Pipe()
		if err2 != nil && err == nil {
			err = err2
		}
		closers = append(closers, r, w)
		return r, w
	}
	outR, outW := pipe()
	errR, errW := pipe()
	specR, specW := pipe()
	goR, goW := pipe()
	statusR, statusW := pipe()
	if err != nil {
		closeAll()
		lw.Close(0)
		return 0, err
	}
	// stdin: /dev/null; an open pipe we hold (stdin: true, kept open for a
	// later attach, so that `sh` waits instead of reading EOF); or, with
	// tty: true, a terminal whose master we read as the container's output.
	stdin, err := os.Open(os.DevNull)
	if err != nil {
		closeAll()
		lw.Close(0)
		return 0, err
	}
	defer func() { stdin.Close() }()
	var holdStdin, pty, ptySock, ptySockChild *os.File
	stdout, stderr := outW, errW
	switch {
	case spec.TTY:
		// The init opens the terminal on the container's own devpts once
		// it is mounted and sends us the master (initPTYFD); until then
		// its stdio is /dev/null.
		var perr error
		if ptySock, ptySockChild, perr = SocketPair(); perr != nil {
			closeAll()
			lw.Close(0)
			return 0, fmt.Errorf("terminal for %s: %w", spec.Name, perr)
		}
		defer ptySock.Close()
		closers = append(closers, ptySockChild)
		stdout, stderr = stdin, stdin
	case spec.Stdin:
		r, w, perr := os.Pipe()
		if perr != nil {
			closeAll()
			lw.Close(0)
			return 0, perr
		}
		stdin.Close()
		stdin, holdStdin = r, w
	}

	flags := uintptr(unix.CLONE_NEWNS)
	if spec.NewPIDNS {
		flags |= unix.CLONE_NEWPID
	}
	attr := &syscall.ProcAttr{
		Dir:   "/",
		Env:   []string{"GOMAXPROCS=1"},
		Files: []uintptr{stdin.Fd(), stdout.Fd(), stderr.Fd(), specR.Fd(), goR.Fd(), statusW.Fd()},
		Sys: &syscall.SysProcAttr{
			Setsid:     true,
			Cloneflags: flags,
			Pdeathsig:  syscall.SIGKILL, // "if pause dies, the pod dies"
		},
	}
	if ptySockChild != nil {
		attr.Files = append(attr.Files, ptySockChild.Fd()) // initPTYFD
	}
	c := &container{spec: spec, dir: dir, goW: goW, statusR: statusR, log: lw, exited: make(chan struct{}), startDone: make(chan struct{}),
		stdinW: holdStdin}
	// Hold the lock across fork and registration so the reaper cannot see
	// the PID before we know it is ours.
	s.mu.Lock()
	pid, ferr := syscall.ForkExec(s.self, []string{s.self, ContainerInitCommand}, attr)
	if ferr == nil {
		c.pid = pid
		s.containers[spec.ID] = c
		s.byPID[pid] = c
	}
	s.mu.Unlock()
	// The child holds its own copies; keep only our ends.
	for _, f := range []*os.File{outW, errW, specR, goR, statusW} {
		f.Close()
	}
	if ptySockChild != nil {
		ptySockChild.Close()
	}
	if ferr != nil {
		if holdStdin != nil {
			holdStdin.Close()
		}
		outR.Close()
		errR.Close()
		specW.Close()
		goW.Close()
		statusR.Close()
		lw.Close(0)
		return 0, fmt.Errorf("start container init: %w", ferr)
	}
	if spec.TTY {
		// A terminal has one output stream; the CRI log calls it stdout.
		outR.Close()
		errR.Close()
	} else {
		lw.Follow("stdout", outR)
		lw.Follow("stderr", errR)
	}
	c.state = ContainerState{ID: spec.ID, PID: pid, CreatedAt: time.Now().UTC()}
	b, _ := json.Marshal(spec)
	_, werr := specW.Write(b)
	specW.Close()
	if ptySock != nil {
		// nil when the init failed before it had a terminal: its status says why.
		if pty, _ = RecvFD(ptySock, false); pty != nil {
			s.mu.Lock()
			c.pty = pty
			s.mu.Unlock()
			lw.Follow("stdout", pty)
		}
	}
	line, rerr := bufio.NewReader(statusR).ReadString('\n')
	if werr != nil || rerr != nil || line != "ready\n" {
		msg := strings.TrimSpace(strings.TrimPrefix(line, "error: "))
		if msg == "" {
			msg = fmt.Sprintf("container init exited during setup (write: %v, read: %v)", werr, rerr)
		}
		s.mu.Lock()
		c.createFailed = true
		s.mu.Unlock()
		unix.Kill(pid, unix.SIGKILL)
		goW.Close()
		<-c.exited
		s.mu.Lock()
		delete(s.containers, spec.ID)
		s.mu.Unlock()
		return 0, fmt.Errorf("create container %s: %s", spec.Name, msg)
	}
	if err := WriteJSONAtomic(filepath.Join(dir, ContainerStateFile), c.state); err != nil {
		return 0, err
	}
	return pid, nil
}

// start releases a held init; it returns when the workload was exec'd (or
// reports why it could not be: the container then exits with StartError).
func (s *supervisor) start(id string) error {
	s.mu.Lock()
	c := s.containers[id]
	s.mu.Unlock()
	if c == nil {
		return fmt.Errorf("no container %s", id)
	}
	s.mu.Lock()
	goW := c.goW
	c.goW = nil
	s.mu.Unlock()
	if goW == nil {
		return fmt.Errorf("container %s was already started", id)
	}
	defer close(c.startDone)
	_, err := goW.Write([]byte{'g'})
	goW.Close()
	if err != nil {
		s.mu.Lock()
		c.startErr = "container init is gone: " + err.Error()
		s.mu.Unlock()
		return fmt.Errorf("release container %s: %w", id, err)
	}
	rest, _ := io.ReadAll(c.statusR)
	c.statusR.Close()
	if msg := strings.TrimSpace(strings.TrimPrefix(string(rest), "error: ")); msg != "" {
		s.mu.Lock()
		c.startErr = msg
		s.mu.Unlock()
		return fmt.Errorf("start container %s: %s", c.spec.Name, msg)
	}
	s.mu.Lock()
	c.state.StartedAt = time.Now().UTC()
	st := c.state
	s.mu.Unlock()
	return WriteJSONAtomic(filepath.Join(c.dir, ContainerStateFile), st)
}

func (s *supervisor) signal(id string, sig syscall.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.containers[id]
	if c == nil {
		return fmt.Errorf("no container %s", id)
	}
	select {
	case <-c.exited:
		return nil // already gone; the PID may belong to someone else now
	default:
	}
	if c.exit != nil {
		return nil
	}
	return unix.Kill(c.pid, sig)
}

// reap collects every exited child (our containers and, as PID 1 or
// subreaper, orphans) and records the exits of our containers.
func (s *supervisor) reap() {
	for {
		var ws unix.WaitStatus
		s.mu.Lock()
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err != nil || pid <= 0 {
			s.mu.Unlock()
			return
		}
		c := s.byPID[pid]
		delete(s.byPID, pid)
		if c == nil {
			s.mu.Unlock()
			continue
		}
		rec := &ExitRecord{ID: c.spec.ID, FinishedAt: time.Now().UTC()}
		switch {
		case ws.Signaled():
			rec.Signal = int(ws.Signal())
			rec.ExitCode = 128 + rec.Signal
		default:
			rec.ExitCode = ws.ExitStatus()
		}
		c.exit = rec
		s.mu.Unlock()
		go s.finish(c, rec)
	}
}

// finish drains the logs (so a reader of the exit record finds the last
// lines too), persists the exit record and wakes waiters.
func (s *supervisor) finish(c *container, rec *ExitRecord) {
	s.mu.Lock()
	released := c.goW == nil
	s.mu.Unlock()
	if released {
		select {
		case <-c.startDone:
		case <-time.After(5 * time.Second):
		}
	}
	s.mu.Lock()
	rec.StartedAt = c.state.StartedAt
	switch {
	case c.startErr != "":
		rec.Reason, rec.Message, rec.ExitCode, rec.Signal = "StartError", c.startErr, 128, 0
	case rec.ExitCode == 0:
		rec.Reason = "Completed"
	default:
		rec.Reason = "Error"
	}
	s.mu.Unlock()
	s.mu.Lock()
	if c.stdinW != nil {
		c.stdinW.Close()
		c.stdinW = nil
	}
	s.mu.Unlock()
	c.log.Close(2 * time.Second)
	rec.LogDropped = c.log.Dropped()
	s.mu.Lock()
	pty := c.pty // set by create once the init handed the terminal over
	s.mu.Unlock()
	if pty != nil {
		pty.Close()
	}
	s.mu.Lock()
	skip := c.createFailed
	s.mu.Unlock()
	if skip {
		// never got past create: the caller got the error, nothing to record
	} else if err := WriteJSONAtomic(filepath.Join(c.dir, ExitFile), rec); err != nil {
		fmt.Fprintf(os.Stderr, "pod supervisor: record exit of %s: %v\n", c.spec.ID, err)
	}
	close(c.exited)
}

// shutdown kills what still runs (the daemon stops containers with their
// grace period before it stops the sandbox) and waits for the records.
func (s *supervisor) shutdown() {
	s.mu.Lock()
	s.stopping = true
	var wait []*container
	for _, c := range s.containers {
		if c.exit == nil {
			unix.Kill(c.pid, unix.SIGKILL)
		}
		wait = append(wait, c)
	}
	s.mu.Unlock()
	deadline := time.After(10 * time.Second)
	for _, c := range wait {
		for done := false; !done; {
			select {
			case <-c.exited:
				done = true
			case <-time.After(50 * time.Millisecond):
				s.reap()
			case <-deadline:
				return
			}
		}
	}
}

// loopbackUp sets IFF_UP on lo, the only interface of a fresh net namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// setOOMScoreAdj writes oom_score_adj best effort: the kernel refuses to
// lower it without CAP_SYS_RESOURCE, then we keep the nearest allowed value.
func setOOMScoreAdj(v int) {
	if err := os.WriteFile("/proc/self/oom_score_adj", []byte(fmt.Sprint(v)), 0); err != nil {
		cur, _ := os.ReadFile("/proc/self/oom_score_adj")
		fmt.Fprintf(os.Stderr, "oom_score_adj %d refused (%v); keeping %s", v, err, cur)
	}
}
