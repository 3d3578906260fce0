// Command mkimage builds a one-layer image from a folder and writes it as a
// docker-archive or oci-archive tarball (gzip/zstd by the file name), for
// `make run`'s demo image, tests and benchmarks. No daemon, no registry.
//
//	go run ./hack/mkimage --dir ROOTFS --ref localhost/demo:latest --out bin/demo.tar \
//	    [--format docker|oci] [--entrypoint /bin/sh]... [--cmd ARG]... [--env K=V]... \
//	    [--workdir DIR] [--user USER] [--expose 80/tcp]... [--stop-signal SIGTERM]
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/minikubelet/minikubelet/runtime/images/imagebuild"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	var (
		dir, ref, out, format, workdir, user, stop string
		entrypoint, cmd, env, expose, refs         list
	)
	flag.StringVar(&dir, "dir", "", "folder that becomes the image's root filesystem (required)")
	flag.StringVar(&ref, "ref", "", "image reference, e.g. localhost/minikubelet-demo:latest (required)")
	flag.Var(&refs, "also-ref", "another reference for the same image (repeatable)")
	flag.StringVar(&out, "out", "", "output tarball; .gz/.tgz → gzip, .zst → zstd (required)")
	flag.StringVar(&format, "format", "docker", "docker (docker save) or oci (OCI image layout archive)")
	flag.Var(&entrypoint, "entrypoint", "Entrypoint element (repeatable)")
	flag.Var(&cmd, "cmd", "Cmd element (repeatable)")
	flag.Var(&env, "env", "KEY=VALUE (repeatable)")
	flag.Var(&expose, "expose", "exposed port, e.g. 80/tcp (repeatable)")
	flag.StringVar(&workdir, "workdir", "", "WorkingDir")
	flag.StringVar(&user, "user", "", "User")
	flag.StringVar(&stop, "stop-signal", "", "StopSignal")
	flag.Parse()
	if dir == "" || ref == "" || out == "" || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := build(dir, append([]string{ref}, refs...), out, format, imagebuild.Config{
		Entrypoint: entrypoint, Cmd: cmd, Env: env, WorkingDir: workdir, User: user, ExposedPorts: expose, StopSignal: stop, Created: time.Now().UTC().Truncate(time.Second),
	}); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

func build(dir string, refs []string, out, format string, cfg imagebuild.Config) error {
	layer, err := imagebuild.LayerFromDir(dir)
	if err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	img, err := imagebuild.Image([]v1.Layer{layer}, cfg)
	if err != nil {
		return err
	}
	c := imagebuild.CompressionFor(out)
	switch format {
	case "docker", "docker-archive":
		m := map[string]v1.Image{}
		for _, r := range refs {
			m[r] = img
		}
		err = imagebuild.WriteDockerArchive(out, m, c)
	case "oci", "oci-archive":
		m := map[string]any{}
		for _, r := range refs {
			m[r] = img
		}
		err = imagebuild.WriteOCIArchive(out, m, c)
	default:
		return fmt.Errorf("--format %q: want docker or oci", format)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", out, err)
	}
	id, _ := img.ConfigName()
	fmt.Printf("%s %s %s\n", out, strings.Join(refs, ","), id)
	return nil
}
