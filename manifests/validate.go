package manifests

import (
	"fmt"
	"net"
	"path"
	"reflect"
	"regexp"
	"strings"

	v1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Messages shared by many rejections, so users learn the two reasons once.
const (
	staticPodNoAPI = "static pods may not reference API objects (there is no API server on a minikubelet node)"
	notSupported   = "not supported by minikubelet yet"
)

// Validate checks a defaulted static pod (as Parse returns it) the way the
// API server validates a Pod on create, for everything minikubelet runs,
// and rejects what a static pod may not use or minikubelet does not
// support yet, saying which. Paths are relative to the pod.
func Validate(pod *v1.Pod) field.ErrorList {
	return validatePod(pod, pod.Name, nil)
}

// validatePod validates under p (nil for a Pod file, items[i] in a list);
// origName is metadata.name as written, before the -<node> suffix.
func validatePod(pod *v1.Pod, origName string, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	errs = append(errs, validateMeta(pod, origName, p.Child("metadata"))...)
	errs = append(errs, validateSpec(&pod.Spec, p.Child("spec"))...)
	return errs
}

func validateMeta(pod *v1.Pod, origName string, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch {
	case origName == "" && pod.GenerateName != "":
		errs = append(errs, field.Required(p.Child("name"), "a static pod needs a fixed name; generateName is not supported (there is no API server to generate one)"))
	case origName == "":
		errs = append(errs, field.Required(p.Child("name"), "the static pod is named <metadata.name>-<node name>"))
	default:
		for _, msg := range validation.IsDNS1123Subdomain(pod.Name) {
			if pod.Name != origName {
				msg += fmt.Sprintf(" (checked on the static pod name %q, the name plus -<node name>)", pod.Name)
			}
			errs = append(errs, field.Invalid(p.Child("name"), origName, msg))
		}
	}
	errs = append(errs, validateUID(pod.UID, p.Child("uid"))...)
	for _, msg := range validation.IsDNS1123Label(pod.Namespace) {
		errs = append(errs, field.Invalid(p.Child("namespace"), pod.Namespace, msg))
	}
	errs = append(errs, metav1validation.ValidateLabels(pod.Labels, p.Child("labels"))...)
	errs = append(errs, apivalidation.ValidateAnnotations(pod.Annotations, p.Child("annotations"))...)
	for k, v := range pod.Annotations {
		// The API server's ValidateAppArmorProfileFormat on the legacy annotations.
		if strings.HasPrefix(k, v1.DeprecatedAppArmorBetaContainerAnnotationKeyPrefix) && v != v1.DeprecatedAppArmorBetaProfileRuntimeDefault &&
			v != v1.DeprecatedAppArmorBetaProfileNameUnconfined &&
			(!strings.HasPrefix(v, v1.DeprecatedAppArmorBetaProfileNamePrefix) || strings.TrimSpace(strings.TrimPrefix(v, v1.DeprecatedAppArmorBetaProfileNamePrefix)) == "") {
			errs = append(errs, field.Invalid(p.Child("annotations").Key(k), v, "invalid AppArmor profile name: want runtime/default, unconfined or localhost/<profile>"))
		}
	}
	if len(pod.OwnerReferences) > 0 {
		errs = append(errs, field.Forbidden(p.Child("ownerReferences"), staticPodNoAPI))
	}
	return errs
}

// uidShape: the API server gives a UUID, the kubelet computes 32 hex
// digits for a static pod, and hand-written manifests use names like
// "fixed-uid"; all are letters, digits and inner dashes. Nothing else is
// taken: no '/', '.' or '..' (a path component), no '_' (the systemd
// driver escapes '-' to '_' in the slice name, so "a-b" and "a_b" would
// share one slice).
var uidShape = regexp.MustCompile(`^[0-9A-Za-z]([-0-9A-Za-z]{0,61}[0-9A-Za-z])?$`)

// validateUID: metadata.uid names the pod's directory under
// <root-dir>/pods, its slice and its log folder; ".." would make the pod's
// directory the root dir itself, and removing the pod would remove every
// pod's state and the image store.
func validateUID(uid types.UID, p *field.Path) field.ErrorList {
	if uidShape.MatchString(string(uid)) {
		return nil
	}
	return field.ErrorList{field.Invalid(p, string(uid),
		"must be a UUID like the API server's (e.g. 6f3c2b1e-0d4a-4c1b-9e8f-1a2b3c4d5e6f) or at most 63 letters, digits and inner '-'; it names the pod's directory, slice and logs (omit it to get the kubelet's computed UID)")}
}

func validateSpec(spec *v1.PodSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList

	vols, volErrs := validateVolumes(spec.Volumes, p.Child("volumes"))
	errs = append(errs, volErrs...)

	if len(spec.Containers) == 0 {
		errs = append(errs, field.Required(p.Child("containers"), "a pod needs at least one container"))
	}
	// Container names are unique across init and app containers: they name
	// cgroup scopes, log folders and status entries.
	names := map[string]string{}
	checkName := func(name string, fp *field.Path) {
		if name == "" {
			return
		}
		if prev, dup := names[name]; dup {
			fe := field.Duplicate(fp, name)
			fe.Detail = "container names must be unique across init and app containers; also used by " + prev
			errs = append(errs, fe)
			return
		}
		names[name] = fp.String()
	}
	for i := range spec.InitContainers {
		c := &spec.InitContainers[i]
		cp := p.Child("initContainers").Index(i)
		checkName(c.Name, cp.Child("name"))
		kind := initContainer
		if c.RestartPolicy != nil && *c.RestartPolicy == v1.ContainerRestartPolicyAlways {
			kind = sidecarContainer
		}
		errs = append(errs, validateContainer(c, kind, spec, vols, cp)...)
	}
	for i := range spec.Containers {
		c := &spec.Containers[i]
		cp := p.Child("containers").Index(i)
		checkName(c.Name, cp.Child("name"))
		errs = append(errs, validateContainer(c, appContainer, spec, vols, cp)...)
	}
	errs = append(errs, validateHostPortConflicts(spec, p)...)
	if len(spec.EphemeralContainers) > 0 {
		errs = append(errs, field.Forbidden(p.Child("ephemeralContainers"), "static pods may not have ephemeral containers (they are added through the API server)"))
	}

	errs = append(errs, supported(p.Child("restartPolicy"), spec.RestartPolicy,
		v1.RestartPolicyAlways, v1.RestartPolicyOnFailure, v1.RestartPolicyNever)...)
	errs = append(errs, supported(p.Child("dnsPolicy"), spec.DNSPolicy,
		v1.DNSClusterFirst, v1.DNSClusterFirstWithHostNet, v1.DNSDefault, v1.DNSNone)...)
	errs = append(errs, validateDNSConfig(spec, p.Child("dnsConfig"))...)
	if g := spec.TerminationGracePeriodSeconds; g != nil && *g < 0 {
		errs = append(errs, field.Invalid(p.Child("terminationGracePeriodSeconds"), *g, "must be >= 0"))
	}
	if d := spec.ActiveDeadlineSeconds; d != nil && *d < 1 {
		errs = append(errs, field.Invalid(p.Child("activeDeadlineSeconds"), *d, "must be >= 1"))
	}
	for _, f := range []struct {
		name, v string
	}{{"hostname", spec.Hostname}, {"subdomain", spec.Subdomain}} {
		if f.v == "" {
			continue
		}
		for _, msg := range validation.IsDNS1123Label(f.v) {
			errs = append(errs, field.Invalid(p.Child(f.name), f.v, msg))
		}
	}
	for i, ha := range spec.HostAliases {
		hp := p.Child("hostAliases").Index(i)
		if net.ParseIP(ha.IP) == nil {
			errs = append(errs, field.Invalid(hp.Child("ip"), ha.IP, "must be a valid IP address"))
		}
		for j, h := range ha.Hostnames {
			for _, msg := range validation.IsDNS1123Subdomain(h) {
				errs = append(errs, field.Invalid(hp.Child("hostnames").Index(j), h, msg))
			}
		}
	}
	if spec.PriorityClassName != "" {
		for _, msg := range validation.IsDNS1123Subdomain(spec.PriorityClassName) {
			errs = append(errs, field.Invalid(p.Child("priorityClassName"), spec.PriorityClassName, msg))
		}
	}
	if spec.ShareProcessNamespace != nil && *spec.ShareProcessNamespace && spec.HostPID {
		errs = append(errs, field.Invalid(p.Child("shareProcessNamespace"), true, "ShareProcessNamespace and HostPID cannot both be enabled"))
	}
	errs = append(errs, validatePodSecurityContext(spec.SecurityContext, p.Child("securityContext"))...)

	// What a static pod cannot have: it would need the API server.
	if spec.ServiceAccountName != "" {
		errs = append(errs, field.Forbidden(p.Child("serviceAccountName"), "static pods may not use service accounts (no API server issues their tokens)"))
	} else if spec.DeprecatedServiceAccount != "" {
		errs = append(errs, field.Forbidden(p.Child("serviceAccount"), "static pods may not use service accounts (no API server issues their tokens)"))
	}
	if len(spec.ImagePullSecrets) > 0 {
		errs = append(errs, field.Forbidden(p.Child("imagePullSecrets"), staticPodNoAPI+": pull secrets are Secrets"))
	}
	if len(spec.ResourceClaims) > 0 {
		errs = append(errs, field.Forbidden(p.Child("resourceClaims"), staticPodNoAPI+": resource claims are API objects"))
	}

	// What minikubelet does not do (yet). Each names itself.
	unsupported := func(name string, set bool, why string) {
		if set {
			errs = append(errs, field.Forbidden(p.Child(name), notSupported+why))
		}
	}
	unsupported("hostUsers", spec.HostUsers != nil && !*spec.HostUsers, ": user namespaces (hostUsers: false)")
	unsupported("runtimeClassName", spec.RuntimeClassName != nil, ": there is one runtime, minikubelet itself")
	unsupported("overhead", len(spec.Overhead) > 0, "")
	unsupported("resources", spec.Resources != nil, ": pod-level resources (set resources per container)")
	unsupported("readinessGates", len(spec.ReadinessGates) > 0, ": nothing on the node would set custom pod conditions")
	unsupported("schedulingGates", len(spec.SchedulingGates) > 0, ": a gated pod would never start")
	unsupported("hostnameOverride", spec.HostnameOverride != nil, "")
	unsupported("schedulingGroup", spec.SchedulingGroup != nil, "")
	unsupported("evictionResponders", len(spec.EvictionResponders) > 0, "")
	if spec.OS != nil && spec.OS.Name != v1.Linux {
		errs = append(errs, field.NotSupported(p.Child("os", "name"), spec.OS.Name, []v1.OSName{v1.Linux}))
	}
	return errs
}

func validateDNSConfig(spec *v1.PodSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	c := spec.DNSConfig
	if spec.DNSPolicy == v1.DNSNone && (c == nil || len(c.Nameservers) == 0) {
		errs = append(errs, field.Required(p.Child("nameservers"), "must provide at least one DNS nameserver when dnsPolicy is None"))
	}
	if c == nil {
		return errs
	}
	if len(c.Nameservers) > 3 {
		errs = append(errs, field.TooMany(p.Child("nameservers"), len(c.Nameservers), 3))
	}
	for i, ns := range c.Nameservers {
		if net.ParseIP(ns) == nil {
			errs = append(errs, field.Invalid(p.Child("nameservers").Index(i), ns, "must be a valid IP address"))
		}
	}
	if len(c.Searches) > 32 {
		errs = append(errs, field.TooMany(p.Child("searches"), len(c.Searches), 32))
	}
	for i, s := range c.Searches {
		s = strings.TrimSuffix(s, ".")
		for _, msg := range validation.IsDNS1123Subdomain(s) {
			errs = append(errs, field.Invalid(p.Child("searches").Index(i), s, msg))
		}
	}
	for i, o := range c.Options {
		if o.Name == "" {
			errs = append(errs, field.Required(p.Child("options").Index(i).Child("name"), ""))
		}
	}
	return errs
}

// volume kinds by how minikubelet treats them.
var (
	supportedVolumes = []string{"emptyDir", "hostPath", "downwardAPI"}
	// apiObjectVolumes need the API server; a static pod may not use them.
	apiObjectVolumes = map[string]string{
		"secret":                "Secrets",
		"configMap":             "ConfigMaps",
		"persistentVolumeClaim": "PersistentVolumeClaims",
		"projected":             "projected sources (service account tokens, Secrets, ConfigMaps, cluster trust bundles)",
		"ephemeral":             "generic ephemeral volumes (they create a PersistentVolumeClaim)",
		"csi":                   "CSI drivers (they are registered through the API server)",
	}
)

// volumeSourceNames lists the JSON names of the set sources of a volume.
func volumeSourceNames(vs *v1.VolumeSource) []string {
	var out []string
	rv := reflect.ValueOf(vs).Elem()
	rt := rv.Type()
	for i := 0; i < rt.NumField(); i++ {
		if rv.Field(i).IsNil() {
			continue
		}
		name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
		out = append(out, name)
	}
	return out
}

func validateVolumes(vols []v1.Volume, p *field.Path) (map[string]*v1.Volume, field.ErrorList) {
	var errs field.ErrorList
	byName := map[string]*v1.Volume{}
	for i := range vols {
		vol := &vols[i]
		vp := p.Index(i)
		if vol.Name == "" {
			errs = append(errs, field.Required(vp.Child("name"), ""))
		} else {
			for _, msg := range validation.IsDNS1123Label(vol.Name) {
				errs = append(errs, field.Invalid(vp.Child("name"), vol.Name, msg))
			}
			if _, dup := byName[vol.Name]; dup {
				errs = append(errs, field.Duplicate(vp.Child("name"), vol.Name))
			}
			byName[vol.Name] = vol
		}
		sources := volumeSourceNames(&vol.VolumeSource)
		if len(sources) > 1 {
			errs = append(errs, field.Forbidden(vp.Child(sources[1]), "may not specify more than 1 volume type (also has "+sources[0]+")"))
			continue
		}
		if len(sources) == 0 { // SetDefaults makes it an emptyDir; only Validate on a raw pod gets here
			errs = append(errs, field.Required(vp, "must specify a volume type"))
			continue
		}
		src := sources[0]
		if what, ok := apiObjectVolumes[src]; ok {
			errs = append(errs, field.Forbidden(vp.Child(src), staticPodNoAPI+": "+what))
			continue
		}
		switch src {
		case "emptyDir":
			errs = append(errs, validateEmptyDir(vol.EmptyDir, vp.Child("emptyDir"))...)
		case "hostPath":
			errs = append(errs, validateHostPath(vol.HostPath, vp.Child("hostPath"))...)
		case "downwardAPI":
			errs = append(errs, validateDownwardAPIVolume(vol.DownwardAPI, vp.Child("downwardAPI"))...)
		default:
			errs = append(errs, field.Forbidden(vp.Child(src), fmt.Sprintf("volume type %s is %s (supported: %s)", src, notSupported, strings.Join(supportedVolumes, ", "))))
		}
	}
	return byName, errs
}

func validateEmptyDir(e *v1.EmptyDirVolumeSource, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch e.Medium {
	case v1.StorageMediumDefault, v1.StorageMediumMemory:
	default:
		errs = append(errs, field.NotSupported(p.Child("medium"), e.Medium, []v1.StorageMedium{v1.StorageMediumDefault, v1.StorageMediumMemory}))
	}
	if e.SizeLimit != nil && e.SizeLimit.Sign() < 0 {
		errs = append(errs, field.Invalid(p.Child("sizeLimit"), e.SizeLimit.String(), "must be greater than or equal to 0"))
	}
	if e.Mode != nil {
		errs = append(errs, field.Forbidden(p.Child("mode"), notSupported))
	}
	return errs
}

var hostPathTypes = []v1.HostPathType{v1.HostPathUnset, v1.HostPathDirectoryOrCreate, v1.HostPathDirectory,
	v1.HostPathFileOrCreate, v1.HostPathFile, v1.HostPathSocket, v1.HostPathCharDev, v1.HostPathBlockDev}

func validateHostPath(h *v1.HostPathVolumeSource, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch {
	case h.Path == "":
		errs = append(errs, field.Required(p.Child("path"), ""))
	case !path.IsAbs(h.Path):
		errs = append(errs, field.Invalid(p.Child("path"), h.Path, "must be an absolute path on the host"))
	case hasBacksteps(h.Path):
		errs = append(errs, field.Invalid(p.Child("path"), h.Path, "must not contain '..'"))
	}
	if h.Type != nil {
		errs = append(errs, supported(p.Child("type"), *h.Type, hostPathTypes...)...)
	}
	return errs
}

func hasBacksteps(p string) bool {
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return true
		}
	}
	return false
}

// validateRelativePath is Kubernetes' validateLocalDescendingPath: relative,
// no '..' element.
func validateRelativePath(s string, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if path.IsAbs(s) {
		errs = append(errs, field.Invalid(p, s, "must be a relative path"))
	}
	if hasBacksteps(s) {
		errs = append(errs, field.Invalid(p, s, "must not contain '..'"))
	}
	return errs
}

var downwardVolumeFieldPaths = sets.New("metadata.annotations", "metadata.labels", "metadata.name", "metadata.namespace", "metadata.uid")

func validateDownwardAPIVolume(d *v1.DownwardAPIVolumeSource, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if d.DefaultMode != nil && (*d.DefaultMode < 0 || *d.DefaultMode > 0777) {
		errs = append(errs, field.Invalid(p.Child("defaultMode"), *d.DefaultMode, "must be a number between 0 and 0777 (octal), both inclusive"))
	}
	for i, item := range d.Items {
		ip := p.Child("items").Index(i)
		if item.Path == "" {
			errs = append(errs, field.Required(ip.Child("path"), ""))
		} else {
			errs = append(errs, validateRelativePath(item.Path, ip.Child("path"))...)
			if strings.HasPrefix(item.Path, "..") {
				errs = append(errs, field.Invalid(ip.Child("path"), item.Path, "must not start with '..'"))
			}
		}
		if item.Mode != nil && (*item.Mode < 0 || *item.Mode > 0777) {
			errs = append(errs, field.Invalid(ip.Child("mode"), *item.Mode, "must be a number between 0 and 0777 (octal), both inclusive"))
		}
		switch {
		case item.FieldRef != nil && item.ResourceFieldRef != nil:
			errs = append(errs, field.Invalid(ip, "resource", "fieldRef and resourceFieldRef can not be specified simultaneously"))
		case item.FieldRef != nil:
			errs = append(errs, validateFieldRef(item.FieldRef, downwardVolumeFieldPaths, ip.Child("fieldRef"))...)
		case item.ResourceFieldRef != nil:
			if item.ResourceFieldRef.ContainerName == "" {
				errs = append(errs, field.Required(ip.Child("resourceFieldRef", "containerName"), "required in a volume"))
			}
			errs = append(errs, validateResourceFieldRef(item.ResourceFieldRef, ip.Child("resourceFieldRef"))...)
		default:
			errs = append(errs, field.Required(ip, "one of fieldRef and resourceFieldRef is required"))
		}
	}
	return errs
}

var envFieldPaths = sets.New("metadata.name", "metadata.namespace", "metadata.uid", "metadata.labels", "metadata.annotations",
	"spec.nodeName", "spec.serviceAccountName", "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs")

func validateFieldRef(f *v1.ObjectFieldSelector, allowed sets.Set[string], p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if f.APIVersion != "v1" {
		errs = append(errs, field.NotSupported(p.Child("apiVersion"), f.APIVersion, []string{"v1"}))
	}
	fp := f.FieldPath
	// metadata.labels['key'] and metadata.annotations['key'] select one entry.
	for _, prefix := range []string{"metadata.labels", "metadata.annotations"} {
		if strings.HasPrefix(fp, prefix+"['") && strings.HasSuffix(fp, "']") {
			fp = prefix
		}
	}
	if f.FieldPath == "" {
		errs = append(errs, field.Required(p.Child("fieldPath"), ""))
	} else if !allowed.Has(fp) {
		errs = append(errs, field.NotSupported(p.Child("fieldPath"), f.FieldPath, sets.List(allowed)))
	}
	return errs
}

var resourceFieldRefs = []string{"limits.cpu", "limits.memory", "requests.cpu", "requests.memory"}

func validateResourceFieldRef(r *v1.ResourceFieldSelector, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	errs = append(errs, supported(p.Child("resource"), r.Resource, resourceFieldRefs...)...)
	if r.Divisor.Sign() < 0 {
		errs = append(errs, field.Invalid(p.Child("divisor"), r.Divisor.String(), "must be positive"))
	}
	return errs
}

type containerKind int

const (
	appContainer containerKind = iota
	initContainer
	sidecarContainer // init container with restartPolicy: Always
)

var supportedResources = []v1.ResourceName{v1.ResourceCPU, v1.ResourceMemory}

func validateContainer(c *v1.Container, kind containerKind, spec *v1.PodSpec, vols map[string]*v1.Volume, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if c.Name == "" {
		errs = append(errs, field.Required(p.Child("name"), ""))
	} else {
		for _, msg := range validation.IsDNS1123Label(c.Name) {
			errs = append(errs, field.Invalid(p.Child("name"), c.Name, msg))
		}
	}
	if c.Image == "" {
		errs = append(errs, field.Required(p.Child("image"), ""))
	} else if strings.TrimSpace(c.Image) != c.Image {
		errs = append(errs, field.Invalid(p.Child("image"), c.Image, "must not have leading or trailing whitespace"))
	}
	errs = append(errs, supported(p.Child("imagePullPolicy"), c.ImagePullPolicy, v1.PullAlways, v1.PullIfNotPresent, v1.PullNever)...)
	errs = append(errs, supported(p.Child("terminationMessagePolicy"), c.TerminationMessagePolicy,
		v1.TerminationMessageReadFile, v1.TerminationMessageFallbackToLogsOnError)...)
	if c.TerminationMessagePath != "" && !path.IsAbs(c.TerminationMessagePath) {
		errs = append(errs, field.Invalid(p.Child("terminationMessagePath"), c.TerminationMessagePath, "must be an absolute path"))
	}

	errs = append(errs, validatePorts(c.Ports, spec.HostNetwork, p.Child("ports"))...)
	errs = append(errs, validateEnv(c, p)...)
	errs = append(errs, validateResources(&c.Resources, p.Child("resources"))...)
	errs = append(errs, validateMounts(c, vols, p.Child("volumeMounts"))...)
	errs = append(errs, validateContainerSecurityContext(c.SecurityContext, p.Child("securityContext"))...)

	switch kind {
	case appContainer:
		if c.RestartPolicy != nil {
			errs = append(errs, field.Forbidden(p.Child("restartPolicy"), "may only be set on init containers (restartPolicy: Always makes a sidecar)"))
		}
	case initContainer:
		if c.RestartPolicy != nil {
			errs = append(errs, field.NotSupported(p.Child("restartPolicy"), *c.RestartPolicy, []v1.ContainerRestartPolicy{v1.ContainerRestartPolicyAlways}))
		}
		// Plain init containers run to completion: probes and hooks are not allowed.
		for _, f := range []struct {
			n   string
			set bool
		}{{"livenessProbe", c.LivenessProbe != nil}, {"readinessProbe", c.ReadinessProbe != nil}, {"startupProbe", c.StartupProbe != nil}, {"lifecycle", c.Lifecycle != nil}} {
			if f.set {
				errs = append(errs, field.Forbidden(p.Child(f.n), "may not be set for init containers without restartPolicy: Always"))
			}
		}
	}
	if len(c.RestartPolicyRules) > 0 {
		errs = append(errs, field.Forbidden(p.Child("restartPolicyRules"), notSupported))
	}
	if kind != initContainer {
		errs = append(errs, validateProbe(c.LivenessProbe, c, true, p.Child("livenessProbe"))...)
		errs = append(errs, validateProbe(c.ReadinessProbe, c, false, p.Child("readinessProbe"))...)
		errs = append(errs, validateProbe(c.StartupProbe, c, true, p.Child("startupProbe"))...)
		if c.Lifecycle != nil {
			errs = append(errs, validateLifecycleHandler(c.Lifecycle.PostStart, c, p.Child("lifecycle", "postStart"))...)
			errs = append(errs, validateLifecycleHandler(c.Lifecycle.PreStop, c, p.Child("lifecycle", "preStop"))...)
			if c.Lifecycle.StopSignal != nil {
				errs = append(errs, field.Forbidden(p.Child("lifecycle", "stopSignal"), notSupported+": the image's StopSignal or SIGTERM is used"))
			}
		}
	}
	if len(c.VolumeDevices) > 0 {
		errs = append(errs, field.Forbidden(p.Child("volumeDevices"), notSupported+": block volumes"))
	}
	if c.Stdin || c.StdinOnce {
		errs = append(errs, field.Forbidden(p.Child("stdin"), notSupported+": attaching to a container's stdin (use `minikubelet exec -i`)"))
	}
	if c.TTY {
		errs = append(errs, field.Forbidden(p.Child("tty"), notSupported+": a terminal for the main process (use `minikubelet exec -t`)"))
	}
	for i, rp := range c.ResizePolicy {
		errs = append(errs, supported(p.Child("resizePolicy").Index(i).Child("resourceName"), rp.ResourceName, v1.ResourceCPU, v1.ResourceMemory)...)
	}
	return errs
}

// validateHostPortConflicts is the API server's AccumulateUniqueHostPorts:
// two ports of the pod cannot take the same host port, protocol and IP.
func validateHostPortConflicts(spec *v1.PodSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	seen := map[string]string{}
	check := func(cs []v1.Container, name string) {
		for i, c := range cs {
			for j, port := range c.Ports {
				if port.HostPort == 0 {
					continue
				}
				key := fmt.Sprintf("%s/%s/%d", port.HostIP, port.Protocol, port.HostPort)
				fp := p.Child(name).Index(i).Child("ports").Index(j).Child("hostPort")
				if prev, dup := seen[key]; dup {
					fe := field.Duplicate(fp, fmt.Sprintf("%d/%s", port.HostPort, port.Protocol))
					fe.Detail = "also taken by " + prev
					errs = append(errs, fe)
					continue
				}
				seen[key] = fp.String()
			}
		}
	}
	check(spec.InitContainers, "initContainers")
	check(spec.Containers, "containers")
	return errs
}

func validatePorts(ports []v1.ContainerPort, hostNetwork bool, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	names := map[string]bool{}
	for i, port := range ports {
		pp := p.Index(i)
		if port.Name != "" {
			for _, msg := range validation.IsValidPortName(port.Name) {
				errs = append(errs, field.Invalid(pp.Child("name"), port.Name, msg))
			}
			if names[port.Name] {
				errs = append(errs, field.Duplicate(pp.Child("name"), port.Name))
			}
			names[port.Name] = true
		}
		if port.ContainerPort == 0 {
			errs = append(errs, field.Required(pp.Child("containerPort"), ""))
		} else {
			for _, msg := range validation.IsValidPortNum(int(port.ContainerPort)) {
				errs = append(errs, field.Invalid(pp.Child("containerPort"), port.ContainerPort, msg))
			}
		}
		if port.HostPort != 0 {
			for _, msg := range validation.IsValidPortNum(int(port.HostPort)) {
				errs = append(errs, field.Invalid(pp.Child("hostPort"), port.HostPort, msg))
			}
		}
		if hostNetwork && port.HostPort != port.ContainerPort {
			errs = append(errs, field.Invalid(pp.Child("hostPort"), port.HostPort, "must match `containerPort` when `hostNetwork` is true"))
		}
		errs = append(errs, supported(pp.Child("protocol"), port.Protocol, v1.ProtocolTCP, v1.ProtocolUDP, v1.ProtocolSCTP)...)
		if port.HostIP != "" && net.ParseIP(port.HostIP) == nil {
			errs = append(errs, field.Invalid(pp.Child("hostIP"), port.HostIP, "must be a valid IP address"))
		}
	}
	return errs
}

func validateEnv(c *v1.Container, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, ev := range c.Env {
		ep := p.Child("env").Index(i)
		if ev.Name == "" {
			errs = append(errs, field.Required(ep.Child("name"), ""))
		} else {
			for _, msg := range validation.IsRelaxedEnvVarName(ev.Name) {
				errs = append(errs, field.Invalid(ep.Child("name"), ev.Name, msg))
			}
		}
		vf := ev.ValueFrom
		if vf == nil {
			continue
		}
		vp := ep.Child("valueFrom")
		if ev.Value != "" {
			errs = append(errs, field.Invalid(vp, "", "may not be specified when `value` is not empty"))
		}
		n := 0
		if vf.FieldRef != nil {
			n++
			errs = append(errs, validateFieldRef(vf.FieldRef, envFieldPaths, vp.Child("fieldRef"))...)
		}
		if vf.ResourceFieldRef != nil {
			n++
			if cn := vf.ResourceFieldRef.ContainerName; cn != "" && cn != c.Name {
				errs = append(errs, field.Invalid(vp.Child("resourceFieldRef", "containerName"), cn, "must be this container's name (or empty)"))
			}
			errs = append(errs, validateResourceFieldRef(vf.ResourceFieldRef, vp.Child("resourceFieldRef"))...)
		}
		if vf.ConfigMapKeyRef != nil {
			n++
			errs = append(errs, field.Forbidden(vp.Child("configMapKeyRef"), staticPodNoAPI+": ConfigMaps"))
		}
		if vf.SecretKeyRef != nil {
			n++
			errs = append(errs, field.Forbidden(vp.Child("secretKeyRef"), staticPodNoAPI+": Secrets"))
		}
		if vf.FileKeyRef != nil {
			n++
			errs = append(errs, field.Forbidden(vp.Child("fileKeyRef"), notSupported))
		}
		if n == 0 {
			errs = append(errs, field.Invalid(vp, "", "must specify one of: `fieldRef`, `resourceFieldRef`"))
		} else if n > 1 {
			errs = append(errs, field.Invalid(vp, "", "may not have more than one field specified at a time"))
		}
	}
	for i, ef := range c.EnvFrom {
		fp := p.Child("envFrom").Index(i)
		switch {
		case ef.ConfigMapRef != nil:
			errs = append(errs, field.Forbidden(fp.Child("configMapRef"), staticPodNoAPI+": ConfigMaps"))
		case ef.SecretRef != nil:
			errs = append(errs, field.Forbidden(fp.Child("secretRef"), staticPodNoAPI+": Secrets"))
		default:
			errs = append(errs, field.Required(fp, "must specify a source"))
		}
	}
	return errs
}

func validateResources(r *v1.ResourceRequirements, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, l := range []struct {
		name string
		rl   v1.ResourceList
	}{{"limits", r.Limits}, {"requests", r.Requests}} {
		for _, name := range sortedResourceNames(l.rl) {
			q := l.rl[name]
			rp := p.Child(l.name).Key(string(name))
			switch name {
			case v1.ResourceCPU, v1.ResourceMemory:
			default:
				errs = append(errs, field.NotSupported(rp, name, supportedResources))
				errs[len(errs)-1].Detail = fmt.Sprintf("resource %s is %s (supported: cpu, memory)", name, notSupported)
				continue
			}
			if q.Sign() < 0 {
				errs = append(errs, field.Invalid(rp, q.String(), "must be greater than or equal to 0"))
			}
		}
	}
	for _, name := range sortedResourceNames(r.Requests) {
		req := r.Requests[name]
		lim, ok := r.Limits[name]
		if ok && req.Cmp(lim) > 0 {
			errs = append(errs, field.Invalid(p.Child("requests").Key(string(name)), req.String(),
				fmt.Sprintf("must be less than or equal to %s limit of %s", name, lim.String())))
		}
	}
	if len(r.Claims) > 0 {
		errs = append(errs, field.Forbidden(p.Child("claims"), staticPodNoAPI+": resource claims"))
	}
	return errs
}

func sortedResourceNames(rl v1.ResourceList) []v1.ResourceName {
	out := make([]v1.ResourceName, 0, len(rl))
	for k := range rl {
		out = append(out, k)
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

func validateMounts(c *v1.Container, vols map[string]*v1.Volume, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	paths := map[string]bool{}
	privileged := c.SecurityContext != nil && c.SecurityContext.Privileged != nil && *c.SecurityContext.Privileged
	for i, m := range c.VolumeMounts {
		mp := p.Index(i)
		if m.Name == "" {
			errs = append(errs, field.Required(mp.Child("name"), ""))
		} else if _, ok := vols[m.Name]; !ok {
			fe := field.NotFound(mp.Child("name"), m.Name)
			fe.Detail = "no volume of that name in spec.volumes"
			errs = append(errs, fe)
		}
		switch {
		case m.MountPath == "":
			errs = append(errs, field.Required(mp.Child("mountPath"), ""))
		case !path.IsAbs(m.MountPath):
			errs = append(errs, field.Invalid(mp.Child("mountPath"), m.MountPath, "must be an absolute path inside the container"))
		case paths[path.Clean(m.MountPath)]:
			errs = append(errs, field.Invalid(mp.Child("mountPath"), m.MountPath, "must be unique"))
		}
		paths[path.Clean(m.MountPath)] = true
		if m.SubPath != "" {
			errs = append(errs, validateRelativePath(m.SubPath, mp.Child("subPath"))...)
		}
		if m.SubPathExpr != "" {
			errs = append(errs, field.Forbidden(mp.Child("subPathExpr"), notSupported+" (use subPath)"))
		}
		if m.MountPropagation != nil {
			errs = append(errs, supported(mp.Child("mountPropagation"), *m.MountPropagation,
				v1.MountPropagationNone, v1.MountPropagationHostToContainer, v1.MountPropagationBidirectional)...)
			if *m.MountPropagation == v1.MountPropagationBidirectional && !privileged {
				errs = append(errs, field.Forbidden(mp.Child("mountPropagation"), "Bidirectional mount propagation is available only to privileged containers"))
			}
		}
		if m.RecursiveReadOnly != nil && *m.RecursiveReadOnly != v1.RecursiveReadOnlyDisabled {
			errs = append(errs, field.Forbidden(mp.Child("recursiveReadOnly"), notSupported))
		}
	}
	return errs
}

func validateProbe(pr *v1.Probe, c *v1.Container, successMustBeOne bool, p *field.Path) field.ErrorList {
	if pr == nil {
		return nil
	}
	errs := validateHandlers(pr.Exec, pr.HTTPGet, c, p,
		handler{name: "tcpSocket", set: pr.TCPSocket != nil, check: func() field.ErrorList {
			return validatePortRef(pr.TCPSocket.Port, c, p.Child("tcpSocket", "port"))
		}},
		handler{name: "grpc", set: pr.GRPC != nil, check: func() field.ErrorList {
			var errs field.ErrorList
			for _, msg := range validation.IsValidPortNum(int(pr.GRPC.Port)) {
				errs = append(errs, field.Invalid(p.Child("grpc", "port"), pr.GRPC.Port, msg))
			}
			return errs
		}})
	nonNeg := func(name string, v int32) {
		if v < 0 {
			errs = append(errs, field.Invalid(p.Child(name), v, "must be greater than or equal to 0"))
		}
	}
	positive := func(name string, v int32) {
		if v < 1 {
			errs = append(errs, field.Invalid(p.Child(name), v, "must be greater than or equal to 1"))
		}
	}
	nonNeg("initialDelaySeconds", pr.InitialDelaySeconds)
	positive("timeoutSeconds", pr.TimeoutSeconds)
	positive("periodSeconds", pr.PeriodSeconds)
	positive("successThreshold", pr.SuccessThreshold)
	positive("failureThreshold", pr.FailureThreshold)
	if successMustBeOne && pr.SuccessThreshold != 1 {
		errs = append(errs, field.Invalid(p.Child("successThreshold"), pr.SuccessThreshold, "must be 1"))
	}
	if g := pr.TerminationGracePeriodSeconds; g != nil {
		if !successMustBeOne { // readiness
			errs = append(errs, field.Invalid(p.Child("terminationGracePeriodSeconds"), *g, "must not be set for readinessProbes"))
		} else if *g < 1 {
			errs = append(errs, field.Invalid(p.Child("terminationGracePeriodSeconds"), *g, "must be greater than 0"))
		}
	}
	return errs
}

func validateHTTPGet(h *v1.HTTPGetAction, c *v1.Container, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	errs = append(errs, validatePortRef(h.Port, c, p.Child("port"))...)
	errs = append(errs, supported(p.Child("scheme"), h.Scheme, v1.URISchemeHTTP, v1.URISchemeHTTPS)...)
	for i, hd := range h.HTTPHeaders {
		for _, msg := range validation.IsHTTPHeaderName(hd.Name) {
			errs = append(errs, field.Invalid(p.Child("httpHeaders").Index(i).Child("name"), hd.Name, msg))
		}
	}
	if h.Protocol != nil {
		errs = append(errs, field.Forbidden(p.Child("protocol"), notSupported))
	}
	return errs
}

// validatePortRef checks a probe or hook port: a number, or the name of one
// of the container's ports (the kubelet resolves it at run time; a name
// that is not there could never succeed, so it is an error now).
func validatePortRef(port intstr.IntOrString, c *v1.Container, p *field.Path) field.ErrorList {
	if port.Type == intstr.Int {
		var errs field.ErrorList
		for _, msg := range validation.IsValidPortNum(port.IntValue()) {
			errs = append(errs, field.Invalid(p, port.IntVal, msg))
		}
		return errs
	}
	if msgs := validation.IsValidPortName(port.StrVal); len(msgs) > 0 {
		return field.ErrorList{field.Invalid(p, port.StrVal, strings.Join(msgs, "; "))}
	}
	for _, cp := range c.Ports {
		if cp.Name == port.StrVal {
			return nil
		}
	}
	fe := field.NotFound(p, port.StrVal)
	fe.Detail = "no port of that name in this container's ports"
	return field.ErrorList{fe}
}

func validateLifecycleHandler(h *v1.LifecycleHandler, c *v1.Container, p *field.Path) field.ErrorList {
	if h == nil {
		return nil
	}
	return validateHandlers(h.Exec, h.HTTPGet, c, p,
		handler{name: "sleep", set: h.Sleep != nil, check: func() field.ErrorList {
			if h.Sleep.Seconds < 0 {
				return field.ErrorList{field.Invalid(p.Child("sleep", "seconds"), h.Sleep.Seconds, "must be greater than or equal to 0")}
			}
			return nil
		}},
		handler{name: "tcpSocket", set: h.TCPSocket != nil, unlisted: true, check: func() field.ErrorList {
			return field.ErrorList{field.Forbidden(p.Child("tcpSocket"), "tcpSocket lifecycle handlers are deprecated and not supported")}
		}})
}

// handler is one handler type of a probe or lifecycle hook beyond exec and
// httpGet: whether it is set, and its own checks (run only when set).
type handler struct {
	name     string
	set      bool
	unlisted bool // not offered in the "one of" list (deprecated)
	check    func() field.ErrorList
}

// validateHandlers checks the handlers probes and lifecycle hooks share
// (exec, httpGet), then more in order, and that exactly one is set.
func validateHandlers(exec *v1.ExecAction, get *v1.HTTPGetAction, c *v1.Container, p *field.Path, more ...handler) field.ErrorList {
	all := append([]handler{
		{name: "exec", set: exec != nil, check: func() field.ErrorList {
			if len(exec.Command) == 0 {
				return field.ErrorList{field.Required(p.Child("exec", "command"), "")}
			}
			return nil
		}},
		{name: "httpGet", set: get != nil, check: func() field.ErrorList { return validateHTTPGet(get, c, p.Child("httpGet")) }},
	}, more...)
	var errs field.ErrorList
	var listed, set []string
	for _, h := range all {
		if !h.unlisted {
			listed = append(listed, h.name)
		}
		if h.set {
			set = append(set, h.name)
			errs = append(errs, h.check()...)
		}
	}
	switch len(set) {
	case 0:
		errs = append(errs, field.Required(p, "must specify a handler type: one of "+strings.Join(listed, ", ")))
	case 1:
	default:
		errs = append(errs, field.Forbidden(p.Child(set[1]), "may not specify more than 1 handler type (also has "+set[0]+")"))
	}
	return errs
}

// validateAppArmor is the API server's ValidateAppArmorProfileField.
func validateAppArmor(ap *v1.AppArmorProfile, p *field.Path) field.ErrorList {
	if ap == nil {
		return nil
	}
	errs := supported(p.Child("type"), ap.Type, v1.AppArmorProfileTypeRuntimeDefault, v1.AppArmorProfileTypeUnconfined, v1.AppArmorProfileTypeLocalhost)
	return append(errs, validateLocalhostProfile("AppArmor", ap.Type == v1.AppArmorProfileTypeLocalhost, ap.LocalhostProfile, strings.TrimSpace,
		func(profile string, p *field.Path) field.ErrorList {
			if len(profile) > 4095 {
				return field.ErrorList{field.TooLongMaxLength(p, profile, 4095)}
			}
			return nil
		}, p.Child("localhostProfile"))...)
}

func validateSeccomp(sp *v1.SeccompProfile, p *field.Path) field.ErrorList {
	if sp == nil {
		return nil
	}
	errs := supported(p.Child("type"), sp.Type, v1.SeccompProfileTypeRuntimeDefault, v1.SeccompProfileTypeUnconfined, v1.SeccompProfileTypeLocalhost)
	return append(errs, validateLocalhostProfile("seccomp", sp.Type == v1.SeccompProfileTypeLocalhost, sp.LocalhostProfile, func(s string) string { return s },
		validateRelativePath, p.Child("localhostProfile"))...)
}

// validateLocalhostProfile is the rule AppArmor and seccomp profiles share:
// a localhost profile (empty once norm has trimmed it counts as unset) is
// required when the type of kind is Localhost, and then judged by check;
// with any other type it must not be set.
func validateLocalhostProfile(kind string, localhost bool, profile *string, norm func(string) string, check func(string, *field.Path) field.ErrorList, p *field.Path) field.ErrorList {
	switch {
	case localhost && (profile == nil || norm(*profile) == ""):
		return field.ErrorList{field.Required(p, "must be set when "+kind+" type is Localhost")}
	case localhost:
		return check(*profile, p)
	case profile != nil:
		return field.ErrorList{field.Invalid(p, *profile, "can only be set when "+kind+" type is Localhost")}
	}
	return nil
}

func validateIDs(user, group *int64, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if user != nil {
		for _, msg := range validation.IsValidUserID(*user) {
			errs = append(errs, field.Invalid(p.Child("runAsUser"), *user, msg))
		}
	}
	if group != nil {
		for _, msg := range validation.IsValidGroupID(*group) {
			errs = append(errs, field.Invalid(p.Child("runAsGroup"), *group, msg))
		}
	}
	return errs
}

func validatePodSecurityContext(sc *v1.PodSecurityContext, p *field.Path) field.ErrorList {
	if sc == nil {
		return nil
	}
	var errs field.ErrorList
	errs = append(errs, validateIDs(sc.RunAsUser, sc.RunAsGroup, p)...)
	if sc.FSGroup != nil {
		for _, msg := range validation.IsValidGroupID(*sc.FSGroup) {
			errs = append(errs, field.Invalid(p.Child("fsGroup"), *sc.FSGroup, msg))
		}
	}
	for i, g := range sc.SupplementalGroups {
		for _, msg := range validation.IsValidGroupID(g) {
			errs = append(errs, field.Invalid(p.Child("supplementalGroups").Index(i), g, msg))
		}
	}
	errs = append(errs, validateSeccomp(sc.SeccompProfile, p.Child("seccompProfile"))...)
	names := map[string]bool{}
	for i, s := range sc.Sysctls {
		sp := p.Child("sysctls").Index(i).Child("name")
		switch {
		case s.Name == "":
			errs = append(errs, field.Required(sp, ""))
		case len(s.Name) > 253 || !sysctlName.MatchString(s.Name):
			errs = append(errs, field.Invalid(sp, s.Name, "must have at most 253 characters and match regex "+sysctlName.String()))
		case names[s.Name]:
			errs = append(errs, field.Duplicate(sp, s.Name))
		}
		names[s.Name] = true
	}
	return append(errs, validateLabelsAndOS(sc.SELinuxOptions, sc.AppArmorProfile, sc.WindowsOptions, p)...)
}

// sysctlName is Kubernetes' sysctl name pattern (dots or slashes as separators).
var sysctlName = regexp.MustCompile(`^([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?$`)

func validateContainerSecurityContext(sc *v1.SecurityContext, p *field.Path) field.ErrorList {
	if sc == nil {
		return nil
	}
	var errs field.ErrorList
	errs = append(errs, validateIDs(sc.RunAsUser, sc.RunAsGroup, p)...)
	errs = append(errs, validateSeccomp(sc.SeccompProfile, p.Child("seccompProfile"))...)
	privileged := sc.Privileged != nil && *sc.Privileged
	if sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation {
		if privileged {
			errs = append(errs, field.Invalid(p, "", "cannot set `allowPrivilegeEscalation` to false and `privileged` to true"))
		}
		if sc.Capabilities != nil {
			for _, cp := range sc.Capabilities.Add {
				if strings.EqualFold(strings.TrimPrefix(strings.ToUpper(string(cp)), "CAP_"), "SYS_ADMIN") {
					errs = append(errs, field.Invalid(p, "", "cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN"))
				}
			}
		}
	}
	if sc.ProcMount != nil {
		errs = append(errs, supported(p.Child("procMount"), *sc.ProcMount, v1.DefaultProcMount)...)
	}
	return append(errs, validateLabelsAndOS(sc.SELinuxOptions, sc.AppArmorProfile, sc.WindowsOptions, p)...)
}

// validateLabelsAndOS checks what pod and container security contexts
// share: no SELinux labels, a valid AppArmor profile, no Windows options.
func validateLabelsAndOS(se *v1.SELinuxOptions, ap *v1.AppArmorProfile, win *v1.WindowsSecurityContextOptions, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if se != nil {
		errs = append(errs, field.Forbidden(p.Child("seLinuxOptions"), notSupported+": SELinux labels"))
	}
	errs = append(errs, validateAppArmor(ap, p.Child("appArmorProfile"))...)
	if win != nil {
		errs = append(errs, field.Forbidden(p.Child("windowsOptions"), "Windows options on a Linux node"))
	}
	return errs
}

// supported is field.NotSupported when v is not one of the valid values.
func supported[T ~string](p *field.Path, v T, valid ...T) field.ErrorList {
	for _, ok := range valid {
		if v == ok {
			return nil
		}
	}
	return field.ErrorList{field.NotSupported(p, v, valid)}
}
