// Package runtime runs pods without containerd, runc or conmon: a pod is a
// pause process owning the pod's net, ipc and uts namespaces, and
// containers that share them while each has its own mount and pid
// namespace. This file is the design; read it before the code.
//
// # The process tree
//
//	minikubelet run (the daemon)                 node namespaces
//	 │  RunSandbox: clone(NEWNET|NEWUTS|NEWIPC[|NEWPID]) + setsid, stdio → supervisor.log
//	 ▼
//	minikubelet __pod-supervisor <pod>/sandbox   ← THE PAUSE (one per pod, in the sandbox scope)
//	 │  owns the pod's net/ipc/uts (and pid with shareProcessNamespace: it is PID 1),
//	 │  sets the hostname, brings lo up, reaps every child, never exits on its own,
//	 │  listens on <pod>/sandbox/sup.sock, holds each container's stdout/stderr pipes
//	 │  and writes the CRI logs, persists state.json / exit.json per container.
//	 │  CreateContainer: ForkExec(/proc/self/exe __container-init,
//	 │                            Cloneflags = NEWNS [| NEWPID], Setsid, Pdeathsig=KILL)
//	 ▼
//	minikubelet __container-init                 ← born in fresh mnt (+pid) namespaces,
//	 │  reads its ContainerSpec from fd 3,          inherits net/ipc/uts from the supervisor
//	 │  mounts the root (bind, /proc, /dev, /sys, volumes, /etc files, masks), pivot_root,
//	 │  writes "ready" on fd 5 and BLOCKS on fd 4 ──── daemon places the PID in its scope
//	 │  (StartContainer writes one byte) → cgroup ns, oom_score_adj, rlimits, no_new_privs,
//	 │  bounding set, setgroups/setgid/setuid, caps, close-on-exec of every fd > 2,
//	 │  seccomp, execve — all on the one locked OS thread that execs.
//	 ▼
//	the workload (PID 1 of the container's pid namespace, or a PID in the pod's shared one)
//
// Why this shape. Go cannot setns(2) into a mount or user namespace from a
// multithreaded process, and setns without unshare(CLONE_FS) would move the
// root of every thread. So creating pods and containers never calls setns
// (only exec must join a living container; it does so on a locked thread
// after unshare(CLONE_FS), see below): the supervisor is
// *created* in the pod's namespaces by clone flags (os/exec SysProcAttr),
// and a container is *created* by the supervisor with CLONE_NEWNS (and
// CLONE_NEWPID unless the pod shares its PID namespace or uses the host's),
// so it inherits net/ipc/uts and is born in mount and pid namespaces of its
// own. The alternative, runc's cgo constructor that setns()es before the Go
// runtime starts, needs cgo and a second entry path in the binary; the clone
// approach needs neither and has no window where a Go thread sits in the
// wrong namespace. Its cost is a living supervisor per pod, which we need
// anyway: something that is not the daemon has to wait for the containers.
//
// Making the supervisor the pause saves a process per pod: it only runs our
// code, so its memory is the pod's whole overhead. With shareProcessNamespace
// it is PID 1 of the pod and reaps orphans like pause does; otherwise it is a
// child subreaper. It sets itself non-dumpable, so a container that sees it
// (shared PID namespace) cannot open /proc/<pid>/exe — the host's binary —
// nor its fds (the CVE-2019-5736 class); the container init does the same
// until it execs.
//
// # Surviving the daemon
//
// The supervisor is started with setsid, stdin /dev/null, stdout/stderr to
// <pod>/sandbox/supervisor.log and no other inherited fd (the readiness pipe
// is closed once it said "ok"), so the daemon's death sends it nothing. It
// is not a child the daemon must keep: once the daemon dies, init (or a
// subreaper) adopts it. The daemon talks to it over a unix socket, one
// request per connection, so a restarted daemon has nothing to reconnect.
//
// The supervisor reaps every container itself and writes, atomically
// (temp file, fsync, rename):
//
//	<root-dir>/pods/<uid>/
//	  sandbox/spec.json      what the supervisor was asked to be (daemon)
//	  sandbox/daemon.json    its PID in the daemon's namespace + start time (daemon)
//	  sandbox/state.json     its own view: pid, startedAt (supervisor)
//	  sandbox/sup.sock       the control socket;  sandbox/supervisor.log
//	  sandbox/netns          bind of the pod's netns (CNI DEL; outlives the pause and
//	                         StopSandbox; replaced by the next RunSandbox, gone at RemoveSandbox)
//	  containers/<id>/daemon.json   name, attempt, log path (daemon)
//	  containers/<id>/spec.json     the ContainerSpec given to the init (daemon)
//	  containers/<id>/state.json    pid, createdAt, startedAt (supervisor)
//	  containers/<id>/exit.json     exitCode, signal, reason, message,
//	                                startedAt, finishedAt, logDropped (supervisor)
//	  etc-hosts, etc-hostname, resolv.conf   bind-mounted into each container
//	  shm/                          the pod's 64 MiB /dev/shm tmpfs
//	  volumes/kubernetes.io~empty-dir/<name>   (medium Memory: a tmpfs sized as the
//	                                kubelet does: node memory, the pod's memory limit,
//	                                sizeLimit, whichever is smallest)
//
// Reasons are Completed (0), Error (non-zero or signal; ExitCode 128+sig) and
// StartError (exec failed: ExitCode 128, message from the init). OOMKilled
// is the daemon's decision from the cgroup's OOM counter (the supervisor
// cannot see it): it overrides Reason when the counter moved.
//
// If the supervisor itself dies, its containers die with it (Pdeathsig, or
// the PID namespace's init is gone), as "pause dies → the pod dies"; exits
// that were not recorded then read as ContainerUnknown.
//
// # Hold until placed
//
// CreateContainer returns the PID of a container init that has built the
// container's root and is blocked reading fd 4. The reconciler moves that
// PID into the container's scope (systemd.Driver.StartScope with PIDs, or
// any PlaceFunc), then calls StartContainer. Only then does the init enter a
// private cgroup namespace rooted at its (new) cgroup and exec: no
// instruction of the workload runs outside its scope and limits. The
// integration tests check both sides: before start the PID still runs
// __container-init, and the workload sees "/" as its cgroup.
//
// # Mounts (as containerd's CRI plugin sets them)
//
// /proc (nosuid,noexec,nodev); /dev tmpfs with null, zero, full, random,
// urandom, tty bind-mounted from the host and the usual symlinks; /dev/pts
// (newinstance); /dev/mqueue; /dev/shm (the pod's, or the host's with
// hostIPC); /sys read-only; /sys/fs/cgroup read-only through the cgroup
// namespace; the masked paths (a /dev/null bind for files, an empty
// read-only tmpfs for folders) and read-only paths; /etc/hosts,
// /etc/hostname, /etc/resolv.conf; terminationMessagePath; volumes.
// Every mount target is resolved inside the root without following a
// symlink out of it (filepath-securejoin's pathrs-lite), then mounted
// through /proc/self/fd/<O_PATH handle> so it cannot be swapped for a
// symlink between check and mount (CVE-2021-30465). Privileged containers
// get the host's /dev, a writable /sys, no masks and every capability the
// node holds.
//
// # Security on the exec thread
//
// Capabilities, no_new_privs and seccomp are per thread; the init locks its
// main goroutine to its OS thread and does them all there, then execs from
// that thread. Seccomp profiles are compiled in the daemon to classic BPF in
// pure Go (see seccomp.go; no libseccomp, no cgo) and loaded without TSYNC.
// AppArmor (apparmor.go) is chosen as the kubelet and containerd do: the
// container's appArmorProfile, the legacy annotation, the pod's; nothing
// said means containerd's RuntimeDefault profile cri-containerd.apparmor.d
// (moby's template, loaded once with apparmor_parser; a failed load fails
// the container, as in containerd) for unprivileged containers. The init
// writes "exec <profile>" to /proc/thread-self/attr/apparmor/exec before
// no_new_privs, so the workload (and every exec) starts confined. Where the
// kernel has no AppArmor the daemon says so once and pods asking for a
// profile are refused ("Cannot enforce AppArmor", the kubelet's admission).
// oom_score_adj and rlimits are best effort: where the kernel refuses (no
// CAP_SYS_RESOURCE), the init keeps the nearest allowed value silently (not
// in the container's log) and the daemon warns once (log/slog) when it sees
// the pause did not get -998; the pod never fails for it.
//
// # Logs
//
// The supervisor owns each container's stdout/stderr pipes; crilog writes
// <log-dir>/<ns>_<pod>_<uid>/<container>/<attempt>.log in the CRI format,
// line by line, rotating by size; a bounded queue between the pipe reader
// and the file writer drops (and counts, in exit.json) lines when the disk
// is slow or full, so the container never blocks on its log.
//
// # Exec, attach, terminals
//
// Exec (kubectl exec) is two short-lived helpers (shim/exec.go): stage 1
// joins the container's cgroups and, on a locked thread, setns()es into its
// cgroup, ipc, uts, net and pid namespaces and forks stage 2, which enters
// the mount namespace on its own locked thread after unshare(CLONE_FS),
// applies the container's user, capabilities, no_new_privs and seccomp
// filter like the init did, and execs. With TTY the daemon allocates the
// terminal. Containers with stdin: true get a pipe the supervisor keeps
// open; with tty: true a terminal whose master the supervisor reads as the
// log's stdout. Attach writes into that pipe or terminal through the
// supervisor's socket (the output is the log); ResizeTerminal sets its size.
//
// # API for the reconciler (CRI-shaped)
//
//	RunSandbox(ctx, SandboxConfig{Pod, Place}) → SandboxStatus{PID, NetNSPath, ...}
//	SetPodIP(pod, ip)                          after CNI: /etc/hosts entry
//	CreateContainer(ctx, ContainerConfig{ID?, Pod, Container, Attempt, Rootfs, Image, PodIP, HostIP})
//	                                           → CreatedContainer{ID, PID (held), LogPath}
//	   … place PID in the container's scope (systemd.Driver.StartScope) …
//	StartContainer(ctx, uid, id)               releases the held init; error = StartError
//	WaitContainer(ctx, uid, id)                blocks until the exit is recorded (use one
//	                                           goroutine per container as the exit event)
//	StopContainer[Signal](ctx, uid, id, [sig,] grace), RemoveContainer(ctx, uid, id)
//	ContainerStatus / ListContainers           read the records (no daemon memory needed)
//	RecordOOMKill(uid, id)                     the daemon's OOM finding, persisted
//	Exec / Attach / ResizeTerminal
//	StopSandbox(ctx, uid), RemoveSandbox(ctx, uid), SandboxStatus, ListSandboxes
//
// After a daemon restart: ListSandboxes (PID 0 = supervisor gone: remove and
// recreate the pod), ListContainers (Created / Running / Exited / Unknown),
// and WaitContainer again for the running ones.
//
// # Memory per pod
//
// The supervisor is the whole per-pod overhead (container inits are gone
// once they exec). Measured on the CI machine by TestPerPodOverhead, with
// one `sleep` container per pod, GOMAXPROCS=1:
//
//	binary playing the supervisor    VmRSS    RssAnon (private)   Pss, 3rd pod
//	runtime/shimbin (4 MB)           ~5.1 MB  ~1.0 MB             ~1.9 MB
//	test binary (k8s.io/api linked)  ~11.4 MB ~1.7 MB             ~3.4 MB
//	minikubelet (product, 15 MB)     ~16.8 MB ~2.8 MB             ~7.1 MB
//
// File-backed pages of the binary are shared by every pod, so the marginal
// cost of a pod tends to RssAnon: about 1 MiB with minikubelet-shim, which
// New() uses when it is installed beside the daemon's executable (build it
// with `go build -o bin/minikubelet-shim ./runtime/shimbin`). Ideas to go
// lower: drop encoding/json and net from the shim (a hand-rolled line
// protocol over a raw socket), or a C pause with the Go supervisor shared
// by all pods (but then one process's death touches every pod).
package runtime
