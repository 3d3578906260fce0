package images

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	corev1 "k8s.io/api/core/v1"
)

func TestResolveProcess(t *testing.T) {
	img := ImageConfig{Entrypoint: []string{"/ep"}, Cmd: []string{"c1", "c2"}, Env: []string{"PATH=/bin", "A=img", "B=img"}, WorkingDir: "/w", User: "nobody"}
	uid, gid := int64(1000), int64(2000)
	cases := []struct {
		name    string
		cfg     ImageConfig
		c       corev1.Container
		argv    []string
		env     []string
		wd, usr string
		err     string
	}{
		{name: "image defaults", cfg: img, c: corev1.Container{Name: "x"},
			argv: []string{"/ep", "c1", "c2"}, env: img.Env, wd: "/w", usr: "nobody"},
		{name: "command drops Cmd", cfg: img, c: corev1.Container{Command: []string{"/bin/sh"}},
			argv: []string{"/bin/sh"}, env: img.Env, wd: "/w", usr: "nobody"},
		{name: "command and args", cfg: img, c: corev1.Container{Command: []string{"sh"}, Args: []string{"-c", "x"}},
			argv: []string{"sh", "-c", "x"}, env: img.Env, wd: "/w", usr: "nobody"},
		{name: "args replace Cmd", cfg: img, c: corev1.Container{Args: []string{"a"}},
			argv: []string{"/ep", "a"}, env: img.Env, wd: "/w", usr: "nobody"},
		{name: "container env wins in place, new appended, valueFrom left to caller", cfg: img,
			c: corev1.Container{WorkingDir: "/cw", Env: []corev1.EnvVar{{Name: "B", Value: "ctr"}, {Name: "C", Value: "new"},
				{Name: "F", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}}},
			argv: []string{"/ep", "c1", "c2"}, env: []string{"PATH=/bin", "A=img", "B=ctr", "C=new"}, wd: "/cw", usr: "nobody"},
		{name: "runAsUser beats image User", cfg: img,
			c:    corev1.Container{SecurityContext: &corev1.SecurityContext{RunAsUser: &uid, RunAsGroup: &gid}},
			argv: []string{"/ep", "c1", "c2"}, env: img.Env, wd: "/w", usr: "1000:2000"},
		{name: "no workdir anywhere", cfg: ImageConfig{Cmd: []string{"x"}}, c: corev1.Container{},
			argv: []string{"x"}, env: []string{}, wd: "/"},
		{name: "nothing to run", cfg: ImageConfig{Env: []string{"A=1"}}, c: corev1.Container{Name: "empty"}, err: `container "empty": no command`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			argv, env, wd, usr, err := ResolveProcess(tc.cfg, &tc.c)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(argv, tc.argv) || !reflect.DeepEqual(env, tc.env) || wd != tc.wd || usr != tc.usr {
				t.Fatalf("got argv=%q env=%q wd=%q user=%q; want argv=%q env=%q wd=%q user=%q", argv, env, wd, usr, tc.argv, tc.env, tc.wd, tc.usr)
			}
		})
	}
	// The image config must not be modified through the returned slices.
	argv, env, _, _, _ := ResolveProcess(img, &corev1.Container{})
	argv[0], env[0] = "changed", "changed"
	if img.Entrypoint[0] != "/ep" || img.Env[0] != "PATH=/bin" {
		t.Fatal("ResolveProcess aliased the image config")
	}
}

func TestBackoffDoublesToCapAndResets(t *testing.T) {
	now := time.Unix(1000, 0)
	b := NewBackoff(func() time.Time { return now })
	if w, _ := b.Blocked("img"); w != 0 {
		t.Fatalf("fresh key blocked for %v", w)
	}
	boom := errors.New("manifest unknown")
	want := []time.Duration{10, 20, 40, 80, 160, 300, 300}
	for i, w := range want {
		got := b.Failure("img", boom)
		if got != w*time.Second {
			t.Fatalf("failure %d: delay %v, want %v", i+1, got, w*time.Second)
		}
		left, last := b.Blocked("img")
		if left != got || last != boom {
			t.Fatalf("failure %d: Blocked = %v, %v", i+1, left, last)
		}
		now = now.Add(got - time.Second)
		if left, _ := b.Blocked("img"); left != time.Second {
			t.Fatalf("failure %d: 1s before the end, left = %v", i+1, left)
		}
		now = now.Add(time.Second)
		if left, _ := b.Blocked("img"); left != 0 {
			t.Fatalf("failure %d: after the delay still blocked %v", i+1, left)
		}
	}
	if w, _ := b.Blocked("other"); w != 0 {
		t.Fatal("keys are independent")
	}
	b.Success("img")
	if got := b.Failure("img", boom); got != 10*time.Second {
		t.Fatalf("after success: %v, want 10s", got)
	}
	// A quiet spell of 2×max since the last failure starts over too.
	b.Failure("img", boom)
	now = now.Add(601 * time.Second)
	if got := b.Failure("img", boom); got != 10*time.Second {
		t.Fatalf("after 601s quiet: %v, want 10s", got)
	}
}

func TestParseReferenceNormalises(t *testing.T) {
	d := "sha256:" + strings.Repeat("ab", 32)
	for in, want := range map[string]string{
		"busybox":                         "docker.io/library/busybox:latest",
		"busybox:1.36":                    "docker.io/library/busybox:1.36",
		"library/busybox":                 "docker.io/library/busybox:latest",
		"docker.io/library/busybox":       "docker.io/library/busybox:latest",
		"index.docker.io/library/busybox": "docker.io/library/busybox:latest",
		"user/app:v1":                     "docker.io/user/app:v1",
		"registry.k8s.io/pause:3.10":      "registry.k8s.io/pause:3.10",
		"localhost/minikubelet-demo":      "localhost/minikubelet-demo:latest",
		"127.0.0.1:5000/a/b:c":            "127.0.0.1:5000/a/b:c",
		"busybox@" + d:                    "docker.io/library/busybox@" + d,
		"busybox:1.36@" + d:               "docker.io/library/busybox@" + d,
	} {
		r, err := ParseReference(in)
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if r.String() != want {
			t.Errorf("%s → %s, want %s", in, r, want)
		}
	}
	for _, bad := range []string{"", "UPPER/case", "a b", "busybox@sha256:short"} {
		if _, err := ParseReference(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestDefaultPullPolicy(t *testing.T) {
	d := "@sha256:" + strings.Repeat("0", 64)
	for ref, want := range map[string]corev1.PullPolicy{
		"busybox": corev1.PullAlways, "busybox:latest": corev1.PullAlways, "busybox:1.36": corev1.PullIfNotPresent,
		"busybox" + d: corev1.PullIfNotPresent, "busybox:latest" + d: corev1.PullIfNotPresent,
	} {
		if got := DefaultPullPolicy(ref); got != want {
			t.Errorf("%s: %s, want %s", ref, got, want)
		}
	}
}

func TestPickPlatform(t *testing.T) {
	mk := func(os, arch, variant string) v1.Descriptor {
		return v1.Descriptor{MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("0", 62) + os[:1] + arch[:1]},
			Platform: &v1.Platform{OS: os, Architecture: arch, Variant: variant}}
	}
	im := &v1.IndexManifest{Manifests: []v1.Descriptor{
		mk("linux", "arm", "v7"), mk("linux", "arm64", ""), mk("linux", "amd64", ""), mk("windows", "amd64", ""), mk("linux", "s390x", ""),
	}}
	for _, tc := range []struct {
		want v1.Platform
		arch string
		ok   bool
	}{
		{v1.Platform{OS: "linux", Architecture: "amd64"}, "amd64", true},
		{v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, "arm64", true},
		{v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}, "arm", true},
		{v1.Platform{OS: "linux", Architecture: "riscv64"}, "", false},
	} {
		d, err := pickPlatform(im, tc.want)
		if tc.ok != (err == nil) {
			t.Fatalf("%v: err %v", tc.want, err)
		}
		if err == nil && (d.Platform.Architecture != tc.arch || d.Platform.OS != "linux") {
			t.Fatalf("%v: picked %v", tc.want, d.Platform)
		}
		if err != nil && !strings.Contains(err.Error(), "linux/amd64") {
			t.Fatalf("error should list what the index has: %v", err)
		}
	}
	// An exact arm64 variant wins over a variant-less entry.
	v8 := mk("linux", "arm64", "v8")
	v8.Digest.Hex = strings.Repeat("8", 64)
	im.Manifests = append(im.Manifests, v8)
	d, _ := pickPlatform(im, v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"})
	if d.Digest.Hex != v8.Digest.Hex {
		t.Fatalf("arm64/v8 not preferred: %v", d.Platform)
	}
}

func TestCleanEntryName(t *testing.T) {
	for in, want := range map[string]string{
		"a/b": "a/b", "./a/b/": "a/b", "../../etc/passwd": "etc/passwd", "/abs/x": "abs/x", "a/../../x": "x", "./": "", "..": "",
	} {
		if got := cleanEntryName(in); got != want {
			t.Errorf("%q → %q, want %q", in, got, want)
		}
	}
}
