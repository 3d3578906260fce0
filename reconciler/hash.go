package reconciler

// hash.go: the container spec hash that detects an edited manifest under a
// fixed metadata.uid (the pod keeps its UID, so it is not replaced as a
// whole; its changed containers are).

import (
	"encoding/json"
	"hash/fnv"
	"strconv"
	"sync"

	v1 "k8s.io/api/core/v1"
)

// containerHash stands for everything a container runs with: its whole
// spec and the definitions of the volumes it mounts. The kubelet records
// kubecontainer.HashContainer with each container and restarts a running
// one whose hash no longer matches ("Container X definition changed").
// Since 1.31 that hash covers only name and image, because the API server
// lets nothing else of a running pod change; a static pod's file has no
// such guard, so this is the kubelet's earlier rule (the whole container),
// widened to the mounted volumes, which a file can change too.
func containerHash(pod *v1.Pod, c *v1.Container) string {
	hashMu.Lock()
	defer hashMu.Unlock()
	if h, ok := hashCache[c]; ok {
		return h
	}
	in := struct {
		Container *v1.Container `json:"container"`
		Volumes   []v1.Volume   `json:"volumes,omitempty"`
	}{Container: c}
	for _, m := range c.VolumeMounts {
		for i := range pod.Spec.Volumes {
			if pod.Spec.Volumes[i].Name == m.Name {
				in.Volumes = append(in.Volumes, pod.Spec.Volumes[i])
			}
		}
	}
	b, _ := json.Marshal(in) // a decoded pod always marshals
	f := fnv.New64a()
	f.Write(b)
	h := strconv.FormatUint(f.Sum64(), 16)
	if len(hashCache) >= maxHashCache {
		clear(hashCache)
	}
	hashCache[c] = h
	return h
}

// The plan asks for the hash of every running container on every round;
// desired pods are immutable snapshots whose containers keep their
// addresses until the file changes, so the hash is memoised by address.
// Holding the pointer keeps the address from being reused; the bound keeps
// edited-away specs from piling up.
const maxHashCache = 8192

var (
	hashMu    sync.Mutex
	hashCache = map[*v1.Container]string{}
)

// definitionChanges replaces running app containers and sidecars whose
// instance was created from another spec, as the kubelet's
// computePodActions does: kill ("Container X definition changed, will be
// restarted") and start again at once, whatever the restart policy (the
// kubelet's back-off is keyed by the hash, so a new definition starts
// without one). The new image is fetched first, so a container is not
// stopped for an image that is not there. Regular init containers are not
// rerun (the kubelet does not either).
func (p *planner) definitionChanges(pc *podCtx, sandboxAttempt uint32) {
	for _, list := range [2][]ctr{pc.inits, pc.apps} {
		for i := range list {
			c := &list[i]
			if c.init && !c.sidecar || c.cur == nil || c.cur.State != ContainerRunning || c.cur.Hash == "" ||
				c.cur.Hash == containerHash(pc.pod, c.spec) {
				continue
			}
			if !p.ensureImage(pc, c) {
				continue
			}
			c.definitionChanged = true
			p.kill(pc, c, p.podGrace(pc.pod), ReasonDefinitionChanged, "Container "+c.spec.Name+" definition changed, will be restarted")
			p.start(pc, c, sandboxAttempt)
		}
	}
}
