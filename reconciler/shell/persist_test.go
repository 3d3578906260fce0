package shell

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/minikubelet/minikubelet/reconciler"
)

// TestPersistFailureSaidOnce (issue 14, chaos scenario 4): with --root-dir
// full every round's status write fails; the daemon used to log a warning
// per pod per round (several a second, into a journal that may share the
// full disk). It is said once per pod until a write succeeds, then once
// that it works again.
func TestPersistFailureSaidOnce(t *testing.T) {
	var logBuf bytes.Buffer
	n := NewNode(NodeOptions{RootDir: t.TempDir(), NodeName: "node1", HostIP: "192.0.2.1",
		Log: slog.New(slog.NewTextHandler(&logBuf, nil))})
	t.Cleanup(n.Close)
	uid := types.UID("0123")
	if err := os.MkdirAll(filepath.Dir(n.state.podFile(uid)), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(n.state.podFile(uid), []byte("{}"), 0o600)
	// status.json cannot be written: a non-empty folder stands in its way.
	block := n.state.statusFile(uid)
	os.MkdirAll(filepath.Join(block, "x"), 0o755)
	for i := 0; i < 5; i++ {
		n.Persist(&reconciler.PodPlan{UID: uid, Status: &v1.PodStatus{Message: strings.Repeat("x", i)}})
	}
	if c := strings.Count(logBuf.String(), "persist pod status"); c != 1 {
		t.Fatalf("failed status write said %d times in 5 rounds, want once:\n%s", c, logBuf.String())
	}
	os.RemoveAll(block)
	n.Persist(&reconciler.PodPlan{UID: uid, Status: &v1.PodStatus{Message: "ok"}})
	if !strings.Contains(logBuf.String(), "pod status persisted again") {
		t.Fatalf("recovery not said:\n%s", logBuf.String())
	}
	if _, err := os.Stat(block); err != nil {
		t.Fatalf("status not written once possible: %v", err)
	}
}
