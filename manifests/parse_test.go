package manifests

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"
)

const testNode = "node1"
const testPath = "/etc/kubernetes/manifests/web.yaml"

func mustParse(t *testing.T, data string) []*v1.Pod {
	t.Helper()
	pods, err := Parse(testPath, []byte(data), testNode)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return pods
}

func mustParseOne(t *testing.T, data string) *v1.Pod {
	t.Helper()
	pods := mustParse(t, data)
	if len(pods) != 1 {
		t.Fatalf("got %d pods, want 1", len(pods))
	}
	return pods[0]
}

// parseErrLines parses and returns the error lines (failing if it parsed).
func parseErrLines(t *testing.T, data string) []string {
	t.Helper()
	_, err := Parse(testPath, []byte(data), testNode)
	if err == nil {
		t.Fatalf("Parse succeeded, want an error for:\n%s", data)
	}
	var fe *FileError
	if !errors.As(err, &fe) {
		t.Fatalf("error is %T, want *FileError: %v", err, err)
	}
	return fe.Lines()
}

// wantErr asserts some error line has the field path and mentions every want.
func wantErr(t *testing.T, lines []string, path string, wants ...string) {
	t.Helper()
	prefix := testPath + ": " + path
	for _, l := range lines {
		if path != "" && !strings.HasPrefix(l, prefix+":") {
			continue
		}
		ok := true
		for _, w := range wants {
			if !strings.Contains(l, w) {
				ok = false
			}
		}
		if ok {
			return
		}
	}
	t.Errorf("no error line for %q containing %q; got:\n%s", path, wants, strings.Join(lines, "\n"))
}

const simplePod = `apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  containers:
  - name: web
    image: nginx:1.25
`

func TestKubeadmManifestsAreValid(t *testing.T) {
	for _, name := range []string{"etcd.yaml", "kube-apiserver.yaml", "kube-scheduler.yaml"} {
		t.Run(name, func(t *testing.T) {
			pods, err := ReadFile(filepath.Join("testdata", name), "Node1")
			if err != nil {
				t.Fatal(err)
			}
			pod := pods[0]
			base := strings.TrimSuffix(name, ".yaml")
			if pod.Name != base+"-node1" || pod.Namespace != "kube-system" {
				t.Errorf("identity = %s/%s, want kube-system/%s-node1", pod.Namespace, pod.Name, base)
			}
			if !pod.Spec.HostNetwork || pod.Spec.PriorityClassName != "system-node-critical" || *pod.Spec.Priority != 2000001000 {
				t.Errorf("kubeadm fields lost: %+v", pod.Spec)
			}
			if pod.Spec.SecurityContext.SeccompProfile.Type != v1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("seccomp lost")
			}
			if errs := Validate(pod); len(errs) > 0 {
				t.Errorf("Validate on the parsed pod: %v", errs)
			}
		})
	}
}

func TestStaticPodIdentity(t *testing.T) {
	pod := mustParseOne(t, simplePod)
	if pod.Name != "web-node1" {
		t.Errorf("name = %q, want web-node1", pod.Name)
	}
	if pod.Namespace != "default" {
		t.Errorf("namespace = %q, want default", pod.Namespace)
	}
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(string(pod.UID)) {
		t.Errorf("UID %q is not 32 hex digits", pod.UID)
	}
	if pod.Annotations[ConfigHashAnnotation] != string(pod.UID) || pod.Annotations[ConfigSourceAnnotation] != "file" {
		t.Errorf("annotations = %v", pod.Annotations)
	}
	if pod.Spec.NodeName != testNode {
		t.Errorf("nodeName = %q", pod.Spec.NodeName)
	}
	if pod.Status.Phase != v1.PodPending {
		t.Errorf("phase = %q", pod.Status.Phase)
	}
	tol := pod.Spec.Tolerations
	if len(tol) != 1 || tol[0].Operator != v1.TolerationOpExists || tol[0].Effect != v1.TaintEffectNoExecute {
		t.Errorf("tolerations = %+v, want the kubelet's NoExecute Exists", tol)
	}
	// A UID in the file is kept, as the kubelet does.
	withUID := strings.Replace(simplePod, "name: web\nspec", "name: web\n  uid: fixed-uid\nspec", 1)
	if p := mustParseOne(t, withUID); p.UID != "fixed-uid" {
		t.Errorf("UID from the file not kept: %q", p.UID)
	}
	// Upper-case node names are lower-cased in the pod name, as the kubelet does.
	pods, err := Parse(testPath, []byte(simplePod), "Node-A")
	if err != nil || pods[0].Name != "web-node-a" {
		t.Errorf("node name case: %v %v", pods, err)
	}
}

func TestDefaults(t *testing.T) {
	pod := mustParseOne(t, `apiVersion: v1
kind: Pod
metadata: {name: d}
spec:
  hostNetwork: true
  volumes:
  - name: scratch
  - name: host
    hostPath: {path: /var/log}
  initContainers:
  - name: init
    image: busybox
    resources:
      limits: {cpu: "0.5", memory: 64Mi}
  containers:
  - name: a
    image: registry.local:5000/app
    ports: [{containerPort: 8080}]
    livenessProbe:
      httpGet: {port: 8080}
    readinessProbe:
      grpc: {port: 9000}
  - {name: b, image: "app:latest"}
  - {name: c, image: "app:1.2"}
  - {name: d, image: "app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}
  - {name: e, image: "registry.local:5000/app:2"}
`)
	s := pod.Spec
	if s.RestartPolicy != v1.RestartPolicyAlways || *s.TerminationGracePeriodSeconds != 30 ||
		s.DNSPolicy != v1.DNSClusterFirst || s.SchedulerName != "default-scheduler" ||
		s.SecurityContext == nil || s.EnableServiceLinks == nil || !*s.EnableServiceLinks {
		t.Errorf("pod spec defaults wrong: %+v", s)
	}
	if s.Volumes[0].EmptyDir == nil {
		t.Errorf("a volume without a source must default to emptyDir")
	}
	if s.Volumes[1].HostPath.Type == nil || *s.Volumes[1].HostPath.Type != v1.HostPathUnset {
		t.Errorf("hostPath type default wrong")
	}
	pulls := map[string]v1.PullPolicy{"init": v1.PullAlways, "a": v1.PullAlways, "b": v1.PullAlways,
		"c": v1.PullIfNotPresent, "d": v1.PullIfNotPresent, "e": v1.PullIfNotPresent}
	for _, c := range append(s.InitContainers, s.Containers...) {
		if c.ImagePullPolicy != pulls[c.Name] {
			t.Errorf("container %s image %s: pull policy %s, want %s", c.Name, c.Image, c.ImagePullPolicy, pulls[c.Name])
		}
		if c.TerminationMessagePath != "/dev/termination-log" || c.TerminationMessagePolicy != v1.TerminationMessageReadFile {
			t.Errorf("container %s termination message defaults wrong", c.Name)
		}
	}
	init := s.InitContainers[0]
	if q := init.Resources.Requests[v1.ResourceCPU]; q.String() != "500m" {
		t.Errorf("requests must default to limits (and 0.5 read as 500m): %v", init.Resources.Requests)
	}
	a := s.Containers[0]
	if a.Ports[0].Protocol != v1.ProtocolTCP || a.Ports[0].HostPort != 8080 {
		t.Errorf("port defaults (TCP, hostPort=containerPort under hostNetwork): %+v", a.Ports[0])
	}
	lp := a.LivenessProbe
	if lp.TimeoutSeconds != 1 || lp.PeriodSeconds != 10 || lp.SuccessThreshold != 1 || lp.FailureThreshold != 3 {
		t.Errorf("probe defaults: %+v", lp)
	}
	if lp.HTTPGet.Path != "/" || lp.HTTPGet.Scheme != v1.URISchemeHTTP {
		t.Errorf("httpGet defaults: %+v", lp.HTTPGet)
	}
	if a.ReadinessProbe.GRPC.Service == nil {
		t.Errorf("grpc service default missing")
	}
}

func TestUIDStableUnderReformatting(t *testing.T) {
	base := mustParseOne(t, simplePod).UID
	same := map[string]string{
		"comments and key order": `# the web pod
kind: Pod   # kind first
spec:
  containers:
  - image: nginx:1.25   # image before name
    name: web
metadata:
  name: web
apiVersion: v1
`,
		"json": `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web"},
		  "spec":{"containers":[{"name":"web","image":"nginx:1.25"}]}}`,
		"flow style and quotes": `{apiVersion: "v1", kind: 'Pod', metadata: {name: web}, spec: {containers: [{name: web, image: "nginx:1.25"}]}}`,
		"defaults spelled out": simplePod + `    imagePullPolicy: IfNotPresent
    terminationMessagePath: /dev/termination-log
  restartPolicy: Always
  terminationGracePeriodSeconds: 30
  dnsPolicy: ClusterFirst
`,
		"status and leading document marker": "---\n" + simplePod + "status: {phase: Running}\n",
	}
	for name, doc := range same {
		if uid := mustParseOne(t, doc).UID; uid != base {
			t.Errorf("%s: UID %s, want %s (same pod)", name, uid, base)
		}
	}
	// Equal quantities spelled differently are the same pod.
	q1 := mustParseOne(t, simplePod+"    resources: {requests: {cpu: \"0.5\", memory: 1Gi}}\n").UID
	q2 := mustParseOne(t, simplePod+"    resources: {requests: {cpu: 500m, memory: 1024Mi}}\n").UID
	if q1 != q2 {
		t.Errorf("0.5 cpu and 500m gave different UIDs")
	}
	different := map[string]string{
		"image":   strings.Replace(simplePod, "nginx:1.25", "nginx:1.26", 1),
		"command": simplePod + "    command: [nginx]\n",
		"label":   strings.Replace(simplePod, "name: web\nspec", "name: web\n  labels: {a: b}\nspec", 1),
	}
	for name, doc := range different {
		if uid := mustParseOne(t, doc).UID; uid == base {
			t.Errorf("%s changed but the UID did not", name)
		}
	}
	// The node and the file are part of the identity, as in the kubelet.
	other, _ := Parse("/etc/kubernetes/manifests/other.yaml", []byte(simplePod), testNode)
	otherNode, _ := Parse(testPath, []byte(simplePod), "node2")
	if other[0].UID == base || otherNode[0].UID == base {
		t.Errorf("path or node not part of the UID")
	}
}

func TestStrictDecodeErrorsHavePaths(t *testing.T) {
	cases := []struct {
		name, doc, path string
		wants           []string
	}{
		{"unknown field", strings.Replace(simplePod, "    image:", "    imagee: x\n    image:", 1),
			"spec.containers[0].imagee", []string{"unknown field", `did you mean "image"`}},
		{"unknown top-level field", simplePod + "extra: 1\n", "extra", []string{"unknown field"}},
		{"case matters", strings.Replace(simplePod, "containers:", "Containers:", 1), "spec.Containers", []string{"unknown field", `"containers"`}},
		{"wrong type", simplePod + "    ports: [{containerPort: \"80\"}]\n", "spec.containers[0].ports[0].containerPort", []string{"must be an integer", `string "80"`}},
		{"list expected", simplePod + "    command: nginx\n", "spec.containers[0].command", []string{"must be a list"}},
		{"bad quantity", simplePod + "    resources: {limits: {memory: 12XB}}\n", "spec.containers[0].resources.limits.memory", []string{"not a valid quantity", "12XB"}},
		{"quantity of wrong type", simplePod + "    resources: {requests: {cpu: [1]}}\n", "spec.containers[0].resources.requests.cpu", []string{"must be a quantity"}},
		{"bad intstr", simplePod + "    livenessProbe: {httpGet: {port: 1.5}}\n", "spec.containers[0].livenessProbe.httpGet.port", []string{"integer"}},
		{"intstr of wrong type", simplePod + "    livenessProbe: {tcpSocket: {port: {a: 1}}}\n", "spec.containers[0].livenessProbe.tcpSocket.port", []string{"must be an integer or a string"}},
		{"int out of range", simplePod + "    ports: [{containerPort: 99999999999}]\n", "spec.containers[0].ports[0].containerPort", []string{"out of range"}},
		{"yaml boolean", simplePod + "    command: [echo, yes]\n", "spec.containers[0].command[1]", []string{"must be a string", "quote"}},
		{"bad time", strings.Replace(simplePod, "name: web\nspec", "name: web\n  creationTimestamp: yesterday\nspec", 1), "metadata.creationTimestamp", []string{"yesterday"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wantErr(t, parseErrLines(t, c.doc), c.path, c.wants...)
		})
	}
	// Every problem is reported, not only the first.
	lines := parseErrLines(t, simplePod+"    bogus: 1\n    resources: {limits: {cpu: lots}}\n")
	if len(lines) != 2 {
		t.Errorf("want 2 errors, got %q", lines)
	}
	// Duplicate keys are rejected (the API server's strict decoding does too).
	wantErr(t, parseErrLines(t, simplePod+"    image: other\n"), "", "already set in map")
}

func TestKindsDocumentsAndLists(t *testing.T) {
	wantErr(t, parseErrLines(t, "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n"), "kind", "Deployment")
	wantErr(t, parseErrLines(t, "apiVersion: v1\nkind: Service\nmetadata: {name: x}\n"), "kind", "Service", "not a Pod")
	wantErr(t, parseErrLines(t, "metadata: {name: x}\n"), "kind", "Required")
	wantErr(t, parseErrLines(t, strings.Replace(simplePod, "apiVersion: v1", "apiVersion: v2", 1)), "apiVersion", `"v2"`)
	wantErr(t, parseErrLines(t, "- a\n- b\n"), "", "expected a v1 Pod object")
	wantErr(t, parseErrLines(t, "   \n\n"), "", "empty")
	wantErr(t, parseErrLines(t, "spec: [\n"), "", "not valid YAML")

	multi := simplePod + "---\n# the second pod\n" + strings.Replace(simplePod, "name: web", "name: web2", 1)
	wantErr(t, parseErrLines(t, multi), "", "more than one YAML document", "line 9")
	// A leading marker and empty documents are fine.
	mustParseOne(t, "---\n"+simplePod+"---\n")

	list := `apiVersion: v1
kind: PodList
items:
- metadata: {name: a}
  spec: {containers: [{name: a, image: busybox}]}
- apiVersion: v1
  kind: Pod
  metadata: {name: b}
  spec: {containers: [{name: b, image: busybox}]}
`
	pods := mustParse(t, list)
	if len(pods) != 2 || pods[0].Name != "a-node1" || pods[1].Name != "b-node1" || pods[0].UID == pods[1].UID {
		t.Fatalf("PodList: %v", pods)
	}
	wantErr(t, parseErrLines(t, strings.Replace(list, "image: busybox}]}\n- apiVersion", "image: busybox, bad: 1}]}\n- apiVersion", 1)),
		"items[0].spec.containers[0].bad", "unknown field")
	wantErr(t, parseErrLines(t, strings.Replace(list, "name: b}", "name: a}", 1)), "items[1].metadata.name", "Duplicate", "items[0]")
	wantErr(t, parseErrLines(t, "apiVersion: v1\nkind: PodList\nitems: []\n"), "items", "at least one pod")
	wantErr(t, parseErrLines(t, strings.Replace(list, "  kind: Pod\n", "  kind: Service\n", 1)), "items[1].kind", `"Service"`)
}

func TestSizeCap(t *testing.T) {
	big := []byte(simplePod + "# " + strings.Repeat("x", MaxFileSize) + "\n")
	_, err := Parse(testPath, big, testNode)
	if err == nil || !strings.Contains(err.Error(), "10 MiB") {
		t.Fatalf("want a size error naming 10 MiB, got %v", err)
	}
	path := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(path, big, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(path, testNode); err == nil || !strings.Contains(err.Error(), "10 MiB") || !strings.Contains(err.Error(), path) {
		t.Fatalf("ReadFile: want a size error naming the file, got %v", err)
	}
	// Just under the cap is read.
	ok := []byte(simplePod + "# ")
	ok = append(ok, []byte(strings.Repeat("x", MaxFileSize-len(ok)-1)+"\n")...)
	if _, err := Parse(testPath, ok, testNode); err != nil {
		t.Fatalf("a %d-byte file must parse: %v", len(ok), err)
	}
}

func TestValidation(t *testing.T) {
	pod := func(spec string) string {
		return "apiVersion: v1\nkind: Pod\nmetadata: {name: v}\nspec:\n" + spec
	}
	ctr := "  containers: [{name: c, image: busybox}]\n"
	cases := []struct {
		name, doc, path string
		wants           []string
	}{
		{"bad name", strings.Replace(simplePod, "name: web\nspec", "name: Web_1\nspec", 1), "metadata.name", []string{"Web_1", "RFC 1123"}},
		{"no name", "apiVersion: v1\nkind: Pod\nmetadata: {generateName: x-}\nspec:\n" + ctr, "metadata.name", []string{"generateName"}},
		{"no containers", pod("  containers: []\n"), "spec.containers", []string{"Required"}},
		{"no image", pod("  containers: [{name: c}]\n"), "spec.containers[0].image", []string{"Required"}},
		{"duplicate across init and app", pod("  initContainers: [{name: c, image: busybox}]\n" + ctr), "spec.containers[0].name", []string{"Duplicate", "spec.initContainers[0].name"}},
		{"requests over limits", pod("  containers: [{name: c, image: busybox, resources: {limits: {memory: 1Gi}, requests: {memory: 2Gi}}}]\n"), "spec.containers[0].resources.requests[memory]", []string{"less than or equal to memory limit"}},
		{"negative quantity", pod("  containers: [{name: c, image: busybox, resources: {requests: {cpu: -1}}}]\n"), "spec.containers[0].resources.requests[cpu]", []string{"greater than or equal to 0"}},
		{"unsupported resource", pod("  containers: [{name: c, image: busybox, resources: {limits: {hugepages-2Mi: 1Gi}}}]\n"), "spec.containers[0].resources.limits[hugepages-2Mi]", []string{"not supported by minikubelet yet"}},
		{"probe with two handlers", pod("  containers: [{name: c, image: busybox, livenessProbe: {exec: {command: [/bin/true]}, tcpSocket: {port: 80}}}]\n"), "spec.containers[0].livenessProbe.tcpSocket", []string{"more than 1 handler"}},
		{"probe without handler", pod("  containers: [{name: c, image: busybox, readinessProbe: {periodSeconds: 5}}]\n"), "spec.containers[0].readinessProbe", []string{"must specify a handler"}},
		{"liveness success threshold", pod("  containers: [{name: c, image: busybox, livenessProbe: {exec: {command: [/bin/true]}, successThreshold: 2}}]\n"), "spec.containers[0].livenessProbe.successThreshold", []string{"must be 1"}},
		{"probe named port missing", pod("  containers: [{name: c, image: busybox, livenessProbe: {httpGet: {port: http}}}]\n"), "spec.containers[0].livenessProbe.httpGet.port", []string{"no port of that name"}},
		{"init container probe", pod("  initContainers: [{name: i, image: busybox, livenessProbe: {exec: {command: [/bin/true]}}}]\n" + ctr), "spec.initContainers[0].livenessProbe", []string{"init containers"}},
		{"mount of unknown volume", pod("  containers: [{name: c, image: busybox, volumeMounts: [{name: data, mountPath: /data}]}]\n"), "spec.containers[0].volumeMounts[0].name", []string{"Not found", "data"}},
		{"relative mount path", pod("  volumes: [{name: d, emptyDir: {}}]\n  containers: [{name: c, image: busybox, volumeMounts: [{name: d, mountPath: data}]}]\n"), "spec.containers[0].volumeMounts[0].mountPath", []string{"absolute"}},
		{"subPath escapes", pod("  volumes: [{name: d, emptyDir: {}}]\n  containers: [{name: c, image: busybox, volumeMounts: [{name: d, mountPath: /d, subPath: ../x}]}]\n"), "spec.containers[0].volumeMounts[0].subPath", []string{".."}},
		{"bad port", pod("  containers: [{name: c, image: busybox, ports: [{containerPort: 70000}]}]\n"), "spec.containers[0].ports[0].containerPort", []string{"between 1 and 65535"}},
		{"hostNetwork port mismatch", pod("  hostNetwork: true\n  containers: [{name: c, image: busybox, ports: [{containerPort: 80, hostPort: 81}]}]\n"), "spec.containers[0].ports[0].hostPort", []string{"must match"}},
		{"restart policy", pod("  restartPolicy: Sometimes\n" + ctr), "spec.restartPolicy", []string{"Unsupported value", "Sometimes"}},
		{"hostPath relative", pod("  volumes: [{name: h, hostPath: {path: var/log}}]\n" + ctr), "spec.volumes[0].hostPath.path", []string{"absolute"}},
		{"hostPath type", pod("  volumes: [{name: h, hostPath: {path: /x, type: Dir}}]\n" + ctr), "spec.volumes[0].hostPath.type", []string{"Unsupported value"}},
		{"two volume sources", pod("  volumes: [{name: h, hostPath: {path: /x}, emptyDir: {}}]\n" + ctr), "spec.volumes[0].emptyDir", []string{"more than 1 volume type", "hostPath"}},
		{"secret volume", pod("  volumes: [{name: s, secret: {secretName: x}}]\n" + ctr), "spec.volumes[0].secret", []string{"static pods may not reference API objects"}},
		{"configMap volume", pod("  volumes: [{name: s, configMap: {name: x}}]\n" + ctr), "spec.volumes[0].configMap", []string{"static pods may not reference API objects"}},
		{"pvc volume", pod("  volumes: [{name: s, persistentVolumeClaim: {claimName: x}}]\n" + ctr), "spec.volumes[0].persistentVolumeClaim", []string{"static pods may not reference API objects"}},
		{"projected token", pod("  volumes: [{name: s, projected: {sources: [{serviceAccountToken: {path: t}}]}}]\n" + ctr), "spec.volumes[0].projected", []string{"static pods may not reference API objects", "service account tokens"}},
		{"nfs volume", pod("  volumes: [{name: s, nfs: {server: a, path: /x}}]\n" + ctr), "spec.volumes[0].nfs", []string{"not supported by minikubelet yet"}},
		{"service account", pod("  serviceAccountName: default\n" + ctr), "spec.serviceAccountName", []string{"service accounts"}},
		{"ephemeral containers", pod(ctr + "  ephemeralContainers: [{name: e, image: busybox}]\n"), "spec.ephemeralContainers", []string{"ephemeral containers"}},
		{"env from secret", pod("  containers: [{name: c, image: busybox, env: [{name: A, valueFrom: {secretKeyRef: {name: s, key: k}}}]}]\n"), "spec.containers[0].env[0].valueFrom.secretKeyRef", []string{"API objects"}},
		{"envFrom configMap", pod("  containers: [{name: c, image: busybox, envFrom: [{configMapRef: {name: s}}]}]\n"), "spec.containers[0].envFrom[0].configMapRef", []string{"API objects"}},
		{"env fieldRef", pod("  containers: [{name: c, image: busybox, env: [{name: A, valueFrom: {fieldRef: {fieldPath: spec.bogus}}}]}]\n"), "spec.containers[0].env[0].valueFrom.fieldRef.fieldPath", []string{"Unsupported value"}},
		{"user namespaces", pod("  hostUsers: false\n" + ctr), "spec.hostUsers", []string{"not supported by minikubelet yet"}},
		{"pod-level resources", pod("  resources: {limits: {cpu: 1}}\n" + ctr), "spec.resources", []string{"not supported by minikubelet yet"}},
		{"seccomp localhost without profile", pod("  securityContext: {seccompProfile: {type: Localhost}}\n" + ctr), "spec.securityContext.seccompProfile.localhostProfile", []string{"Required"}},
		{"privileged without escalation", pod("  containers: [{name: c, image: busybox, securityContext: {privileged: true, allowPrivilegeEscalation: false}}]\n"), "spec.containers[0].securityContext", []string{"allowPrivilegeEscalation"}},
		{"shareProcessNamespace with hostPID", pod("  shareProcessNamespace: true\n  hostPID: true\n" + ctr), "spec.shareProcessNamespace", []string{"cannot both"}},
		{"app container restartPolicy", pod("  containers: [{name: c, image: busybox, restartPolicy: Always}]\n"), "spec.containers[0].restartPolicy", []string{"init containers"}},
		{"host port taken twice", pod("  containers:\n  - {name: a, image: busybox, ports: [{containerPort: 80, hostPort: 8080}]}\n  - {name: b, image: busybox, ports: [{containerPort: 81, hostPort: 8080}]}\n"), "spec.containers[1].ports[0].hostPort", []string{"Duplicate", "spec.containers[0].ports[0].hostPort"}},
		{"hostNetwork ports clash", pod("  hostNetwork: true\n  containers:\n  - {name: a, image: busybox, ports: [{containerPort: 80}]}\n  - {name: b, image: busybox, ports: [{containerPort: 80}]}\n"), "spec.containers[1].ports[0].hostPort", []string{"Duplicate"}},
		{"bad sysctl", pod("  securityContext: {sysctls: [{name: \"Net.Bad Name\", value: \"1\"}]}\n" + ctr), "spec.securityContext.sysctls[0].name", []string{"regex"}},
		{"dnsPolicy None without servers", pod("  dnsPolicy: None\n" + ctr), "spec.dnsConfig.nameservers", []string{"Required"}},
		// metadata.uid names the pod's directory: ".." would make it the
		// root dir, and removing the pod would remove every pod's state.
		{"uid dot-dot", "apiVersion: v1\nkind: Pod\nmetadata: {name: v, uid: \"..\"}\nspec:\n" + ctr, "metadata.uid", []string{"Invalid value", `".."`, "UUID"}},
		{"uid with slash", "apiVersion: v1\nkind: Pod\nmetadata: {name: v, uid: \"a/../../b\"}\nspec:\n" + ctr, "metadata.uid", []string{"Invalid value"}},
		{"uid dot", "apiVersion: v1\nkind: Pod\nmetadata: {name: v, uid: \".\"}\nspec:\n" + ctr, "metadata.uid", []string{"Invalid value"}},
		{"uid with underscore", "apiVersion: v1\nkind: Pod\nmetadata: {name: v, uid: \"a_b\"}\nspec:\n" + ctr, "metadata.uid", []string{"Invalid value"}},
		{"uid free text", "apiVersion: v1\nkind: Pod\nmetadata: {name: v, uid: \"my pod\"}\nspec:\n" + ctr, "metadata.uid", []string{"Invalid value"}},
		{"apparmor localhost without profile", pod("  securityContext: {appArmorProfile: {type: Localhost}}\n" + ctr), "spec.securityContext.appArmorProfile.localhostProfile", []string{"Required"}},
		{"apparmor bad type", pod("  containers: [{name: c, image: busybox, securityContext: {appArmorProfile: {type: Strict}}}]\n"), "spec.containers[0].securityContext.appArmorProfile.type", []string{"Unsupported value"}},
		{"apparmor bad annotation", "apiVersion: v1\nkind: Pod\nmetadata: {name: v, annotations: {container.apparmor.security.beta.kubernetes.io/c: strict}}\nspec:\n" + ctr, "metadata.annotations[container.apparmor.security.beta.kubernetes.io/c]", []string{"invalid AppArmor profile"}},
		{"uid twice in a list", "apiVersion: v1\nkind: PodList\nitems:\n- {metadata: {name: a, uid: 6f3c2b1e-0d4a-4c1b-9e8f-1a2b3c4d5e6f}, spec: {containers: [{name: c, image: busybox}]}}\n- {metadata: {name: b, uid: 6f3c2b1e-0d4a-4c1b-9e8f-1a2b3c4d5e6f}, spec: {containers: [{name: c, image: busybox}]}}\n", "items[1].metadata.uid", []string{"Duplicate", "items[0]"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wantErr(t, parseErrLines(t, c.doc), c.path, c.wants...)
		})
	}

	// The API server's UID shape (a UUID), the kubelet's own (32 hex digits,
	// its static pod UID) and hand-written names are accepted as written.
	for _, uid := range []string{"6f3c2b1e-0d4a-4c1b-9e8f-1a2b3c4d5e6f", "6F3C2B1E-0D4A-4C1B-9E8F-1A2B3C4D5E6F", "0123456789abcdef0123456789abcdef", "fixed-uid"} {
		if got := mustParseOne(t, "apiVersion: v1\nkind: Pod\nmetadata: {name: v, uid: \""+uid+"\"}\nspec:\n"+ctr).UID; string(got) != uid {
			t.Errorf("uid %q became %q", uid, got)
		}
	}

	// What is valid stays valid: a sidecar, probes on it, emptyDir in memory, downward API.
	mustParseOne(t, pod(`  volumes:
  - {name: shm, emptyDir: {medium: Memory, sizeLimit: 64Mi}}
  - name: info
    downwardAPI:
      items:
      - {path: labels, fieldRef: {fieldPath: metadata.labels}}
      - {path: mem, resourceFieldRef: {containerName: c, resource: limits.memory}}
  initContainers:
  - name: proxy
    image: envoy:1
    restartPolicy: Always
    readinessProbe: {tcpSocket: {port: 9901}}
  containers:
  - name: c
    image: busybox
    ports: [{name: http, containerPort: 8080}]
    livenessProbe: {httpGet: {port: http, httpHeaders: [{name: X-Probe, value: "1"}]}}
    lifecycle: {preStop: {sleep: {seconds: 5}}}
    env:
    - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: MEM, valueFrom: {resourceFieldRef: {resource: limits.memory}}}
    resources: {limits: {cpu: 500m, memory: 64Mi}}
    volumeMounts:
    - {name: shm, mountPath: /dev/shm}
    - {name: info, mountPath: /etc/podinfo, readOnly: true}
`))
}

func TestSkipReason(t *testing.T) {
	manifests := []string{"etcd.yaml", "web.yml", "pod.json", "UPPER.YAML", "a.b.yaml"}
	for _, n := range manifests {
		if why := SkipReason(n); why != "" {
			t.Errorf("%s skipped (%s), want read", n, why)
		}
	}
	skipped := []string{".etcd.yaml", ".etcd.yaml.swp", ".etcd.yaml.swx", "etcd.yaml~", "4913", "etcd.yaml.swp",
		"#etcd.yaml#", ".#etcd.yaml", "etcd.yaml.bak", "etcd.yaml.orig", "etcd.yaml.dpkg-old", "etcd.yaml.dpkg-new",
		"etcd.yaml.dpkg-dist", "etcd.yaml.dpkg-tmp", "etcd.yaml.rpmnew", "etcd.yaml.rpmsave", "etcd.yaml.ucf-dist",
		"etcd.yaml.tmp", "etcd.yaml.1234", "README", "notes.txt", "kustomization.yaml.old"}
	for _, n := range skipped {
		if SkipReason(n) == "" {
			t.Errorf("%s would be read as a manifest", n)
		}
	}
}

func TestFileErrorFormat(t *testing.T) {
	lines := parseErrLines(t, simplePod+"    bogus: 1\n")
	want := testPath + ": spec.containers[0].bogus: unknown field"
	if len(lines) != 1 || lines[0] != want {
		t.Errorf("got %q, want %q", lines, want)
	}
}

// The parsed pod round-trips through JSON to the same UID: consumers may
// persist and reload it.
func TestParsedPodMarshals(t *testing.T) {
	pod := mustParseOne(t, simplePod)
	b, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	var back v1.Pod
	if err := yaml.Unmarshal(b, &back); err != nil || back.UID != pod.UID {
		t.Fatalf("round trip: %v %v", err, back.UID)
	}
	_ = resource.MustParse("1")
}

// Escape attempt: a manifest whose metadata.uid walks out of the pods
// folder (its directory would be <root-dir> itself, and removing the pod
// would remove every pod's state and the image store). Outcome: refused.
func TestEscapeManifestUIDPathTraversal(t *testing.T) {
	for _, uid := range []string{"..", ".", "../../etc", "a/b", "/"} {
		doc := "apiVersion: v1\nkind: Pod\nmetadata: {name: v, uid: \"" + uid + "\"}\nspec:\n  containers: [{name: c, image: busybox}]\n"
		wantErr(t, parseErrLines(t, doc), "metadata.uid", "Invalid value")
	}
}
