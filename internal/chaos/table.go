package chaos

import (
	"fmt"
	"strings"
	"sync"
	"time"
)

// Row is one scenario's line of the table.
type Row struct {
	Scenario   string
	Load       string // what ran meanwhile
	Faults     string // what was injected, with counts
	Lost       int    // desired pods (or exit codes) that did not come back
	Duplicated int    // pods or containers found more than once
	Leaked     int    // leftovers of pods that are gone
	Restarted  int    // containers restarted without a reason
	Converge   time.Duration
	Note       string // a failure or a skip, said in one line
}

// Results collects the rows of one run, in the order scenarios finish.
type Results struct {
	mu   sync.Mutex
	rows []Row
}

// Add records a row.
func (r *Results) Add(row Row) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rows = append(r.rows, row)
}

// Markdown renders the table.
func (r *Results) Markdown() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	b.WriteString("| scenario | load | faults injected | lost | duplicated | leaked | restarted without reason | longest converge |\n")
	b.WriteString("|---|---|---|---:|---:|---:|---:|---:|\n")
	for _, x := range r.rows {
		conv := "–"
		if x.Converge > 0 {
			conv = fmt.Sprintf("%.1f s", x.Converge.Seconds())
		}
		faults := x.Faults
		if x.Note != "" {
			faults += " (" + x.Note + ")"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %d | %d | %d | %d | %s |\n", x.Scenario, x.Load, faults, x.Lost, x.Duplicated, x.Leaked, x.Restarted, conv)
	}
	return b.String()
}

// Len is the number of rows.
func (r *Results) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.rows)
}
