package main

import (
	"fmt"
	"html"
	"math"
	"strings"
	"time"
)

// chartSeries is one row of the start-latency chart.
type chartSeries struct {
	label string
	s     samples
}

// chartName is the chart's file beside the report: latest.md → latest-start.svg.
func chartName(report string) string {
	return strings.TrimSuffix(report, ".md") + "-start.svg"
}

var chartColors = []string{"#1f77b4", "#7f7f7f", "#ff7f0e", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#17becf"}

// startChart draws the distributions as a hand-written SVG: one row per
// series on a shared logarithmic time axis, every run a dot (jittered
// vertically so equal times stay visible), a bar from p10 to p90, a mark at
// p50 and the p50/p99 figures beside the label.
func startChart(title string, series []chartSeries) string {
	const (
		left, right, top, rowH, bottom = 300.0, 30.0, 46.0, 38.0, 44.0
		width                          = 860.0
	)
	plotW := width - left - right
	height := top + rowH*float64(len(series)) + bottom
	lo, hi := math.Inf(1), 0.0
	for _, s := range series {
		for _, d := range s.s {
			v := float64(d) / float64(time.Millisecond)
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
	}
	if hi <= 0 || math.IsInf(lo, 1) {
		lo, hi = 1, 10
	}
	lo = math.Pow(10, math.Floor(math.Log10(math.Max(lo, 0.1))))
	hi = math.Pow(10, math.Ceil(math.Log10(hi)))
	if hi <= lo {
		hi = lo * 10
	}
	x := func(v float64) float64 {
		v = math.Min(math.Max(v, lo), hi)
		return left + (math.Log10(v)-math.Log10(lo))/(math.Log10(hi)-math.Log10(lo))*plotW
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%.0f" y="22" font-size="15" font-weight="bold">%s</text>`+"\n", 10.0, html.EscapeString(title))
	// Grid: 1, 2 and 5 times each power of ten.
	axisY := top + rowH*float64(len(series))
	for p := lo; p <= hi*1.0001; p *= 10 {
		for _, m := range []float64{1, 2, 5} {
			v := p * m
			if v > hi*1.0001 {
				break
			}
			gx := x(v)
			stroke := "#e4e4e4"
			if m == 1 {
				stroke = "#bbbbbb"
			}
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="%s"/>`+"\n", gx, top-6, gx, axisY, stroke)
			fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" text-anchor="middle" fill="#444">%s</text>`+"\n", gx, axisY+16, axisLabel(v))
		}
	}
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" text-anchor="middle" fill="#444">milliseconds (log scale)</text>`+"\n", left+plotW/2, axisY+34)
	for i, s := range series {
		c := chartColors[i%len(chartColors)]
		cy := top + rowH*float64(i) + rowH/2
		if i%2 == 1 {
			fmt.Fprintf(&b, `<rect x="0" y="%.1f" width="%.0f" height="%.0f" fill="#f7f7f7"/>`+"\n", cy-rowH/2, width, rowH)
		}
		fmt.Fprintf(&b, `<text x="10" y="%.1f" font-weight="bold">%s</text>`+"\n", cy-3, html.EscapeString(s.label))
		msv := func(p float64) float64 { return float64(s.s.pct(p)) / float64(time.Millisecond) }
		fmt.Fprintf(&b, `<text x="10" y="%.1f" fill="#555" font-size="11">n %d · p50 %.1f ms · p90 %.1f ms · p99 %.1f ms</text>`+"\n", cy+11, len(s.s), msv(50), msv(90), msv(99))
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="1"/>`+"\n", x(msv(0)), cy, x(msv(100)), cy, c)
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="12" fill="%s" fill-opacity="0.25" stroke="%s"/>`+"\n", x(msv(10)), cy-6, math.Max(x(msv(90))-x(msv(10)), 1), c, c)
		for j, d := range s.s {
			jit := float64((j*37)%11-5) * 1.2
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="2.2" fill="%s" fill-opacity="0.55"/>`+"\n", x(float64(d)/float64(time.Millisecond)), cy+jit, c)
		}
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black" stroke-width="2.5"/>`+"\n", x(msv(50)), cy-10, x(msv(50)), cy+10)
	}
	b.WriteString("</svg>\n")
	return b.String()
}

func axisLabel(v float64) string {
	switch {
	case v >= 1000:
		return fmt.Sprintf("%g s", v/1000)
	default:
		return fmt.Sprintf("%g", v)
	}
}
