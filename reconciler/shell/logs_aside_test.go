package shell

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// A pod put back with the same UID (its file removed and restored
// unchanged) is a new instance: its containers start new log files
// instead of appending to the previous instance's 0.log, whose folder is
// set aside under the retention rule. A daemon restart (the pod's record
// exists) sets nothing aside.
func TestNewPodInstanceSetsOldLogsAside(t *testing.T) {
	root, logs := t.TempDir(), t.TempDir()
	n := NewNode(NodeOptions{RootDir: root, LogDir: logs})
	defer n.Close()
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web-node1", UID: "uid1"}}
	old := filepath.Join(logs, "default_web-node1_uid1")
	if err := os.MkdirAll(filepath.Join(old, "app"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(old, "app", "0.log"), []byte("old instance\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := n.ensureRecord(pod); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Fatalf("the previous instance's log folder is still the pod's (%v)", err)
	}
	ents, _ := os.ReadDir(logs)
	if len(ents) != 1 || !strings.HasPrefix(ents[0].Name(), "default_web-node1_uid1.before-") || strings.Count(ents[0].Name(), "_") != 2 {
		t.Fatalf("log dir holds %v, want the old folder set aside", ents)
	}
	if b, err := os.ReadFile(filepath.Join(logs, ents[0].Name(), "app", "0.log")); err != nil || string(b) != "old instance\n" {
		t.Fatalf("old log: %q %v", b, err)
	}
	// Same instance again (a daemon restart): nothing moves.
	if err := os.MkdirAll(filepath.Join(old, "app"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := n.ensureRecord(pod); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(old); err != nil {
		t.Fatalf("the running instance's logs were moved: %v", err)
	}
}
