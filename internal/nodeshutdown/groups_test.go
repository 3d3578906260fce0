package nodeshutdown

import (
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func i32(n int32) *int32 { return &n }
func i64(n int64) *int64 { return &n }

func pod(name string, mut ...func(*v1.Pod)) *v1.Pod {
	p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, UID: types.UID("uid-" + name)},
		Spec: v1.PodSpec{TerminationGracePeriodSeconds: i64(30)}}
	for _, m := range mut {
		m(p)
	}
	return p
}

func class(c string) func(*v1.Pod) { return func(p *v1.Pod) { p.Spec.PriorityClassName = c } }
func prio(n int32) func(*v1.Pod)   { return func(p *v1.Pod) { p.Spec.Priority = i32(n) } }
func grace(s int64) func(*v1.Pod) {
	return func(p *v1.Pod) { p.Spec.TerminationGracePeriodSeconds = i64(s) }
}

func TestCritical(t *testing.T) {
	for _, c := range []struct {
		pod  *v1.Pod
		want bool
	}{
		{pod("plain"), false},
		{pod("node-critical", class(SystemNodeCritical)), true},
		{pod("cluster-critical", class(SystemClusterCritical)), true},
		{pod("other-class", class("high")), false},
		{pod("prio-2e9", prio(2000000000)), true},
		{pod("prio-below", prio(1999999999)), false},
		{pod("negative", prio(-5)), false},
		// spec.priority wins over the class (admission would have set both).
		{pod("explicit-low", class(SystemNodeCritical), prio(10)), false},
	} {
		if got := IsCritical(c.pod); got != c.want {
			t.Errorf("%s: critical=%v, want %v", c.pod.Name, got, c.want)
		}
	}
}

func TestGroupsAndBudgets(t *testing.T) {
	cfg := Config{GracePeriod: 30 * time.Second, CriticalPodsGracePeriod: 10 * time.Second}
	gs := cfg.Groups()
	if len(gs) != 2 || gs[0].Priority != 0 || gs[0].Grace != 20*time.Second ||
		gs[1].Priority != SystemCriticalPriority || gs[1].Grace != 10*time.Second {
		t.Fatalf("groups %+v", gs)
	}
	if cfg.InhibitDelay() != 30*time.Second {
		t.Fatalf("inhibit delay %s", cfg.InhibitDelay())
	}
	all := Config{GracePeriod: 30 * time.Second, CriticalPodsGracePeriod: 30 * time.Second}.Groups()
	if all[0].Grace != 0 || all[1].Grace != 30*time.Second {
		t.Fatalf("all for critical: %+v", all)
	}
	for _, off := range []Config{{}, {CriticalPodsGracePeriod: 10 * time.Second}, {GracePeriod: 5 * time.Second, CriticalPodsGracePeriod: 10 * time.Second}} {
		if off.Enabled() || off.Groups() != nil || off.InhibitDelay() != 0 {
			t.Errorf("%+v: enabled", off)
		}
	}
	if err := (Config{GracePeriod: 5 * time.Second, CriticalPodsGracePeriod: 10 * time.Second}).Validate(); err == nil ||
		!strings.Contains(err.Error(), "--shutdown-grace-period-critical-pods") {
		t.Errorf("critical > total: %v", err)
	}
	if err := (Config{CriticalPodsGracePeriod: 10 * time.Second}).Validate(); err != nil {
		t.Errorf("--shutdown-grace-period=0 with the default critical part: %v", err)
	}
	if err := (Config{GracePeriod: -time.Second}).Validate(); err == nil {
		t.Error("negative accepted")
	}
}

func TestAssign(t *testing.T) {
	cfg := Config{GracePeriod: 30 * time.Second, CriticalPodsGracePeriod: 10 * time.Second}
	pods := []*v1.Pod{pod("a"), pod("dns", class(SystemNodeCritical)), pod("low", prio(-10)),
		pod("b", prio(1000)), pod("etcd", prio(2000001000)), pod("api", class(SystemClusterCritical))}
	gs := Assign(cfg.Groups(), pods)
	names := func(g Group) string { return podNames(g.Pods) }
	if got := names(gs[0]); got != "default/a,default/low,default/b" {
		t.Errorf("regular group: %s", got)
	}
	if got := names(gs[1]); got != "default/dns,default/etcd,default/api" {
		t.Errorf("critical group: %s", got)
	}
	// The input groups are not changed; unsorted groups are sorted.
	rev := []Group{{Priority: 100, Grace: time.Second}, {Priority: 0, Grace: 2 * time.Second}}
	out := Assign(rev, []*v1.Pod{pod("x", prio(50)), pod("y", prio(100))})
	if out[0].Priority != 0 || names(out[0]) != "default/x" || names(out[1]) != "default/y" || rev[0].Pods != nil {
		t.Errorf("assign %+v", out)
	}
}

func TestPodGrace(t *testing.T) {
	for _, c := range []struct {
		pod   *v1.Pod
		group time.Duration
		want  time.Duration
	}{
		{pod("default30"), 20 * time.Second, 20 * time.Second},
		{pod("short", grace(5)), 20 * time.Second, 5 * time.Second},
		{pod("equal", grace(20)), 20 * time.Second, 20 * time.Second},
		{pod("zero", grace(0)), 20 * time.Second, 0},
		{pod("unset", func(p *v1.Pod) { p.Spec.TerminationGracePeriodSeconds = nil }), 10 * time.Second, 10 * time.Second},
		{pod("groupzero"), 0, 0},
	} {
		if got := PodGrace(c.pod, c.group); got != c.want {
			t.Errorf("%s: %s, want %s", c.pod.Name, got, c.want)
		}
	}
}
