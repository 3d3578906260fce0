package reconciler

import (
	"testing"
)

// benchNode builds n two-container pods, all running (steady state), with
// their persisted statuses, as the daemon sees them on every resync.
func benchNode(b *testing.B, n int) *sim {
	s := newSim(&testing.T{})
	for i := 0; i < n; i++ {
		pod := mkPod("uid-"+u32(uint32(i)), "pod"+u32(uint32(i)), "web", "client")
		s.want(pod)
	}
	s.present("img-web:1", "img-client:1")
	for i := 0; i < 3; i++ {
		s.step()
	}
	r := s.plan()
	for _, pp := range r.Pods {
		if len(pp.Actions) != 0 {
			b.Fatalf("not steady: %v", pp.Actions)
		}
	}
	return s
}

// BenchmarkPlan500Pods is the reconcile cost per resync at 500 running pods
// (issue 8 reports it next to the daemon's CPU use).
func BenchmarkPlan500Pods(b *testing.B) {
	s := benchNode(b, 500)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		Plan(s.d, s.o, s.now, s.cfg)
	}
}

// BenchmarkPlan500PodsCold is the first plan after 500 manifests appear.
func BenchmarkPlan500PodsCold(b *testing.B) {
	s := newSim(&testing.T{})
	for i := 0; i < 500; i++ {
		s.want(mkPod("uid-"+u32(uint32(i)), "pod"+u32(uint32(i)), "web", "client"))
	}
	s.present("img-web:1", "img-client:1")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		Plan(s.d, s.o, s.now, s.cfg)
	}
}
