package reconciler

// What the external tests of this directory (loop_test.go: the shell's Loop
// driven over the simulated node) may use of the in-package test helpers.

import (
	"time"

	"k8s.io/apimachinery/pkg/types"
)

type Sim = sim

var (
	NewSim   = newSim
	MkPod    = mkPod
	Describe = describe
	Eq       = eq
)

func (s *sim) D() *Desired                                           { return &s.d }
func (s *sim) O() *Observed                                          { return &s.o }
func (s *sim) SetNow(t time.Time)                                    { s.now = t }
func (s *sim) Exec(a Action)                                         { s.exec(a) }
func (s *sim) Running(uid types.UID, name string) *ContainerInstance { return s.running(uid, name) }
