package reconciler

import (
	"testing"

	v1 "k8s.io/api/core/v1"
)

// A manifest with a fixed metadata.uid that is edited keeps its UID: the
// changed containers are restarted (kill, then start at once, whatever the
// restart policy), the unchanged ones keep running.
func TestEditWithFixedUIDRestartsChangedContainers(t *testing.T) {
	pod := mkPod("u1", "web", "app", "side")
	pod.Spec.RestartPolicy = v1.RestartPolicyNever
	s := newStartedSim(t, pod, "img-app:1", "img-side:1", "img-app:2")
	app, side := s.running("u1", "app").ID, s.running("u1", "side").ID
	eq(t, "steady", s.step(), nil)

	edited := pod.DeepCopy()
	edited.Spec.Containers[0].Command = []string{"serve", "--new"}
	s.want(edited)
	eq(t, "changed container replaced", s.step(), []string{"kill u1/app grace=30s (DefinitionChanged)", "start u1/app #1"})
	if s.running("u1", "side").ID != side {
		t.Fatal("the unchanged container was touched")
	}
	if got := s.running("u1", "app"); got == nil || got.ID == app {
		t.Fatalf("app not restarted: %+v", got)
	}
	if !s.hasEvent("Killing", "Container app definition changed, will be restarted") {
		t.Errorf("events %+v", s.events)
	}
	eq(t, "steady again", s.step(), nil)
	if st := s.status("u1"); st.Phase != v1.PodRunning {
		t.Errorf("phase %s", st.Phase)
	}

	// A new image is fetched before the running container is stopped: the
	// pull comes first in the pod's chain, which stops at a failure.
	edited = edited.DeepCopy()
	edited.Spec.Containers[0].Image = "img-app:3"
	s.want(edited)
	var chain []string
	for _, a := range s.plan().Pods[0].Actions {
		chain = append(chain, describe(a))
	}
	eq(t, "pull, then replace", chain, []string{"pull img-app:3", "kill u1/app grace=30s (DefinitionChanged)", "start u1/app #2"})
	s.step()
	if s.running("u1", "side").ID != side {
		t.Fatal("the unchanged container was touched")
	}
}

// The hash covers what a container runs with: its spec and the volumes it
// mounts; not the other containers, nor volumes it does not mount.
func TestContainerHash(t *testing.T) {
	pod := mkPod("u1", "web", "app", "side")
	pod.Spec.Volumes = []v1.Volume{{Name: "data", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}},
		{Name: "other", VolumeSource: v1.VolumeSource{HostPath: &v1.HostPathVolumeSource{Path: "/a"}}}}
	pod.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{{Name: "data", MountPath: "/data"}}
	h := containerHash(pod, &pod.Spec.Containers[0])
	if h == "" || h != containerHash(pod.DeepCopy(), &pod.DeepCopy().Spec.Containers[0]) {
		t.Fatal("the hash is stable")
	}
	p2 := pod.DeepCopy()
	p2.Spec.Containers[1].Image = "x"
	p2.Spec.Volumes[1].HostPath.Path = "/b"
	if containerHash(p2, &p2.Spec.Containers[0]) != h {
		t.Error("another container's or an unmounted volume's change must not count")
	}
	p2 = p2.DeepCopy() // desired pods are immutable: an edit is a new object
	p2.Spec.Volumes[0].EmptyDir.Medium = v1.StorageMediumMemory
	if containerHash(p2, &p2.Spec.Containers[0]) == h {
		t.Error("a mounted volume's change counts")
	}
	p3 := pod.DeepCopy()
	p3.Spec.Containers[0].Env = []v1.EnvVar{{Name: "A", Value: "1"}}
	if containerHash(p3, &p3.Spec.Containers[0]) == h {
		t.Error("an env change counts")
	}
}
