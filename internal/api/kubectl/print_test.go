package kubectl

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/minikubelet/minikubelet/internal/api"
)

func TestGetTable(t *testing.T) {
	pods := []v1.Pod{runningPod(), crashPod(), initPod()}
	var b bytes.Buffer
	if err := PrintTable(&b, pods, TableOptions{Now: now}); err != nil {
		t.Fatal(err)
	}
	want := `NAME          READY     STATUS             RESTARTS       AGE
web-node1     1/1       Running            3 (2m ago)     5m
crash-node1   0/1       CrashLoopBackOff   12 (60s ago)   3h
setup-node1   0/1       Init:0/1           0              40s
`
	if b.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestGetTableWideAllNamespaces(t *testing.T) {
	pods := []v1.Pod{runningPod(), crashPod(), initPod()}
	var b bytes.Buffer
	PrintTable(&b, pods, TableOptions{Now: now, Wide: true, WithNamespace: true})
	want := `NAMESPACE     NAME          READY     STATUS             RESTARTS       AGE       IP          NODE      QOS
default       web-node1     1/1       Running            3 (2m ago)     5m        10.88.0.5   node1     Burstable
default       crash-node1   0/1       CrashLoopBackOff   12 (60s ago)   3h        <none>      node1     BestEffort
kube-system   setup-node1   0/1       Init:0/1           0              40s       <none>      node1     BestEffort
`
	if b.String() != want {
		t.Errorf("wide table:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	p := runningPod()
	p.CreationTimestamp = metav1.Time{}
	p.DeletionTimestamp = ptr(ago(time.Second))
	PrintTable(&b, []v1.Pod{p}, TableOptions{Now: now, NoHeaders: true})
	if want := "web-node1   1/1       Terminating   3 (2m ago)   <unknown>\n"; b.String() != want {
		t.Errorf("no headers, terminating:\n%q\nwant\n%q", b.String(), want)
	}
}

func TestPrintNameJSONYAML(t *testing.T) {
	var b bytes.Buffer
	p := runningPod()
	PrintName(&b, &p)
	if b.String() != "pod/web-node1\n" {
		t.Errorf("name = %q", b.String())
	}
	b.Reset()
	list := PodList([]v1.Pod{runningPod(), crashPod()}, "42")
	if err := PrintJSON(&b, list); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if !strings.HasPrefix(out, "{\n    \"apiVersion\": \"v1\",\n    \"items\": [\n        {\n            \"apiVersion\": \"v1\",\n            \"kind\": \"Pod\",\n") {
		t.Errorf("json head (sorted keys, 4-space indent):\n%.300s", out)
	}
	if !strings.HasSuffix(out, "    \"kind\": \"PodList\",\n    \"metadata\": {\n        \"resourceVersion\": \"42\"\n    }\n}\n") {
		t.Errorf("json tail:\n%s", out[len(out)-200:])
	}
	var back v1.PodList
	if err := json.Unmarshal(b.Bytes(), &back); err != nil || len(back.Items) != 2 || back.Items[0].Name != "web-node1" || back.Items[0].UID != "0a1b2c3d-uid" {
		t.Errorf("round trip: %v %+v", err, back.Items)
	}
	b.Reset()
	pp := list.Items[0]
	PrintYAML(&b, &pp)
	if !strings.HasPrefix(b.String(), "apiVersion: v1\nkind: Pod\nmetadata:\n") {
		t.Errorf("yaml head:\n%.200s", b.String())
	}
	var y v1.Pod
	if err := yaml.Unmarshal(b.Bytes(), &y); err != nil || y.Status.PodIP != "10.88.0.5" {
		t.Errorf("yaml round trip: %v %q", err, y.Status.PodIP)
	}
}

func TestDescribeFull(t *testing.T) {
	p := runningPod()
	extra := &api.PodExtra{
		CgroupDriver: "systemd",
		Slice:        "kubepods-burstable-pod0a1b2c3d_uid.slice",
		CgroupPath:   "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0a1b2c3d_uid.slice",
		ManifestPath: "/etc/kubernetes/manifests/web.yaml",
		Scopes: []api.ScopeInfo{
			{Unit: "minikubelet-5a.scope", ActiveState: "active", MainPID: 4242},
			{Unit: "minikubelet-c0ffee.scope", Container: "app", ActiveState: "active"},
		},
		Limits: &api.CgroupLimits{CPUQuotaMicros: ptr(int64(50000)), CPUPeriodMicros: 100000, CPUShares: ptr(uint64(102)),
			MemoryLimit: ptr(int64(128 << 20))},
		Usage: &api.Usage{SampledAt: now.Add(-5 * time.Second), UsageNanoCores: ptr(uint64(12_500_000)),
			UsageCoreNanoSeconds: uint64(3 * time.Second), WorkingSetBytes: 5 << 20, PIDs: 3},
		BackoffUntil: map[string]time.Time{"app": now.Add(8 * time.Second)},
	}
	ref := v1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "web-node1", UID: "0a1b2c3d-uid"}
	all := []v1.Event{
		{InvolvedObject: ref, Type: "Warning", Reason: "BackOff", Message: "Back-off restarting failed container app in pod web-node1_default(0a1b2c3d-uid)",
			Count: 4, FirstTimestamp: ago(4 * time.Minute), LastTimestamp: ago(30 * time.Second), Source: v1.EventSource{Component: "kubelet"}},
		{InvolvedObject: ref, Type: "Normal", Reason: "Pulled", Message: `Container image "busybox:1.36" already present on machine`,
			Count: 1, FirstTimestamp: ago(5 * time.Minute), LastTimestamp: ago(5 * time.Minute), Source: v1.EventSource{Component: "kubelet"}},
		{InvolvedObject: v1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "other", UID: "x"}, Reason: "Started"},
	}
	evs := PodEvents(all, &p)
	if len(evs) != 2 || evs[0].Reason != "Pulled" {
		t.Fatalf("PodEvents = %+v", evs)
	}
	var b bytes.Buffer
	if err := Describe(&b, &p, extra, evs, now); err != nil {
		t.Fatal(err)
	}
	want := `Name:         web-node1
Namespace:    default
Priority:     0
Node:         node1/192.168.1.10
Start Time:   Sun, 01 Mar 2026 11:55:00 +0000
Labels:       app=web
              tier=front
Annotations:  kubernetes.io/config.source=file
Status:       Running
IP:           10.88.0.5
IPs:
  IP:      10.88.0.5
Manifest:  /etc/kubernetes/manifests/web.yaml
Cgroup:
  Driver:  systemd
  Slice:   kubepods-burstable-pod0a1b2c3d_uid.slice
  Path:    /kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0a1b2c3d_uid.slice
  Limits:  cpu: 500m (quota 50000us/100000us), shares 102, memory: 128Mi, pids: unlimited
  Usage:   cpu: 12m (3s total), memory: 5Mi, pids: 3 (5s ago)
  Scopes:
    minikubelet-5a.scope      (sandbox)  active pid 4242
    minikubelet-c0ffee.scope  app        active
Containers:
  app:
    Container ID:  minikubelet://c0ffee
    Image:         busybox:1.36
    Image ID:      sha256:abc
    Port:          80/TCP
    Host Port:     8080/TCP
    Command:
      sh
      -c
    Args:
      httpd -f
    State:               Running
      Started:           Sun, 01 Mar 2026 11:58:00 +0000
    Last State:          Terminated
      Reason:            OOMKilled
      Exit Code:         137
      Started:           Sun, 01 Mar 2026 11:57:00 +0000
      Finished:          Sun, 01 Mar 2026 11:58:00 +0000
    Back-off Remaining:  8s
    Ready:               True
    Restart Count:       3
    Limits:
      cpu:     500m
      memory:  128Mi
    Requests:
      cpu:  100m
    Environment:
      MODE:  prod
      POD:    (v1:metadata.name)
    Mounts:
      /data from data (rw)
      /etc/conf from conf (ro)
Conditions:
  Type              Status
  Initialized       True 
  Ready             True 
  ContainersReady   True 
  PodScheduled      True 
Volumes:
  data:
    Type:       EmptyDir (a temporary directory that shares a pod's lifetime)
    Medium:     
    SizeLimit:  <unset>
  conf:
    Type:          HostPath (bare host directory volume)
    Path:          /etc/web
    HostPathType:  Directory
QoS Class:         Burstable
Node-Selectors:    <none>
Tolerations:       :NoExecute op=Exists
Events:
  Type     Reason   Age               From     Message
  ----     ------   ----              ----     -------
  Normal   Pulled   5m                kubelet  Container image "busybox:1.36" already present on machine
  Warning  BackOff  30s (x4 over 4m)  kubelet  Back-off restarting failed container app in pod web-node1_default(0a1b2c3d-uid)
`
	if got := b.String(); got != want {
		t.Errorf("describe:\n%s\nwant:\n%s", got, want)
		gl, wl := strings.Split(got, "\n"), strings.Split(want, "\n")
		for i := range gl {
			if i < len(wl) && gl[i] != wl[i] {
				t.Errorf("first difference at line %d:\n got %q\nwant %q", i+1, gl[i], wl[i])
				break
			}
		}
	}
}

func TestDescribeMinimal(t *testing.T) {
	p := crashPod()
	p.DeletionTimestamp = ptr(ago(10 * time.Second))
	p.DeletionGracePeriodSeconds = ptr(int64(30))
	var b bytes.Buffer
	Describe(&b, &p, nil, nil, now)
	// Alignment is covered by TestDescribeFull; here only content counts.
	norm := func(s string) string { return strings.Join(strings.Fields(s), " ") }
	out := norm(b.String())
	for _, want := range []string{
		"Status: Terminating (lasts 10s) Termination Grace Period: 30s",
		"Cgroup: <none>",
		"State: Waiting Reason: CrashLoopBackOff Message: back-off 5m0s restarting failed container=c",
		"Last State: Terminated Reason: Error Exit Code: 1",
		"Ready: False Restart Count: 12",
		"Events: <none>",
		"Labels: <none>",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("describe lacks %q:\n%s", want, b.String())
		}
	}
	if strings.Contains(out, "Back-off Remaining") {
		t.Error("Back-off Remaining shown without extra data")
	}
}

func TestWaitFor(t *testing.T) {
	ready := runningPod()
	notReady := crashPod()
	notReady.Status.Conditions = []v1.PodCondition{{Type: v1.PodReady, Status: v1.ConditionFalse}, {Type: v1.PodInitialized, Status: v1.ConditionTrue}}
	for _, tc := range []struct {
		spec string
		pod  *v1.Pod
		met  bool
	}{
		{"condition=Ready", &ready, true},
		{"condition=ready", &ready, true},
		{"condition=Ready", &notReady, false},
		{"condition=Ready=false", &notReady, true},
		{"condition=Ready=False", &ready, false},
		{"condition=Initialized", &notReady, true},
		{"condition=ContainersReady", &ready, true},
		{"condition=ContainersReady", &notReady, false}, // absent
		{"condition=Ready", nil, false},
		{"delete", nil, true},
		{"delete", &ready, false},
		{"create", &ready, true},
		{"create", nil, false},
	} {
		w, err := ParseFor(tc.spec)
		if err != nil {
			t.Fatalf("ParseFor(%s): %v", tc.spec, err)
		}
		if got := w.Met(tc.pod); got != tc.met {
			t.Errorf("%s on %v: met = %v, want %v", tc.spec, tc.pod != nil, got, tc.met)
		}
	}
	for _, bad := range []string{"", "ready", "condition=", "jsonpath={.status}"} {
		if _, err := ParseFor(bad); err == nil {
			t.Errorf("ParseFor(%q) accepted", bad)
		}
	}
}

// Under cgroupfs describe shows the real cgroup paths once: no slice, no
// systemd scope names.
func TestDescribeCgroupfs(t *testing.T) {
	p := runningPod()
	extra := &api.PodExtra{
		CgroupDriver: "cgroupfs",
		CgroupPath:   "/kubepods/burstable/pod0a1b2c3d-uid",
		Scopes: []api.ScopeInfo{
			{Unit: "/kubepods/burstable/pod0a1b2c3d-uid/5a", ActiveState: "active", MainPID: 4242},
			{Unit: "/kubepods/burstable/pod0a1b2c3d-uid/c0ffee", Container: "app", ActiveState: "active"},
		},
	}
	var b bytes.Buffer
	if err := Describe(&b, &p, extra, nil, now); err != nil {
		t.Fatal(err)
	}
	want := `Cgroup:
  Driver:  cgroupfs
  Path:    /kubepods/burstable/pod0a1b2c3d-uid
  Cgroups:
    /kubepods/burstable/pod0a1b2c3d-uid/5a      (sandbox)  active pid 4242
    /kubepods/burstable/pod0a1b2c3d-uid/c0ffee  app        active
`
	if !strings.Contains(b.String(), want) {
		t.Errorf("describe under cgroupfs:\n%s\nwant:\n%s", b.String(), want)
	}
	for _, no := range []string{"Slice:", ".scope", "Scopes:"} {
		if strings.Contains(b.String(), no) {
			t.Errorf("describe under cgroupfs shows %q", no)
		}
	}
}
