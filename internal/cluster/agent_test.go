package cluster

import (
	"errors"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestNodeStatusChangedIgnoresHeartbeats(t *testing.T) {
	a := &v1.NodeStatus{Conditions: []v1.NodeCondition{{Type: v1.NodeReady, Status: v1.ConditionTrue,
		LastHeartbeatTime: metav1.NewTime(time.Unix(100, 0))}}}
	b := a.DeepCopy()
	b.Conditions[0].LastHeartbeatTime = metav1.NewTime(time.Unix(200, 0))
	if nodeStatusChanged(a, b) {
		t.Error("a heartbeat alone is not a change")
	}
	b.Conditions[0].Status = v1.ConditionFalse
	if !nodeStatusChanged(a, b) {
		t.Error("Ready True -> False is a change")
	}
}

func TestIsUnreachable(t *testing.T) {
	if !isUnreachable(errors.New("dial tcp 127.0.0.1:6443: connect: connection refused")) {
		t.Error("a dial error is unreachable")
	}
	if isUnreachable(apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "x", errors.New("no"))) {
		t.Error("a refusal is an answer")
	}
}

func TestWithUIDPrecondition(t *testing.T) {
	p, err := withUIDPrecondition([]byte(`{"status":{"phase":"Running"}}`), "u1")
	if err != nil || string(p) != `{"metadata":{"uid":"u1"},"status":{"phase":"Running"}}` {
		t.Fatalf("%s %v", p, err)
	}
}
