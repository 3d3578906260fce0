package runtime

import (
	"errors"
	"log/slog"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestAppArmorProfileSelection(t *testing.T) {
	str := func(s string) *string { return &s }
	loaded := func(name string) (bool, error) { return name == "k8s-deny-write", nil }
	pod := func(podProf *v1.AppArmorProfile, ctrProf *v1.AppArmorProfile, annotation string) (*v1.Pod, *v1.Container) {
		p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Annotations: map[string]string{}}}
		if podProf != nil {
			p.Spec.SecurityContext = &v1.PodSecurityContext{AppArmorProfile: podProf}
		}
		if annotation != "" {
			p.Annotations[v1.DeprecatedAppArmorBetaContainerAnnotationKeyPrefix+"c"] = annotation
		}
		c := v1.Container{Name: "c"}
		if ctrProf != nil {
			c.SecurityContext = &v1.SecurityContext{AppArmorProfile: ctrProf}
		}
		p.Spec.Containers = []v1.Container{c}
		return p, &p.Spec.Containers[0]
	}
	rd := &v1.AppArmorProfile{Type: v1.AppArmorProfileTypeRuntimeDefault}
	un := &v1.AppArmorProfile{Type: v1.AppArmorProfileTypeUnconfined}
	lh := &v1.AppArmorProfile{Type: v1.AppArmorProfileTypeLocalhost, LocalhostProfile: str("k8s-deny-write")}
	missing := &v1.AppArmorProfile{Type: v1.AppArmorProfileTypeLocalhost, LocalhostProfile: str("nope")}
	for _, c := range []struct {
		name             string
		podProf, ctrProf *v1.AppArmorProfile
		annotation       string
		privileged, on   bool
		want             string
		wantDefault      bool
		wantErr          string
	}{
		{name: "nothing said: containerd's default", on: true, want: AppArmorDefaultProfile, wantDefault: true},
		{name: "privileged stays unconfined", on: true, privileged: true},
		{name: "explicit RuntimeDefault, privileged", ctrProf: rd, on: true, privileged: true},
		{name: "pod Unconfined", podProf: un, on: true},
		{name: "container wins over pod", podProf: un, ctrProf: rd, on: true, want: AppArmorDefaultProfile, wantDefault: true},
		{name: "annotation wins over the pod field", podProf: rd, annotation: "unconfined", on: true},
		{name: "container field wins over the annotation", ctrProf: un, annotation: "runtime/default", on: true},
		{name: "annotation localhost", annotation: "localhost/k8s-deny-write", on: true, want: "k8s-deny-write"},
		{name: "annotation runtime/default", annotation: "runtime/default", on: true, want: AppArmorDefaultProfile, wantDefault: true},
		{name: "Localhost loaded", ctrProf: lh, on: true, want: "k8s-deny-write"},
		{name: "Localhost privileged is still applied", ctrProf: lh, on: true, privileged: true, want: "k8s-deny-write"},
		{name: "Localhost not loaded", ctrProf: missing, on: true, wantErr: "apparmor profile not found nope"},
		{name: "off: nothing said runs unconfined", on: false},
		{name: "off: Unconfined is fine", podProf: un, on: false},
		{name: "off: RuntimeDefault is refused", ctrProf: rd, on: false, wantErr: "Cannot enforce AppArmor: AppArmor is not enabled on the host"},
		{name: "off: a localhost annotation is refused", annotation: "localhost/x", on: false, wantErr: "not enabled"},
	} {
		p, ctr := pod(c.podProf, c.ctrProf, c.annotation)
		got, isDefault, err := appArmorProfile(p, ctr, c.privileged, c.on, loaded)
		switch {
		case c.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%s: err %v, want %q", c.name, err, c.wantErr)
			}
		case err != nil || got != c.want || isDefault != c.wantDefault:
			t.Errorf("%s: %q default=%v err=%v, want %q default=%v", c.name, got, isDefault, err, c.want, c.wantDefault)
		}
	}
}

// The default profile is loaded once, through apparmor_parser; without the
// parser the container fails as with containerd, and a profile already in
// the kernel needs no parser.
func TestAppArmorDefaultProfileLoading(t *testing.T) {
	saved := appArmorHost
	defer func() { appArmorHost = saved }()
	installs := 0
	inKernel := false
	tool := false
	appArmorHost.loaded = func(string) (bool, error) { return inKernel, nil }
	appArmorHost.install = func(name string) error {
		if name != AppArmorDefaultProfile {
			t.Errorf("installed %q", name)
		}
		installs++
		return nil
	}
	appArmorHost.haveTool = func() bool { return tool }
	var a appArmorState
	if err := a.ensureDefault(); err == nil || !strings.Contains(err.Error(), "apparmor_parser is not installed") {
		t.Errorf("without the parser: %v", err)
	}
	tool = true
	for i := 0; i < 3; i++ {
		if err := a.ensureDefault(); err != nil {
			t.Fatal(err)
		}
	}
	if installs != 1 {
		t.Errorf("installed %d times, want 1", installs)
	}
	var b appArmorState
	tool, inKernel = false, true
	if err := b.ensureDefault(); err != nil || installs != 1 {
		t.Errorf("a profile already loaded needs nothing: %v (installs %d)", err, installs)
	}
	appArmorHost.install = func(string) error { return errors.New("parser said no") }
	var c appArmorState
	tool, inKernel = true, false
	if err := c.ensureDefault(); err == nil || !strings.Contains(err.Error(), "parser said no") {
		t.Errorf("a failed load fails: %v", err)
	}
}

// Where AppArmor is off the runtime says so once.
func TestAppArmorAbsentSaidOnce(t *testing.T) {
	saved := appArmorHost
	defer func() { appArmorHost = saved }()
	appArmorHost.enabled = func() bool { return false }
	var logs strings.Builder
	log := slog.New(slog.NewTextHandler(&logs, nil))
	var a appArmorState
	for i := 0; i < 3; i++ {
		if a.hostEnabled(log) {
			t.Fatal("enabled")
		}
	}
	if n := strings.Count(logs.String(), "AppArmor is not enabled on this host"); n != 1 {
		t.Errorf("said %d times:\n%s", n, logs.String())
	}
}
