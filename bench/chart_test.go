package main

import (
	"encoding/xml"
	"io"
	"strings"
	"testing"
	"time"
)

// The chart is well-formed SVG with one dot per run and one p50 mark per
// series, and its axis spans every sample.
func TestStartChart(t *testing.T) {
	var a, b samples
	for i := 1; i <= 30; i++ {
		a = append(a, time.Duration(60+i)*time.Millisecond)
		b = append(b, time.Duration(500+10*i)*time.Millisecond)
	}
	svg := startChart(`start <&> "quoted"`, []chartSeries{{"minikubelet, loopback", a}, {"kubelet + containerd, hostNetwork", b}})
	d := xml.NewDecoder(strings.NewReader(svg))
	circles, texts := 0, []string{}
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, svg)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "circle" {
			circles++
		}
		if cd, ok := tok.(xml.CharData); ok {
			texts = append(texts, string(cd))
		}
	}
	if circles != 60 {
		t.Errorf("%d dots, want 60", circles)
	}
	all := strings.Join(texts, "|")
	for _, want := range []string{"10", "1 s", "p50 75.0 ms", "p50 650.0 ms", `start <&> "quoted"`} {
		if !strings.Contains(all, want) {
			t.Errorf("chart text lacks %q: %s", want, all)
		}
	}
	if got := chartName("bench/results/latest.md"); got != "bench/results/latest-start.svg" {
		t.Errorf("chartName = %q", got)
	}
}
