package systemd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDetectDriver(t *testing.T) {
	old := systemdRunDir
	t.Cleanup(func() { systemdRunDir = old })
	dir := t.TempDir()
	systemdRunDir = filepath.Join(dir, "system")
	for flag, want := range map[string]string{"auto": "cgroupfs", "": "cgroupfs", "systemd": "systemd", "cgroupfs": "cgroupfs"} {
		if got, err := DetectDriver(flag); err != nil || got != want {
			t.Errorf("DetectDriver(%q) without systemd = %q, %v; want %q", flag, got, err, want)
		}
	}
	if err := os.Mkdir(systemdRunDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if got, err := DetectDriver("auto"); err != nil || got != "systemd" {
		t.Errorf("DetectDriver(auto) with systemd = %q, %v", got, err)
	}
	_, err := DetectDriver("cgroupfs2")
	if err == nil || !strings.Contains(err.Error(), "--cgroup-driver") || !strings.Contains(err.Error(), "cgroupfs2") {
		t.Errorf("invalid value: %v (want an error naming the flag and value)", err)
	}
}
