package forecast

import (
	"encoding/json"
	"html/template"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

// StatusHandler serves the status page: HTML at "/" and JSON at
// "/api/v1/policies". version is shown in the page header.
func (m *Manager) StatusHandler(version string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/policies", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		st := m.Status()
		_ = enc.Encode(struct {
			Status   string         `json:"status"`
			Data     []PolicyStatus `json:"data"`
			Warnings []string       `json:"warnings,omitempty"`
		}{"success", st, statusWarnings(st)})
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		st := m.Status()
		charts := map[string]map[string]template.HTML{}
		for _, p := range st {
			pts, ahead := m.RecentPoints(p.Name)
			charts[p.Name] = map[string]template.HTML{}
			for i, s := range p.Series {
				if i >= maxChartSeries {
					break
				}
				k := statusKey(s.Labels)
				charts[p.Name][k] = seriesChart(pts[k], ahead)
			}
		}
		data := struct {
			Version  string
			Now      time.Time
			Policies []PolicyStatus
			Warnings []string
			Charts   map[string]map[string]template.HTML
		}{version, m.now(), st, statusWarnings(st), charts}
		if err := statusTemplate.Execute(w, data); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	return mux
}

// NoPolicyWarning is what the status page says when no policy runs.
const NoPolicyWarning = "No policy is running: the configuration holds no valid ForecastPolicy, so nothing is forecast and nothing is written."

// statusWarnings are the conditions the status page puts first.
func statusWarnings(st []PolicyStatus) []string {
	for _, p := range st {
		if p.LoadError == "" || p.Model != "" {
			return nil // a running policy
		}
	}
	return []string{NoPolicyWarning}
}

var statusTemplate = template.Must(template.New("status").Funcs(template.FuncMap{
	"ago": func(now, t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return now.Sub(t).Truncate(time.Second).String() + " ago"
	},
	"labels": func(m map[string]string) string { return labels.FromMap(m).String() },
	"aheads": func(m map[string]float64) string {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool {
			di, _ := time.ParseDuration(keys[i])
			dj, _ := time.ParseDuration(keys[j])
			return di < dj
		})
		parts := make([]string, 0, len(keys))
		for _, k := range keys {
			parts = append(parts, k+": "+trimFloat(m[k]))
		}
		return strings.Join(parts, ", ")
	},
	"num":   trimFloat,
	"key":   statusKey,
	"deref": func(p *float64) float64 { return *p },
	// models lists the models answering and their series counts: "holtwinters: 3, seasonal: 1".
	"models": func(m map[string]int) string {
		parts := make([]string, 0, len(m))
		for _, k := range slices.Sorted(maps.Keys(m)) {
			parts = append(parts, k+": "+strconv.Itoa(m[k]))
		}
		return strings.Join(parts, ", ")
	},
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Kedastral forecaster</title>
<style>
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin-bottom:1.5em}
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f3f3f3}.err{color:#b00020}.ok{color:#08660b}code{font-size:90%}
.warn{background:#fff4e5;border-left:4px solid #e68a00;padding:.5em .8em}
svg text{font-size:11px;fill:#555}.note{color:#666;font-size:90%}
.legend span{margin-right:1.2em;font-size:90%}.legend i{display:inline-block;width:1.5em;height:.25em;vertical-align:middle;margin-right:.3em}
</style></head><body>
<h1>Kedastral forecaster</h1>
<p>Version {{.Version}} · {{.Now.UTC.Format "2006-01-02 15:04:05 MST"}} · <a href="/metrics">metrics</a> · <a href="/api/v1/policies">JSON</a></p>
{{range .Warnings}}<p class="warn">{{.}}</p>
{{end}}<table>
<tr><th>Policy</th><th>Model</th><th>Series</th><th>Desired replicas</th><th>Last cycle</th><th>Last success</th><th>Events</th><th>Error</th></tr>
{{range .Policies}}<tr>
<td><a href="#{{.Name}}">{{.Name}}</a></td><td>{{.Model}}{{if .Models}}<br><small>{{models .Models}}</small>{{end}}</td><td>{{.SeriesCount}}</td>
<td>{{if .LastSuccess.IsZero}}–{{else}}{{index .DesiredRange 0}}{{if ne (index .DesiredRange 0) (index .DesiredRange 1)}}–{{index .DesiredRange 1}}{{end}}{{end}}</td>
<td>{{ago $.Now .LastCycle}}</td><td>{{ago $.Now .LastSuccess}}</td>
<td>{{range $i, $e := .Events}}{{if $i}}<br>{{end}}{{$e.Message}}{{end}}</td>
<td class="err">{{.LoadError}}{{if and .LoadError .LastError}}<br>{{end}}{{.LastError}}</td>
</tr>{{end}}
</table>
{{range $p := .Policies}}{{if .Series}}
<h2 id="{{.Name}}">{{.Name}}</h2>
{{if eq (len .Sources) 1}}<p>Query <code>{{.Query}}</code> every {{.Interval}}{{if .DataSource}} on data source {{.DataSource}}{{end}}; {{.Cycles}} cycles, last took {{num .LastDuration}}s.</p>
{{else}}<p>Every {{.Interval}}{{if .DataSource}} on data source {{.DataSource}}{{end}}; {{.Cycles}} cycles, last took {{num .LastDuration}}s. Desired replicas are the largest need of the sources:</p>
<ul>{{range .Sources}}<li>{{.Name}}: <code>{{.Query}}</code>, {{num .TargetPerPod}} per replica, quantile {{num .Quantile}}</li>{{end}}</ul>
<p>Driving the count: {{models .DrivenBy}}</p>{{end}}
{{range .Events}}<p class="event">{{.Message}}</p>{{end}}
{{if .ReadyReplicasQuery}}<p>Ready replicas: <code>{{.ReadyReplicasQuery}}</code></p>{{end}}
<table><tr><th>Series</th><th>Model</th><th>Observed</th><th>Predicted (ahead: value)</th><th>Desired replicas</th>{{if gt (len .Sources) 1}}<th>Driven by</th>{{end}}<th>Ready</th><th>Under-provisioned</th></tr>
{{range .Series}}<tr><td><code>{{labels .Labels}}</code></td><td>{{.Model}}</td><td>{{num .Observed}}</td>
<td>{{if .Error}}<span class="err">{{.Error}}</span>{{else}}{{aheads .Predicted}}{{end}}{{range .Sources}}<br><small>{{.Source}}: observed {{num .Observed}}{{if .Error}}, <span class="err">{{.Error}}</span>{{else}}, {{aheads .Predicted}}, needs {{.Need}}{{end}}</small>{{end}}</td>
<td>{{if not .Error}}{{.Desired}}{{if ne .Need .Desired}}<br><small>needs {{.Need}}</small>{{end}}{{if ne .HPA .Desired}}<br><small>HPA holds {{.HPA}}</small>{{end}}{{end}}</td>{{if gt (len $p.Sources) 1}}<td>{{.Source}}</td>{{end}}
<td>{{if .Ready}}{{num (deref .Ready)}}{{else}}–{{end}}</td>
<td>{{if .UnderprovisionSeconds}}{{if .ReadyNote}}unknown{{else if .Underprovisioned}}<span class="err">yes</span>{{else}}no{{end}}, {{num (deref .UnderprovisionSeconds)}}s in total{{end}}{{if .ReadyNote}}<br><small class="err">{{.ReadyNote}}</small>{{end}}</td></tr>{{end}}
</table>
<div class="legend"><span><i style="background:#444444"></i>observed</span><span><i style="background:#ff7f0e"></i>forecast, drawn at the time it is for</span><span><i style="background:#1f77b4"></i>desired replicas</span><span>dotted: the last cycle; times UTC</span></div>
{{range $s := .Series}}{{with index (index $.Charts $p.Name) (key $s.Labels)}}<h3><code>{{labels $s.Labels}}</code></h3>
{{.}}
{{end}}{{end}}{{if gt (len .Series) 12}}<p class="note">Charts of the first 12 series.</p>{{end}}{{end}}{{end}}
</body></html>
`))

// trimFloat formats v with at most three decimals and no trailing zeros.
func trimFloat(v float64) string {
	s := strconv.FormatFloat(v, 'f', 3, 64)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}
