package daemon

import (
	"context"
	"errors"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/minikubelet/minikubelet/internal/api"
	"github.com/minikubelet/minikubelet/systemd"
)

// usageDriver counts Usage calls and answers from a table (the rest of
// the Driver is not used by the sampler).
type usageDriver struct {
	systemd.Driver
	cpu   map[string]uint64 // id ("" = pod) -> cumulative ns
	calls int
}

func (d *usageDriver) Usage(_ context.Context, _ types.UID, id string) (systemd.Usage, error) {
	d.calls++
	v, ok := d.cpu[id]
	if !ok {
		return systemd.Usage{}, errors.New("no such cgroup")
	}
	return systemd.Usage{CPUUsageNanos: v, MemoryBytes: 1 << 20, PIDs: 1}, nil
}

// Usage is read only when an extra is asked for, at most once per
// usageEvery, for the pod and its active containers; the CPU rate needs a
// previous sample no older than rateWindow.
func TestUsageSampledOnDemand(t *testing.T) {
	store := api.NewStore(0)
	drv := &usageDriver{cpu: map[string]uint64{"": 1e9, "c1": 4e8, "c2": 1e8}}
	s := newUsageSampler(drv)
	now := time.Unix(1000, 0)
	s.now = func() time.Time { return now }
	src := usageSource{store, s}
	uid := types.UID("u1")
	store.SetExtra(uid, api.PodExtra{Scopes: []api.ScopeInfo{{ID: "sb"}, {ID: "c1", Container: "web", ActiveState: "active"},
		{ID: "c2", Container: "old", ActiveState: "inactive"}}})
	if drv.calls != 0 {
		t.Fatalf("usage read before anyone asked: %d calls", drv.calls)
	}
	ex, ok := src.Extra(uid)
	if !ok || ex.Usage == nil || ex.Usage.UsageCoreNanoSeconds != 1e9 || ex.Usage.UsageNanoCores != nil {
		t.Fatalf("first read: %+v (want a sample, no rate yet)", ex.Usage)
	}
	if _, ok := ex.ContainerUsage["web"]; !ok || len(ex.ContainerUsage) != 1 {
		t.Errorf("container usage %+v: want the active container only", ex.ContainerUsage)
	}
	if drv.calls != 2 {
		t.Errorf("%d Usage calls; want 2 (pod, active container)", drv.calls)
	}
	now = now.Add(usageEvery / 2)
	src.Extra(uid)
	if drv.calls != 2 {
		t.Errorf("re-read within usageEvery: %d calls", drv.calls)
	}
	now = now.Add(usageEvery)
	drv.cpu[""] += 3e9
	ex, _ = src.Extra(uid)
	wantRate := uint64(3e9 / (1.5 * usageEvery.Seconds()))
	if ex.Usage.UsageNanoCores == nil || *ex.Usage.UsageNanoCores != wantRate {
		t.Errorf("rate %v; want %d", ex.Usage.UsageNanoCores, wantRate)
	}
	now = now.Add(rateWindow + time.Second)
	ex, _ = src.Extra(uid)
	if ex.Usage.UsageNanoCores != nil {
		t.Errorf("rate %d over more than rateWindow", *ex.Usage.UsageNanoCores)
	}
	s.forget(map[string]bool{})
	if len(s.last) != 0 || len(s.recent) != 0 {
		t.Errorf("forget kept %d samples, %d pods", len(s.last), len(s.recent))
	}
	if _, ok := src.Extra("unknown"); ok {
		t.Error("extra of an unknown pod")
	}
}
