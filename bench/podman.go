package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// podmanPeer runs podman (Debian's 4.3) inside the node, in a mount
// namespace of its own whose /sys/fs/cgroup is a private tmpfs holding the
// node's hierarchies plus folders for the controllers this machine does not
// mount (net_cls, net_prio, perf_event, hugetlb), which podman 4.3 insists
// on. Its config, storage and run state live in the benchmark's temp dir:
// nothing of the host is configured.
type podmanPeer struct {
	dir    string
	helper *exec.Cmd // sleeps in the prepared mount namespace
	ns     string    // /proc/<helper>/ns/mnt
	env    []string
}

// helperScript prepares the mount namespace, then sleeps in it so every
// podman command can join it with nsenter.
const helperScript = `set -e
old="$PODMAN_DIR/oldcg"; mkdir -p "$old"
mount --rbind /sys/fs/cgroup "$old"
mount -t tmpfs -o mode=755 tmpfs /sys/fs/cgroup
# Only the hierarchies are bound; the node's systemd leaves read-only
# placeholders (net_cls,net_prio, perf_event, ...) that become writable
# folders here.
for p in "$old"/*; do
  n=$(basename "$p")
  if [ -L "$p" ]; then ln -s "$(readlink "$p")" "/sys/fs/cgroup/$n"; continue; fi
  mkdir -p "/sys/fs/cgroup/$n"
  if mountpoint -q "$p"; then mount --rbind "$p" "/sys/fs/cgroup/$n"; fi
done
for n in net_cls net_prio perf_event hugetlb; do [ -e "/sys/fs/cgroup/$n" ] || mkdir "/sys/fs/cgroup/$n"; done
umount -l "$old"; rmdir "$old"
# podman 4.3 keeps its blob-info cache in /var/lib/containers/cache whatever
# --root says: a tmpfs over /var/lib keeps it off the host.
mount -t tmpfs -o mode=755 tmpfs /var/lib
echo ready
exec sleep 1000000
`

func containersConf(dir string) string {
	return fmt.Sprintf(`# minikubelet benchmark: podman's own config, never the host's
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
log_driver = "k8s-file"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
tmp_dir = "%[1]s/tmp"
volume_path = "%[1]s/volumes"

[network]
network_config_dir = "%[1]s/networks"
`, dir)
}

func startPodman(dir, tarball string) (*podmanPeer, error) {
	for _, bin := range []string{"podman", "runc", "conmon"} {
		if _, err := exec.LookPath(bin); err != nil {
			return nil, fmt.Errorf("%s is not installed (run `make bench-deps`)", bin)
		}
	}
	p := &podmanPeer{dir: dir}
	for _, d := range []string{"tmp", "volumes", "networks", "root", "run", "yaml"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	conf := filepath.Join(dir, "containers.conf")
	if err := os.WriteFile(conf, []byte(containersConf(dir)), 0o644); err != nil {
		return nil, err
	}
	p.env = append(os.Environ(), "CONTAINERS_CONF="+conf, "TMPDIR="+filepath.Join(dir, "tmp"))
	h, ns, err := mountNamespaceHelper(helperScript, []string{"PODMAN_DIR=" + dir}, "podman")
	if err != nil {
		return nil, err
	}
	p.helper, p.ns = h, ns
	if out, err := p.run(5*time.Minute, "load", "-q", "-i", tarball); err != nil {
		p.close()
		return nil, fmt.Errorf("podman load %s: %v: %s", tarball, err, lastLines(out, 4))
	}
	return p, nil
}

// command is podman with the benchmark's storage and manager flags, run in
// the helper's mount namespace.
func (p *podmanPeer) command(ctx context.Context, args ...string) *exec.Cmd {
	full := append([]string{"--mount=" + p.ns, "--", "podman",
		"--root", filepath.Join(p.dir, "root"), "--runroot", filepath.Join(p.dir, "run"),
		"--storage-driver", "overlay", "--cgroup-manager", "cgroupfs", "--runtime", "runc",
		"--events-backend", "file", "--tmpdir", filepath.Join(p.dir, "tmp")}, args...)
	cmd := exec.CommandContext(ctx, "nsenter", full...)
	cmd.Env = p.env
	return cmd
}

func (p *podmanPeer) run(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := p.command(ctx, args...).CombinedOutput()
	return string(out), err
}

// play runs `podman kube play` of yaml and returns when it did.
func (p *podmanPeer) play(name, yaml string) (string, error) {
	f := filepath.Join(p.dir, "yaml", name+".yaml")
	if err := os.WriteFile(f, []byte(yaml), 0o644); err != nil {
		return "", err
	}
	out, err := p.run(60*time.Second, "kube", "play", "--network", "none", f)
	if err != nil && os.Getenv("MKL_BENCH_DEBUG") != "" {
		dbg, _ := exec.Command("nsenter", "--mount="+p.ns, "--", "sh", "-c", "ls -la /sys/fs/cgroup; grep cgroup /proc/self/mountinfo; cat /proc/self/cgroup").CombinedOutput()
		fmt.Fprintf(os.Stderr, "podman debug:\n%s\n", dbg)
	}
	return out, err
}

// fakeControllers are the placeholder folders of the helper's
// /sys/fs/cgroup: podman writes "cgroup files" into them as plain files, so
// its own rmdir fails there; wiping them lets a second `pod rm` finish.
const wipeFake = `for n in net_cls,net_prio perf_event hugetlb; do
  d=/sys/fs/cgroup/$n; mountpoint -q "$d" || find "$d" -mindepth 1 -delete; done`

func (p *podmanPeer) down(name string) error {
	out, err := p.run(60*time.Second, "pod", "rm", "-f", "-t", "0", name)
	if err != nil && strings.Contains(out, "directory not empty") {
		exec.Command("nsenter", "--mount="+p.ns, "--", "/bin/sh", "-c", wipeFake).Run()
		out, err = p.run(60*time.Second, "pod", "rm", "-f", "-t", "0", name)
	}
	if err != nil {
		return fmt.Errorf("podman pod rm %s: %v: %s", name, err, lastLines(out, 3))
	}
	return nil
}

// close removes every pod and image, then ends the helper: its mount
// namespace, with podman's overlay mounts, dies with it.
func (p *podmanPeer) close() {
	if p.helper == nil {
		return
	}
	if p.ns != "" {
		p.run(2*time.Minute, "pod", "rm", "-a", "-f", "-t", "0")
		p.run(2*time.Minute, "rm", "-a", "-f", "-t", "0")
		p.run(2*time.Minute, "rmi", "-a", "-f")
	}
	p.helper.Process.Kill()
	p.helper.Wait()
	p.helper = nil
}

// mountNamespaceHelper starts script under unshare --mount (private
// propagation) with env, and waits for its "ready" line: the helper holds
// a mount namespace a peer's commands enter through /proc/<pid>/ns/mnt. On
// failure the helper is killed and its stderr is in the error.
func mountNamespaceHelper(script string, env []string, who string) (*exec.Cmd, string, error) {
	h := exec.Command("unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", script)
	h.Env = append(os.Environ(), env...)
	stdout, _ := h.StdoutPipe()
	var stderr bytes.Buffer
	h.Stderr = &stderr
	if err := h.Start(); err != nil {
		return nil, "", fmt.Errorf("unshare for %s's mount namespace: %w", who, err)
	}
	if line, _ := bufio.NewReader(stdout).ReadString('\n'); strings.TrimSpace(line) != "ready" {
		h.Process.Kill()
		h.Wait()
		return nil, "", fmt.Errorf("preparing %s's mount namespace failed: %s", who, strings.TrimSpace(stderr.String()))
	}
	return h, "/proc/" + strconv.Itoa(h.Process.Pid) + "/ns/mnt", nil
}
