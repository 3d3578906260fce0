package kubectl

import (
	"fmt"
	"strings"

	v1 "k8s.io/api/core/v1"
)

// WaitFor is a parsed kubectl --for value.
type WaitFor struct {
	// Kind is "condition", "delete" or "create".
	Kind string
	// Condition and Value for Kind "condition": condition=Ready[=true].
	Condition string
	Value     string
}

// ParseFor parses --for as kubectl does: delete, create,
// condition=NAME or condition=NAME=VALUE (VALUE defaults to true).
func ParseFor(s string) (WaitFor, error) {
	switch strings.ToLower(s) {
	case "delete":
		return WaitFor{Kind: "delete"}, nil
	case "create":
		return WaitFor{Kind: "create"}, nil
	}
	if rest, ok := strings.CutPrefix(s, "condition="); ok {
		name, value, hasValue := strings.Cut(rest, "=")
		if name == "" {
			return WaitFor{}, fmt.Errorf("--for=%s: condition name is empty", s)
		}
		if !hasValue {
			value = "true"
		}
		return WaitFor{Kind: "condition", Condition: name, Value: value}, nil
	}
	return WaitFor{}, fmt.Errorf("unrecognized condition: %q (use delete, create, condition=NAME or condition=NAME=VALUE)", s)
}

// Met reports whether the wait is over for a pod that exists (pod != nil)
// or does not (pod == nil).
func (w WaitFor) Met(pod *v1.Pod) bool {
	switch w.Kind {
	case "delete":
		return pod == nil
	case "create":
		return pod != nil
	}
	if pod == nil {
		return false
	}
	for _, c := range pod.Status.Conditions {
		if strings.EqualFold(string(c.Type), w.Condition) {
			return strings.EqualFold(string(c.Status), w.Value)
		}
	}
	return false
}
