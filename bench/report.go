package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
)

// table is one scenario's Markdown table plus notes (what was measured, how,
// and why something is missing). A scenario that fails still yields its table
// with the error in the notes, so one broken part never hides the others.
type table struct {
	title  string
	header []string
	rows   [][]string
	notes  []string
}

func newTable(title string, header ...string) *table { return &table{title: title, header: header} }

func (t *table) row(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) note(format string, args ...any) {
	t.notes = append(t.notes, fmt.Sprintf(format, args...))
}

func (t *table) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "### %s\n\n", t.title)
	if len(t.rows) > 0 {
		b.WriteString("| " + strings.Join(t.header, " | ") + " |\n")
		seps := make([]string, len(t.header))
		for i := range seps {
			seps[i] = "---"
			if i > 0 {
				seps[i] = "---:"
			}
		}
		b.WriteString("| " + strings.Join(seps, " | ") + " |\n")
		for _, r := range t.rows {
			for len(r) < len(t.header) {
				r = append(r, "")
			}
			b.WriteString("| " + strings.Join(r, " | ") + " |\n")
		}
		b.WriteString("\n")
	}
	for _, n := range t.notes {
		b.WriteString("- " + n + "\n")
	}
	if len(t.notes) > 0 {
		b.WriteString("\n")
	}
	return b.String()
}

// reporter prints each finished table at once (a long run shows progress)
// and keeps them for the results file.
type reporter struct {
	mu    sync.Mutex
	out   io.Writer
	f     *os.File
	label string // appended to every table's heading (a guest's: vmLabel)
}

func (r *reporter) emit(s string) {
	s = labelHeadings(s, r.label)
	r.mu.Lock()
	defer r.mu.Unlock()
	io.WriteString(r.out, s)
	if r.f != nil {
		r.f.WriteString(s)
		r.f.Sync()
	}
}

// labelHeadings appends the label to every table heading ("### ...") of a
// piece of the report.
func labelHeadings(md, label string) string {
	if label == "" {
		return md
	}
	lines := strings.Split(md, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "### ") {
			lines[i] = l + " — *" + label + "*"
		}
	}
	return strings.Join(lines, "\n")
}

// samples is a set of durations with nearest-rank percentiles.
type samples []time.Duration

func (s samples) sorted() samples {
	c := append(samples(nil), s...)
	sort.Slice(c, func(i, j int) bool { return c[i] < c[j] })
	return c
}

// pct is the nearest-rank percentile p (0..100); 0 when empty.
func (s samples) pct(p float64) time.Duration {
	if len(s) == 0 {
		return 0
	}
	c := s.sorted()
	k := int(math.Ceil(p/100*float64(len(c)))) - 1
	if k < 0 {
		k = 0
	}
	if k >= len(c) {
		k = len(c) - 1
	}
	return c[k]
}

func (s samples) median() time.Duration { return s.pct(50) }

func ms(d time.Duration) string {
	if d == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

func secs(d time.Duration) string {
	if d == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

// ratio formats a/b ("–" when either is missing).
func ratio(a, b time.Duration) string {
	if a <= 0 || b <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", float64(a)/float64(b))
}

// pairedRatio is the median of a[i]/b[i] over the runs where both exist:
// interleaved runs pair up, so drift of the machine cancels within a pair.
func pairedRatio(a, b []time.Duration) string {
	var rs []float64
	for i := range a {
		if i < len(b) && a[i] > 0 && b[i] > 0 {
			rs = append(rs, float64(a[i])/float64(b[i]))
		}
	}
	if len(rs) == 0 {
		return "–"
	}
	sort.Float64s(rs)
	return fmt.Sprintf("%.2f×", rs[(len(rs)-1)/2])
}

func mib(bytes int64) string { return fmt.Sprintf("%.1f MiB", float64(bytes)/(1<<20)) }

func nonzero(d []time.Duration) samples {
	var out samples
	for _, x := range d {
		if x > 0 {
			out = append(out, x)
		}
	}
	return out
}
