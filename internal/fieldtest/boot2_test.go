//go:build fieldtest

package fieldtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBoot2PodsBack: after a graceful reboot the enabled service starts at
// boot and every static pod runs again, in fresh sandboxes and containers;
// no scope of the last boot is left and no mount of it is stale.
func TestBoot2PodsBack(t *testing.T) {
	var facts bootFacts
	loadState(t, &facts)
	t.Cleanup(func() { journal(t) })
	b, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if strings.TrimSpace(string(b)) == facts.BootID {
		t.Fatal("same boot ID as boot 1: the guest did not reboot")
	}
	if p := show(t, service, "ActiveState", "UnitFileState"); p["ActiveState"] != "active" || p["UnitFileState"] != "enabled" {
		t.Fatalf("%s after the reboot: %v", service, p)
	}
	ents, err := os.ReadDir(manifests)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".yaml") {
			names = append(names, strings.TrimSuffix(e.Name(), ".yaml")+"-vm")
		}
	}
	if len(names) == 0 {
		t.Fatal("no manifests left in " + manifests)
	}
	live := map[string]bool{}
	for _, name := range names {
		p := waitPod(t, name, "Running after the reboot", 3*time.Minute, running)
		for _, cs := range p.Status.ContainerStatuses {
			if old, ok := facts.Containers[name+"/"+cs.Name]; ok && old == cs.ContainerID {
				t.Errorf("%s/%s kept its container %s across the reboot", name, cs.Name, old)
			}
			live[scope(cs)] = true
		}
	}
	for _, sc := range facts.Scopes {
		if live[sc] {
			t.Errorf("scope %s of the last boot is in use again", sc)
			continue
		}
		if st := show(t, sc, "LoadState", "ActiveState"); st["ActiveState"] == "active" {
			t.Errorf("scope %s of the last boot is active: %v", sc, st)
		}
	}
	// Every minikubelet mount belongs to a running pod: none names a
	// container or sandbox of the last boot.
	mounts := minikubeletMounts()
	for _, m := range mounts {
		for k, id := range facts.Containers {
			if id := strings.TrimPrefix(id, "minikubelet://"); id != "" && strings.Contains(m, id) {
				t.Errorf("stale mount of %s (%s) after the reboot: %s", k, id, m)
			}
		}
	}
	t.Logf("%d minikubelet mounts before the reboot, %d after", len(facts.Mounts), len(mounts))
}

// TestBoot2GracefulShutdown: the reboot of boot 1 ran the grace pod's preStop
// hook (logind delay inhibitor, --shutdown-grace-period), whose file is on
// the guest's disk. Depends on branch nodeshutdown.
func TestBoot2GracefulShutdown(t *testing.T) {
	var facts bootFacts
	loadState(t, &facts)
	if !facts.Shutdown {
		t.Skip("needs graceful node shutdown (logind delay inhibitor, --shutdown-grace-period: branch nodeshutdown, not merged yet)")
	}
	b, err := os.ReadFile(filepath.Join(stateDir, "grace", "prestop"))
	if err != nil || strings.TrimSpace(string(b)) != "prestop" {
		t.Errorf("the preStop hook did not run at the reboot: %v %q", err, b)
	}
	if b, err := os.ReadFile(filepath.Join(stateDir, "grace", "term")); err != nil || !strings.Contains(string(b), "term") {
		t.Errorf("the container did not get SIGTERM at the reboot: %v %q", err, b)
	}
	// How the daemon went through the shutdown, also when it passed (how
	// much of the grace period it used under emulation).
	if out, err := try("journalctl", "-b", "-1", "-u", service, "--no-pager", "-o", "short-monotonic", "--grep", "node shutdown|PrepareForShutdown|inhibit"); err == nil {
		t.Logf("the last boot's shutdown, from the daemon's journal:\n%s", out)
	}
	if t.Failed() {
		out, _ := try("journalctl", "-b", "-1", "-u", service, "--no-pager", "-n", "150", "-o", "short-monotonic")
		t.Logf("journalctl -b -1 -u %s (the boot before the reboot):\n%s", service, out)
		out, _ = try("journalctl", "-b", "-1", "-u", "systemd-logind", "--no-pager", "-n", "30", "-o", "short-monotonic")
		t.Logf("journalctl -b -1 -u systemd-logind:\n%s", out)
	}
}
