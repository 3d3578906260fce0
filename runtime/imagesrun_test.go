package runtime

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/minikubelet/minikubelet/runtime/shim"
)

// specFor runs buildSpec for one container of pod on the given root (a
// directory shaped like an unpacked image) with an image config.
func specFor(t *testing.T, pod *v1.Pod, root string, img ImageConfig) (*shim.ContainerSpec, error) {
	t.Helper()
	base := t.TempDir()
	r := &Runtime{opt: Options{RootDir: base, LogDir: filepath.Join(base, "logs"), NodeName: "node1", ClusterDomain: "cluster.local"}}
	dir := filepath.Join(base, "ctr")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	cfg := ContainerConfig{Pod: pod, Container: &pod.Spec.Containers[0], Rootfs: Rootfs{Path: root}, Image: img}
	return r.buildSpec(&cfg, &sandboxMeta{Hostname: "h"}, "0123456789abcdef", dir)
}

func unitPod(c v1.Container) *v1.Pod {
	return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p-node1", Namespace: "default", UID: "11111111-2222-4333-8444-555555555555"},
		Spec: v1.PodSpec{Containers: []v1.Container{c}}}
}

// $(VAR) in command and args sees only the container's own env, as the
// kubelet expands them (issue 12, item 4): not the image's env, nor
// HOSTNAME or the default PATH the runtime adds.
func TestArgsExpandOnlyTheContainersOwnEnv(t *testing.T) {
	c := v1.Container{Name: "c",
		Command: []string{"/bin/run", "$(JAVA_HOME)", "$(HOSTNAME)", "$(PATH)", "$(MINE)", "$$(MINE)", "$(LATER)"},
		Args:    []string{"$(FROM_FIELD)", "$(MINE)$$"},
		Env: []v1.EnvVar{{Name: "MINE", Value: "mine"}, {Name: "FROM_FIELD", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
			{Name: "LATER", Value: "later"}, {Name: "MINE", Value: "mine2"}}}
	spec, err := specFor(t, unitPod(c), t.TempDir(), ImageConfig{Env: []string{"JAVA_HOME=/opt/java", "PATH=/img/bin"}})
	if err != nil {
		t.Fatal(err)
	}
	want := "/bin/run $(JAVA_HOME) $(HOSTNAME) $(PATH) mine2 $(MINE) later p-node1 mine2$"
	if got := strings.Join(spec.Args, " "); got != want {
		t.Errorf("argv = %q\nwant   %q", got, want)
	}
}

// A hostPath without a type whose path is missing is created as a 0755
// directory, as containerd does, not refused (issue 12, item 5).
func TestHostPathWithoutTypeIsCreated(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "not", "there")
	c := v1.Container{Name: "c", Command: []string{"/x"}, VolumeMounts: []v1.VolumeMount{{Name: "h", MountPath: "/data"}}}
	pod := unitPod(c)
	pod.Spec.Volumes = []v1.Volume{{Name: "h", VolumeSource: v1.VolumeSource{HostPath: &v1.HostPathVolumeSource{Path: missing}}}}
	spec, err := specFor(t, pod, t.TempDir(), ImageConfig{})
	if err != nil {
		t.Fatalf("hostPath without type on a missing path: %v", err)
	}
	st, err := os.Stat(missing)
	if err != nil || !st.IsDir() || st.Mode().Perm() != 0o755 {
		t.Fatalf("missing hostPath not created as a 0755 directory: %v %v", st, err)
	}
	found := false
	for _, m := range spec.Mounts {
		if m.Destination == "/data" && m.Source == missing && !m.File {
			found = true
		}
	}
	if !found {
		t.Errorf("no bind of %s on /data: %+v", missing, spec.Mounts)
	}
}
