package kubectl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	"github.com/minikubelet/minikubelet/internal/api"
	"github.com/minikubelet/minikubelet/internal/podlogs"
)

// DefaultContainerAnnotation names the container `logs` picks when the pod
// has several (kubectl's annotation).
const DefaultContainerAnnotation = "kubectl.kubernetes.io/default-container"

// LogsOptions are the `logs` flags.
type LogsOptions struct {
	Namespace  string
	Pod        string // with or without the -<node> suffix
	Container  string
	LogDir     string
	NodeName   string // for the suffix when the daemon cannot be asked
	Follow     bool
	Previous   bool
	Tail       int // < 0: all
	Timestamps bool
	// PollInterval of follow (file and API checks); default 200ms.
	PollInterval time.Duration
	// Warn gets kubectl's "Defaulted container" notice (nil: dropped).
	Warn io.Writer
}

// Logs prints a container's log from the CRI files under LogDir. The
// daemon (c, may be nil or unreachable) is asked only which pod UID, which
// containers and which restart count are current; without it the newest
// pod folder and the newest log file are used.
func Logs(ctx context.Context, c *api.Client, o LogsOptions, out io.Writer) error {
	var pod *v1.Pod
	var apiErr error
	if c != nil {
		actx, cancel := context.WithTimeout(ctx, 3*time.Second)
		pod, apiErr = c.GetPod(actx, o.Namespace, o.Pod)
		cancel()
	}
	match := func(name string) bool {
		return name == o.Pod || (o.NodeName != "" && name == o.Pod+"-"+o.NodeName)
	}
	var uid types.UID
	if pod != nil {
		match = func(name string) bool { return name == pod.Name }
		uid = pod.UID
	}
	dirs, err := podlogs.FindPodDirs(o.LogDir, o.Namespace, match)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	dir, ok := podlogs.PickPodDir(dirs, uid)
	if !ok {
		if apiErr != nil && apierrors.IsNotFound(apiErr) {
			return apiErr
		}
		if pod != nil {
			return fmt.Errorf("pod %q in namespace %q has written no logs yet (nothing under %s)", pod.Name, o.Namespace, o.LogDir)
		}
		return fmt.Errorf("pods %q not found: no log folder %s_%s_<uid> under %s", o.Pod, o.Namespace, o.Pod, o.LogDir)
	}
	podName := dir.Name
	container, err := pickContainer(pod, dir, o.Container, o.Warn)
	if err != nil {
		return err
	}
	cdir := filepath.Join(dir.Path, container)
	restart := -1
	if pod != nil && pod.UID == dir.UID {
		if st := containerStatus(pod, container); st != nil {
			restart = int(st.RestartCount)
		}
	}
	if restart < 0 || !instanceExists(cdir, restart) {
		// Without the daemon's word, the newest instance on disk is current.
		inst, _ := podlogs.Instances(cdir)
		if len(inst) > 0 && (restart < 0 || inst[len(inst)-1] > restart) {
			restart = inst[len(inst)-1]
		}
	}
	if o.Previous {
		if restart < 1 || !instanceExists(cdir, restart-1) {
			return fmt.Errorf("previous terminated container %q in pod %q not found", container, podName)
		}
		restart--
	}
	if restart < 0 {
		if o.Follow {
			restart = 0 // wait for the first instance to write
		} else {
			return fmt.Errorf("container %q in pod %q has written no logs yet (nothing under %s)", container, podName, cdir)
		}
	}
	ropts := podlogs.Options{Follow: o.Follow && !o.Previous, Tail: o.Tail, Timestamps: o.Timestamps, PollInterval: o.PollInterval}
	if ropts.Follow && pod != nil && c != nil {
		ropts.Stop = instanceOver(ctx, c, o.Namespace, pod.Name, pod.UID, container, cdir, restart)
	}
	err = podlogs.Read(ctx, cdir, restart, ropts, out)
	if errors.Is(err, podlogs.ErrNoLog) {
		return fmt.Errorf("container %q in pod %q: %w", container, podName, err)
	}
	return err
}

func instanceExists(cdir string, restart int) bool {
	inst, _ := podlogs.Instances(cdir)
	return slices.Contains(inst, restart)
}

func containerStatus(pod *v1.Pod, name string) *v1.ContainerStatus {
	for _, list := range [][]v1.ContainerStatus{pod.Status.ContainerStatuses, pod.Status.InitContainerStatuses} {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
	}
	return nil
}

// pickContainer applies kubectl's rules: -c wins (and must exist), then the
// default-container annotation, then the first container, with kubectl's
// notice on warn when the pod has others. Without the daemon the pod's
// order is unknown, so several containers need -c.
func pickContainer(pod *v1.Pod, dir podlogs.PodLogDir, want string, warn io.Writer) (string, error) {
	var app, init []string
	if pod != nil {
		for _, c := range pod.Spec.Containers {
			app = append(app, c.Name)
		}
		for _, c := range pod.Spec.InitContainers {
			init = append(init, c.Name)
		}
	} else {
		var err error
		if app, err = podlogs.Containers(dir.Path); err != nil {
			return "", err
		}
	}
	if want != "" {
		if slices.Contains(app, want) || slices.Contains(init, want) {
			return want, nil
		}
		return "", fmt.Errorf("container %s is not valid for pod %s", want, dir.Name)
	}
	if pod != nil {
		if d := pod.Annotations[DefaultContainerAnnotation]; d != "" && (slices.Contains(app, d) || slices.Contains(init, d)) {
			return d, nil
		}
		if len(app) > 0 {
			DefaultedContainerNotice(warn, pod)
			return app[0], nil
		}
	}
	if len(app) == 1 {
		return app[0], nil
	}
	if len(app) == 0 {
		return "", fmt.Errorf("pod %s has no container logs under %s", dir.Name, dir.Path)
	}
	return "", fmt.Errorf("a container name must be specified for pod %s, choose one of: [%s] (the daemon does not answer, so the default container is unknown)", dir.Name, strings.Join(app, " "))
}

// DefaultedContainerNotice prints kubectl's notice when the first container
// was picked for a pod that has others (logs and exec without -c).
func DefaultedContainerNotice(warn io.Writer, pod *v1.Pod) {
	if warn == nil || len(pod.Spec.Containers) == 0 {
		return
	}
	if len(pod.Spec.Containers) == 1 && len(pod.Spec.InitContainers) == 0 && len(pod.Spec.EphemeralContainers) == 0 {
		return
	}
	var names []string
	for _, c := range pod.Spec.Containers {
		names = append(names, c.Name)
	}
	for _, c := range pod.Spec.EphemeralContainers {
		names = append(names, c.Name+" (ephem)")
	}
	for _, c := range pod.Spec.InitContainers {
		names = append(names, c.Name+" (init)")
	}
	fmt.Fprintf(warn, "Defaulted container %q out of: %s\n", pod.Spec.Containers[0].Name, strings.Join(names, ", "))
}

// instanceOver tells a follow when the followed instance has ended: the pod
// is gone or replaced, the container terminated, or a later instance
// started (its log appears). The daemon is asked at most once a second.
func instanceOver(ctx context.Context, c *api.Client, ns, name string, uid types.UID, container, cdir string, restart int) func() bool {
	var last time.Time
	next := filepath.Join(cdir, podlogs.LogFileName(restart+1))
	return func() bool {
		if _, err := os.Stat(next); err == nil {
			return true
		}
		if time.Since(last) < time.Second {
			return false
		}
		last = time.Now()
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		p, err := c.GetPod(actx, ns, name)
		if err != nil {
			return apierrors.IsNotFound(err)
		}
		if p.UID != uid {
			return true
		}
		st := containerStatus(p, container)
		if st == nil {
			return false
		}
		return int(st.RestartCount) > restart || st.State.Terminated != nil
	}
}
