package runtime

// apparmor.go: which AppArmor profile a container runs under, chosen as
// the kubelet and containerd's CRI plugin choose it, and the loading of
// containerd's default profile. The container init enters the profile on
// its exec (shim/apparmor.go).

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"

	mobyapparmor "github.com/moby/profiles/apparmor"
	v1 "k8s.io/api/core/v1"
)

// AppArmorDefaultProfile is the name containerd gives its RuntimeDefault
// profile. Its rules are moby's default template, which containerd and
// podman replicate (github.com/moby/profiles/apparmor).
const AppArmorDefaultProfile = "cri-containerd.apparmor.d"

// appArmorHost is what the node offers; a var so tests can stand in.
var appArmorHost = struct {
	enabled  func() bool
	loaded   func(name string) (bool, error)
	install  func(name string) error
	haveTool func() bool
}{
	enabled: func() bool {
		// runc's and containerd's test: securityfs shows apparmor and the
		// module says Y.
		if _, err := os.Stat("/sys/kernel/security/apparmor"); err != nil {
			return false
		}
		b, err := os.ReadFile("/sys/module/apparmor/parameters/enabled")
		return err == nil && len(b) > 0 && b[0] == 'Y'
	},
	loaded:  mobyapparmor.IsLoaded,
	install: mobyapparmor.InstallDefault,
	haveTool: func() bool {
		_, err := exec.LookPath("apparmor_parser")
		return err == nil
	},
}

// appArmorState remembers the host check and the default profile's load.
type appArmorState struct {
	once    sync.Once
	enabled bool
	mu      sync.Mutex
	loaded  bool // the default profile is in the kernel
}

func (a *appArmorState) hostEnabled(log *slog.Logger) bool {
	a.once.Do(func() {
		a.enabled = appArmorHost.enabled()
		if !a.enabled {
			log.Info("AppArmor is not enabled on this host: containers run without an AppArmor profile, and pods that ask for one (RuntimeDefault or Localhost) are refused, as the kubelet does")
		} else if !appArmorHost.haveTool() {
			log.Warn("AppArmor is enabled but apparmor_parser is not installed: containers that need the RuntimeDefault profile (" + AppArmorDefaultProfile + ") fail to be created until it is loaded, as with containerd (install the apparmor package)")
		}
	})
	return a.enabled
}

// ensureDefault loads containerd's default profile unless the kernel has
// it (loaded by us before, or by containerd on the same node). Like
// containerd, a load that fails fails the container.
func (a *appArmorState) ensureDefault() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.loaded {
		return nil
	}
	if ok, err := appArmorHost.loaded(AppArmorDefaultProfile); err == nil && ok {
		a.loaded = true
		return nil
	}
	if !appArmorHost.haveTool() {
		return fmt.Errorf("load AppArmor profile %s: apparmor_parser is not installed (install the apparmor package)", AppArmorDefaultProfile)
	}
	if err := appArmorHost.install(AppArmorDefaultProfile); err != nil {
		return fmt.Errorf("load AppArmor profile %s: %w", AppArmorDefaultProfile, err)
	}
	a.loaded = true
	return nil
}

// appArmorProfileOf is the kubelet's apparmor.GetProfile: the container's
// securityContext.appArmorProfile, then the legacy annotation
// container.apparmor.security.beta.kubernetes.io/<container> (static pods
// may carry only it), then the pod's securityContext.appArmorProfile.
func appArmorProfileOf(pod *v1.Pod, c *v1.Container) *v1.AppArmorProfile {
	if c.SecurityContext != nil && c.SecurityContext.AppArmorProfile != nil {
		return c.SecurityContext.AppArmorProfile
	}
	if val, ok := pod.Annotations[v1.DeprecatedAppArmorBetaContainerAnnotationKeyPrefix+c.Name]; ok {
		switch {
		case val == v1.DeprecatedAppArmorBetaProfileRuntimeDefault:
			return &v1.AppArmorProfile{Type: v1.AppArmorProfileTypeRuntimeDefault}
		case val == v1.DeprecatedAppArmorBetaProfileNameUnconfined:
			return &v1.AppArmorProfile{Type: v1.AppArmorProfileTypeUnconfined}
		case strings.HasPrefix(val, v1.DeprecatedAppArmorBetaProfileNamePrefix):
			name := strings.TrimPrefix(val, v1.DeprecatedAppArmorBetaProfileNamePrefix)
			return &v1.AppArmorProfile{Type: v1.AppArmorProfileTypeLocalhost, LocalhostProfile: &name}
		}
	}
	if pod.Spec.SecurityContext != nil && pod.Spec.SecurityContext.AppArmorProfile != nil {
		return pod.Spec.SecurityContext.AppArmorProfile
	}
	return nil
}

// errAppArmorNotEnabled is the kubelet's admission refusal ("Cannot
// enforce AppArmor: AppArmor is not enabled on the host").
var errAppArmorNotEnabled = errors.New("Cannot enforce AppArmor: AppArmor is not enabled on the host")

// appArmorProfile picks the profile the container's process enters on
// exec ("" = unconfined) and whether it is containerd's default:
//   - AppArmor off: no profile; a pod that asks for one (anything but
//     Unconfined) is refused, as the kubelet's admission does;
//   - Unconfined: none; RuntimeDefault or nothing said: containerd's
//     default profile, except for privileged containers (containerd leaves
//     them unconfined);
//   - Localhost: that profile, which must be loaded (containerd: "apparmor
//     profile not found").
func appArmorProfile(pod *v1.Pod, c *v1.Container, privileged, enabled bool, loaded func(string) (bool, error)) (name string, isDefault bool, err error) {
	p := appArmorProfileOf(pod, c)
	if !enabled {
		if p != nil && p.Type != v1.AppArmorProfileTypeUnconfined {
			return "", false, errAppArmorNotEnabled
		}
		return "", false, nil
	}
	if p == nil {
		p = &v1.AppArmorProfile{Type: v1.AppArmorProfileTypeRuntimeDefault}
	}
	switch p.Type {
	case v1.AppArmorProfileTypeUnconfined:
		return "", false, nil
	case v1.AppArmorProfileTypeRuntimeDefault:
		if privileged {
			return "", false, nil
		}
		return AppArmorDefaultProfile, true, nil
	case v1.AppArmorProfileTypeLocalhost:
		if p.LocalhostProfile == nil || strings.TrimSpace(*p.LocalhostProfile) == "" {
			return "", false, fmt.Errorf("invalid empty AppArmor profile name: %q", p)
		}
		name := strings.TrimPrefix(*p.LocalhostProfile, v1.DeprecatedAppArmorBetaProfileNamePrefix)
		if ok, err := loaded(name); err != nil {
			return "", false, fmt.Errorf("AppArmor profile %s: %w", name, err)
		} else if !ok {
			return "", false, fmt.Errorf("apparmor profile not found %s", name)
		}
		return name, false, nil
	}
	return "", false, fmt.Errorf("unknown AppArmor profile type %q", p.Type)
}

// containerAppArmor is the profile for the container spec, loading the
// default one when it is needed.
func (r *Runtime) containerAppArmor(pod *v1.Pod, c *v1.Container, privileged bool) (string, error) {
	name, isDefault, err := appArmorProfile(pod, c, privileged, r.apparmor.hostEnabled(r.log()), appArmorHost.loaded)
	if err != nil {
		return "", fmt.Errorf("container %s: %w", c.Name, err)
	}
	if isDefault {
		if err := r.apparmor.ensureDefault(); err != nil {
			return "", fmt.Errorf("container %s: %w", c.Name, err)
		}
	}
	return name, nil
}
