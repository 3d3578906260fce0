package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/minikubelet/minikubelet/runtime/images"
)

// The floor: what the kernel and systemd cost by themselves for the same
// pod. A "pause" made by unshare owns new net, ipc and uts namespaces (lo
// up); each container is one `systemd-run --scope` with the same limits
// (MemoryMax=64M, CPUQuota=50%) running nsenter into those namespaces, then
// unshare of its own mount and pid namespaces, then chroot into the image's
// root and the same script. The root is the image imported into an image
// store of the floor's own and mounted once as an overlay, exactly as the
// daemon mounts a container's root (runtime/images), and shared by every
// run (no overlay per container).
type floor struct {
	rootfs string // image root; run i writes its markers below /out/<i>
	slice  string
}

func newFloor(dir, tarPath string) (*floor, error) {
	base := filepath.Join(dir, "floor")
	f := &floor{rootfs: filepath.Join(base, "rootfs"), slice: "bench-floor.slice"}
	store, err := images.Open(filepath.Join(base, "root"), images.Options{})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	recs, err := store.Import(ctx, tarPath, nil)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", tarPath, err)
	}
	var img *images.Record
	for i := range recs {
		for _, t := range recs[i].RepoTags {
			if t == demoRef {
				img = &recs[i]
			}
		}
	}
	if img == nil {
		return nil, fmt.Errorf("%s holds no %s", tarPath, demoRef)
	}
	if err := os.MkdirAll(f.rootfs, 0o755); err != nil {
		return nil, err
	}
	if err := store.MountRootfs(ctx, "floor", *img, filepath.Join(base, "ctr"), false, f.rootfs); err != nil {
		return nil, err
	}
	return f, os.MkdirAll(filepath.Join(f.rootfs, "out"), 0o777)
}

// close unmounts the floor's root.
func (f *floor) close() { images.UnmountRootfs(f.rootfs) }

// floorRun is one started floor pod.
type floorRun struct {
	pause  *exec.Cmd
	ctrs   []*exec.Cmd
	scopes []string
}

// start launches run i's pause and both containers (returns once they are
// launched; the markers tell when the workloads run).
func (f *floor) start(i int) (*floorRun, error) {
	r := &floorRun{}
	out := "/out/" + strconv.Itoa(i)
	p := exec.Command("unshare", "--net", "--ipc", "--uts", "--", "/bin/sh", "-c", "ip link set lo up && echo ready && exec sleep 1000000")
	stdout, _ := p.StdoutPipe()
	if err := p.Start(); err != nil {
		return r, fmt.Errorf("floor pause: %w", err)
	}
	r.pause = p
	if line, _ := bufio.NewReader(stdout).ReadString('\n'); strings.TrimSpace(line) != "ready" {
		return r, fmt.Errorf("floor pause did not bring lo up")
	}
	pid := strconv.Itoa(p.Process.Pid)
	for _, c := range []struct{ name, script string }{{"web", webScript}, {"client", clientScript}} {
		unit := fmt.Sprintf("bench-floor-%d-%s.scope", i, c.name)
		cmd := exec.Command("systemd-run", "--scope", "--quiet", "--collect", "--unit", unit, "--slice", f.slice,
			"-p", "MemoryMax=64M", "-p", "CPUQuota=50%",
			"--", "nsenter", "-t", pid, "-n", "-i", "-u", "--",
			"unshare", "--mount", "--pid", "--fork", "--propagation", "private", "--",
			"chroot", f.rootfs, "/bin/sh", "-c", c.script)
		cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "OUT=" + out, "BENCH_ID=floor-" + strconv.Itoa(i) + "/" + c.name}
		if err := cmd.Start(); err != nil {
			return r, fmt.Errorf("systemd-run %s: %w", unit, err)
		}
		r.ctrs = append(r.ctrs, cmd)
		r.scopes = append(r.scopes, unit)
	}
	return r, nil
}

// stop kills the run's scopes and pause and waits for the scopes to go.
func (r *floorRun) stop() error {
	if len(r.scopes) > 0 {
		exec.Command("systemctl", append([]string{"kill", "--signal=SIGKILL"}, r.scopes...)...).Run()
	}
	for _, c := range r.ctrs {
		c.Process.Kill()
		c.Wait()
	}
	if r.pause != nil {
		r.pause.Process.Kill()
		r.pause.Wait()
	}
	deadline := time.Now().Add(15 * time.Second)
	for _, u := range r.scopes {
		for {
			out, _ := exec.Command("systemctl", "is-active", u).Output()
			s := strings.TrimSpace(string(out))
			if s != "active" && s != "deactivating" {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("floor scope %s still %s", u, s)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nil
}
