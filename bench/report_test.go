package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/minikubelet/minikubelet/manifests"
)

func TestPercentilesNearestRank(t *testing.T) {
	var s samples
	for i := 10; i >= 1; i-- { // unsorted on purpose
		s = append(s, time.Duration(i)*time.Millisecond)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{0, 1 * time.Millisecond}, {50, 5 * time.Millisecond}, {90, 9 * time.Millisecond}, {99, 10 * time.Millisecond}, {100, 10 * time.Millisecond}} {
		if got := s.pct(c.p); got != c.want {
			t.Errorf("p%v = %v, want %v", c.p, got, c.want)
		}
	}
	if got := (samples{}).median(); got != 0 {
		t.Errorf("median of nothing = %v, want 0", got)
	}
}

func TestRatios(t *testing.T) {
	if got := ratio(300*time.Millisecond, 100*time.Millisecond); got != "3.00×" {
		t.Errorf("ratio = %q", got)
	}
	if got := ratio(0, time.Second); got != "–" {
		t.Errorf("ratio with a missing side = %q", got)
	}
	// Pairs where one side failed (0) are left out; median of 2, 4, 10 is 4.
	a := []time.Duration{2, 4, 10, 5}
	b := []time.Duration{1, 1, 1, 0}
	if got := pairedRatio(a, b); got != "4.00×" {
		t.Errorf("pairedRatio = %q, want 4.00×", got)
	}
}

func TestMetricCountSumsSeries(t *testing.T) {
	text := `# HELP minikubelet_reconcile_duration_seconds x
minikubelet_reconcile_duration_seconds_bucket{result="success",le="0.005"} 3
minikubelet_reconcile_duration_seconds_count{result="success"} 40
minikubelet_reconcile_duration_seconds_count{result="error"} 2
minikubelet_reconcile_duration_seconds_count_extra 99
`
	if got := metricCount(text, "minikubelet_reconcile_duration_seconds_count"); got != 42 {
		t.Errorf("metricCount = %v, want 42", got)
	}
	if got := metricCount(text, "minikubelet_dbus_call_duration_seconds_count"); got != 0 {
		t.Errorf("absent metric = %v, want 0", got)
	}
}

func TestTableMarkdownKeepsNotesWithoutRows(t *testing.T) {
	tb := newTable("4. Mass", "pods", "time")
	tb.note("**failed**: %s", "daemon down")
	md := tb.markdown()
	if strings.Contains(md, "| pods |") || !strings.Contains(md, "- **failed**: daemon down") {
		t.Errorf("markdown:\n%s", md)
	}
	tb.row("100", "1.00 s")
	md = tb.markdown()
	if !strings.Contains(md, "| pods | time |\n| --- | ---: |\n| 100 | 1.00 s |") {
		t.Errorf("markdown:\n%s", md)
	}
}

func TestPodYAMLNamesOutDirAndLimits(t *testing.T) {
	y := podYAML("start-1", "/tmp/x/out/1")
	for _, want := range []string{"name: start-1", "path: /tmp/x/out/1", "memory: 64Mi, cpu: 500m", "terminationGracePeriodSeconds: 0", "BENCH_ID, value: start-1/web"} {
		if !strings.Contains(y, want) {
			t.Errorf("manifest lacks %q:\n%s", want, y)
		}
	}
}

// The benchmark pod must be a manifest minikubelet accepts.
func TestPodYAMLParses(t *testing.T) {
	pods, err := manifests.Parse("start-1.yaml", []byte(podYAML("start-1", "/tmp/x")), "bench")
	if err != nil {
		t.Fatal(err)
	}
	if len(pods) != 1 || len(pods[0].Spec.Containers) != 2 {
		t.Fatalf("parsed %d pods", len(pods))
	}
}

func TestLabelHeadingsLabelsEveryTableOnly(t *testing.T) {
	md := newTable("1. Start", "a").markdown() + "### 2. Floor\n\n| a |\n- note ### not a heading\n"
	got := labelHeadings(md, "emulated (TCG) guest: compare ratios only")
	if n := strings.Count(got, "— *emulated (TCG) guest: compare ratios only*"); n != 2 {
		t.Errorf("%d labelled headings, want 2:\n%s", n, got)
	}
	if !strings.Contains(got, "### 1. Start — *emulated") || strings.Contains(got, "heading —") {
		t.Errorf("labelled:\n%s", got)
	}
	if labelHeadings(md, "") != md {
		t.Error("an empty label changed the text")
	}
}

// A reporter with a label (a guest's) labels what it prints and writes.
func TestReporterLabelsTables(t *testing.T) {
	var out bytes.Buffer
	r := &reporter{out: &out, label: "emulated (TCG) guest: compare ratios only"}
	r.emit(newTable("4. Mass", "pods").markdown())
	if !strings.HasPrefix(out.String(), "### 4. Mass — *emulated (TCG) guest: compare ratios only*\n") {
		t.Errorf("printed:\n%s", out.String())
	}
}
