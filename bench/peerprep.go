package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/minikubelet/minikubelet/runtime/images/imagebuild"
)

// prepareKubelet, on the host before the node boots, finds the kubelet
// binary of the peer (hack/k8s/build.sh builds it from k8s.io/kubernetes
// v1.37.2 once per machine, ~4-6 min cold on 2 cores, and caches it in
// ~/.cache/minikubelet/k8s) and makes the pause image containerd's CRI needs
// (hack/pause as registry.k8s.io/pause:3.10.2) in dir. It returns the
// binary, or why the peer cannot run.
func prepareKubelet(o options, dir string) (bin, why string) {
	if o.noKubelet || os.Geteuid() != 0 {
		return "", ""
	}
	bin = o.kubelet
	if bin == "" {
		progress("kubelet peer: hack/k8s/build.sh kubelet (cached after the first build; the first takes ~5 min)")
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "hack/k8s/build.sh", "kubelet")
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			return "", fmt.Sprintf("building the kubelet failed (hack/k8s/build.sh kubelet: %v): %s", err, lastLines(errb.String(), 4))
		}
		bin = filepath.Join(strings.TrimSpace(lastLines(out.String(), 1)), "kubelet")
	}
	if fi, err := os.Stat(bin); err != nil || fi.Mode()&0o111 == 0 {
		return "", fmt.Sprintf("no kubelet binary at %s (%v)", bin, err)
	}
	if err := pauseImage(filepath.Join(dir, "pause.tar")); err != nil {
		return "", "the pause image: " + err.Error()
	}
	return bin, ""
}

// pauseImage builds hack/pause statically and writes it as a one-layer
// docker-archive tagged peerPauseRef, its entrypoint /usr/local/bin/pause.
func pauseImage(out string) error {
	root, err := os.MkdirTemp(filepath.Dir(out), "pause-root-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	for _, d := range []string{"usr/local/bin", "etc", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", filepath.Join(root, "usr/local/bin/pause"), "./hack/pause")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./hack/pause: %v: %s", err, lastLines(string(b), 4))
	}
	return imagebuild.WriteDirArchive(out, root, peerPauseRef, imagebuild.Config{Entrypoint: []string{"/usr/local/bin/pause"}})
}
