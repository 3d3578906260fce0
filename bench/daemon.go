package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/minikubelet/minikubelet/internal/api"
)

const envDebugLog = "MKL_BENCH_DEBUG_LOG"

// daemon is one `minikubelet run` inside the node, with every folder under
// the benchmark's temp dir (never /etc/kubernetes or /var/lib on the host).
type daemon struct {
	bin, dir, root, manifests, stage, logs, socket string
	parallel                                       int
	cni                                            bool // pods get the default bridge network (else loopback only)
	cmd                                            *exec.Cmd
	exited                                         chan struct{}
	starts                                         int
	client                                         *api.Client
}

func newDaemon(binDir, dir string, parallel int) *daemon {
	d := &daemon{bin: filepath.Join(binDir, "minikubelet"), dir: dir, root: filepath.Join(dir, "root"),
		manifests: filepath.Join(dir, "manifests"), stage: filepath.Join(dir, "stage"), logs: filepath.Join(dir, "logs"),
		socket: filepath.Join(dir, "mkl.sock"), parallel: parallel}
	for _, p := range []string{d.root, d.manifests, d.stage, d.logs, filepath.Join(dir, "cni"), filepath.Join(dir, "cni-bin")} {
		os.MkdirAll(p, 0o755)
	}
	d.client = api.NewClient(d.socket)
	return d
}

// start runs the daemon and waits (bounded) for its API. Pods get loopback
// only (an empty CNI plugin folder), like the floor and podman --network
// none; with d.cni they get the daemon's default bridge network (Debian's
// plugins, the default conflist the daemon writes into its root dir since
// --cni-conf-dir holds none).
func (d *daemon) start() error {
	d.starts++
	lf, err := os.Create(filepath.Join(d.dir, fmt.Sprintf("daemon-%d.log", d.starts)))
	if err != nil {
		return err
	}
	// MKL_BENCH_DEBUG_LOG=PREFIX: the daemon logs at -v 4 (its spans say
	// where a pod start's milliseconds go) into PREFIX-<start>-<cni>.log,
	// kept after the run (the temp dir is not).
	if prefix := os.Getenv(envDebugLog); prefix != "" {
		lf.Close()
		if lf, err = os.Create(fmt.Sprintf("%s-%d-%v.log", prefix, d.starts, d.cni)); err != nil {
			return err
		}
	}
	args := []string{"run", "--node-name", "bench", "--root-dir", d.root, "--manifest-dir", d.manifests,
		"--log-dir", d.logs, "--socket", d.socket, "--cgroup-driver", "systemd", "--cgroup-root", mklRoot,
		"--cni-conf-dir", filepath.Join(d.dir, "cni"), "--cni-bin-dir", filepath.Join(d.dir, "cni-bin")}
	if d.cni {
		args[len(args)-1] = cniBinDir
	}
	if d.parallel > 0 {
		args = append(args, "--parallel-pods", strconv.Itoa(d.parallel))
	}
	if os.Getenv(envDebugLog) != "" {
		args = append(args, "-v", "4")
	}
	cmd := exec.Command(d.bin, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		lf.Close()
		return fmt.Errorf("start %s: %w", d.bin, err)
	}
	lf.Close()
	d.cmd, d.exited = cmd, make(chan struct{})
	go func(c *exec.Cmd, ch chan struct{}) { c.Wait(); close(ch) }(cmd, d.exited)
	return d.waitAPI(30 * time.Second)
}

func (d *daemon) waitAPI(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := d.client.Healthz(ctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-d.exited:
			return fmt.Errorf("minikubelet run exited before its API answered: %s", d.logTail(6))
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("minikubelet API on %s did not answer within %s: %v; log: %s", d.socket, timeout, err, d.logTail(6))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (d *daemon) pid() int {
	if d.cmd == nil || d.cmd.Process == nil {
		return 0
	}
	return d.cmd.Process.Pid
}

// stop ends the daemon with sig and waits (bounded) for it to exit.
func (d *daemon) stop(sig syscall.Signal) error {
	if d.cmd == nil {
		return nil
	}
	d.cmd.Process.Signal(sig)
	defer func() { d.cmd = nil }()
	select {
	case <-d.exited:
		return nil
	case <-time.After(20 * time.Second):
		d.cmd.Process.Kill()
		<-d.exited
		return fmt.Errorf("minikubelet did not exit within 20s of %v", sig)
	}
}

func (d *daemon) alive() bool {
	if d.cmd == nil {
		return false
	}
	select {
	case <-d.exited:
		return false
	default:
		return true
	}
}

func (d *daemon) logTail(n int) string {
	b, _ := os.ReadFile(filepath.Join(d.dir, fmt.Sprintf("daemon-%d.log", d.starts)))
	return lastLines(string(b), n)
}

// stageManifest writes a manifest beside the folder; put renames it in.
func (d *daemon) stageManifest(file, content string) error {
	return os.WriteFile(filepath.Join(d.stage, file), []byte(content), 0o644)
}

func (d *daemon) put(file string) error {
	return os.Rename(filepath.Join(d.stage, file), filepath.Join(d.manifests, file))
}

func (d *daemon) remove(file string) error { return os.Remove(filepath.Join(d.manifests, file)) }

func (d *daemon) pods(ctx context.Context) ([]v1.Pod, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	l, err := d.client.ListPods(ctx, "", "")
	if err != nil {
		return nil, err
	}
	return l.Items, nil
}

func restartsOf(p *v1.Pod) int {
	n := 0
	for _, cs := range p.Status.ContainerStatuses {
		n += int(cs.RestartCount)
	}
	return n
}

// podDirs counts the pod state folders the runtime still holds.
func (d *daemon) podDirs() int {
	ents, _ := os.ReadDir(filepath.Join(d.root, "pods"))
	return len(ents)
}

// waitGone waits until the API lists no pod, no pod dir is left, nothing is
// mounted below the root dir and no pod process or unit remains.
func (d *daemon) waitGone(timeout time.Duration) error {
	return d.waitGoneEvery(timeout, 20*time.Millisecond)
}

// waitGoneEvery polls at interval: listing hundreds of pods costs the
// daemon time, so mass scenarios poll less often.
func (d *daemon) waitGoneEvery(timeout, interval time.Duration) error {
	deadline := time.Now().Add(timeout)
	var why string
	for {
		why = d.leftovers()
		if why == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s still present: %s", timeout, why)
		}
		time.Sleep(interval)
	}
}

// leftovers names what of the pods still exists ("" when nothing): API
// entries, pod processes, mounts, pod dirs, then systemd units (the
// costliest check, last).
func (d *daemon) leftovers() string {
	if pods, err := d.pods(context.Background()); err != nil {
		return "API: " + err.Error()
	} else if len(pods) > 0 {
		return fmt.Sprintf("%d pods listed by the API", len(pods))
	}
	if n := len(podProcesses()); n > 0 {
		return fmt.Sprintf("%d processes in "+mklRoot+".slice", n)
	}
	if m := mountsUnder(d.root); len(m) > 0 {
		return fmt.Sprintf("%d mounts below %s", len(m), d.root)
	}
	if n := d.podDirs(); n > 0 {
		return fmt.Sprintf("%d pod dirs", n)
	}
	if u := podUnits(); u != "" {
		return "units: " + u
	}
	return ""
}

// podUnits lists the pod slices and scopes systemd still knows.
func podUnits() string {
	out, err := exec.Command("systemctl", "list-units", "--all", "--no-legend", "--plain", mklRoot+"-*pod*", "minikubelet-*").Output()
	if err != nil {
		return ""
	}
	var names []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	if len(names) > 4 {
		return fmt.Sprintf("%d (%s ...)", len(names), strings.Join(names[:4], " "))
	}
	return strings.Join(names, " ")
}

// removeAllManifests deletes every manifest and waits for the pods to go.
func (d *daemon) removeAllManifests(timeout time.Duration) error {
	ents, _ := os.ReadDir(d.manifests)
	for _, e := range ents {
		os.Remove(filepath.Join(d.manifests, e.Name()))
	}
	if !d.alive() {
		return errors.New("daemon not running")
	}
	return d.waitGone(timeout)
}
