package daemon

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/minikubelet/minikubelet/manifests"
)

// A disk emptyDir over its sizeLimit is found with the kubelet's message;
// the pod of a manifest is a static, critical pod, which the kubelet's
// eviction manager refuses to evict: it logs so (once) and the pod runs on.
func TestEmptyDirSizeLimit(t *testing.T) {
	limit := resource.MustParse("1Mi")
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-node1", Namespace: "default", UID: "u1",
		Annotations: map[string]string{manifests.ConfigSourceAnnotation: manifests.ConfigSourceFile}},
		Spec: v1.PodSpec{Volumes: []v1.Volume{
			{Name: "mem", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{Medium: v1.StorageMediumMemory, SizeLimit: &limit}}},
			{Name: "nolimit", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}},
			{Name: "data", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{SizeLimit: &limit}}},
		}}}
	used := map[string]int64{"mem": 5 << 20, "nolimit": 5 << 20, "data": 1 << 20}
	usage := func(uid types.UID, name string) (int64, error) { return used[name], nil }
	if vol, _ := emptyDirOverLimit(pod, func(n string) (int64, error) { return usage("u1", n) }); vol != "" {
		t.Fatalf("at the limit is not over it (and memory volumes are bounded by tmpfs): %q", vol)
	}
	used["data"] = 1<<20 + 1
	vol, msg := emptyDirOverLimit(pod, func(n string) (int64, error) { return usage("u1", n) })
	if vol != "data" || msg != `Usage of EmptyDir volume "data" exceeds the limit "1Mi". ` {
		t.Fatalf("%q %q", vol, msg)
	}

	if !isCriticalPod(pod) {
		t.Fatal("a manifest's pod is static, hence critical")
	}
	api := pod.DeepCopy()
	api.Annotations[manifests.ConfigSourceAnnotation] = "api"
	if isCriticalPod(api) {
		t.Error("an API pod is not critical")
	}
	prio := int32(2000001000)
	api.Spec.Priority = &prio
	if !isCriticalPod(api) {
		t.Error("system-node-critical priority is critical")
	}

	var logs bytes.Buffer
	e := &emptyDirLimits{usage: usage, log: slog.New(slog.NewTextHandler(&logs, nil)), over: map[types.UID]string{}}
	snap := []manifests.DesiredPod{{Pod: pod}}
	e.check(snap)
	e.check(snap)
	if n := strings.Count(logs.String(), "Eviction manager: cannot evict a critical pod"); n != 1 {
		t.Errorf("logged %d times, want once per crossing:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), `Usage of EmptyDir volume \"data\" exceeds the limit \"1Mi\".`) {
		t.Errorf("log lacks the kubelet's message:\n%s", logs.String())
	}
	used["data"] = 0
	e.check(snap)
	used["data"] = 2 << 20
	e.check(snap)
	if n := strings.Count(logs.String(), "cannot evict"); n != 2 {
		t.Errorf("a new crossing is logged again: %d", n)
	}
}
