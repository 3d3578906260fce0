package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/minikubelet/minikubelet/internal/api"
)

// serveConfig runs an API server on a socket of its own that tells rootDir
// as the daemon's root dir.
func serveConfig(t *testing.T, rootDir string, pods ...v1.Pod) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "mkl.sock")
	l, err := api.ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	store := api.NewStore(10)
	for _, p := range pods {
		store.SetPod(p)
	}
	srv := api.NewServer(store, nil, nil)
	srv.SetConfig(api.DaemonConfig{RootDir: rootDir, LogDir: filepath.Join(rootDir, "logs")})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	t.Cleanup(func() { cancel(); <-done })
	return sock
}

func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

// image commands learn the root dir from the daemon on --socket, and the
// read-only ones never create a store.
func TestImageCommandsAskTheDaemonAndCreateNothing(t *testing.T) {
	root := filepath.Join(t.TempDir(), "root")
	if err := os.MkdirAll(root, 0o700); err != nil {
		t.Fatal(err)
	}
	sock := serveConfig(t, root)
	out, err := runCLI(t, "image", "ls", "--socket", sock)
	if err != nil || !strings.HasPrefix(out, "REF") {
		t.Fatalf("image ls --socket: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(root, "images")); !os.IsNotExist(err) {
		t.Errorf("image ls created the store in the daemon's root dir (%v)", err)
	}
	if _, err := runCLI(t, "image", "inspect", "busybox", "--socket", sock); err == nil || !strings.Contains(err.Error(), filepath.Join(root, "images")) {
		t.Errorf("image inspect on no store: %v, want not found naming %s", err, filepath.Join(root, "images"))
	}
	for _, args := range [][]string{{"image", "ls"}, {"image", "inspect", "x"}, {"image", "prune"}, {"image", "rm", "x"}} {
		nowhere := filepath.Join(t.TempDir(), "none")
		runCLI(t, append(args, "--root-dir", nowhere)...)
		if _, err := os.Stat(nowhere); !os.IsNotExist(err) {
			t.Errorf("%v created %s", args, nowhere)
		}
	}
	// A --socket that does not answer is an error naming it, not a silent default.
	dead := filepath.Join(t.TempDir(), "dead.sock")
	if _, err := runCLI(t, "image", "ls", "--socket", dead); err == nil || !strings.Contains(err.Error(), dead) {
		t.Errorf("image ls with a dead --socket: %v", err)
	}
	if out, err := runCLI(t, "image", "prune", "--socket", sock); err != nil || !strings.Contains(out, "nothing to prune") {
		t.Errorf("prune on no store: %v %s", err, out)
	}
}

func TestVersion(t *testing.T) {
	out, err := runCLI(t, "version")
	if err != nil || !strings.Contains(out, "Kubernetes:  v1.37.2") || !strings.Contains(out, "Go version:  go") || !strings.Contains(out, "Commit:") {
		t.Errorf("version: %v\n%s", err, out)
	}
	out, err = runCLI(t, "--version")
	if err != nil || !strings.HasPrefix(out, "minikubelet ") || !strings.Contains(out, "follows Kubernetes v1.37.2") {
		t.Errorf("--version: %v\n%s", err, out)
	}
	// Invoked as kubelet, --version answers as the kubelet (kubeadm parses it).
	for _, argv := range [][]string{{"/usr/bin/kubelet", "--version"}, {"kubelet", "--version=true"}} {
		var b bytes.Buffer
		if !kubeletVersion(argv, &b) || b.String() != "Kubernetes v1.37.2\n" {
			t.Errorf("%v → %q", argv, b.String())
		}
	}
	var b bytes.Buffer
	if kubeletVersion([]string{"minikubelet", "--version"}, &b) || kubeletVersion([]string{"kubelet", "run"}, &b) {
		t.Errorf("kubeletVersion answered for something else")
	}
}

// Completion scripts exist for the shells cobra knows, and pod names and
// fixed flag values complete (cobra's __complete protocol, what the
// scripts call).
func TestCompletion(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish"} {
		out, err := runCLI(t, "completion", sh)
		if err != nil || !strings.Contains(out, "minikubelet") {
			t.Errorf("completion %s: %v", sh, err)
		}
	}
	out, err := runCLI(t, "__complete", "get", "pods", "-o", "")
	if err != nil || !strings.Contains(out, "jsonpath=") || !strings.Contains(out, "custom-columns=") {
		t.Errorf("-o completion: %v\n%s", err, out)
	}
	out, _ = runCLI(t, "__complete", "validate", "--cgroup-driver", "")
	if !strings.Contains(out, "cgroupfs") {
		t.Errorf("--cgroup-driver completion:\n%s", out)
	}
	out, _ = runCLI(t, "__complete", "get", "")
	if !strings.HasPrefix(out, "pods\n") {
		t.Errorf("get completion:\n%s", out)
	}
	pod := v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-node1", Namespace: "default"},
		Spec: v1.PodSpec{NodeName: "node1", Containers: []v1.Container{{Name: "app"}, {Name: "side"}}}}
	sock := serveConfig(t, t.TempDir(), pod)
	out, _ = runCLI(t, "__complete", "logs", "--socket", sock, "")
	if !strings.HasPrefix(out, "web\nweb-node1\n") {
		t.Errorf("pod name completion:\n%s", out)
	}
	out, _ = runCLI(t, "__complete", "exec", "web", "--socket", sock, "-c", "")
	if !strings.HasPrefix(out, "app\nside\n") {
		t.Errorf("container completion:\n%s", out)
	}
}
