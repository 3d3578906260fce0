package manifests

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/equality"
)

var hex32 = regexp.MustCompile(`^[0-9a-f]{32}$`)

// FuzzParse feeds arbitrary bytes to the parser. Seeds: the kubeadm-shaped
// control-plane manifests in testdata (hostNetwork, hostPath volumes
// DirectoryOrCreate/FileOrCreate, httpGet probes on 127.0.0.1 with scheme
// HTTPS, priorityClassName system-node-critical, seccomp RuntimeDefault,
// cpu/memory requests, priority 2000001000) and small edge cases.
//
// Properties: Parse never panics; a failure is a *FileError whose every
// line names the file; a success is deterministic, carries the static
// identity, passes Validate again and is a fixed point of SetDefaults.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	for _, p := range seeds {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		simplePod,
		`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"j"},"spec":{"containers":[{"name":"c","image":"busybox"}]}}`,
		"apiVersion: v1\nkind: PodList\nitems:\n- metadata: {name: a}\n  spec: {containers: [{name: a, image: b}]}\n",
		simplePod + "---\n" + simplePod,
		simplePod + "    resources: {limits: {memory: 1e3Mi, cpu: \"0.001\"}}\n",
		simplePod + "    livenessProbe: {httpGet: {port: http, host: 127.0.0.1, scheme: HTTPS}}\n    ports: [{name: http, containerPort: 80}]\n",
		"a: &a [*a]\n",
		"",
		"kind: Pod\napiVersion: v1\nmetadata: {name: x, labels: {\"a/b\": c}}\nspec: {containers: [{name: c, image: i, env: [{name: A, value: \"1\"}]}], volumes: [{name: v}]}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		const path = "/etc/kubernetes/manifests/fuzz.yaml"
		pods, err := Parse(path, data, "node1")
		if err != nil {
			var fe *FileError
			if !errors.As(err, &fe) {
				t.Fatalf("error is %T, not *FileError: %v", err, err)
			}
			if len(fe.Errs) == 0 {
				t.Fatalf("FileError without errors")
			}
			for _, l := range fe.Lines() {
				if !strings.HasPrefix(l, path+": ") {
					t.Fatalf("error line does not name the file: %q", l)
				}
			}
			return
		}
		if len(pods) == 0 {
			t.Fatalf("success without pods")
		}
		again, err := Parse(path, data, "node1")
		if err != nil || len(again) != len(pods) {
			t.Fatalf("second parse differs: %v", err)
		}
		for i, pod := range pods {
			if pod.UID != again[i].UID {
				t.Fatalf("UID not deterministic: %s vs %s", pod.UID, again[i].UID)
			}
			if pod.Annotations[ConfigHashAnnotation] != string(pod.UID) || pod.Annotations[ConfigSourceAnnotation] != ConfigSourceFile {
				t.Fatalf("config annotations wrong: %v", pod.Annotations)
			}
			if !strings.HasSuffix(pod.Name, "-node1") || pod.Namespace == "" || pod.Spec.NodeName != "node1" {
				t.Fatalf("identity wrong: %s/%s on %q", pod.Namespace, pod.Name, pod.Spec.NodeName)
			}
			if errs := Validate(pod); len(errs) > 0 {
				t.Fatalf("parsed pod fails Validate: %v", errs)
			}
			redo := pod.DeepCopy()
			SetDefaults(redo)
			if !equality.Semantic.DeepEqual(redo, pod) {
				t.Fatalf("SetDefaults is not idempotent on %s", pod.Name)
			}
		}
		for _, pod := range pods {
			if !hex32.MatchString(string(pod.UID)) && !strings.Contains(string(data), string(pod.UID)) {
				t.Fatalf("UID %q is neither a hash nor from the file", pod.UID)
			}
		}
	})
}
