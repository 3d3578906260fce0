package kubeletserver

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func TestSubresourceMapping(t *testing.T) {
	for path, want := range map[string]string{
		"/stats/summary": "stats", "/metrics": "metrics", "/metrics/cadvisor": "metrics", "/logs/": "log",
		"/pods": "pods", "/healthz": "healthz", "/containerLogs/a/b/c": "proxy", "/exec/a/b/c": "proxy", "/spec/": "spec",
	} {
		if got := subresource(path); got != want {
			t.Errorf("%s: %s, want %s", path, got, want)
		}
	}
}

func TestLogWriterSinceAndLimit(t *testing.T) {
	old := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339Nano)
	recent := time.Now().UTC().Format(time.RFC3339Nano)
	var b bytes.Buffer
	w := &logWriter{w: &b, since: time.Now().Add(-time.Minute), strip: true}
	w.Write([]byte(old + " one\n" + recent + " two\n"))
	w.Write([]byte(recent + " thr"))
	w.Write([]byte("ee\n"))
	if b.String() != "two\nthree\n" {
		t.Fatalf("since: %q", b.String())
	}
	b.Reset()
	w = &logWriter{w: &b, hasLimit: true, limit: 6}
	_, err := w.Write([]byte("hello\nworld\n"))
	if !errors.Is(err, errLimit) || b.String() != "hello\n" {
		t.Fatalf("limit: %q %v", b.String(), err)
	}
}
