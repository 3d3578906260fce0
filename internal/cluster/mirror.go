package cluster

// mirror.go: one mirror pod per static pod, with the static pod's status
// (kubelet: pkg/kubelet/pod/mirror_client.go, pkg/kubelet/kubelet.go
// syncPod, pkg/kubelet/kubelet_pods.go HandlePodCleanups,
// pkg/kubelet/status/status_manager.go).

import (
	"context"
	"encoding/json"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
)

// The kubelet's annotations (k8s.io/kubernetes/pkg/kubelet/types/pod_update.go).
const (
	ConfigMirrorAnnotationKey = "kubernetes.io/config.mirror"
	ConfigHashAnnotationKey   = "kubernetes.io/config.hash"
	ConfigSourceAnnotationKey = "kubernetes.io/config.source"
	ConfigSeenAnnotationKey   = "kubernetes.io/config.seen"
	// ApiserverSource marks pods that came from the API server, which are
	// not static pods and get no mirror.
	ApiserverSource = "api"
)

// isStatic: a pod with a config source other than the API server
// (kubelet: pkg/kubelet/types/pod_update.go IsStaticPod).
func isStatic(p *v1.Pod) bool {
	s, ok := p.Annotations[ConfigSourceAnnotationKey]
	return ok && s != ApiserverSource
}

// isMirror: kubelet: pkg/kubelet/types/pod_update.go IsMirrorPod.
func isMirror(p *v1.Pod) bool {
	_, ok := p.Annotations[ConfigMirrorAnnotationKey]
	return ok
}

// mirrorSync keeps the mirror pods. Its state is bounded by the pods of the
// node: the informer's cache of pods bound to it and one record per mirror.
type mirrorSync struct {
	a      *Agent
	lister cache.Indexer
	// sent is, per mirror UID, the status last PATCHed and when.
	sent map[types.UID]sentStatus
	// failed is, per static pod key and hash, a create the API server refused
	// (logged once, tried again at each resync).
	failed map[string]string
	// created are mirror pods this node made that the informer has not
	// shown yet (after an outage its watch may take a back-off to resume).
	created map[string]*v1.Pod
}

type sentStatus struct {
	json string
	at   time.Time
}

// runMirrors watches the pods bound to this node (field selector
// spec.nodeName=<node>: the Node authorizer allows a node nothing else)
// and syncs on every change of either side and every podStatusResync.
func (a *Agent) runMirrors(ctx context.Context) {
	// kubelet: pkg/kubelet/config/apiserver.go NewSourceApiserver watches
	// pods with spec.nodeName=<node>.
	lw := cache.NewListWatchFromClient(a.o.Client.CoreV1().RESTClient(), "pods", v1.NamespaceAll,
		fields.OneTermEqualSelector("spec.nodeName", a.o.NodeName))
	inf := cache.NewSharedIndexInformer(lw, &v1.Pod{}, 0, cache.Indexers{})
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { a.wake() },
		UpdateFunc: func(any, any) { a.wake() },
		DeleteFunc: func(any) { a.wake() },
	})
	go inf.RunWithContext(ctx)
	m := &mirrorSync{a: a, lister: inf.GetIndexer(), sent: map[types.UID]sentStatus{}, failed: map[string]string{}, created: map[string]*v1.Pod{}}
	t := time.NewTicker(podStatusResync)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.dirty:
		case <-t.C:
		}
		if !inf.HasSynced() {
			continue // its first list completes when the API server answers
		}
		if !a.o.SourceReady() {
			continue // the first report wakes it (a store change)
		}
		m.sync(ctx)
	}
}

func (m *mirrorSync) sync(ctx context.Context) {
	a := m.a
	mirrors := map[string]*v1.Pod{}
	for _, o := range m.lister.List() {
		p := o.(*v1.Pod)
		if isMirror(p) {
			mirrors[p.Namespace+"/"+p.Name] = p
		}
	}
	for key, p := range m.created {
		cur, ok := mirrors[key]
		switch {
		case ok && (cur.UID == p.UID || cur.CreationTimestamp.After(p.CreationTimestamp.Time)):
			delete(m.created, key) // the informer caught up
		default:
			mirrors[key] = p // it shows nothing, or an older pod we replaced
		}
	}
	want := map[string]bool{}
	for _, sp := range a.o.Source.Pods() {
		sp := sp
		if !isStatic(&sp) || sp.DeletionTimestamp != nil {
			continue // a terminating static pod is gone from the config: its mirror goes
		}
		key := sp.Namespace + "/" + sp.Name
		want[key] = true
		mp := mirrors[key]
		hash := sp.Annotations[ConfigHashAnnotationKey]
		if mp != nil && (mp.DeletionTimestamp != nil || mp.Annotations[ConfigMirrorAnnotationKey] != hash) {
			// kubelet: pkg/kubelet/kubelet.go SyncPod: a mirror pod being
			// deleted, or of another version of the static pod, is deleted
			// at once (grace 0) and created again.
			if !m.delete(ctx, mp, "outdated or being deleted") {
				continue
			}
			mp = nil
		}
		if mp == nil {
			mp = m.create(ctx, &sp)
		}
		if mp != nil {
			m.syncStatus(ctx, &sp, mp)
		}
	}
	// kubelet: pkg/kubelet/kubelet_pods.go HandlePodCleanups deletes the
	// mirror pods whose static pod is gone (orphaned mirror pods).
	for key, mp := range mirrors {
		if !want[key] {
			m.delete(ctx, mp, "its static pod is gone")
		}
	}
	// Forget what no longer exists, so the maps stay bounded.
	live := map[types.UID]bool{}
	for _, mp := range mirrors {
		live[mp.UID] = true
	}
	for uid := range m.sent {
		if !live[uid] {
			delete(m.sent, uid)
		}
	}
	for key := range m.failed {
		if !want[key] {
			delete(m.failed, key)
		}
	}
}

// create makes the mirror of sp (kubelet: pkg/kubelet/pod/mirror_client.go
// CreateMirrorPod: the static pod with kubernetes.io/config.mirror set to
// its hash and one controller ownerReference to the Node).
func (m *mirrorSync) create(ctx context.Context, sp *v1.Pod) *v1.Pod {
	a := m.a
	nodeUID := a.NodeUID()
	if nodeUID == "" {
		return nil // NodeRestriction wants the owner's UID; the node sync learns it
	}
	key := sp.Namespace + "/" + sp.Name
	hash := sp.Annotations[ConfigHashAnnotationKey]
	mp := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: sp.Name, Namespace: sp.Namespace,
			Labels: sp.Labels, Annotations: map[string]string{},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: a.o.NodeName, UID: nodeUID,
				Controller: ptr(true)}},
		},
		Spec: *sp.Spec.DeepCopy(),
	}
	for k, v := range sp.Annotations {
		mp.Annotations[k] = v
	}
	mp.Annotations[ConfigMirrorAnnotationKey] = hash
	mp.Spec.NodeName = a.o.NodeName
	created, err := a.o.Client.CoreV1().Pods(sp.Namespace).Create(ctx, mp, metav1.CreateOptions{})
	if err != nil {
		if apierrors.IsAlreadyExists(err) {
			return nil // not in our cache yet; the informer brings it
		}
		if isUnreachable(err) {
			a.apiError("mirror pod not created; retrying", err, "pod", key)
			return nil
		}
		if m.failed[key] != hash {
			m.failed[key] = hash
			a.log.Warn("mirror pod not created; retrying every resync", "pod", key, "err", err)
			a.recorder.Eventf(&v1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: sp.Namespace, Name: sp.Name, UID: sp.UID},
				v1.EventTypeWarning, "FailedCreateMirrorPod", "Error creating mirror pod: %v", err)
		}
		return nil
	}
	delete(m.failed, key)
	m.created[key] = created
	a.apiOK()
	a.log.Info("mirror pod created", "pod", key, "uid", created.UID)
	return created
}

// delete removes a mirror pod at once, only the one we saw (kubelet:
// mirror_client.go DeleteMirrorPod: grace period 0, UID precondition).
// It reports whether the pod is gone.
func (m *mirrorSync) delete(ctx context.Context, mp *v1.Pod, why string) bool {
	uid := mp.UID
	err := m.a.o.Client.CoreV1().Pods(mp.Namespace).Delete(ctx, mp.Name, metav1.DeleteOptions{
		GracePeriodSeconds: ptr(int64(0)), Preconditions: &metav1.Preconditions{UID: &uid}})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		m.a.apiError("mirror pod not deleted; retrying", err, "pod", mp.Namespace+"/"+mp.Name)
		return false
	}
	if c := m.created[mp.Namespace+"/"+mp.Name]; c != nil && c.UID == uid {
		delete(m.created, mp.Namespace+"/"+mp.Name)
	}
	m.a.apiOK()
	m.a.log.Info("mirror pod deleted", "pod", mp.Namespace+"/"+mp.Name, "uid", uid, "why", why)
	return true
}

// syncStatus PATCHes the mirror's status when it differs from the static
// pod's (kubelet: pkg/kubelet/status/status_manager.go syncPod and
// pkg/util/pod/pod.go PatchPodStatus: a two-way strategic merge patch of
// status with the pod's UID as precondition). The same status is not sent
// again within podStatusResync, so a field the API server normalises
// differently cannot make a hot loop.
func (m *mirrorSync) syncStatus(ctx context.Context, sp, mp *v1.Pod) {
	want, err := normalized(&sp.Status)
	if err != nil {
		return
	}
	if equality.Semantic.DeepEqual(&mp.Status, want) {
		return
	}
	wj, _ := json.Marshal(want)
	if s, ok := m.sent[mp.UID]; ok && s.json == string(wj) && time.Since(s.at) < podStatusResync {
		return
	}
	patch, err := twoWayPatch(&v1.Pod{ObjectMeta: metav1.ObjectMeta{UID: mp.UID}, Status: mp.Status},
		&v1.Pod{ObjectMeta: metav1.ObjectMeta{UID: mp.UID}, Status: *want}, v1.Pod{})
	if err != nil {
		m.a.log.Warn("mirror pod status patch", "pod", mp.Namespace+"/"+mp.Name, "err", err)
		return
	}
	patch, err = withUIDPrecondition(patch, mp.UID)
	if err != nil {
		return
	}
	_, err = m.a.o.Client.CoreV1().Pods(mp.Namespace).Patch(ctx, mp.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
	if err != nil {
		if !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			m.a.apiError("mirror pod status not updated; retrying", err, "pod", mp.Namespace+"/"+mp.Name)
		}
		return
	}
	m.a.apiOK()
	m.sent[mp.UID] = sentStatus{json: string(wj), at: time.Now()}
}

// normalized is status as the API server stores it (times to the second).
func normalized(s *v1.PodStatus) (*v1.PodStatus, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	var out v1.PodStatus
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// withUIDPrecondition adds metadata.uid to a patch, so it applies only to
// the pod it was computed for (kubelet: pkg/util/pod/pod.go
// preparePatchBytesForPodStatus).
func withUIDPrecondition(patch []byte, uid types.UID) ([]byte, error) {
	var p map[string]any
	if err := json.Unmarshal(patch, &p); err != nil {
		return nil, err
	}
	md, _ := p["metadata"].(map[string]any)
	if md == nil {
		md = map[string]any{}
	}
	md["uid"] = string(uid)
	p["metadata"] = md
	return json.Marshal(p)
}

func ptr[T any](v T) *T { return &v }
