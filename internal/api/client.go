package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
)

// Client talks to the daemon's socket. Errors the server reports come back
// as *apierrors.StatusError (apierrors.IsNotFound works on them); a daemon
// that is not there gives an error wrapping ErrUnreachable.
type Client struct {
	socket string
	hc     *http.Client
}

// ErrUnreachable means nothing answers on the socket.
var ErrUnreachable = errors.New("minikubelet is not reachable")

// NewClient dials socket for every request.
func NewClient(socket string) *Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &Client{
		socket: socket,
		hc: &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return d.DialContext(ctx, "unix", socket)
			},
			DisableCompression: true,
		}},
	}
}

// Socket is the path the client dials.
func (c *Client) Socket() string { return c.socket }

func (c *Client) get(ctx context.Context, path string, q url.Values) (*http.Response, error) {
	u := "http://minikubelet" + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w at %s (is the daemon running? `minikubelet run`): %v", ErrUnreachable, c.socket, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, decodeStatus(resp)
	}
	return resp, nil
}

func decodeStatus(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var st metav1.Status
	if err := json.Unmarshal(body, &st); err == nil && st.Kind == "Status" {
		return &apierrors.StatusError{ErrStatus: st}
	}
	return &apierrors.StatusError{ErrStatus: metav1.Status{
		Status: metav1.StatusFailure, Code: int32(resp.StatusCode),
		Message: fmt.Sprintf("unexpected answer %s: %.200s", resp.Status, body),
	}}
}

func (c *Client) getJSON(ctx context.Context, path string, q url.Values, into any) error {
	resp, err := c.get(ctx, path, q)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
		return fmt.Errorf("decoding the answer to GET %s from %s: %w", path, c.socket, err)
	}
	return nil
}

// Healthz returns nil when the daemon answers ok.
func (c *Client) Healthz(ctx context.Context) error {
	resp, err := c.get(ctx, "/healthz", nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// ListPods lists pods of namespace ("" = all namespaces) matching the label
// selector (may be empty).
func (c *Client) ListPods(ctx context.Context, namespace, labelSelector string) (*v1.PodList, error) {
	var list v1.PodList
	q := url.Values{}
	if labelSelector != "" {
		q.Set("labelSelector", labelSelector)
	}
	if err := c.getJSON(ctx, podsPath(namespace), q, &list); err != nil {
		return nil, err
	}
	return &list, nil
}

// GetPod returns one pod; name may omit the -<node> suffix.
func (c *Client) GetPod(ctx context.Context, namespace, name string) (*v1.Pod, error) {
	var p v1.Pod
	if err := c.getJSON(ctx, "/pods/"+url.PathEscape(namespace)+"/"+url.PathEscape(name), nil, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// PodExtra returns the node-local facts of one pod.
func (c *Client) PodExtra(ctx context.Context, namespace, name string) (*PodExtra, error) {
	var e PodExtra
	if err := c.getJSON(ctx, "/pods/"+url.PathEscape(namespace)+"/"+url.PathEscape(name)+"/extra", nil, &e); err != nil {
		return nil, err
	}
	return &e, nil
}

// ListEvents lists events of namespace ("" = all).
func (c *Client) ListEvents(ctx context.Context, namespace string) (*v1.EventList, error) {
	var list v1.EventList
	q := url.Values{}
	if namespace != "" {
		q.Set("namespace", namespace)
	}
	if err := c.getJSON(ctx, "/events", q, &list); err != nil {
		return nil, err
	}
	return &list, nil
}

// Metrics returns the Prometheus text exposition.
func (c *Client) Metrics(ctx context.Context) (string, error) {
	resp, err := c.get(ctx, "/metrics", nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func podsPath(namespace string) string {
	if namespace == "" {
		return "/pods"
	}
	return "/pods/" + url.PathEscape(namespace)
}

// PodWatchEvent is one decoded line of a pod watch.
type PodWatchEvent struct {
	Type watch.EventType
	Pod  *v1.Pod
}

// Watcher is an open watch; Events closes when the stream ends and Err then
// tells why (nil when ctx ended).
type Watcher struct {
	Events <-chan PodWatchEvent
	err    error
	done   chan struct{}
}

// Err waits for the stream to end and returns why it ended.
func (w *Watcher) Err() error { <-w.done; return w.err }

// WatchPods watches pods of namespace ("" = all); with name, only the pod
// that name designates (it may not exist yet). Existing pods arrive first as
// ADDED.
func (c *Client) WatchPods(ctx context.Context, namespace, name, labelSelector string) (*Watcher, error) {
	path := podsPath(namespace)
	if name != "" {
		path = "/pods/" + url.PathEscape(namespace) + "/" + url.PathEscape(name)
	}
	q := url.Values{"watch": {"1"}}
	if labelSelector != "" {
		q.Set("labelSelector", labelSelector)
	}
	resp, err := c.get(ctx, path, q)
	if err != nil {
		return nil, err
	}
	ch := make(chan PodWatchEvent)
	w := &Watcher{Events: ch, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		defer close(ch)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			var raw struct {
				Type   watch.EventType `json:"type"`
				Object json.RawMessage `json:"object"`
			}
			if err := json.Unmarshal(sc.Bytes(), &raw); err != nil {
				w.err = fmt.Errorf("decoding a watch event from %s: %w", c.socket, err)
				return
			}
			if raw.Type == watch.Error {
				var st metav1.Status
				_ = json.Unmarshal(raw.Object, &st)
				w.err = &apierrors.StatusError{ErrStatus: st}
				return
			}
			var p v1.Pod
			if err := json.Unmarshal(raw.Object, &p); err != nil {
				w.err = fmt.Errorf("decoding a watched pod from %s: %w", c.socket, err)
				return
			}
			select {
			case ch <- PodWatchEvent{Type: raw.Type, Pod: &p}:
			case <-ctx.Done():
				return
			}
		}
		if ctx.Err() != nil {
			return
		}
		if err := sc.Err(); err != nil {
			w.err = fmt.Errorf("watch on %s: %w", c.socket, err)
			return
		}
		w.err = fmt.Errorf("watch on %s closed by the daemon", c.socket)
	}()
	return w, nil
}
