package daemon

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/minikubelet/minikubelet/systemd"
)

// TestDaemonEndToEnd runs the real binary against the test node's systemd:
// one daemon, the pod lifecycle of issue 6 step by step, then its crash.
func TestDaemonEndToEnd(t *testing.T) {
	n := newE2ENode(t)
	n.Start()

	const web = "web-node1"
	n.Write("web.yaml", podManifest("web", "Always", 2, `echo "hello from $HOSTNAME"; i=0; while true; do i=$((i+1)); echo tick $i; sleep 1; done`))
	var webPod v1.Pod

	t.Run("drop becomes Running", func(t *testing.T) {
		webPod = n.WaitPod(web, "Running", 60*time.Second, running)
		if webPod.UID == "" || webPod.Status.QOSClass != v1.PodQOSBestEffort || webPod.Status.PodIP == "" {
			t.Fatalf("pod identity/status: uid %q qos %q podIP %q", webPod.UID, webPod.Status.QOSClass, webPod.Status.PodIP)
		}
		slice := systemd.PlanPod(&webPod, systemd.PlanOptions{}).PodSlice
		u := units(t)
		if !strings.Contains(u, slice) {
			t.Fatalf("pod slice %s not among the units:\n%s", slice, u)
		}
		if got := strings.Count(u, "minikubelet-"); got != 2 {
			t.Fatalf("want 2 scopes (sandbox + container), got %d:\n%s", got, u)
		}
	})

	t.Run("sd_notify READY and watchdog", func(t *testing.T) {
		got := map[string]bool{}
		timeout := time.After(10 * time.Second)
		for !got["READY=1"] || !got["WATCHDOG=1"] {
			select {
			case m := <-n.Notes:
				got[m] = true
			case <-timeout:
				t.Fatalf("notifications received: %v", got)
			}
		}
	})

	t.Run("logs -f follows the container", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, n.Bin, "logs", "-f", "web", "--socket", n.Socket, "--log-dir", n.Logs)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cancel(); cmd.Wait() }()
		sc := bufio.NewScanner(out)
		sawHello, ticks := false, 0
		for sc.Scan() && ticks < 3 {
			line := sc.Text()
			if strings.HasPrefix(line, "hello from web") {
				sawHello = true
			}
			if strings.HasPrefix(line, "tick ") {
				ticks++
			}
		}
		if !sawHello || ticks < 3 {
			t.Fatalf("logs -f: hello seen %v, %d ticks followed", sawHello, ticks)
		}
	})

	t.Run("describe shows slice, scopes and events", func(t *testing.T) {
		out, err := n.CLI("describe", "pod", "web")
		if err != nil {
			t.Fatal(err)
		}
		wide, _ := n.CLI("get", "pods", "-o", "wide")
		t.Logf("get pods -o wide:\n%s\ndescribe pod web:\n%s", wide, out)
		slice := systemd.PlanPod(&webPod, systemd.PlanOptions{}).PodSlice
		for _, want := range []string{"web-node1", "Slice:", slice, "minikubelet-", "Scheduled", "Started", "Running"} {
			if !strings.Contains(out, want) {
				t.Fatalf("describe lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("metrics", func(t *testing.T) {
		hc := http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", n.Socket)
		}}}
		resp, err := hc.Get("http://minikubelet/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, want := range []string{`minikubelet_pods{phase="Running"} 1`, `minikubelet_reconcile_duration_seconds_count{result="success"}`, "minikubelet_pod_start_duration_seconds_count 1", `minikubelet_dbus_call_duration_seconds_count{method="StartScope",result="success"}`} {
			if !strings.Contains(string(b), want) {
				t.Fatalf("metrics lack %q", want)
			}
		}
	})

	t.Run("invalid edit keeps the pod running", func(t *testing.T) {
		good, _ := os.ReadFile(filepath.Join(n.Manifests, "web.yaml"))
		n.Write("web.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers: [{name: c, image: "+testImage+", bogusField: 1}]\n")
		n.WaitFor("InvalidManifest event in describe", 20*time.Second, func() bool {
			out, err := n.CLI("describe", "pod", "web")
			return err == nil && strings.Contains(out, "InvalidManifest")
		})
		p, ok := n.Pod(web)
		if !ok || p.UID != webPod.UID || !running(&p) || p.Status.ContainerStatuses[0].RestartCount != 0 {
			t.Fatalf("pod changed by an invalid edit: ok=%v uid %s (was %s) status %+v", ok, p.UID, webPod.UID, p.Status.ContainerStatuses)
		}
		n.Write("web.yaml", string(good))
		time.Sleep(500 * time.Millisecond)
		p, _ = n.Pod(web)
		if p.UID != webPod.UID || !running(&p) {
			t.Fatalf("restoring the same content changed the pod: uid %s (was %s)", p.UID, webPod.UID)
		}
	})

	t.Run("edit replaces the pod with a new UID", func(t *testing.T) {
		oldUID := string(webPod.UID)
		n.Write("web.yaml", podManifest("web", "Always", 2, `echo "hello v2 from $HOSTNAME"; while true; do echo v2; sleep 1; done`))
		webPod = n.WaitPod(web, "replaced and Running", 60*time.Second, func(p *v1.Pod) bool {
			return string(p.UID) != oldUID && running(p)
		})
		n.WaitFor("old pod's state and units gone", 30*time.Second, func() bool {
			_, err := os.Stat(filepath.Join(n.Root, "pods", oldUID))
			return os.IsNotExist(err) && !strings.Contains(units(t), strings.ReplaceAll(oldUID, "-", "_"))
		})
	})

	t.Run("an edit to a missing image keeps the old pod running", func(t *testing.T) {
		good, _ := os.ReadFile(filepath.Join(n.Manifests, "web.yaml"))
		pid := n.SandboxPID(string(webPod.UID))
		n.Write("web.yaml", strings.Replace(string(good), testImage, "localhost/missing:1", 1))
		n.WaitPod(web, "the new pod waiting for its image", 20*time.Second, func(p *v1.Pod) bool {
			if p.UID == webPod.UID || len(p.Status.ContainerStatuses) == 0 {
				return false
			}
			w := p.Status.ContainerStatuses[0].State.Waiting
			return w != nil && (w.Reason == "ErrImagePull" || w.Reason == "ImagePullBackOff")
		})
		// One event per failed pull (Warning Failed, as the kubelet), not a
		// second one for the failed action.
		desc, err := n.CLI("describe", "pod", "web")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(desc, "FailedPull") || !strings.Contains(desc, `Failed to pull image "localhost/missing:1"`) {
			t.Errorf("pull failure events:\n%s", desc)
		}
		time.Sleep(1500 * time.Millisecond)
		if !procAlive(pid) {
			t.Fatalf("the old pod was stopped for a new pod whose image cannot be pulled")
		}
		n.Write("web.yaml", string(good))
		p := n.WaitPod(web, "the old pod back", 20*time.Second, func(p *v1.Pod) bool { return p.UID == webPod.UID && running(p) })
		if n.SandboxPID(string(p.UID)) != pid {
			t.Fatalf("the old pod was restarted")
		}
	})

	t.Run("init containers run first", func(t *testing.T) {
		n.Write("init.yaml", `apiVersion: v1
kind: Pod
metadata: {name: init}
spec:
  terminationGracePeriodSeconds: 1
  volumes: [{name: work, emptyDir: {}}]
  initContainers:
  - {name: first, image: `+testImage+`, command: [sh, -c, "sleep 1; echo one > /work/order"], volumeMounts: [{name: work, mountPath: /work}]}
  - {name: second, image: `+testImage+`, command: [sh, -c, "test -f /work/order && echo two >> /work/order"], volumeMounts: [{name: work, mountPath: /work}]}
  containers:
  - {name: app, image: `+testImage+`, command: [sh, -c, "cat /work/order; test \"$(cat /work/order)\" = \"$(printf 'one\\ntwo')\" || exit 7; sleep 1000"], volumeMounts: [{name: work, mountPath: /work}]}
`)
		p := n.WaitPod("init-node1", "Running", 60*time.Second, running)
		if len(p.Status.InitContainerStatuses) != 2 {
			t.Fatalf("init statuses: %+v", p.Status.InitContainerStatuses)
		}
		for _, cs := range p.Status.InitContainerStatuses {
			if cs.State.Terminated == nil || cs.State.Terminated.ExitCode != 0 || cs.RestartCount != 0 {
				t.Fatalf("init container %s: %+v restarts %d", cs.Name, cs.State, cs.RestartCount)
			}
		}
		if rc := p.Status.ContainerStatuses[0].RestartCount; rc != 0 {
			t.Fatalf("app restarted %d times: init order not respected", rc)
		}
	})

	t.Run("Always restarts at once, then after the back-off", func(t *testing.T) {
		written := time.Now()
		n.Write("crash.yaml", podManifest("crash", "Always", 1, `echo crashing; exit 1`))
		seen := map[int32]time.Time{}
		firstGap := time.Duration(-1) // first exit → first restart, from the pod's own records
		deadline := time.Now().Add(60 * time.Second)
		for len(seen) < 3 && time.Now().Before(deadline) {
			if p, ok := n.Pod("crash-node1"); ok && len(p.Status.ContainerStatuses) == 1 {
				cs := p.Status.ContainerStatuses[0]
				if _, ok := seen[cs.RestartCount]; !ok && cs.RestartCount > 0 {
					seen[cs.RestartCount] = time.Now()
					if cs.RestartCount == 1 && cs.State.Running != nil && cs.LastTerminationState.Terminated != nil {
						firstGap = cs.State.Running.StartedAt.Sub(cs.LastTerminationState.Terminated.FinishedAt.Time)
					}
				}
				if cs.RestartCount > 0 && (cs.LastTerminationState.Terminated == nil || cs.LastTerminationState.Terminated.ExitCode != 1) {
					t.Fatalf("lastState after a restart: %+v", cs.LastTerminationState)
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
		t1, ok1 := seen[1]
		t2, ok2 := seen[2]
		t3, ok3 := seen[3]
		if !ok1 || !ok2 || !ok3 {
			t.Fatalf("restart counts seen: %v", seen)
		}
		// --crashloop-max 4s: the first restart follows the first exit at
		// once, the next ones wait the (capped) back-off.
		// Measured between the container's own records (finishedAt of the
		// first exit, startedAt of the restart; whole seconds), not by the
		// poller, so a loaded machine's slow pod creation does not count:
		// "at once" is well under the 4s back-off.
		// When the poller missed restart 1 running (it exits at once), the
		// same rule relative to the next gap, which waits the back-off.
		if firstGap >= 3*time.Second || (firstGap < 0 && t1.Sub(written) >= t2.Sub(t1)) {
			t.Fatalf("first restart came %s after the first exit (file written %s before it; the second restart %s after the first), want at once (no back-off)",
				firstGap, t1.Sub(written), t2.Sub(t1))
		}
		for i, d := range []time.Duration{t2.Sub(t1), t3.Sub(t2)} {
			if d < 3*time.Second {
				t.Fatalf("restart %d came %s after the previous, want the 4s back-off", i+2, d)
			}
		}
		// Only the newest exited instance keeps its root filesystem (and the
		// current one its own): older ones are collected at each restart.
		if cp, ok := n.Pod("crash-node1"); ok {
			rootfs := filepath.Join(n.Root, "pods", string(cp.UID), "rootfs")
			var ents []os.DirEntry
			var mounted int
			collected := func() bool {
				ents, _ = os.ReadDir(rootfs)
				mounted = len(mountsUnder(rootfs))
				return len(ents) <= 2 && mounted <= 2
			}
			for deadline := time.Now().Add(20 * time.Second); !collected(); time.Sleep(150 * time.Millisecond) {
				if time.Now().After(deadline) {
					var names []string
					for _, e := range ents {
						names = append(names, e.Name())
					}
					t.Fatalf("older exited instances not collected: rootfs dirs %v, %d mounted", names, mounted)
				}
			}
		}
		if out, err := n.CLI("describe", "pod", "crash"); err != nil || !strings.Contains(out, "BackOff") {
			t.Fatalf("describe lacks the BackOff event (%v):\n%s", err, out)
		}
		out, _ := n.CLI("get", "pods")
		if !strings.Contains(out, "crash-node1") {
			t.Fatalf("get pods:\n%s", out)
		}
		n.Remove("crash.yaml")
	})

	t.Run("OnFailure and Never", func(t *testing.T) {
		n.Write("onfail.yaml", `apiVersion: v1
kind: Pod
metadata: {name: onfail}
spec:
  restartPolicy: OnFailure
  volumes: [{name: d, emptyDir: {}}]
  containers:
  - {name: c, image: `+testImage+`, command: [sh, -c, "test -f /d/ran && exit 0; touch /d/ran; exit 3"], volumeMounts: [{name: d, mountPath: /d}]}
`)
		n.Write("never.yaml", podManifest("never", "Never", 1, `exit 5`))
		p := n.WaitPod("onfail-node1", "Succeeded", 60*time.Second, func(p *v1.Pod) bool { return p.Status.Phase == v1.PodSucceeded })
		if cs := p.Status.ContainerStatuses[0]; cs.RestartCount != 1 || cs.State.Terminated == nil || cs.State.Terminated.ExitCode != 0 {
			t.Fatalf("OnFailure: restartCount %d state %+v", cs.RestartCount, cs.State)
		}
		p = n.WaitPod("never-node1", "Failed", 60*time.Second, func(p *v1.Pod) bool { return p.Status.Phase == v1.PodFailed })
		if cs := p.Status.ContainerStatuses[0]; cs.RestartCount != 0 || cs.State.Terminated == nil || cs.State.Terminated.ExitCode != 5 {
			t.Fatalf("Never: restartCount %d state %+v", cs.RestartCount, cs.State)
		}
		time.Sleep(2 * time.Second)
		p, _ = n.Pod("never-node1")
		if cs := p.Status.ContainerStatuses[0]; cs.RestartCount != 0 {
			t.Fatalf("Never: restarted (%d)", cs.RestartCount)
		}
		n.Remove("onfail.yaml")
		n.Remove("never.yaml")
	})

	t.Run("readiness flips Ready, failed liveness restarts", func(t *testing.T) {
		n.Write("probed.yaml", `apiVersion: v1
kind: Pod
metadata: {name: probed}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: `+testImage+`
    command: [sh, -c, "mkdir -p /www; echo ok > /www/healthz; (sleep 2; echo ok > /www/ready; sleep 3; rm /www/healthz) & exec httpd -f -p 8080 -h /www"]
    ports: [{containerPort: 8080}]
    readinessProbe: {exec: {command: [test, -f, /www/ready]}, periodSeconds: 1}
    livenessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 1, failureThreshold: 2}
`)
		ready := func(p *v1.Pod) bool {
			for _, c := range p.Status.Conditions {
				if c.Type == v1.PodReady {
					return c.Status == v1.ConditionTrue
				}
			}
			return false
		}
		p := n.WaitPod("probed-node1", "Running, not Ready", 30*time.Second, running)
		if ready(&p) && p.Status.ContainerStatuses[0].RestartCount == 0 {
			t.Fatalf("Ready before the readiness probe passed")
		}
		n.WaitPod("probed-node1", "Ready", 30*time.Second, ready)
		ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
		defer cancel()
		if _, err := n.CLICtx(ctx, "wait", "--for=condition=Ready", "pod/probed", "--timeout=20s"); err != nil {
			t.Fatalf("wait: %v", err)
		}
		n.WaitPod("probed-node1", "restarted by its liveness probe", 40*time.Second, func(p *v1.Pod) bool {
			return p.Status.ContainerStatuses[0].RestartCount >= 1
		})
		out, _ := n.CLI("describe", "pod", "probed")
		if !strings.Contains(out, "failed liveness probe") || !strings.Contains(out, "Unhealthy") {
			t.Fatalf("describe lacks the liveness kill:\n%s", out)
		}
		n.Remove("probed.yaml")
	})

	t.Run("exec postStart and preStop hooks", func(t *testing.T) {
		n.Write("hooked.yaml", `apiVersion: v1
kind: Pod
metadata: {name: hooked}
spec:
  terminationGracePeriodSeconds: 5
  containers:
  - name: c
    image: `+testImage+`
    command: [sh, -c, "while ! test -f /tmp/started; do sleep 1; done; echo saw-poststart; while true; do sleep 1; done"]
    lifecycle:
      postStart: {exec: {command: [touch, /tmp/started]}}
      preStop: {exec: {command: [sh, -c, "echo prestop-ran > /proc/1/fd/1"]}}
`)
		p := n.WaitPod("hooked-node1", "Running", 30*time.Second, running)
		logDir := filepath.Join(n.Logs, "default_hooked-node1_"+string(p.UID), "c")
		readLog := func() string { b, _ := os.ReadFile(filepath.Join(logDir, "0.log")); return string(b) }
		n.WaitFor("postStart seen by the container", 20*time.Second, func() bool { return strings.Contains(readLog(), "saw-poststart") })
		start := time.Now()
		n.Remove("hooked.yaml")
		n.WaitFor("hooked pod gone", 30*time.Second, func() bool { _, ok := n.Pod("hooked-node1"); return !ok })
		if !strings.Contains(readLog(), "prestop-ran") {
			t.Fatalf("preStop did not run; log kept after the pod:\n%s", readLog())
		}
		// The container ignores SIGTERM (PID 1 sh): the kill comes at the
		// end of the 5 s grace, not before.
		if d := time.Since(start); d < 4*time.Second {
			t.Fatalf("pod gone %s after delete, before its grace period", d)
		}
	})

	t.Run("OOM kill is reported as OOMKilled", func(t *testing.T) {
		n.Write("oom.yaml", `apiVersion: v1
kind: Pod
metadata: {name: oom}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: `+testImage+`
    command: [sh, -c, "sleep 1; a=xxxxxxxxxxxxxxxx; while true; do a=$a$a; done"]
    resources: {limits: {memory: 24Mi, cpu: 500m}}
`)
		p := n.WaitPod("oom-node1", "Failed by the OOM killer", 60*time.Second, func(p *v1.Pod) bool {
			if len(p.Status.ContainerStatuses) == 0 {
				return false
			}
			st := p.Status.ContainerStatuses[0].State.Terminated
			return st != nil && st.Reason == "OOMKilled"
		})
		if st := p.Status.ContainerStatuses[0].State.Terminated; st.ExitCode != 137 || p.Status.QOSClass != v1.PodQOSGuaranteed {
			t.Fatalf("OOM: exit code %d, qos %s", st.ExitCode, p.Status.QOSClass)
		}
		n.Remove("oom.yaml")
	})

	t.Run("a killed pause takes the pod down and it is recreated", func(t *testing.T) {
		uid := string(webPod.UID)
		pid := n.SandboxPID(uid)
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		p := n.WaitPod(web, "Running in a new sandbox", 30*time.Second, func(p *v1.Pod) bool {
			return running(p) && p.Status.ContainerStatuses[0].RestartCount == 1
		})
		if string(p.UID) != uid || n.SandboxPID(uid) == pid || n.SandboxPID(uid) == 0 {
			t.Fatalf("pod not recreated in place: uid %s, sandbox pid %d (was %d)", p.UID, n.SandboxPID(uid), pid)
		}
		out, _ := n.CLI("describe", "pod", "web")
		if !strings.Contains(out, "SandboxChanged") {
			t.Fatalf("describe lacks SandboxChanged:\n%s", out)
		}
		n.checkConsistent(t)
	})

	t.Run("delete removes units, mounts, processes within grace", func(t *testing.T) {
		uid := string(webPod.UID)
		pid := n.SandboxPID(uid)
		if pid == 0 || !procAlive(pid) {
			t.Fatalf("no live sandbox for %s (pid %d)", uid, pid)
		}
		start := time.Now()
		n.Remove("web.yaml")
		// Removal waits ~1 s (the editor-save guard), then grace 2 s during
		// which kubectl's STATUS column reads Terminating.
		n.WaitFor("web pod Terminating", 10*time.Second, func() bool {
			out, err := n.CLI("get", "pods")
			for _, l := range strings.Split(out, "\n") {
				if strings.HasPrefix(l, web+" ") && strings.Contains(l, "Terminating") {
					return err == nil
				}
			}
			return false
		})
		n.WaitFor("web pod gone", 20*time.Second, func() bool { _, ok := n.Pod(web); return !ok })
		took := time.Since(start)
		if u := units(t); strings.Contains(u, strings.ReplaceAll(uid, "-", "_")) || strings.Contains(u, "default/web-node1") {
			t.Fatalf("units left after delete:\n%s", u)
		}
		if m := mountsUnder(filepath.Join(n.Root, "pods", uid)); len(m) > 0 {
			t.Fatalf("mounts left: %v", m)
		}
		if procAlive(pid) {
			t.Fatalf("sandbox process %d still alive", pid)
		}
		if _, err := os.Stat(filepath.Join(n.Root, "pods", uid)); !os.IsNotExist(err) {
			t.Fatalf("state dir left: %v", err)
		}
		t.Logf("deleted in %s (grace 2s)", took.Round(100*time.Millisecond))
	})

	_ = syscall.SIGKILL
}
