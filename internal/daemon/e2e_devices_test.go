package daemon

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// devicesProbeScript runs in a container: it creates device nodes (the
// default capabilities include CAP_MKNOD, and runc's allowlist lets any
// node be created) and opens each, one line per step, then sleeps.
const devicesProbeScript = `for spec in "sda b 8 0" "kmsg c 1 11" "null c 1 3"; do
  set -- $spec
  mknod /tmp/$1 $2 $3 $4 && echo "MKNOD-$1 OK" || echo "MKNOD-$1 ERR"
done
for n in sda kmsg null; do
  if out=$(head -c1 /tmp/$n 2>&1 >/dev/null); then echo "OPEN-$n OK"; else echo "OPEN-$n ERR $out"; fi
done
echo DONE
exec sleep 3600`

// TestEscapeDeviceAllowlist (part of the escape suite, go test -run
// Escape): an unprivileged container may mknod a disk's node but not open
// it ("Operation not permitted" from the device cgroup), while /dev/null's
// works; a privileged one may open it.
func TestEscapeDeviceAllowlist(t *testing.T) {
	n := newE2ENode(t)
	n.Start()
	n.Write("devices.yaml", fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: devices
  namespace: default
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: plain
    image: %[1]s
    command: ["sh", "-c", %[2]q]
  - name: privileged
    image: %[1]s
    command: ["sh", "-c", %[2]q]
    securityContext:
      privileged: true
`, testImage, devicesProbeScript))
	n.WaitPod("devices-node1", "Running", 60*time.Second, running)
	probe := func(container string) map[string]string {
		got := map[string]string{}
		n.WaitFor(container+"'s probe output", 30*time.Second, func() bool {
			out, err := n.CLI("logs", "devices-node1", "-c", container, "--log-dir", n.Logs)
			if err != nil || !strings.Contains(out, "DONE") {
				return false
			}
			for _, line := range strings.Split(out, "\n") {
				k, v, _ := strings.Cut(line, " ")
				got[k] = v
			}
			return true
		})
		return got
	}
	plain := probe("plain")
	t.Logf("unprivileged probe: %v", plain)
	for _, k := range []string{"MKNOD-sda", "MKNOD-kmsg", "MKNOD-null", "OPEN-null"} {
		if plain[k] != "OK" {
			t.Errorf("unprivileged %s: %q, want OK (all: %v)", k, plain[k], plain)
		}
	}
	for _, k := range []string{"OPEN-sda", "OPEN-kmsg"} {
		if !strings.HasPrefix(plain[k], "ERR") || !strings.Contains(plain[k], "Operation not permitted") {
			t.Errorf("escape device-allowlist: attempted mknod and open of %s: GOT OUT (%q, want ERR ... Operation not permitted)", k, plain[k])
		} else {
			t.Logf("escape device-allowlist: attempted mknod and open of %s: blocked (%s)", strings.TrimPrefix(k, "OPEN-"), strings.TrimPrefix(plain[k], "ERR "))
		}
	}
	priv := probe("privileged")
	t.Logf("privileged probe: %v", priv)
	for _, k := range []string{"MKNOD-kmsg", "OPEN-kmsg", "OPEN-null"} {
		if priv[k] != "OK" {
			t.Errorf("privileged %s: %q, want OK (all: %v)", k, priv[k], priv)
		}
	}
	// 8:0 may not exist on this machine (ENXIO); it must not be refused.
	if strings.Contains(priv["OPEN-sda"], "not permitted") {
		t.Errorf("privileged OPEN-sda refused: %q", priv["OPEN-sda"])
	}
}
