package manifests

import (
	"strings"

	v1 "k8s.io/api/core/v1"
)

// SetDefaults applies the v1 defaults the API server applies to a Pod on
// create (kubernetes pkg/apis/core/v1/defaults.go and its generated
// defaulters), for the fields minikubelet reads. The kubelet gets the same
// through its decoder, before it hashes the pod into the static pod's UID,
// so a file that spells out a default and one that omits it are the same pod.
func SetDefaults(pod *v1.Pod) {
	spec := &pod.Spec

	// SetDefaults_Pod: requests default to limits, per container.
	for _, cs := range [][]v1.Container{spec.InitContainers, spec.Containers} {
		for i := range cs {
			r := &cs[i].Resources
			if r.Limits == nil {
				continue
			}
			if r.Requests == nil {
				r.Requests = v1.ResourceList{}
			}
			for k, q := range r.Limits {
				if _, set := r.Requests[k]; !set {
					r.Requests[k] = q.DeepCopy()
				}
			}
		}
	}
	if spec.EnableServiceLinks == nil {
		t := v1.DefaultEnableServiceLinks
		spec.EnableServiceLinks = &t
	}
	if spec.HostNetwork {
		// With the host's network a container port is a host port.
		for _, cs := range [][]v1.Container{spec.InitContainers, spec.Containers} {
			for i := range cs {
				for j := range cs[i].Ports {
					if cs[i].Ports[j].HostPort == 0 {
						cs[i].Ports[j].HostPort = cs[i].Ports[j].ContainerPort
					}
				}
			}
		}
	}

	// SetDefaults_PodSpec.
	if spec.DNSPolicy == "" {
		spec.DNSPolicy = v1.DNSClusterFirst
	}
	if spec.RestartPolicy == "" {
		spec.RestartPolicy = v1.RestartPolicyAlways
	}
	if spec.SecurityContext == nil {
		spec.SecurityContext = &v1.PodSecurityContext{}
	}
	if spec.TerminationGracePeriodSeconds == nil {
		g := int64(v1.DefaultTerminationGracePeriodSeconds)
		spec.TerminationGracePeriodSeconds = &g
	}
	if spec.SchedulerName == "" {
		spec.SchedulerName = v1.DefaultSchedulerName
	}

	for i := range spec.Volumes {
		defaultVolume(&spec.Volumes[i])
	}
	for i := range spec.InitContainers {
		defaultContainer(&spec.InitContainers[i])
	}
	for i := range spec.Containers {
		defaultContainer(&spec.Containers[i])
	}
	for i := range spec.EphemeralContainers {
		defaultContainer((*v1.Container)(&spec.EphemeralContainers[i].EphemeralContainerCommon))
	}
}

func defaultVolume(vol *v1.Volume) {
	if vol.VolumeSource == (v1.VolumeSource{}) {
		vol.EmptyDir = &v1.EmptyDirVolumeSource{}
	}
	if vol.HostPath != nil && vol.HostPath.Type == nil {
		t := v1.HostPathUnset
		vol.HostPath.Type = &t
	}
	if vol.EmptyDir != nil && vol.EmptyDir.SizeLimit != nil {
		vol.EmptyDir.SizeLimit.RoundUp(-3)
	}
	if d := vol.DownwardAPI; d != nil {
		if d.DefaultMode == nil {
			m := v1.DownwardAPIVolumeSourceDefaultMode
			d.DefaultMode = &m
		}
		for j := range d.Items {
			if d.Items[j].FieldRef != nil && d.Items[j].FieldRef.APIVersion == "" {
				d.Items[j].FieldRef.APIVersion = "v1"
			}
		}
	}
	// Sources a static pod may not use still get their defaults, so the
	// rejection message sees the same object the API server would.
	if s := vol.Secret; s != nil && s.DefaultMode == nil {
		m := v1.SecretVolumeSourceDefaultMode
		s.DefaultMode = &m
	}
	if c := vol.ConfigMap; c != nil && c.DefaultMode == nil {
		m := v1.ConfigMapVolumeSourceDefaultMode
		c.DefaultMode = &m
	}
	if pr := vol.Projected; pr != nil && pr.DefaultMode == nil {
		m := v1.ProjectedVolumeSourceDefaultMode
		pr.DefaultMode = &m
	}
}

func defaultContainer(c *v1.Container) {
	if c.ImagePullPolicy == "" {
		if imageTag(c.Image) == "latest" {
			c.ImagePullPolicy = v1.PullAlways
		} else {
			c.ImagePullPolicy = v1.PullIfNotPresent
		}
	}
	if c.TerminationMessagePath == "" {
		c.TerminationMessagePath = v1.TerminationMessagePathDefault
	}
	if c.TerminationMessagePolicy == "" {
		c.TerminationMessagePolicy = v1.TerminationMessageReadFile
	}
	for j := range c.Ports {
		if c.Ports[j].Protocol == "" {
			c.Ports[j].Protocol = v1.ProtocolTCP
		}
	}
	for j := range c.Env {
		if vf := c.Env[j].ValueFrom; vf != nil && vf.FieldRef != nil && vf.FieldRef.APIVersion == "" {
			vf.FieldRef.APIVersion = "v1"
		}
	}
	// SetDefaults_ResourceList: values are rounded up to milli-units.
	for _, rl := range []v1.ResourceList{c.Resources.Limits, c.Resources.Requests} {
		for k, q := range rl {
			q.RoundUp(-3)
			rl[k] = q
		}
	}
	for _, pr := range []*v1.Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
		if pr == nil {
			continue
		}
		if pr.TimeoutSeconds == 0 {
			pr.TimeoutSeconds = 1
		}
		if pr.PeriodSeconds == 0 {
			pr.PeriodSeconds = 10
		}
		if pr.SuccessThreshold == 0 {
			pr.SuccessThreshold = 1
		}
		if pr.FailureThreshold == 0 {
			pr.FailureThreshold = 3
		}
		defaultHTTPGet(pr.HTTPGet)
		if pr.GRPC != nil && pr.GRPC.Service == nil {
			s := ""
			pr.GRPC.Service = &s
		}
	}
	if lc := c.Lifecycle; lc != nil {
		if lc.PostStart != nil {
			defaultHTTPGet(lc.PostStart.HTTPGet)
		}
		if lc.PreStop != nil {
			defaultHTTPGet(lc.PreStop.HTTPGet)
		}
	}
}

func defaultHTTPGet(h *v1.HTTPGetAction) {
	if h == nil {
		return
	}
	if h.Path == "" {
		h.Path = "/"
	}
	if h.Scheme == "" {
		h.Scheme = v1.URISchemeHTTP
	}
}

// imageTag is the tag of an image reference as the kubelet's
// parsers.ParseImageName sees it: "latest" when there is neither a tag nor
// a digest, "" when there is only a digest.
func imageTag(image string) string {
	name, _, hasDigest := strings.Cut(image, "@")
	tag := ""
	if i := strings.LastIndex(name, ":"); i >= 0 && !strings.Contains(name[i+1:], "/") {
		tag = name[i+1:]
	}
	if tag == "" && !hasDigest {
		return "latest"
	}
	return tag
}
