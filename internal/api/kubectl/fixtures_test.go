package kubectl

import (
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func ago(d time.Duration) metav1.Time { return metav1.NewTime(now.Add(-d)) }

func ptr[T any](v T) *T { return &v }

func runningPod() v1.Pod {
	return v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-node1", Namespace: "default", UID: "0a1b2c3d-uid",
			CreationTimestamp: ago(5 * time.Minute),
			Labels:            map[string]string{"app": "web", "tier": "front"},
			Annotations:       map[string]string{"kubernetes.io/config.source": "file"}},
		Spec: v1.PodSpec{NodeName: "node1", Priority: ptr(int32(0)),
			Containers: []v1.Container{{
				Name: "app", Image: "busybox:1.36", Command: []string{"sh", "-c"}, Args: []string{"httpd -f"},
				Ports: []v1.ContainerPort{{ContainerPort: 80, HostPort: 8080}},
				Resources: v1.ResourceRequirements{
					Limits:   v1.ResourceList{v1.ResourceCPU: resource.MustParse("500m"), v1.ResourceMemory: resource.MustParse("128Mi")},
					Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("100m")},
				},
				Env:          []v1.EnvVar{{Name: "MODE", Value: "prod"}, {Name: "POD", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.name"}}}},
				VolumeMounts: []v1.VolumeMount{{Name: "data", MountPath: "/data"}, {Name: "conf", MountPath: "/etc/conf", ReadOnly: true}},
			}},
			Volumes: []v1.Volume{
				{Name: "data", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}},
				{Name: "conf", VolumeSource: v1.VolumeSource{HostPath: &v1.HostPathVolumeSource{Path: "/etc/web", Type: ptr(v1.HostPathDirectory)}}},
			},
			Tolerations: []v1.Toleration{{Operator: v1.TolerationOpExists, Effect: v1.TaintEffectNoExecute}},
		},
		Status: v1.PodStatus{
			Phase: v1.PodRunning, PodIP: "10.88.0.5", PodIPs: []v1.PodIP{{IP: "10.88.0.5"}}, HostIP: "192.168.1.10",
			QOSClass: v1.PodQOSBurstable, StartTime: ptr(ago(5 * time.Minute)),
			Conditions: []v1.PodCondition{
				{Type: v1.PodInitialized, Status: v1.ConditionTrue},
				{Type: v1.PodReady, Status: v1.ConditionTrue},
				{Type: v1.ContainersReady, Status: v1.ConditionTrue},
				{Type: v1.PodScheduled, Status: v1.ConditionTrue},
			},
			ContainerStatuses: []v1.ContainerStatus{{
				Name: "app", Ready: true, RestartCount: 3, Image: "busybox:1.36", ImageID: "sha256:abc", ContainerID: "minikubelet://c0ffee",
				State: v1.ContainerState{Running: &v1.ContainerStateRunning{StartedAt: ago(2 * time.Minute)}},
				LastTerminationState: v1.ContainerState{Terminated: &v1.ContainerStateTerminated{
					ExitCode: 137, Reason: "OOMKilled", StartedAt: ago(3 * time.Minute), FinishedAt: ago(2 * time.Minute)}},
			}},
		},
	}
}

func crashPod() v1.Pod {
	return v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "crash-node1", Namespace: "default", UID: "uid-crash", CreationTimestamp: ago(3 * time.Hour)},
		Spec:       v1.PodSpec{NodeName: "node1", Containers: []v1.Container{{Name: "c", Image: "busybox"}}},
		Status: v1.PodStatus{Phase: v1.PodRunning, QOSClass: v1.PodQOSBestEffort,
			ContainerStatuses: []v1.ContainerStatus{{
				Name: "c", RestartCount: 12,
				State: v1.ContainerState{Waiting: &v1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 5m0s restarting failed container=c"}},
				LastTerminationState: v1.ContainerState{Terminated: &v1.ContainerStateTerminated{
					ExitCode: 1, Reason: "Error", StartedAt: ago(61 * time.Second), FinishedAt: ago(60 * time.Second)}},
			}}},
	}
}

func initPod() v1.Pod {
	return v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "setup-node1", Namespace: "kube-system", UID: "uid-init", CreationTimestamp: ago(40 * time.Second)},
		Spec: v1.PodSpec{NodeName: "node1",
			InitContainers: []v1.Container{{Name: "init", Image: "busybox"}},
			Containers:     []v1.Container{{Name: "main", Image: "busybox"}}},
		Status: v1.PodStatus{Phase: v1.PodPending, QOSClass: v1.PodQOSBestEffort,
			InitContainerStatuses: []v1.ContainerStatus{{Name: "init", State: v1.ContainerState{Running: &v1.ContainerStateRunning{StartedAt: ago(10 * time.Second)}}}},
			ContainerStatuses:     []v1.ContainerStatus{{Name: "main", State: v1.ContainerState{Waiting: &v1.ContainerStateWaiting{Reason: "PodInitializing"}}}}},
	}
}
