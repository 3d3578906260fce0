package daemon

import (
	"testing"

	"github.com/minikubelet/minikubelet/internal/e2enode"
	"github.com/minikubelet/minikubelet/internal/testnode"
)

func TestMain(m *testing.M) { testnode.Main(m) }

// The daemon's e2e tests run the real binary through internal/e2enode
// (shared with the chaos suite, internal/chaos).
const testImage = e2enode.TestImage

// e2eNode is one minikubelet daemon under test; its own methods (waitHTTP,
// checkConsistent) sit beside the tests that use them.
type e2eNode struct{ *e2enode.Node }

func newE2ENode(t *testing.T) *e2eNode { return &e2eNode{e2enode.New(t)} }

var (
	buildBinaries = e2enode.BuildBinaries
	importBusybox = e2enode.ImportBusybox
	mountsUnder   = e2enode.MountsUnder
	podManifest   = e2enode.PodManifest
	running       = e2enode.Running
	units         = e2enode.Units
	systemctl     = e2enode.Systemctl
	containerID   = e2enode.ContainerID
	procAlive     = e2enode.ProcAlive
)

func (n *e2eNode) checkConsistent(t *testing.T) { n.CheckConsistent(t) }
