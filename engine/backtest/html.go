package backtest

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"strings"
	"time"

	"github.com/kedastral/kedastral/engine/internal/axis"
)

// maxChartPoints bounds the points per chart line; longer replays are
// reduced to the maximum of each bucket, which keeps peaks visible.
const maxChartPoints = 1500

// Colors of the methods in the charts.
var colors = map[string]string{
	"observed":    "#444444",
	Kedastral:     "#1f77b4",
	Reactive:      "#d62728",
	Oracle:        "#2ca02c",
	"predicted":   "#ff7f0e",
	"under":       "#f4b6b6",
	Naive:         "#9467bd",
	SeasonalNaive: "#8c564b",
	PredictLinear: "#e377c2",
	// PerfectForecast only appears as a point of the trade-off chart.
	PerfectForecast: "#17becf",
}

type line struct {
	Name, Color string
	Points      string // SVG polyline points
	Dash        bool
}

type chart struct {
	ID, Title, YLabel string
	XLabel            string
	W, H              int
	PW, PH            int // plot area
	Right, LabelY     int
	MidX, MidY        int // middle of the plot area
	Lines             []line
	Shade             []shadeRect
	YTicks            []tick
	XTicks            []tick
}

type shadeRect struct{ X, W float64 }

type tick struct {
	Pos    float64
	Label  string
	Anchor string // text-anchor; "" is middle
}

type page struct {
	Title    string
	Header   string
	Charts   []chart
	Forecast []ForecastScore
	Scaling  []ScalingScore
	Notes    []string
}

const plotLeft, plotTop, plotRight, plotBottom = 70, 30, 20, 40

// WriteHTML writes one self-contained page (inline SVG, no script or style
// from elsewhere): observed vs predicted, the replicas of Kedastral, reactive
// scaling and the oracle with Kedastral's under-provisioned steps shaded,
// and the summary tables.
func WriteHTML(w io.Writer, r *Result) error {
	from, to := r.ScoredFrom, len(r.Rows)
	if to-from < 2 {
		from = 0
	}
	times := make([]time.Time, 0, to-from)
	for i := from; i < to; i++ {
		times = append(times, r.Rows[i].Time)
	}
	obs := make([]float64, 0, to-from)
	for i := from; i < to; i++ {
		obs = append(obs, r.Rows[i].Observed)
	}
	var lines1 []line
	var series1 [][]float64
	series1 = append(series1, obs)
	names1 := []string{"observed"}
	if len(r.Ahead) > 0 {
		// The forecast made ahead earlier for each step.
		k := int(r.Ahead[0] / r.Step)
		pred := make([]float64, 0, to-from)
		for i := from; i < to; i++ {
			v := math.NaN()
			if j := i - k; j >= 0 {
				v = r.Rows[j].Pred[0]
			}
			pred = append(pred, v)
		}
		series1 = append(series1, pred)
		names1 = append(names1, fmt.Sprintf("predicted %s ahead (q=%v)", fmtDuration(r.Ahead[0]), r.Quantile))
	}
	c1 := chart{ID: "demand", Title: "Demand: observed and predicted", YLabel: demandLabel(r.Metric), XLabel: "time (UTC)", W: 1100, H: 320}
	yMax, yt := axis.Nice(maxOf(series1...), 5)
	for i, s := range series1 {
		col := colors["observed"]
		if i == 1 {
			col = colors["predicted"]
		}
		lines1 = append(lines1, line{Name: names1[i], Color: col, Points: polyline(s, c1, yMax)})
	}
	c1.Lines = lines1
	c1.YTicks, c1.XTicks = yTicks(c1, yMax, yt), xTicks(c1, times)

	c2 := chart{ID: "replicas", Title: "Replicas held by the HPA (Kedastral's under-provisioned steps shaded)", YLabel: "replicas", XLabel: "time (UTC)", W: 1100, H: 320}
	var reps [][]float64
	var names2 []string
	for _, m := range []string{Kedastral, Reactive, Oracle} {
		for _, s := range r.Sims {
			if s.Method != m {
				continue
			}
			v := make([]float64, 0, to-from)
			for i := from; i < to; i++ {
				v = append(v, s.Held[i]) // the mean over the step: the HPA may scale down within it
			}
			reps = append(reps, v)
			names2 = append(names2, m)
		}
	}
	needed := make([]float64, 0, to-from)
	for i := from; i < to; i++ {
		needed = append(needed, r.Rows[i].Observed/r.TargetPerPod)
	}
	yMax2, yt2 := axis.Nice(maxOf(append(reps, needed)...), 5)
	for i, v := range reps {
		c2.Lines = append(c2.Lines, line{Name: names2[i], Color: colors[names2[i]], Points: polyline(v, c2, yMax2)})
	}
	c2.Lines = append(c2.Lines, line{Name: "demand / targetPerPod", Color: colors["observed"], Points: polyline(needed, c2, yMax2), Dash: true})
	for _, s := range r.Sims {
		if s.Method != Kedastral {
			continue
		}
		pw := float64(c2.W-plotLeft-plotRight) / float64(to-from)
		for i := from; i < to; i++ {
			if d := r.Rows[i].Observed; !math.IsNaN(d) && s.Unserved[i] > 1e-9*max(d, 1) {
				x := plotLeft + float64(i-from)*pw
				if n := len(c2.Shade); n > 0 && math.Abs(c2.Shade[n-1].X+c2.Shade[n-1].W-x) < 1e-6 {
					c2.Shade[n-1].W += pw
				} else {
					c2.Shade = append(c2.Shade, shadeRect{X: x, W: pw})
				}
			}
		}
	}
	c2.YTicks, c2.XTicks = yTicks(c2, yMax2, yt2), xTicks(c2, times)

	p := page{
		Title: "Kedastral backtest: " + r.Policy + seriesTitle(r),
		Header: fmt.Sprintf("Model %s at %s, step %s, lead time %s. Simulated HPA: tolerance %v, scale-down stabilization %s, pods ready %s after the request. Scored from %s to %s (%d steps).",
			r.Model, levelTitle(r), fmtDuration(r.Step), fmtDuration(r.LeadTime), r.Tolerance, fmtDuration(r.Stabilize), fmtDuration(r.PodStartup),
			times[0].Format(time.RFC3339), times[len(times)-1].Format(time.RFC3339), len(times)),
		Charts:   []chart{withGeometry(c1), withGeometry(c2)},
		Forecast: r.Forecast,
		Scaling:  r.Scaling,
	}
	if n := quantileNote(r); n != "" {
		p.Notes = append(p.Notes, n)
	}
	return pageTmpl.Execute(w, p)
}

func maxOf(series ...[]float64) float64 {
	m := 0.0
	for _, s := range series {
		for _, v := range s {
			if !math.IsNaN(v) && !math.IsInf(v, 0) && v > m {
				m = v
			}
		}
	}
	if m == 0 {
		m = 1
	}
	return m * 1.05
}

// polyline maps v onto the chart's plot area, reducing it to at most
// maxChartPoints bucket maxima; missing values break nothing, they are skipped.
func polyline(v []float64, c chart, yMax float64) string {
	pw := float64(c.W - plotLeft - plotRight)
	ph := float64(c.H - plotTop - plotBottom)
	bucket := max(1, (len(v)+maxChartPoints-1)/maxChartPoints)
	var b strings.Builder
	for i := 0; i < len(v); i += bucket {
		m := math.NaN()
		for _, x := range v[i:min(i+bucket, len(v))] {
			if !math.IsNaN(x) && !math.IsInf(x, 0) && !(x <= m) {
				m = x
			}
		}
		if math.IsNaN(m) {
			continue
		}
		x := plotLeft + pw*float64(i)/float64(max(len(v)-1, 1))
		y := plotTop + ph*(1-m/yMax)
		fmt.Fprintf(&b, "%.1f,%.1f ", x, y)
	}
	return strings.TrimSpace(b.String())
}

func withGeometry(c chart) chart {
	c.PW, c.PH = c.W-plotLeft-plotRight, c.H-plotTop-plotBottom
	c.Right, c.LabelY = c.W-plotRight, c.H-plotBottom+16
	c.MidX, c.MidY = plotLeft+c.PW/2, plotTop+c.PH/2
	return c
}

// demandLabel is the demand axis' label: the policy's metric names the unit.
func demandLabel(metric string) string {
	if metric == "" {
		return "demand (in the unit of the policy's query)"
	}
	return "demand (" + metric + ")"
}

func yTicks(c chart, yMax float64, values []float64) []tick {
	ph := float64(c.H - plotTop - plotBottom)
	var t []tick
	for _, v := range values {
		t = append(t, tick{Pos: plotTop + ph*(1-v/yMax), Label: axis.Short(v)})
	}
	return t
}

func xTicks(c chart, times []time.Time) []tick {
	if len(times) < 2 {
		return nil
	}
	pw := float64(c.W - plotLeft - plotRight)
	var t []tick
	for k := 0; k <= 5; k++ {
		i := (len(times) - 1) * k / 5
		t = append(t, tick{Pos: plotLeft + pw*float64(i)/float64(len(times)-1), Label: times[i].UTC().Format("01-02 15:04")})
	}
	// The last label ends at the plot's right edge rather than past the
	// picture's.
	t[len(t)-1].Anchor = "end"
	return t
}

// htmlParts are the pieces both pages share: the head and its style, the
// scaling table of a []ScalingScore, and the script that marks each chart
// with the lines and points the browser drew (for the headless check).
const htmlParts = `{{define "head"}}<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{.Title}}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1150px; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { padding: 0.2em 0.7em; text-align: right; border-bottom: 1px solid #ddd; }
th:first-child, td:first-child { text-align: left; white-space: nowrap; }
.legend span { margin-right: 1.5em; }
.legend i { display: inline-block; width: 1.5em; height: 0.3em; vertical-align: middle; margin-right: 0.3em; }
svg text { font-size: 11px; fill: #555; }
</style>
</head>
<body>
<h1>{{.Title}}</h1>
<p>{{.Header}}</p>
{{end}}{{define "scaling"}}<table id="scaling">
<tr><th>method</th><th>unserved demand</th><th>vs reactive</th><th>time under-provisioned</th><th>over-provisioning</th><th>replica-hours</th><th>vs oracle</th><th>scale events</th></tr>
{{range .}}<tr><td>{{.Method}}</td><td>{{f .Unserved}}</td><td>{{f .UnservedVsReactive}}</td><td>{{f .UnderTime}}</td><td>{{f .Over}}</td><td>{{printf "%.1f" .ReplicaHours}}</td><td>{{f .VsOracle}}</td><td>{{.ScaleEvents}}</td></tr>
{{end}}</table>
{{end}}{{define "foot"}}<script>
// Marks each chart with what the browser drew, for the headless check.
for (const svg of document.querySelectorAll("svg.chart")) {
  let lines = 0, points = 0;
  for (const p of svg.querySelectorAll("polyline.series")) {
    const b = p.getBBox();
    if (b.width > 0 || b.height > 0) lines++;
  }
  for (const p of svg.querySelectorAll(".point")) {
    const b = p.getBBox();
    if (b.width > 0 && b.height > 0) points++;
  }
  // Labels that stick out of the picture are cut off.
  let clipped = 0;
  const s = svg.getBoundingClientRect();
  for (const t of svg.querySelectorAll("text")) {
    const b = t.getBoundingClientRect();
    if (b.left < s.left - 0.5 || b.right > s.right + 0.5 || b.top < s.top - 0.5 || b.bottom > s.bottom + 0.5) clipped++;
  }
  svg.setAttribute("data-drawn-lines", String(lines));
  svg.setAttribute("data-drawn-points", String(points));
  svg.setAttribute("data-clipped-labels", String(clipped));
}
</script>
</body>
</html>
{{end}}`

// htmlTemplate parses a page that uses htmlParts.
func htmlTemplate(name, body string) *template.Template {
	t := template.Must(template.New(name).Funcs(template.FuncMap{"f": fnum}).Parse(htmlParts))
	return template.Must(t.Parse(body))
}

var pageTmpl = htmlTemplate("page", `{{template "head" .}}
{{range .Charts}}
<h2>{{.Title}}</h2>
<div class="legend">{{range .Lines}}<span><i style="background:{{.Color}}"></i>{{.Name}}</span>{{end}}</div>
<svg id="{{.ID}}" class="chart" width="{{.W}}" height="{{.H}}" viewBox="0 0 {{.W}} {{.H}}" xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{{.Title}}">
{{$c := .}}<rect x="70" y="30" width="{{.PW}}" height="{{.PH}}" fill="#fafafa" stroke="#ccc"/>
{{range .Shade}}<rect class="under" x="{{printf "%.2f" .X}}" y="30" width="{{printf "%.2f" .W}}" height="{{$c.PH}}" fill="#f4b6b6"/>{{end}}
{{range .YTicks}}<line x1="70" x2="{{$c.Right}}" y1="{{printf "%.1f" .Pos}}" y2="{{printf "%.1f" .Pos}}" stroke="#e4e4e4"/><text x="64" y="{{printf "%.1f" .Pos}}" text-anchor="end" dominant-baseline="middle">{{.Label}}</text>{{end}}
{{range .XTicks}}<text class="xtick" x="{{printf "%.1f" .Pos}}" y="{{$c.LabelY}}" text-anchor="{{or .Anchor "middle"}}">{{.Label}}</text>{{end}}
<text class="ylabel" transform="rotate(-90)" x="-{{$c.MidY}}" y="14" text-anchor="middle">{{.YLabel}}</text>
{{if .XLabel}}<text class="xlabel" x="{{$c.MidX}}" y="{{$c.H}}" dy="-4" text-anchor="middle">{{.XLabel}}</text>{{end}}
{{range .Lines}}<polyline class="series" data-name="{{.Name}}" fill="none" stroke="{{.Color}}" stroke-width="1.3"{{if .Dash}} stroke-dasharray="4 3"{{end}} points="{{.Points}}"/>{{end}}
</svg>
{{end}}
<h2>Scaling outcome</h2>
{{template "scaling" .Scaling}}<h2>Forecast error</h2>
<table id="forecast">
<tr><th>method</th><th>ahead</th><th>n</th><th>MAE</th><th>wMAPE</th><th>MASE</th><th>coverage</th></tr>
{{range .Forecast}}<tr><td>{{.Method}}</td><td>{{.AheadS}}</td><td>{{.N}}</td><td>{{f .MAE}}</td><td>{{f .WMAPE}}</td><td>{{f .MASE}}</td><td>{{f .Coverage}}</td></tr>
{{end}}</table>
<p>MASE divides the mean absolute error by that of the one-day seasonal naive forecast over the scored steps. Coverage is the share of steps at or below the forecast. See docs/backtest.md for every convention.</p>
{{range .Notes}}<p>{{.}}</p>
{{end}}
{{template "foot"}}`)

// seriesTitle names the series in a title, when there are labels.
func seriesTitle(r *Result) string {
	if r.Labels.IsEmpty() {
		return ""
	}
	return " " + r.Labels.String()
}
