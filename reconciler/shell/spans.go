package shell

import (
	"context"
	"log/slog"
	"time"
)

// spans times the phases of one action for a debug line (-v 4): where a
// pod start's milliseconds go. Free when debug logging is off.
type spans struct {
	log   *slog.Logger
	msg   string
	start time.Time
	last  time.Time
	attrs []any
}

func (n *Node) newSpans(msg string, attrs ...any) *spans {
	if n.opt.Log == nil || !n.opt.Log.Enabled(context.Background(), slog.LevelDebug) {
		return nil
	}
	now := time.Now()
	return &spans{log: n.opt.Log, msg: msg, start: now, last: now, attrs: attrs}
}

// mark closes the phase that ran since the previous mark.
func (s *spans) mark(phase string) {
	if s == nil {
		return
	}
	now := time.Now()
	s.attrs = append(s.attrs, phase, now.Sub(s.last).Round(10*time.Microsecond).String())
	s.last = now
}

func (s *spans) done() {
	if s == nil {
		return
	}
	s.log.Debug(s.msg, append(s.attrs, "total", time.Since(s.start).Round(10*time.Microsecond).String())...)
}
