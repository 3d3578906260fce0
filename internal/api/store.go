package api

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
)

// Defaults of a Store.
const (
	// DefaultMaxEvents bounds the events kept (the API server expires them
	// after an hour; a node-local store keeps a count instead).
	DefaultMaxEvents = 1000
	// subscriberBuffer is how far a watcher may fall behind before its watch
	// is closed (it then re-lists, as API server clients do).
	subscriberBuffer = 256
)

// Store is an in-memory Source the daemon feeds. It assigns
// metadata.resourceVersion from one counter, aggregates repeated events the
// way client-go's event recorder does (count, lastTimestamp) and fans every
// change out to watchers. The zero value is not usable; call NewStore.
type Store struct {
	// Now is the clock for event timestamps; tests replace it.
	Now func() time.Time

	mu        sync.Mutex
	rv        uint64
	pods      map[string]v1.Pod // namespace/name
	extras    map[types.UID]PodExtra
	events    []v1.Event
	maxEvents int
	subs      map[chan WatchEvent]struct{}
}

// NewStore returns an empty Store keeping at most maxEvents events
// (DefaultMaxEvents when maxEvents <= 0).
func NewStore(maxEvents int) *Store {
	if maxEvents <= 0 {
		maxEvents = DefaultMaxEvents
	}
	return &Store{
		Now:       time.Now,
		pods:      map[string]v1.Pod{},
		extras:    map[types.UID]PodExtra{},
		maxEvents: maxEvents,
		subs:      map[chan WatchEvent]struct{}{},
	}
}

func podKey(namespace, name string) string { return namespace + "/" + name }

func (s *Store) nextRV() string {
	s.rv++
	return strconv.FormatUint(s.rv, 10)
}

// ResourceVersion is the version of the last change, for list metadata.
func (s *Store) ResourceVersion() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strconv.FormatUint(s.rv, 10)
}

// SetPod adds or replaces a pod (by namespace and name). A pod equal to the
// stored one apart from resourceVersion is not a change and notifies nobody.
func (s *Store) SetPod(pod v1.Pod) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := podKey(pod.Namespace, pod.Name)
	old, existed := s.pods[key]
	typ := watch.Added
	if existed {
		typ = watch.Modified
		pod.ResourceVersion = old.ResourceVersion // on our shallow copy
		if equality.Semantic.DeepEqual(old, pod) {
			return
		}
	}
	// Copied only when it is a change: the daemon sets every pod on every
	// round, and nearly all of them are unchanged.
	pod = *pod.DeepCopy()
	if existed {
		if old.UID != pod.UID {
			// A replaced pod (new UID) is another object, as the API server
			// shows a recreated mirror pod: DELETED for the old, ADDED for
			// the new; the old one's facts no longer apply.
			delete(s.extras, old.UID)
			old.ResourceVersion = s.nextRV()
			s.publish(WatchEvent{Type: watch.Deleted, Pod: &old})
			typ = watch.Added
		}
	}
	pod.ResourceVersion = s.nextRV()
	s.pods[key] = pod
	s.publish(WatchEvent{Type: typ, Pod: pod.DeepCopy()})
}

// DeletePod removes a pod and its extra; watchers get DELETED with the last state.
func (s *Store) DeletePod(namespace, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := podKey(namespace, name)
	old, ok := s.pods[key]
	if !ok {
		return
	}
	delete(s.pods, key)
	delete(s.extras, old.UID)
	old.ResourceVersion = s.nextRV()
	s.publish(WatchEvent{Type: watch.Deleted, Pod: &old})
}

// SetExtra replaces the node-local facts of a pod.
func (s *Store) SetExtra(uid types.UID, extra PodExtra) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.extras[uid] = extra
}

// RecordEvent stores an event. One equal to a stored event in involved
// object, type, reason, source and message raises that event's count and
// lastTimestamp instead ("x3 over 2m" in describe). Missing name, namespace,
// timestamps and count are filled in.
func (s *Store) RecordEvent(ev v1.Event) {
	ev = *ev.DeepCopy()
	s.mu.Lock()
	defer s.mu.Unlock()
	now := metav1.NewTime(s.Now())
	if ev.FirstTimestamp.IsZero() {
		ev.FirstTimestamp = now
	}
	if ev.LastTimestamp.IsZero() {
		ev.LastTimestamp = ev.FirstTimestamp
	}
	if ev.Count == 0 {
		ev.Count = 1
	}
	if ev.Namespace == "" {
		ev.Namespace = ev.InvolvedObject.Namespace
	}
	if ev.Type == "" {
		ev.Type = v1.EventTypeNormal
	}
	for i := range s.events {
		e := &s.events[i]
		if e.InvolvedObject == ev.InvolvedObject && e.Type == ev.Type && e.Reason == ev.Reason &&
			e.Source == ev.Source && e.Message == ev.Message {
			e.Count += ev.Count
			e.LastTimestamp = ev.LastTimestamp
			e.ResourceVersion = s.nextRV()
			// Keep the list ordered by last occurrence.
			agg := *e
			s.events = append(s.events[:i], s.events[i+1:]...)
			s.events = append(s.events, agg)
			s.publish(WatchEvent{Type: watch.Modified, Event: agg.DeepCopy()})
			return
		}
	}
	if ev.Name == "" {
		// client-go names events <object>.<hex unix nanos>.
		ev.Name = fmt.Sprintf("%s.%x", ev.InvolvedObject.Name, ev.FirstTimestamp.UnixNano())
	}
	ev.ResourceVersion = s.nextRV()
	s.events = append(s.events, ev)
	if over := len(s.events) - s.maxEvents; over > 0 {
		s.events = append([]v1.Event(nil), s.events[over:]...)
	}
	s.publish(WatchEvent{Type: watch.Added, Event: ev.DeepCopy()})
}

// Pods implements Source, sorted by namespace and name.
func (s *Store) Pods() []v1.Pod {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]v1.Pod, 0, len(s.pods))
	for _, p := range s.pods {
		out = append(out, *p.DeepCopy())
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// Pod implements Source.
func (s *Store) Pod(namespace, name string) (v1.Pod, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.pods[podKey(namespace, name)]
	if !ok {
		return v1.Pod{}, false
	}
	return *p.DeepCopy(), true
}

// Events implements Source.
func (s *Store) Events() []v1.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]v1.Event, len(s.events))
	for i := range s.events {
		out[i] = *s.events[i].DeepCopy()
	}
	return out
}

// Extra implements Source.
func (s *Store) Extra(uid types.UID) (PodExtra, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.extras[uid]
	return e, ok
}

// Subscribe implements Source.
func (s *Store) Subscribe(ctx context.Context) <-chan WatchEvent {
	ch := make(chan WatchEvent, subscriberBuffer)
	s.mu.Lock()
	s.subs[ch] = struct{}{}
	s.mu.Unlock()
	go func() {
		<-ctx.Done()
		s.mu.Lock()
		defer s.mu.Unlock()
		if _, ok := s.subs[ch]; ok {
			delete(s.subs, ch)
			close(ch)
		}
	}()
	return ch
}

// publish runs with s.mu held, so events reach every watcher in order.
func (s *Store) publish(ev WatchEvent) {
	ev.line = &sharedLine{}
	for ch := range s.subs {
		select {
		case ch <- ev:
		default:
			// Too slow: end its watch rather than block the daemon.
			delete(s.subs, ch)
			close(ch)
		}
	}
}
