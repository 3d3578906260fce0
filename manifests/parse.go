package manifests

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v2"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	kjson "sigs.k8s.io/json"
	syaml "sigs.k8s.io/yaml"
)

// MaxFileSize is the largest manifest read, as the kubelet's file source
// (maxConfigLength, 10 MiB): a bigger file is an error, not a truncated pod.
const MaxFileSize = 10 << 20

// FileError is everything wrong with one manifest file. Errs hold field
// paths relative to the document (a PodList's pods under items[i]); an
// error about the whole file (syntax, size, a second document) has an empty
// Field.
type FileError struct {
	Path string
	Errs field.ErrorList
}

// Lines renders one problem per line as `FILE: field.path: reason`.
func (e *FileError) Lines() []string {
	out := make([]string, 0, len(e.Errs))
	for _, fe := range e.Errs {
		out = append(out, e.Path+": "+formatFieldError(fe))
	}
	return out
}

func (e *FileError) Error() string { return strings.Join(e.Lines(), "\n") }

// formatFieldError is field.Error's text, except for problems that have no
// offending value to show (unknown fields, file-level errors): those read
// `field: reason` or just `reason`.
func formatFieldError(fe *field.Error) string {
	if fe.Type == field.ErrorTypeInvalid && fe.BadValue == (field.OmitValueType{}) && fe.Detail != "" {
		if fe.Field == "" {
			return fe.Detail
		}
		return fe.Field + ": " + fe.Detail
	}
	return fe.Error()
}

// fileProblem is an error about the file as a whole (no field path).
func fileProblem(format string, args ...any) *field.Error {
	return &field.Error{Type: field.ErrorTypeInvalid, BadValue: field.OmitValueType{}, Detail: fmt.Sprintf(format, args...)}
}

func fileErr(path string, errs ...*field.Error) *FileError {
	return &FileError{Path: path, Errs: errs}
}

// HasManifestExtension reports whether name ends in .yaml, .yml or .json,
// the only files minikubelet reads from the manifest folder.
func HasManifestExtension(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// ReadFile reads and parses one manifest file (at most MaxFileSize bytes).
// The path is made absolute first so the UID is the one the daemon computes
// for the same file in its manifest folder.
func ReadFile(path, nodeName string) ([]*v1.Pod, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fileErr(path, fileProblem("%v", err))
	}
	data, err := readCapped(abs)
	if err != nil {
		return nil, fileErr(abs, fileProblem("%v", err))
	}
	return Parse(abs, data, nodeName)
}

// errTooBig names the cap so the user knows what to change.
var errTooBig = fmt.Errorf("file is larger than %d bytes (10 MiB), the limit for a manifest (as the kubelet's)", MaxFileSize)

// readCapped reads at most MaxFileSize bytes; more is an error.
func readCapped(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readAllCapped(f)
}

func readAllCapped(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFileSize {
		return nil, errTooBig
	}
	return data, nil
}

// Parse decodes, defaults, identifies and validates the pods of one
// manifest file. path is the file's path as the source knows it (it is part
// of the UID); nodeName is the node the static pods are bound to. A v1 Pod
// gives one pod, a v1 PodList one per item. Any problem fails the whole
// file with a *FileError.
func Parse(path string, data []byte, nodeName string) ([]*v1.Pod, error) {
	pods, errs := parse(path, data, nodeName)
	if len(errs) > 0 {
		return nil, &FileError{Path: path, Errs: errs}
	}
	return pods, nil
}

func parse(path string, data []byte, nodeName string) ([]*v1.Pod, field.ErrorList) {
	if len(data) > MaxFileSize {
		return nil, field.ErrorList{fileProblem("%v", errTooBig)}
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, field.ErrorList{fileProblem("file is empty: expected a v1 Pod (or PodList)")}
	}
	if fe := checkSingleDocument(data); fe != nil {
		return nil, field.ErrorList{fe}
	}
	// Strict conversion rejects duplicate keys, as the API server does.
	js, err := syaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, field.ErrorList{fileProblem("not valid YAML or JSON: %s", strings.TrimPrefix(err.Error(), "error converting YAML to JSON: "))}
	}
	var doc any
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return nil, field.ErrorList{fileProblem("not valid YAML or JSON: %v", err)}
	}
	obj, ok := doc.(map[string]any)
	if !ok {
		if doc == nil {
			return nil, field.ErrorList{fileProblem("file has no content: expected a v1 Pod (or PodList)")}
		}
		return nil, field.ErrorList{fileProblem("expected a v1 Pod object (apiVersion: v1, kind: Pod), got %s", jsonKind(doc))}
	}
	kind, _ := obj["kind"].(string)
	apiVersion, _ := obj["apiVersion"].(string)
	var errs field.ErrorList
	switch {
	case obj["kind"] == nil:
		errs = append(errs, field.Required(field.NewPath("kind"), "a static pod manifest is a v1 Pod: add `apiVersion: v1` and `kind: Pod`"))
	case kind != "Pod" && kind != "PodList":
		fe := field.NotSupported(field.NewPath("kind"), obj["kind"], []string{"Pod", "PodList"})
		fe.Detail = fmt.Sprintf("minikubelet runs static pods only: kind %v is not a Pod (supported: v1 Pod and v1 PodList)", obj["kind"])
		errs = append(errs, fe)
	}
	if obj["apiVersion"] == nil {
		errs = append(errs, field.Required(field.NewPath("apiVersion"), "must be v1"))
	} else if apiVersion != "v1" {
		errs = append(errs, field.NotSupported(field.NewPath("apiVersion"), obj["apiVersion"], []string{"v1"}))
	}
	if len(errs) > 0 {
		return nil, errs
	}

	if kind == "PodList" {
		if errs := checkShape(nil, obj, podListType); len(errs) > 0 {
			return nil, errs
		}
		var list v1.PodList
		if errs := strictDecode(js, &list); len(errs) > 0 {
			return nil, errs
		}
		if len(list.Items) == 0 {
			return nil, field.ErrorList{field.Required(field.NewPath("items"), "a PodList needs at least one pod")}
		}
		var pods []*v1.Pod
		seen := map[string]int{}
		seenUID := map[types.UID]int{}
		for i := range list.Items {
			p := field.NewPath("items").Index(i)
			pod := list.Items[i].DeepCopy()
			// Items may omit their own TypeMeta; when given it must be v1 Pod.
			if pod.Kind != "" && pod.Kind != "Pod" {
				errs = append(errs, field.NotSupported(p.Child("kind"), pod.Kind, []string{"Pod"}))
			}
			if pod.APIVersion != "" && pod.APIVersion != "v1" {
				errs = append(errs, field.NotSupported(p.Child("apiVersion"), pod.APIVersion, []string{"v1"}))
			}
			pod.Kind, pod.APIVersion = "Pod", "v1"
			errs = append(errs, prepare(pod, path, nodeName, p)...)
			key := pod.Namespace + "/" + pod.Name
			if j, dup := seen[key]; dup {
				fe := field.Duplicate(p.Child("metadata", "name"), list.Items[i].Name)
				fe.Detail = fmt.Sprintf("items[%d] already defines pod %s", j, key)
				errs = append(errs, fe)
			}
			seen[key] = i
			if j, dup := seenUID[pod.UID]; dup {
				fe := field.Duplicate(p.Child("metadata", "uid"), string(pod.UID))
				fe.Detail = fmt.Sprintf("items[%d] already has uid %s", j, pod.UID)
				errs = append(errs, fe)
			}
			seenUID[pod.UID] = i
			pods = append(pods, pod)
		}
		if len(errs) > 0 {
			return nil, errs
		}
		return pods, nil
	}

	if errs := checkShape(nil, obj, podType); len(errs) > 0 {
		return nil, errs
	}
	pod := &v1.Pod{}
	if errs := strictDecode(js, pod); len(errs) > 0 {
		return nil, errs
	}
	if errs := prepare(pod, path, nodeName, nil); len(errs) > 0 {
		return nil, errs
	}
	return []*v1.Pod{pod}, nil
}

// prepare applies v1 defaults, the static pod identity, then validation.
func prepare(pod *v1.Pod, path, nodeName string, p *field.Path) field.ErrorList {
	origName := pod.Name
	SetDefaults(pod)
	applyStaticIdentity(pod, path, nodeName)
	return validatePod(pod, origName, p)
}

// strictDecode is the real decode, case-sensitive and strict like the API
// server's. checkShape has already reported anything it would reject with a
// precise path; this is the backstop for what the shape check does not model.
func strictDecode(js []byte, into any) field.ErrorList {
	strictErrs, err := kjson.UnmarshalStrict(js, into)
	if err != nil {
		return field.ErrorList{fileProblem("cannot decode: %v", err)}
	}
	var errs field.ErrorList
	for _, se := range strictErrs {
		errs = append(errs, fileProblem("%v", se))
	}
	return errs
}

// checkSingleDocument rejects a second YAML document: one file is one pod
// (or one PodList), and silently running only the first would surprise.
func checkSingleDocument(data []byte) *field.Error {
	if bytes.HasPrefix(bytes.TrimSpace(data), []byte("{")) || bytes.HasPrefix(bytes.TrimSpace(data), []byte("[")) {
		return nil // JSON: one value; trailing garbage fails the parse anyway
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	docs := 0
	for {
		var v any
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return nil // syntax errors are reported by the real conversion
		}
		if v == nil {
			continue // an empty document ("---" alone) is harmless
		}
		docs++
		if docs == 2 {
			line := documentStartLine(data, 2)
			where := ""
			if line > 0 {
				where = fmt.Sprintf(" (the one starting at line %d)", line)
			}
			return fileProblem("file holds more than one YAML document%s: a manifest is one Pod (or one v1 PodList); put each pod in its own file", where)
		}
	}
}

// documentStartLine is the 1-based line of the n-th non-empty document's
// "---" separator, or 0 when it cannot tell.
func documentStartLine(data []byte, n int) int {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), MaxFileSize+1)
	line, doc, content, sepLine := 0, 0, false, 0
	for sc.Scan() {
		line++
		t := sc.Text()
		if strings.HasPrefix(t, "---") && (len(t) == 3 || t[3] == ' ' || t[3] == '\t') {
			if content {
				content = false
			}
			sepLine = line
			continue
		}
		s := strings.TrimSpace(t)
		if s == "" || strings.HasPrefix(s, "#") || content {
			continue
		}
		content = true
		doc++
		if doc == n {
			return sepLine
		}
	}
	return 0
}

// jsonKind names a decoded JSON value's type for messages.
func jsonKind(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	case string:
		return fmt.Sprintf("string %q", v)
	case json.Number:
		return "number " + v.String()
	case bool:
		return fmt.Sprintf("boolean %v", v)
	}
	return fmt.Sprintf("%T", v)
}
