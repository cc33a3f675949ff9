package backtest

import (
	"fmt"
	"github.com/kedastral/kedastral/engine/policy"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// curvePoint is a point of the trade-off chart, in plot coordinates.
type curvePoint struct {
	X, Y  float64
	DY    float64 // label offset: below the point, above it near the x axis
	Label string
	Color string
}

type curvePage struct {
	Title, Header string
	W, H          int
	PW, PH        int
	Right, Bottom int
	Path          string // Kedastral's curve, SVG polyline points
	Points        []curvePoint
	Others        []curvePoint
	XTicks        []tick
	YTicks        []tick
	Curve         []CurvePoint
	Scaling       []ScalingScore
	CoverageAhead string
	ChartID       string // the svg's id
}

// WriteCurveHTML writes the trade-off curve as one self-contained page:
// Kedastral's unserved demand (relative to reactive scaling) against its
// replica-hours (relative to the oracle) at each quantile, the methods that
// do not depend on the quantile as single points, and both tables.
func WriteCurveHTML(w io.Writer, c *CurveResult) error {
	r := c.First
	const width, height = 900, 560
	p := curvePage{
		Title: "Kedastral trade-off curve: " + r.Policy + seriesTitle(r),
		Header: fmt.Sprintf("Model %s, step %s, lead time %s. Simulated HPA: tolerance %v, scale-down stabilization %s, pods ready %s after the request.",
			r.Model, fmtDuration(r.Step), fmtDuration(r.LeadTime), r.Tolerance, fmtDuration(r.Stabilize), fmtDuration(r.PodStartup)),
		W: width, H: height, PW: width - plotLeft - plotRight, PH: height - plotTop - plotBottom,
		Right: width - plotRight, Bottom: height - plotBottom,
		Curve: c.Points, CoverageAhead: aheadLabel(r), ChartID: "curve",
	}
	if len(r.Rows) > 0 {
		p.Header += fmt.Sprintf(" Scored from %s to %s (%d steps).", r.Rows[r.ScoredFrom].Time.Format(time.RFC3339),
			r.Rows[len(r.Rows)-1].Time.Format(time.RFC3339), len(r.Rows)-r.ScoredFrom)
	}
	if c.Series > 0 {
		p.Header += " " + c.seriesLine() + "."
	}
	p.Scaling = c.Others()
	var circles []labeledScore
	for _, pt := range c.Points {
		label := fmt.Sprintf("q %v", pt.Quantile)
		if pt.Objective > 0 {
			label = fmt.Sprintf("objective %v: %.2f%% short", policy.Percent(pt.Objective), 100*pt.Scaling.UnderTime)
		}
		circles = append(circles, labeledScore{pt.Scaling, label, colors[Kedastral]})
	}
	var squares []labeledScore
	for _, s := range p.Scaling {
		squares = append(squares, labeledScore{s, s.Method, ""})
	}
	p.place(circles, squares, true)
	return curveTmpl.Execute(w, p)
}

// labeledScore is a point of a scatter chart: a scaling outcome, its label
// and color (the method's when empty).
type labeledScore struct {
	s            ScalingScore
	label, color string
}

// place lays out a chart of unserved demand (relative to reactive scaling)
// against replica-hours (relative to the oracle) over every finite point:
// circles (joined by a line when joined) and squares.
func (p *curvePage) place(circles, squares []labeledScore, joined bool) {
	xLo, xHi, yHi := math.Inf(1), math.Inf(-1), 0.0
	for _, l := range append(slices.Clone(circles), squares...) {
		if x, y := l.s.VsOracle, l.s.UnservedVsReactive; finite(x) && finite(y) {
			xLo, xHi, yHi = min(xLo, x), max(xHi, x), max(yHi, y)
		}
	}
	if math.IsInf(xLo, 0) {
		xLo, xHi = 0.9, 1.1
	}
	pad := max((xHi-xLo)*0.08, 0.01)
	xLo, xHi = xLo-pad, xHi+pad
	yHi = max(yHi*1.08, 0.05)
	pos := func(s ScalingScore) (float64, float64, bool) {
		x, y := s.VsOracle, s.UnservedVsReactive
		if !finite(x) || !finite(y) {
			return 0, 0, false
		}
		return plotLeft + float64(p.PW)*(x-xLo)/(xHi-xLo), plotTop + float64(p.PH)*(1-y/yHi), true
	}
	color := func(l labeledScore) string {
		switch {
		case l.color != "":
			return l.color
		case colors[l.s.Method] != "":
			return colors[l.s.Method]
		}
		return "#555555"
	}
	for _, l := range circles {
		if x, y, ok := pos(l.s); ok {
			p.Points = append(p.Points, curvePoint{X: x, Y: y, Label: l.label, Color: color(l)})
			if joined {
				p.Path += fmt.Sprintf("%.1f,%.1f ", x, y)
			}
		}
	}
	for _, l := range squares {
		if x, y, ok := pos(l.s); ok {
			dy := 12.0
			if y > float64(p.Bottom)-20 {
				dy = -8
			}
			p.Others = append(p.Others, curvePoint{X: x, Y: y, DY: dy, Label: l.label, Color: color(l)})
		}
	}
	for k := 0; k <= 4; k++ {
		v := xLo + (xHi-xLo)*float64(k)/4
		p.XTicks = append(p.XTicks, tick{Pos: plotLeft + float64(p.PW)*float64(k)/4, Label: fmt.Sprintf("%.3f", v)})
		u := yHi * float64(k) / 4
		p.YTicks = append(p.YTicks, tick{Pos: plotTop + float64(p.PH)*(1-float64(k)/4), Label: fmt.Sprintf("%.2f", u)})
	}
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// scatterPart draws a curvePage's chart: unserved demand against
// replica-hours, circles (joined when Path is set) and squares.
const scatterPart = `{{define "scatter"}}<svg id="{{.ChartID}}" class="chart" xmlns="http://www.w3.org/2000/svg" width="{{.W}}" height="{{.H}}" viewBox="0 0 {{.W}} {{.H}}">
{{$c := .}}<rect x="70" y="30" width="{{.PW}}" height="{{.PH}}" fill="#fafafa" stroke="#ccc"/>
{{range .YTicks}}<line x1="70" x2="{{$c.Right}}" y1="{{printf "%.1f" .Pos}}" y2="{{printf "%.1f" .Pos}}" stroke="#e4e4e4"/><text x="64" y="{{printf "%.1f" .Pos}}" text-anchor="end" dominant-baseline="middle">{{.Label}}</text>{{end}}
{{range .XTicks}}<line x1="{{printf "%.1f" .Pos}}" x2="{{printf "%.1f" .Pos}}" y1="30" y2="{{$c.Bottom}}" stroke="#e4e4e4"/><text x="{{printf "%.1f" .Pos}}" y="{{$c.Bottom}}" dy="16" text-anchor="middle">{{.Label}}</text>{{end}}
<text x="{{.Right}}" y="{{.Bottom}}" dy="32" text-anchor="end">replica-hours / oracle's</text>
<text x="14" y="24">unserved demand / reactive's</text>
{{if .Path}}<polyline class="series" data-name="kedastral" fill="none" stroke="#1f77b4" stroke-width="1.5" points="{{.Path}}"/>{{end}}
{{range .Points}}<circle class="point" cx="{{printf "%.1f" .X}}" cy="{{printf "%.1f" .Y}}" r="4" fill="{{.Color}}"/><text x="{{printf "%.1f" .X}}" y="{{printf "%.1f" .Y}}" dx="7" dy="-6">{{.Label}}</text>
{{end}}{{range .Others}}<rect class="point" x="{{printf "%.1f" .X}}" y="{{printf "%.1f" .Y}}" width="8" height="8" transform="translate(-4,-4)" fill="{{.Color}}"/><text x="{{printf "%.1f" .X}}" y="{{printf "%.1f" .Y}}" dx="7" dy="{{.DY}}">{{.Label}}</text>
{{end}}</svg>
{{end}}`

var curveTmpl = htmlTemplate("curve", scatterPart+`{{template "head" .}}
<h2>Unserved demand against replica-hours, one point per quantile</h2>
<p>Down is less demand lost (relative to reactive KEDA scaling), left is fewer replica-hours (relative to the oracle, which knows the future and answers exactly). Kedastral's points are the policy at each quantile; the others do not depend on it.</p>
{{template "scatter" .}}
<h2>Kedastral at each quantile</h2>
<table id="curve-table">
<tr><th>quantile</th><th>coverage {{.CoverageAhead}}</th><th>unserved demand</th><th>vs reactive</th><th>time under-provisioned</th><th>over-provisioning</th><th>replica-hours</th><th>vs oracle</th><th>scale events</th></tr>
{{range .Curve}}<tr><td>{{.Quantile}}</td><td>{{f .Coverage}}</td><td>{{f .Scaling.Unserved}}</td><td>{{f .Scaling.UnservedVsReactive}}</td><td>{{f .Scaling.UnderTime}}</td><td>{{f .Scaling.Over}}</td><td>{{printf "%.1f" .Scaling.ReplicaHours}}</td><td>{{f .Scaling.VsOracle}}</td><td>{{.Scaling.ScaleEvents}}</td></tr>
{{end}}</table>
<h2>The same at every quantile</h2>
{{template "scaling" .Scaling}}<p>See docs/backtest.md for every convention.</p>
{{template "foot"}}`)

// manyPage is the page of a backtest over several series.
type manyPage struct {
	curvePage
	Rows   []manyRow
	Failed []SeriesOutcome
	Count  string
}

type manyRow struct {
	Labels           string
	Scored           int
	Coverage         float64
	Kedastral        ScalingScore
	ReactiveVsOracle float64
	Errors           int
}

// WriteManyHTML writes the backtest of several series as one self-contained
// page: each series' Kedastral outcome as a point (unserved demand relative
// to reactive scaling against replica-hours relative to the oracle), every
// method's total over the series as a square, and the tables of WriteManyText.
func WriteManyHTML(w io.Writer, m *ManyResult) error {
	r := m.Settings
	const width, height = 900, 560
	p := manyPage{curvePage: curvePage{
		Title: "Kedastral backtest: " + r.Policy,
		Header: fmt.Sprintf("Model %s at quantile %v, step %s, lead time %s. Simulated HPA: tolerance %v, scale-down stabilization %s, pods ready %s after the request.",
			r.Model, r.Quantile, fmtDuration(r.Step), fmtDuration(r.LeadTime), r.Tolerance, fmtDuration(r.Stabilize), fmtDuration(r.PodStartup)),
		W: width, H: height, PW: width - plotLeft - plotRight, PH: height - plotTop - plotBottom,
		Right: width - plotRight, Bottom: height - plotBottom,
		CoverageAhead: aheadLabel(r), ChartID: "series", Scaling: m.Total,
	}}
	var circles, squares []labeledScore
	for _, s := range m.Series {
		if s.Err != nil {
			p.Failed = append(p.Failed, s)
			continue
		}
		k := methodScore(s.Scaling, Kedastral)
		p.Rows = append(p.Rows, manyRow{s.Labels.String(), s.Scored, s.Coverage, k, methodScore(s.Scaling, Reactive).VsOracle, s.Errors})
		circles = append(circles, labeledScore{k, seriesLabel(s.Labels.Map()), colors[Kedastral]})
	}
	for _, s := range m.Total {
		squares = append(squares, labeledScore{s, "all: " + s.Method, ""})
	}
	p.Count = fmt.Sprintf("%d series, %d backtested", len(m.Series), len(p.Rows))
	p.place(circles, squares, false)
	return manyTmpl.Execute(w, p)
}

// seriesLabel is a short label of a series for a chart: its label values.
func seriesLabel(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	vals := make([]string, len(keys))
	for i, k := range keys {
		vals[i] = l[k]
	}
	return strings.Join(vals, " ")
}

var manyTmpl = htmlTemplate("many", scatterPart+`{{template "head" .}}
<p>{{.Count}}.</p>
<h2>Unserved demand against replica-hours, one point per series</h2>
<p>Down is less demand lost (relative to reactive KEDA scaling on the same series), left is fewer replica-hours (relative to the oracle, which knows the future and answers exactly). Circles are Kedastral on each series; squares are every method over all series together.</p>
{{template "scatter" .}}
<h2>Kedastral per series</h2>
<table id="series-table">
<tr><th>series</th><th>scored steps</th><th>coverage {{.CoverageAhead}}</th><th>unserved demand</th><th>vs reactive</th><th>replica-hours</th><th>vs oracle</th><th>reactive vs oracle</th><th>steps not evaluated</th></tr>
{{range .Rows}}<tr><td>{{.Labels}}</td><td>{{.Scored}}</td><td>{{f .Coverage}}</td><td>{{f .Kedastral.Unserved}}</td><td>{{f .Kedastral.UnservedVsReactive}}</td><td>{{printf "%.1f" .Kedastral.ReplicaHours}}</td><td>{{f .Kedastral.VsOracle}}</td><td>{{f .ReactiveVsOracle}}</td><td>{{.Errors}}</td></tr>
{{end}}</table>
{{if .Failed}}<h2>Not backtested</h2>
<ul>{{range .Failed}}<li>{{.Labels}}: {{.Err}}</li>{{end}}</ul>
{{end}}<h2>All series together</h2>
{{template "scaling" .Scaling}}<p>See docs/backtest.md for every convention.</p>
{{template "foot"}}`)
