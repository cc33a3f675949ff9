package backtest

import (
	"fmt"
	"io"
	"math"
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
}

// WriteCurveHTML writes the trade-off curve as one self-contained page:
// Kedastral's unserved demand (relative to reactive scaling) against its
// replica-hours (relative to the oracle) at each quantile, the methods that
// do not depend on the quantile as single points, and both tables.
func WriteCurveHTML(w io.Writer, c *CurveResult) error {
	r := c.First
	const width, height = 900, 560
	p := curvePage{
		Title: "Kedastral trade-off curve: " + r.Policy,
		Header: fmt.Sprintf("Model %s, step %s, lead time %s. Simulated HPA: tolerance %v, scale-down stabilization %s, pods ready %s after the request.",
			r.Model, fmtDuration(r.Step), fmtDuration(r.LeadTime), r.Tolerance, fmtDuration(r.Stabilize), fmtDuration(r.PodStartup)),
		W: width, H: height, PW: width - plotLeft - plotRight, PH: height - plotTop - plotBottom,
		Right: width - plotRight, Bottom: height - plotBottom,
		Curve: c.Points, CoverageAhead: aheadLabel(r),
	}
	if len(r.Rows) > 0 {
		p.Header += fmt.Sprintf(" Scored from %s to %s (%d steps).", r.Rows[r.ScoredFrom].Time.Format(time.RFC3339),
			r.Rows[len(r.Rows)-1].Time.Format(time.RFC3339), len(r.Rows)-r.ScoredFrom)
	}
	if c.Series > 0 {
		p.Header += " " + c.seriesLine() + "."
	}
	p.Scaling = c.Others()
	// Axes: replica-hours relative to the oracle, unserved relative to
	// reactive scaling, over every finite point.
	xLo, xHi, yHi := math.Inf(1), math.Inf(-1), 0.0
	see := func(s ScalingScore) {
		if x, y := s.VsOracle, s.UnservedVsReactive; finite(x) && finite(y) {
			xLo, xHi, yHi = min(xLo, x), max(xHi, x), max(yHi, y)
		}
	}
	for _, pt := range c.Points {
		see(pt.Scaling)
	}
	for _, s := range p.Scaling {
		see(s)
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
	for _, pt := range c.Points {
		if x, y, ok := pos(pt.Scaling); ok {
			p.Points = append(p.Points, curvePoint{X: x, Y: y, Label: fmt.Sprintf("q %v", pt.Quantile), Color: colors[Kedastral]})
			p.Path += fmt.Sprintf("%.1f,%.1f ", x, y)
		}
	}
	for _, s := range p.Scaling {
		if x, y, ok := pos(s); ok {
			col := colors[s.Method]
			if col == "" {
				col = "#555555"
			}
			dy := 12.0
			if y > float64(p.Bottom)-20 {
				dy = -8
			}
			p.Others = append(p.Others, curvePoint{X: x, Y: y, DY: dy, Label: s.Method, Color: col})
		}
	}
	for k := 0; k <= 4; k++ {
		v := xLo + (xHi-xLo)*float64(k)/4
		p.XTicks = append(p.XTicks, tick{Pos: plotLeft + float64(p.PW)*float64(k)/4, Label: fmt.Sprintf("%.3f", v)})
		u := yHi * float64(k) / 4
		p.YTicks = append(p.YTicks, tick{Pos: plotTop + float64(p.PH)*(1-float64(k)/4), Label: fmt.Sprintf("%.2f", u)})
	}
	return curveTmpl.Execute(w, p)
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

var curveTmpl = htmlTemplate("curve", `{{template "head" .}}
<h2>Unserved demand against replica-hours, one point per quantile</h2>
<p>Down is less demand lost (relative to reactive KEDA scaling), left is fewer replica-hours (relative to the oracle, which knows the future and answers exactly). Kedastral's points are the policy at each quantile; the others do not depend on it.</p>
<svg id="curve" class="chart" xmlns="http://www.w3.org/2000/svg" width="{{.W}}" height="{{.H}}" viewBox="0 0 {{.W}} {{.H}}">
{{$c := .}}<rect x="70" y="30" width="{{.PW}}" height="{{.PH}}" fill="#fafafa" stroke="#ccc"/>
{{range .YTicks}}<line x1="70" x2="{{$c.Right}}" y1="{{printf "%.1f" .Pos}}" y2="{{printf "%.1f" .Pos}}" stroke="#e4e4e4"/><text x="64" y="{{printf "%.1f" .Pos}}" text-anchor="end" dominant-baseline="middle">{{.Label}}</text>{{end}}
{{range .XTicks}}<line x1="{{printf "%.1f" .Pos}}" x2="{{printf "%.1f" .Pos}}" y1="30" y2="{{$c.Bottom}}" stroke="#e4e4e4"/><text x="{{printf "%.1f" .Pos}}" y="{{$c.Bottom}}" dy="16" text-anchor="middle">{{.Label}}</text>{{end}}
<text x="{{.Right}}" y="{{.Bottom}}" dy="32" text-anchor="end">replica-hours / oracle's</text>
<text x="14" y="24">unserved demand / reactive's</text>
<polyline class="series" data-name="kedastral" fill="none" stroke="#1f77b4" stroke-width="1.5" points="{{.Path}}"/>
{{range .Points}}<circle class="point" cx="{{printf "%.1f" .X}}" cy="{{printf "%.1f" .Y}}" r="4" fill="{{.Color}}"/><text x="{{printf "%.1f" .X}}" y="{{printf "%.1f" .Y}}" dx="7" dy="-6">{{.Label}}</text>
{{end}}{{range .Others}}<rect class="point" x="{{printf "%.1f" .X}}" y="{{printf "%.1f" .Y}}" width="8" height="8" transform="translate(-4,-4)" fill="{{.Color}}"/><text x="{{printf "%.1f" .X}}" y="{{printf "%.1f" .Y}}" dx="7" dy="{{.DY}}">{{.Label}}</text>
{{end}}</svg>
<h2>Kedastral at each quantile</h2>
<table id="curve-table">
<tr><th>quantile</th><th>coverage {{.CoverageAhead}}</th><th>unserved demand</th><th>vs reactive</th><th>time under-provisioned</th><th>over-provisioning</th><th>replica-hours</th><th>vs oracle</th><th>scale events</th></tr>
{{range .Curve}}<tr><td>{{.Quantile}}</td><td>{{f .Coverage}}</td><td>{{f .Scaling.Unserved}}</td><td>{{f .Scaling.UnservedVsReactive}}</td><td>{{f .Scaling.UnderTime}}</td><td>{{f .Scaling.Over}}</td><td>{{printf "%.1f" .Scaling.ReplicaHours}}</td><td>{{f .Scaling.VsOracle}}</td><td>{{.Scaling.ScaleEvents}}</td></tr>
{{end}}</table>
<h2>The same at every quantile</h2>
{{template "scaling" .Scaling}}<p>See docs/backtest.md for every convention.</p>
{{template "foot"}}`)
