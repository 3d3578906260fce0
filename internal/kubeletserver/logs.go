package kubeletserver

// logs.go: /containerLogs/{namespace}/{pod}/{container}, what `kubectl
// logs` reaches through the API server (kubelet: pkg/kubelet/server/server.go
// getContainerLogs; the query is a v1.PodLogOptions).

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/minikubelet/minikubelet/internal/api"
	"github.com/minikubelet/minikubelet/internal/api/kubectl"
)

func (s *Server) containerLogs(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/containerLogs/"), "/")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		http.Error(w, "want /containerLogs/{namespace}/{pod}/{container}", http.StatusBadRequest)
		return
	}
	q := r.URL.Query()
	boolQ := func(k string) (bool, error) {
		v := q.Get(k)
		if v == "" {
			return false, nil
		}
		return strconv.ParseBool(v)
	}
	intQ := func(k string) (int64, bool, error) {
		v := q.Get(k)
		if v == "" {
			return 0, false, nil
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err == nil && n < 0 {
			err = errors.New("must not be negative")
		}
		return n, true, err
	}
	o := kubectl.LogsOptions{Namespace: parts[0], Pod: parts[1], Container: parts[2], LogDir: s.o.LogDir, Tail: -1,
		NodeName: s.o.NodeName}
	var err error
	bad := func(k string, err error) {
		http.Error(w, fmt.Sprintf("invalid %s: %v", k, err), http.StatusBadRequest)
	}
	if o.Follow, err = boolQ("follow"); err != nil {
		bad("follow", err)
		return
	}
	if o.Previous, err = boolQ("previous"); err != nil {
		bad("previous", err)
		return
	}
	timestamps, err := boolQ("timestamps")
	if err != nil {
		bad("timestamps", err)
		return
	}
	if n, ok, err := intQ("tailLines"); err != nil {
		bad("tailLines", err)
		return
	} else if ok {
		o.Tail = int(n)
	}
	limit, hasLimit, err := intQ("limitBytes")
	if err != nil || (hasLimit && limit == 0) {
		bad("limitBytes", fmt.Errorf("%q: must be a positive number", q.Get("limitBytes")))
		return
	}
	var since time.Time
	if n, ok, err := intQ("sinceSeconds"); err != nil {
		bad("sinceSeconds", err)
		return
	} else if ok {
		since = time.Now().Add(-time.Duration(n) * time.Second)
	}
	if v := q.Get("sinceTime"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			bad("sinceTime", err)
			return
		}
		since = t
	}
	// Lines carry their time when a filter needs it; the filter strips it
	// again unless the caller asked for timestamps.
	o.Timestamps = timestamps || !since.IsZero()
	w.Header().Set("Content-Type", "text/plain")
	out := &logWriter{w: w, limit: limit, hasLimit: hasLimit, since: since, strip: !timestamps && !since.IsZero()}
	if f, ok := w.(http.Flusher); ok {
		out.flush = f.Flush
	}
	err = kubectl.Logs(r.Context(), api.NewClient(s.o.Socket), o, out)
	if errors.Is(err, errLimit) || r.Context().Err() != nil {
		return
	}
	if err != nil {
		if out.wrote {
			return // the status line is sent; the stream just ends
		}
		code := http.StatusInternalServerError
		switch {
		case apierrors.IsNotFound(err), strings.Contains(err.Error(), "not found"):
			code = http.StatusNotFound
		case strings.Contains(err.Error(), "not valid for pod"), strings.Contains(err.Error(), "must be specified"):
			code = http.StatusBadRequest
		}
		http.Error(w, err.Error(), code)
		return
	}
	out.finish()
}

var errLimit = errors.New("limitBytes reached")

// logWriter applies sinceSeconds/sinceTime (per line, by its time) and
// limitBytes, and flushes every line so follow streams.
type logWriter struct {
	w        io.Writer
	flush    func()
	limit    int64
	hasLimit bool
	since    time.Time
	strip    bool
	buf      []byte
	wrote    bool
}

func (l *logWriter) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := l.buf[:i+1]
		if err := l.line(line); err != nil {
			return 0, err
		}
		l.buf = l.buf[i+1:]
	}
}

func (l *logWriter) line(line []byte) error {
	if !l.since.IsZero() {
		ts, rest, ok := bytes.Cut(line, []byte(" "))
		if t, err := time.Parse(time.RFC3339Nano, string(ts)); ok && err == nil {
			if t.Before(l.since) {
				return nil
			}
			if l.strip {
				line = rest
			}
		}
	}
	if l.hasLimit {
		if l.limit <= 0 {
			return errLimit
		}
		if int64(len(line)) > l.limit {
			line = line[:l.limit]
		}
		l.limit -= int64(len(line))
	}
	l.wrote = true
	if _, err := l.w.Write(line); err != nil {
		return err
	}
	if l.flush != nil {
		l.flush()
	}
	if l.hasLimit && l.limit <= 0 {
		return errLimit
	}
	return nil
}

func (l *logWriter) finish() {
	if len(l.buf) > 0 {
		_ = l.line(l.buf)
		l.buf = nil
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
