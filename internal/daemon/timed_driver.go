package daemon

import (
	"context"
	"errors"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/minikubelet/minikubelet/internal/api"
	"github.com/minikubelet/minikubelet/systemd"
)

// timedDriver reports the latency of the systemd driver's calls (each a
// D-Bus method call or a job, named by the driver method) to the metrics.
type timedDriver struct {
	systemd.Driver
	m *api.Metrics
}

func (d timedDriver) observe(method string, start time.Time, err error) {
	d.m.ObserveDBusCall(method, time.Since(start), err)
}

func (d timedDriver) Init(ctx context.Context) (err error) {
	defer func(t time.Time) { d.observe("Init", t, err) }(time.Now())
	return d.Driver.Init(ctx)
}

func (d timedDriver) EnsurePod(ctx context.Context, pod systemd.PodCgroup) (err error) {
	defer func(t time.Time) { d.observe("EnsurePod", t, err) }(time.Now())
	return d.Driver.EnsurePod(ctx, pod)
}

func (d timedDriver) StartScope(ctx context.Context, spec systemd.ScopeSpec) (err error) {
	defer func(t time.Time) { d.observe("StartScope", t, err) }(time.Now())
	return d.Driver.StartScope(ctx, spec)
}

func (d timedDriver) StopScope(ctx context.Context, id string, kill bool) (err error) {
	defer func(t time.Time) { d.observe("StopScope", t, err) }(time.Now())
	return d.Driver.StopScope(ctx, id, kill)
}

func (d timedDriver) RemovePod(ctx context.Context, uid types.UID) (err error) {
	defer func(t time.Time) { d.observe("RemovePod", t, err) }(time.Now())
	return d.Driver.RemovePod(ctx, uid)
}

func (d timedDriver) List(ctx context.Context) (us []systemd.UnitState, err error) {
	defer func(t time.Time) { d.observe("List", t, err) }(time.Now())
	return d.Driver.List(ctx)
}

// UpdateQOS passes through to drivers that have it.
func (d timedDriver) UpdateQOS(ctx context.Context, qos systemd.QOSClass, r systemd.Resources) (err error) {
	u, ok := d.Driver.(qosUpdater)
	if !ok {
		return errors.New("driver cannot update QoS cgroups")
	}
	defer func(t time.Time) { d.observe("UpdateQOS", t, err) }(time.Now())
	return u.UpdateQOS(ctx, qos, r)
}
