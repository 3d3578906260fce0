package daemon

// emptydir.go: sizeLimit of disk-backed emptyDir volumes, as the kubelet's
// eviction manager checks it (emptyDirLimitEviction), and what it then
// does with a static pod.

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/minikubelet/minikubelet/manifests"
)

// emptyDirCheckEvery is the kubelet's eviction monitoring interval.
const emptyDirCheckEvery = 10 * time.Second

// Eviction words of the kubelet (pkg/kubelet/eviction).
const (
	evictionReason     = "Evicted"
	emptyDirMessageFmt = "Usage of EmptyDir volume %q exceeds the limit %q. "
	// systemCriticalPriority is scheduling.SystemCriticalPriority.
	systemCriticalPriority = 2000000000
)

// emptyDirOverLimit is the first disk-backed emptyDir of the pod whose
// usage exceeds its sizeLimit, with the kubelet's eviction message.
// Memory-backed ones are bounded by their tmpfs size instead (the kubelet
// skips them too).
func emptyDirOverLimit(pod *v1.Pod, usage func(name string) (int64, error)) (vol, msg string) {
	for i := range pod.Spec.Volumes {
		v := &pod.Spec.Volumes[i]
		ed := v.EmptyDir
		if ed == nil || ed.Medium == v1.StorageMediumMemory || ed.SizeLimit == nil || ed.SizeLimit.Sign() <= 0 {
			continue
		}
		used, err := usage(v.Name)
		if err != nil || used <= ed.SizeLimit.Value() {
			continue
		}
		return v.Name, fmt.Sprintf(emptyDirMessageFmt, v.Name, ed.SizeLimit.String())
	}
	return "", ""
}

// isCriticalPod is the kubelet's IsCriticalPod: static pods (a config
// source other than the API server), mirror pods and pods of system
// critical priority. The eviction manager never evicts them: "Static pods
// are not re-admitted after evictions" (kubernetes#40573).
func isCriticalPod(pod *v1.Pod) bool {
	if src, ok := pod.Annotations[manifests.ConfigSourceAnnotation]; ok && src != "api" {
		return true
	}
	if _, ok := pod.Annotations["kubernetes.io/config.mirror"]; ok {
		return true
	}
	return pod.Spec.Priority != nil && *pod.Spec.Priority >= systemCriticalPriority
}

// emptyDirLimits checks every pod's disk emptyDirs against their sizeLimit
// each emptyDirCheckEvery. Every pod of a manifest folder is a static pod,
// hence critical, and the kubelet's eviction manager refuses to evict it:
// it logs "Eviction manager: cannot evict a critical pod" and the pod runs
// on. minikubelet does the same (once per crossing of the limit, not every
// round), so a file's pod is never stopped by its own volume: bound what a
// pod writes with a medium: Memory emptyDir (its tmpfs has the size) or a
// filesystem of its own.
type emptyDirLimits struct {
	usage func(uid types.UID, name string) (int64, error)
	log   *slog.Logger
	over  map[types.UID]string // pods over a limit: the volume, logged once
}

func (e *emptyDirLimits) check(pods []manifests.DesiredPod) {
	live := map[types.UID]bool{}
	for _, dp := range pods {
		pod := dp.Pod
		live[pod.UID] = true
		vol, msg := emptyDirOverLimit(pod, func(name string) (int64, error) { return e.usage(pod.UID, name) })
		if vol == "" {
			delete(e.over, pod.UID)
			continue
		}
		if e.over[pod.UID] == vol {
			continue
		}
		e.over[pod.UID] = vol
		if isCriticalPod(pod) {
			e.log.Error("Eviction manager: cannot evict a critical pod", "pod", pod.Namespace+"/"+pod.Name,
				"reason", evictionReason, "message", msg)
			continue
		}
		// Only API pods are not critical, and minikubelet has none.
		e.log.Error("eviction is not implemented for a pod that is not static", "pod", pod.Namespace+"/"+pod.Name, "message", msg)
	}
	for uid := range e.over {
		if !live[uid] {
			delete(e.over, uid)
		}
	}
}

func (e *emptyDirLimits) run(ctx context.Context, snapshot func() manifests.Snapshot) {
	t := time.NewTicker(emptyDirCheckEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			e.check(snapshot().Pods)
		}
	}
}
