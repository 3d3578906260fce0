package manifests

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Why a shape check: encoding/json stops at the first error and reports
// type errors as "Go struct field Container.spec.containers.ports.containerPort"
// (no list index), and custom unmarshalers (resource.Quantity,
// intstr.IntOrString, metav1.Time) fail with no path at all. Walking the
// decoded JSON beside the Go type gives every error, each with its exact
// path (spec.containers[1].resources.limits.memory), before the real decode.

var (
	podType          = reflect.TypeOf(v1.Pod{})
	podListType      = reflect.TypeOf(v1.PodList{})
	unmarshalerType  = reflect.TypeOf((*json.Unmarshaler)(nil)).Elem()
	quantityType     = reflect.TypeOf(resource.Quantity{})
	intOrStringType  = reflect.TypeOf(intstr.IntOrString{})
	structFieldCache sync.Map // reflect.Type -> map[string]reflect.Type
)

// checkShape returns an error for every unknown field and every value whose
// JSON type does not fit the Go type at that path.
func checkShape(p *field.Path, v any, t reflect.Type) field.ErrorList {
	if v == nil {
		return nil // null leaves the zero value, as encoding/json does
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		return checkLeafUnmarshal(p, v, t)
	}
	switch t.Kind() {
	case reflect.Struct:
		obj, ok := v.(map[string]any)
		if !ok {
			return field.ErrorList{typeError(p, v, "an object")}
		}
		fields := structFields(t)
		var errs field.ErrorList
		for _, k := range sortedKeys(obj) {
			ft, known := fields[k]
			if !known {
				errs = append(errs, unknownField(p, k, fields))
				continue
			}
			errs = append(errs, checkShape(p.Child(k), obj[k], ft)...)
		}
		return errs
	case reflect.Map:
		obj, ok := v.(map[string]any)
		if !ok {
			return field.ErrorList{typeError(p, v, "an object (a map)")}
		}
		var errs field.ErrorList
		for _, k := range sortedKeys(obj) {
			errs = append(errs, checkShape(mapKeyPath(p, k), obj[k], t.Elem())...)
		}
		return errs
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 { // []byte: base64 string
			return checkLeafUnmarshal(p, v, t)
		}
		list, ok := v.([]any)
		if !ok {
			return field.ErrorList{typeError(p, v, "a list")}
		}
		var errs field.ErrorList
		for i, e := range list {
			errs = append(errs, checkShape(p.Index(i), e, t.Elem())...)
		}
		return errs
	case reflect.String:
		if _, ok := v.(string); !ok {
			return field.ErrorList{typeError(p, v, "a string")}
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			return field.ErrorList{typeError(p, v, "a boolean (true or false)")}
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := v.(json.Number)
		if !ok {
			return field.ErrorList{typeError(p, v, "an integer")}
		}
		if _, err := strconv.ParseInt(n.String(), 10, t.Bits()); err != nil {
			return field.ErrorList{field.Invalid(p, n.String(), numberProblem(err, fmt.Sprintf("a whole number that fits in %d bits", t.Bits())))}
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, ok := v.(json.Number)
		if !ok {
			return field.ErrorList{typeError(p, v, "a non-negative integer")}
		}
		if _, err := strconv.ParseUint(n.String(), 10, t.Bits()); err != nil {
			return field.ErrorList{field.Invalid(p, n.String(), numberProblem(err, "a non-negative whole number"))}
		}
	case reflect.Float32, reflect.Float64:
		n, ok := v.(json.Number)
		if !ok {
			return field.ErrorList{typeError(p, v, "a number")}
		}
		if f, err := strconv.ParseFloat(n.String(), t.Bits()); err != nil || math.IsInf(f, 0) {
			return field.ErrorList{field.Invalid(p, n.String(), "must be a number in range")}
		}
	case reflect.Interface:
		return nil
	}
	return nil
}

func numberProblem(err error, want string) string {
	if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
		return "out of range: must be " + want
	}
	return "must be " + want
}

// checkLeafUnmarshal runs the type's own UnmarshalJSON on the value so its
// error (e.g. a malformed quantity) is reported at this path.
func checkLeafUnmarshal(p *field.Path, v any, t reflect.Type) field.ErrorList {
	switch t {
	case quantityType:
		switch v.(type) {
		case string, json.Number:
		default:
			return field.ErrorList{typeError(p, v, "a quantity (a string like \"100Mi\" or \"250m\", or a number)")}
		}
	case intOrStringType:
		switch n := v.(type) {
		case string:
			return nil
		case json.Number:
			if _, err := strconv.ParseInt(n.String(), 10, 32); err != nil {
				return field.ErrorList{field.Invalid(p, n.String(), numberProblem(err, "an integer (32-bit) or a string (a port name)"))}
			}
			return nil
		default:
			return field.ErrorList{typeError(p, v, "an integer or a string")}
		}
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return field.ErrorList{field.Invalid(p, fmt.Sprint(v), err.Error())}
	}
	if err := json.Unmarshal(raw, reflect.New(t).Interface()); err != nil {
		var bad any = string(raw)
		if s, ok := v.(string); ok {
			bad = s
		}
		return field.ErrorList{field.Invalid(p, bad, leafMessage(t, err))}
	}
	return nil
}

func leafMessage(t reflect.Type, err error) string {
	if t == quantityType {
		return "not a valid quantity: " + err.Error() + " (examples: 128Mi, 1Gi, 250m, 0.5, 2)"
	}
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "json: ")
	return msg
}

func typeError(p *field.Path, v any, want string) *field.Error {
	hint := ""
	if b, ok := v.(bool); ok && strings.Contains(want, "string") {
		// YAML 1.1 turns unquoted yes/no/on/off/true/false into booleans.
		hint = fmt.Sprintf(" (YAML reads unquoted y/n/yes/no/on/off/true/false as boolean %v: quote the value)", b)
	}
	if _, ok := v.(json.Number); ok && strings.Contains(want, "string") {
		hint = " (quote the value to make it a string)"
	}
	return field.Invalid(p, shortValue(v), fmt.Sprintf("must be %s, got %s%s", want, jsonKind(v), hint))
}

// shortValue keeps messages readable when the wrong value is a big object.
func shortValue(v any) any {
	switch v := v.(type) {
	case map[string]any, []any:
		return field.OmitValueType{}
	case json.Number:
		return v.String()
	}
	return v
}

// mapKeyPath writes plain keys (memory, cpu) the way users write them in
// YAML, resources.limits.memory; keys with dots or slashes (label keys) in
// brackets, as field.Path.Key does.
func mapKeyPath(p *field.Path, k string) *field.Path {
	plain := k != ""
	for _, r := range k {
		if !(r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			plain = false
			break
		}
	}
	if plain {
		return p.Child(k)
	}
	return p.Key(k)
}

func unknownField(p *field.Path, k string, fields map[string]reflect.Type) *field.Error {
	detail := "unknown field"
	best, bestDist := "", 3
	for _, name := range sortedTypeKeys(fields) {
		if strings.EqualFold(name, k) {
			best, bestDist = name, 0
			break
		}
		if d := editDistance(strings.ToLower(name), strings.ToLower(k)); d < bestDist {
			best, bestDist = name, d
		}
	}
	if best != "" {
		detail += fmt.Sprintf(" (did you mean %q?)", best)
	}
	return &field.Error{Type: field.ErrorTypeInvalid, Field: p.Child(k).String(), BadValue: field.OmitValueType{}, Detail: detail}
}

func sortedTypeKeys(m map[string]reflect.Type) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// editDistance is the Levenshtein distance, for "did you mean" hints.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// structFields maps JSON names to field types, flattening inlined structs
// (e.g. Probe's ProbeHandler) like encoding/json.
func structFields(t reflect.Type) map[string]reflect.Type {
	if m, ok := structFieldCache.Load(t); ok {
		return m.(map[string]reflect.Type)
	}
	m := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range structFields(ft) {
					if _, dup := m[k]; !dup {
						m[k] = v
					}
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		m[name] = f.Type
	}
	structFieldCache.Store(t, m)
	return m
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
