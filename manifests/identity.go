package manifests

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Annotations the kubelet puts on every static pod (pkg/kubelet/types).
const (
	ConfigHashAnnotation   = "kubernetes.io/config.hash"
	ConfigSourceAnnotation = "kubernetes.io/config.source"
	ConfigSeenAnnotation   = "kubernetes.io/config.seen"
	// ConfigSourceFile is the config.source value of pods from the folder.
	ConfigSourceFile = "file"
)

// StaticPodName is the name the kubelet gives a static pod: the manifest's
// name, a dash, and the lower-cased node name.
func StaticPodName(name, nodeName string) string {
	return fmt.Sprintf("%s-%s", name, strings.ToLower(nodeName))
}

// StaticPodUID is the UID of a static pod, as the kubelet's applyDefaults
// computes it: an md5 over "host:<node>", "file:<path>" and the defaulted
// pod, before the identity fields are added. The kubelet hashes the object
// with a deep printer; the canonical JSON used here has the property that
// matters: the same object gives the same UID however the file was
// formatted (comments, key order, YAML or JSON, defaults spelled out or
// not), and any real change gives a new UID, hence a new pod.
func StaticPodUID(defaulted *v1.Pod, nodeName, path string) types.UID {
	h := md5.New()
	fmt.Fprintf(h, "host:%s", nodeName)
	fmt.Fprintf(h, "file:%s", path)
	canonical, err := json.Marshal(defaulted)
	if err != nil {
		// A decoded pod always marshals; keep the UID defined regardless.
		fmt.Fprintf(h, "%#v", defaulted)
	}
	h.Write(canonical)
	return types.UID(hex.EncodeToString(h.Sum(nil)))
}

// applyStaticIdentity turns a defaulted pod into the node's static pod,
// following the kubelet's applyDefaults: UID (unless the file sets one),
// name suffix, namespace, node binding, config annotations, the NoExecute
// toleration every file pod gets, and phase Pending.
func applyStaticIdentity(pod *v1.Pod, path, nodeName string) {
	// Status in a manifest is meaningless: it is not part of the identity.
	pod.Status = v1.PodStatus{}
	if pod.UID == "" {
		pod.UID = StaticPodUID(pod, nodeName, path)
	}
	pod.Name = StaticPodName(pod.Name, nodeName)
	if pod.Namespace == "" {
		pod.Namespace = metav1.NamespaceDefault
	}
	pod.Spec.NodeName = nodeName
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[ConfigHashAnnotation] = string(pod.UID)
	pod.Annotations[ConfigSourceAnnotation] = ConfigSourceFile
	addToleration(pod, v1.Toleration{Operator: v1.TolerationOpExists, Effect: v1.TaintEffectNoExecute})
	pod.Status.Phase = v1.PodPending
}

// addToleration adds t unless an equal toleration is already there.
func addToleration(pod *v1.Pod, t v1.Toleration) {
	for _, have := range pod.Spec.Tolerations {
		if have.MatchToleration(&t) && have.Value == t.Value && have.TolerationSeconds == nil {
			return
		}
	}
	pod.Spec.Tolerations = append(pod.Spec.Tolerations, t)
}
