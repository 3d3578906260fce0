package systemd

import "testing"

// What devices_cgroupfs_test.go (package systemd_test, since
// systemd/cgroupfs imports this package) uses of the device probe of
// devices_test.go.

type HeldChild = sdHeldChild

var (
	StartHeldWorkload = sdStartHeldWorkload
	DeviceProbe       = deviceProbe
	ProbeResults      = probeResults
	CheckProbe        = checkProbe
	CheckDevicesList  = checkDevicesList
)

func (h *sdHeldChild) PID() int { return h.pid() }

func (h *sdHeldChild) ReleaseAndReport(t *testing.T) map[string]string {
	return h.releaseAndReport(t)
}
