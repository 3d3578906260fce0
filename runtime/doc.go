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
//	 │  (StartContainer writes one byte) → cgroup ns, oom_score_adj, no_new_privs,
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
// (shared PID namespace) cannot open /proc/<pid>/exe nor its fds without
// CAP_SYS_PTRACE; the container init does the same until it execs. And the
// daemon starts every supervisor and exec helper from one sealed memfd
// copy of its helper binary (helperexe.go; made once per daemon, shared by
// every pod), so that even with CAP_SYS_PTRACE /proc/<pid>/exe is a file
// nobody can write, never the node's binary (runc's answer to
// CVE-2019-5736).
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
// (temp file, fsync, rename, fsync of the folder):
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
// The folder is shared with the reconciler's shell (rootfs/, mkl/,
// status.json); internal/layout names every part of it and both ask it, so
// neither hard-codes the other's names (the sandbox rollback leaves
// layout's ContainerRoots alone).
//
// Both read these records again on every observation round, through
// shim.RecordCache: a record is decoded once and served while its file's
// identity (device, inode, size, mtime, ctime) stays the same, so an idle
// pod costs a stat per record, not a read and a decode (issue 17). A file
// replaced by rename (a new inode) or rewritten in place (new times)
// changes identity; a record read less than a second after its file
// changed is read again the next time (a same-size rewrite into a reused
// inode within one timestamp tick would not). A sandbox is alive when its PID runs with the recorded start time
// (/proc); the supervisor is called once per pod and round, to list its
// containers.
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
// /etc/hostname, /etc/resolv.conf (read-only with readOnlyRootFilesystem,
// as containerd mounts them); terminationMessagePath; volumes; the
// working directory. Every mount target is resolved inside the root
// without following a symlink out of it: a bind mount's destination as
// runc resolves it (filepath-securejoin: an image's /etc/resolv.conf ->
// ../run/systemd/resolve/stub-resolv.conf gets the pod's file at that
// target), kernel filesystems never through a symlink; missing parts are
// created (pathrs-lite) and the target is mounted through
// /proc/self/fd/<O_PATH handle> so it cannot be swapped for a symlink
// between check and mount (CVE-2021-30465). A volume's subPath is
// the same on the source side: the daemon creates it when missing (a
// directory, pathrs-lite MkdirAllHandle: no symlink followed out of the
// volume; one that cannot be made is a CreateContainerConfigError) and
// passes the volume's root and the subPath; the init opens the subPath
// again inside the volume and bind-mounts the handle it opened, so another
// container sharing the volume cannot swap a component for a symlink to /
// in between (CVE-2017-1002101, CVE-2021-25741). An image needs none of the
// targets (a scratch image is one static binary): the root is an overlay
// with an upper layer even with readOnlyRootFilesystem, the targets are
// made there, and the root turns read-only last, as runc does. Privileged
// containers get the host's /dev, a writable /sys and /sys/fs/cgroup, no
// masks and every capability the node holds.
//
// # User
//
// The daemon works out the process's uid, gid, supplementary groups and
// HOME as the kubelet and containerd do together (user.go): the image's
// USER (its group part dropped, as Kubernetes does), runAsUser and
// runAsGroup over it, the image's /etc/passwd and /etc/group parsed by
// moby/sys/user, fsGroup and supplementalGroups. Those files are opened
// inside the image's root (pathrs-lite: no symlink leads to the host's
// files) and only when they are regular files (a FIFO cannot block the
// daemon).
//
// # Security on the exec thread
//
// The inheritable and ambient sets are always empty (CVE-2022-24769; runc
// >= 1.1.2): bounding = permitted = effective = what the container asks.
// Capabilities, no_new_privs and seccomp are per thread; the init locks its
// main goroutine to its OS thread and does them all there, then execs from
// that thread. Seccomp profiles are compiled in the daemon to classic BPF in
// pure Go (see seccomp.go; no libseccomp, no cgo) and loaded without TSYNC.
// AppArmor (apparmor.go) is chosen as the kubelet and containerd do: the
// container's appArmorProfile, the legacy annotation, the pod's; nothing
// said means containerd's RuntimeDefault profile cri-containerd.apparmor.d
// (moby's template, loaded once with apparmor_parser; a failed load fails
// the container, as in containerd) for unprivileged containers. The init
// opens /proc/thread-self/attr/apparmor/current while it is root and writes
// "changeprofile <profile>" to it just before the execve, so the workload
// (and every exec) starts confined. Not runc's "exec <profile>" on
// attr/exec: a profile transition at exec is a secure exec, which clears
// the parent-death signal, and the workload would outlive its pod's
// supervisor (shim/apparmor.go). Where the
// kernel has no AppArmor the daemon says so once and pods asking for a
// profile are refused ("Cannot enforce AppArmor", the kubelet's admission).
// oom_score_adj is best effort (rlimits are inherited from the daemon, as
// Kubernetes has no field for them): where the kernel refuses (no
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
// Exec (kubectl exec) is one short-lived helper (shim/exechelper.go), started by
// the daemon from the sealed copy of the binary, in the node's namespaces.
// It joins the container's cgroups and, on its one locked thread after
// unshare(CLONE_FS), setns()es into the container's cgroup, ipc, uts, net,
// pid and mount namespaces, applies the container's user, capabilities,
// no_new_privs and seccomp filter like the init did, and forks the command
// from that thread. So the helper itself never appears in the container's
// PID namespace, and what does appear was born in the container's mount
// namespace, under its root, with its credentials: no thread of ours rooted
// on the node is ever reachable through /proc/<pid>/task/<tid>/root. A
// cancelled exec (SIGTERM to the helper) kills the command. With TTY the
// helper opens the terminal on the container's own devpts (/dev/pts/ptmx,
// checked to be devpts; the slave from the master with TIOCGPTPEER) and
// passes the master to the daemon over a socket (SCM_RIGHTS); a tty: true
// container's init does the same for the supervisor once its /dev/pts is
// mounted. No container ever holds a terminal of the node's devpts.
// Containers with stdin: true get a pipe the supervisor keeps
// open; with tty: true a terminal whose master the supervisor reads as the
// log's stdout. Attach writes into that pipe or terminal through the
// supervisor's socket (the output is the log); ResizeTerminal sets its size.
//
// # Threat model
//
// The node's root user and the daemon are trusted; so is whoever can
// write the manifest folder (root, as for the kubelet's static pods).
// Three parties are not, and this is what each can and cannot do.
//
// A pod author (the manifest's content) gets what the spec asks for and
// nothing more — but the spec can ask for the node: there is no admission
// control here (no Pod Security), so privileged, hostPath (of /), hostPID,
// hostNetwork, hostIPC, added capabilities such as CAP_SYS_ADMIN or
// CAP_SYS_PTRACE, seccomp Unconfined (the kubelet's default) and the
// unsafe sysctls that --allowed-unsafe-sysctls lists are each granted as
// written, exactly as the kubelet with containerd would. What a spec that
// asks for none of these cannot get: another pod's namespaces, files or
// cgroup; a mount whose source leaves its volume (subPath is resolved and
// opened inside the volume where it is mounted); a mount target, working
// directory or /etc file outside the container's root; a namespaced sysctl
// outside the safe set; the node's network (its own network namespace);
// the node's terminals; the daemon's state outside its own pod directory
// (metadata.uid must be a plain name: manifests refuses "..", "/" and the
// like, and layout.PodDirName (internal/layout) maps any other to a name
// inside pods/).
//
// An image author (the layers' content) can ship any file: absolute and
// relative symlinks, setuid binaries and file capabilities, device nodes,
// FIFOs, a USER that names anyone. They cannot make a mount land outside
// the root (targets are resolved inside it and mounted through handles),
// nor turn file capabilities into more than the container's bounding set
// (inheritable and ambient sets are empty; no_new_privs when the pod sets
// allowPrivilegeEscalation: false), nor make the daemon read a node file
// through the image's /etc/passwd or /etc/group (opened inside the root,
// regular files only, so a symlink or FIFO there leads nowhere).
//
// A container process — any code running in a container, root inside it
// included — has the container's capabilities (containerd's 14 by
// default: no CAP_SYS_ADMIN, CAP_SYS_PTRACE, CAP_SYS_MODULE ...), its
// seccomp filter, a read-only /sys and /sys/fs/cgroup, a masked and
// partly read-only /proc, a /dev of the six standard devices and its own
// devpts, and the device cgroup allowlist of runc. It cannot: see or
// signal processes outside its pod (its own PID namespace, or the pod's
// with shareProcessNamespace); reach the node's binary through any
// /proc/<pid>/exe it can see (sealed memfd copy); reach the node's root
// through /proc/<pid>/root, cwd or a task of an exec helper (the helper is
// not in its PID namespace; the command is born inside); race a subPath
// or a mount target into a symlink out; get a file descriptor of ours
// (every fd above 2 is close-on-exec, CVE-2024-21626); open a node disk
// (device cgroup). Even with CAP_SYS_PTRACE, no /proc/<pid>/exe it can
// open is the node's binary and no exec helper thread is within reach
// (TestEscapeExecHelper, TestEscapeSupervisorExe) — but see Known gaps
// for pods that share their PID namespace.
//
// The escape suite (go test -run Escape ./...) tries each of these and
// logs "escape <name>: attempted <how>: blocked (<what happened>)".
//
// Known gaps (not closed; do not rely on them):
//
//   - There are no user namespaces: root in a container is uid 0 of the
//     node's kernel, confined by capabilities, seccomp and mounts only (as
//     containerd without hostUsers: false).
//   - In a pod with shareProcessNamespace, the pause is the supervisor, a
//     root process of the node's root filesystem, and a container init is
//     visible there while it builds the root: a container of such a pod
//     given CAP_SYS_PTRACE (or privileged) can ptrace them or open their
//     /proc/<pid>/root, and is root on the node. Grant CAP_SYS_PTRACE only
//     in pods that do not share their PID namespace, or that you would
//     trust with the node.
//   - Between fork and exec (microseconds) an exec's child shares the
//     helper's memory (Go's vfork): a container with CAP_SYS_PTRACE that
//     wins that race could write into the helper.
//   - AppArmor's RuntimeDefault profile (containerd's, loaded with
//     apparmor_parser) has been exercised only where AppArmor is enabled;
//     the lab host has none.
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
// Pages of the binary (the daemon's sealed memfd copy, shmem charged to the
// daemon's cgroup once) are shared by every pod, so the marginal
// cost of a pod tends to RssAnon: about 1 MiB with minikubelet-shim, which
// New() uses when it is installed beside the daemon's executable (build it
// with `go build -o bin/minikubelet-shim ./runtime/shimbin`). Ideas to go
// lower: drop encoding/json and net from the shim (a hand-rolled line
// protocol over a raw socket), or a C pause with the Go supervisor shared
// by all pods (but then one process's death touches every pod).
package runtime
