package daemon

import (
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/minikubelet/minikubelet/manifests"
)

// A file that turned invalid keeps its last good pod with the error (no
// path prefix: the plan's event names the file); a file that never made a
// pod is a FileError only; config.seen and the QoS class are carried.
func TestDesiredFromSnapshot(t *testing.T) {
	seen := time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC)
	good := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "a-node1", Namespace: "default", UID: "u1",
		Annotations: map[string]string{manifests.ConfigSeenAnnotation: seen.Format(time.RFC3339Nano)}},
		Spec: v1.PodSpec{Containers: []v1.Container{{Name: "c", Image: "i", Resources: v1.ResourceRequirements{
			Limits: v1.ResourceList{v1.ResourceCPU: resource.MustParse("1"), v1.ResourceMemory: resource.MustParse("64Mi")}}}}}}
	stale := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "b-node1", Namespace: "default", UID: "u2"},
		Spec: v1.PodSpec{Containers: []v1.Container{{Name: "c", Image: "i"}}}}
	snap := manifests.Snapshot{Synced: true,
		Pods: []manifests.DesiredPod{{Pod: good, File: "/m/a.yaml"}, {Pod: stale, File: "/m/b.yaml", Stale: true}},
		Errors: []*manifests.FileError{
			{Path: "/m/b.yaml", Errs: field.ErrorList{field.Required(field.NewPath("spec", "containers"), "")}},
			{Path: "/m/c.yaml", Errs: field.ErrorList{field.Invalid(field.NewPath("kind"), "Deployment", "not a Pod")}},
		}}
	d := desiredFrom(snap)
	if len(d.Pods) != 2 {
		t.Fatalf("pods: %v", d.Pods)
	}
	a := d.Pods["u1"]
	if a.Error != "" || !a.SeenAt.Equal(seen) || a.QOSClass != v1.PodQOSGuaranteed || a.Source != "/m/a.yaml" {
		t.Fatalf("good pod: %+v", a)
	}
	b := d.Pods["u2"]
	if b.Error == "" || b.Error[0] == '/' || b.QOSClass != v1.PodQOSBestEffort {
		t.Fatalf("stale pod: error %q qos %s", b.Error, b.QOSClass)
	}
	if _, ok := d.FileErrors["/m/b.yaml"]; ok {
		t.Fatalf("a stale pod's error is also a file error: %v", d.FileErrors)
	}
	if msg := d.FileErrors["/m/c.yaml"]; msg == "" || msg[0] == '/' {
		t.Fatalf("file error of c.yaml: %q", msg)
	}
}
