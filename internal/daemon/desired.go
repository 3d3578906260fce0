package daemon

import (
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/minikubelet/minikubelet/manifests"
	"github.com/minikubelet/minikubelet/reconciler"
	"github.com/minikubelet/minikubelet/systemd"
)

// desiredFrom turns the manifest folder's snapshot into the plan's input.
// A file that turned invalid keeps its last good pod (Error set, an
// InvalidManifest event on the pod); a file that never produced a pod is a
// FileError only.
func desiredFrom(snap manifests.Snapshot) reconciler.Desired {
	d := reconciler.Desired{Pods: make(map[types.UID]*reconciler.DesiredPod, len(snap.Pods)),
		FileErrors: map[string]string{}}
	errs := make(map[string]string, len(snap.Errors))
	for _, fe := range snap.Errors {
		errs[fe.Path] = fileErrorText(fe)
	}
	stale := map[string]bool{}
	for _, p := range snap.Pods {
		dp := &reconciler.DesiredPod{Pod: p.Pod, Source: p.File, QOSClass: systemd.GetPodQOS(p.Pod)}
		if s := p.Pod.Annotations[manifests.ConfigSeenAnnotation]; s != "" {
			if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
				dp.SeenAt = t
			}
		}
		if p.Stale {
			dp.Error = errs[p.File]
			stale[p.File] = true
		}
		d.Pods[p.Pod.UID] = dp
	}
	for path, msg := range errs {
		if !stale[path] {
			d.FileErrors[path] = msg
		}
	}
	return d
}

// fileErrorText is the file's problems without the repeated path prefix
// (the plan's event message names the file once).
func fileErrorText(fe *manifests.FileError) string {
	lines := fe.Lines()
	for i, l := range lines {
		lines[i] = strings.TrimPrefix(l, fe.Path+": ")
	}
	if len(lines) == 0 {
		return fe.Error()
	}
	return strings.Join(lines, "; ")
}
