package forecast

import (
	"fmt"
	"html/template"
	"math"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/kedastral/kedastral/engine/internal/axis"
)

// Colors of the status page's charts.
const (
	observedColor  = "#444444"
	predictedColor = "#ff7f0e"
	desiredColor   = "#1f77b4"
)

// statusKey names a series on the status page: its labels without the
// policy's.
func statusKey(m map[string]string) string {
	b := labels.NewBuilder(labels.FromMap(m))
	b.Del(PolicyLabel, PolicyNamespaceLabel)
	return b.Labels().String()
}

// Geometry of a series chart: the demand panel above, the replicas below.
const (
	chartW, chartH           = 720, 230
	chartLeft, chartRight    = 56, 14
	demandTop, demandBottom  = 12, 140
	desiredTop, desiredBotom = 160, 200
	timeLabelY               = 218
)

// seriesChart draws the recent points of one series as inline SVG: the
// observed value, the forecast made ahead earlier placed at the time it is
// for (so it meets the observed value, and runs ahead of it by ahead at
// the right), and the desired replicas.
func seriesChart(pts []RecentPoint, ahead time.Duration) template.HTML {
	if len(pts) < 2 {
		return `<p class="note">The chart of this series starts once two cycles a minute apart have run.</p>`
	}
	t0 := pts[0].T
	t1 := pts[len(pts)-1].T + ahead.Milliseconds()
	if t1 <= t0 {
		t1 = t0 + 1
	}
	pw := float64(chartW - chartLeft - chartRight)
	x := func(t int64) float64 { return chartLeft + pw*float64(t-t0)/float64(t1-t0) }

	maxDemand, maxDesired := 0.0, 0.0
	for _, p := range pts {
		for _, v := range []float64{p.Observed, p.Predicted} {
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				maxDemand = max(maxDemand, v)
			}
		}
		maxDesired = max(maxDesired, float64(p.Desired))
	}
	top, ticks := axis.Nice(maxDemand, 4)
	rtop, rticks := axis.Nice(maxDesired, 4)
	y := func(v float64) float64 { return demandTop + (demandBottom-demandTop)*(1-v/top) }
	ry := func(v float64) float64 { return desiredTop + (desiredBotom-desiredTop)*(1-v/rtop) }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="series-chart" width="%d" height="%d" viewBox="0 0 %d %d" xmlns="http://www.w3.org/2000/svg" role="img" aria-label="observed, forecast and desired replicas over the last hours">`,
		chartW, chartH, chartW, chartH)
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.0f" height="%d" fill="#fafafa" stroke="#ccc"/>`, chartLeft, demandTop, pw, demandBottom-demandTop)
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.0f" height="%d" fill="#fafafa" stroke="#ccc"/>`, chartLeft, desiredTop, pw, desiredBotom-desiredTop)
	for _, v := range ticks {
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#e4e4e4"/><text x="%d" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>`,
			chartLeft, chartW-chartRight, y(v), y(v), chartLeft-4, y(v), axis.Short(v))
	}
	for _, v := range []float64{0, rticks[len(rticks)-1]} {
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>`, chartLeft-4, ry(v), axis.Short(v))
	}
	// Now: the newest cycle; right of it, the forecast only.
	now := x(pts[len(pts)-1].T)
	fmt.Fprintf(&b, `<line class="now" x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#999" stroke-dasharray="2 2"/>`, now, now, demandTop, desiredBotom)

	line := func(class, color string, dash bool, point func(p RecentPoint) (t int64, v float64, ok bool), yy func(float64) float64, step bool) {
		var pb strings.Builder
		prevY := math.NaN()
		for _, p := range pts {
			t, v, ok := point(p)
			if !ok {
				continue
			}
			if step && !math.IsNaN(prevY) {
				fmt.Fprintf(&pb, "%.1f,%.1f ", x(t), prevY)
			}
			prevY = yy(v)
			fmt.Fprintf(&pb, "%.1f,%.1f ", x(t), prevY)
		}
		if pb.Len() == 0 {
			return
		}
		fmt.Fprintf(&b, `<polyline class="%s" fill="none" stroke="%s" stroke-width="1.5"`, class, color)
		if dash {
			b.WriteString(` stroke-dasharray="5 3"`)
		}
		fmt.Fprintf(&b, ` points="%s"/>`, strings.TrimSpace(pb.String()))
	}
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	line("observed", observedColor, false, func(p RecentPoint) (int64, float64, bool) { return p.T, p.Observed, finite(p.Observed) }, y, false)
	line("predicted", predictedColor, true, func(p RecentPoint) (int64, float64, bool) {
		return p.T + ahead.Milliseconds(), p.Predicted, finite(p.Predicted)
	}, y, false)
	line("desired", desiredColor, false, func(p RecentPoint) (int64, float64, bool) { return p.T, float64(p.Desired), true }, ry, true)

	// Four time labels; the last one ends at the plot's right edge.
	for k := 0; k <= 3; k++ {
		t := t0 + (t1-t0)*int64(k)/3
		anchor := "middle"
		if k == 3 {
			anchor = "end"
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="%s">%s</text>`, x(t), timeLabelY, anchor, time.UnixMilli(t).UTC().Format("15:04"))
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="start">replicas</text>`, chartLeft+4, desiredTop-4)
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // built from numbers and fixed strings only
}
