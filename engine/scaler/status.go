package scaler

import (
	"encoding/json"
	"html/template"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/status"

	pb "github.com/kedastral/kedastral/proto"
)

// maxAnswerLog bounds the ScaledObject triggers the status page remembers;
// the one answered longest ago goes first.
const maxAnswerLog = 1000

// AnswerStatus is the last answer the scaler gave one trigger of one
// ScaledObject, as the status page and /api/v1/scaledobjects show it.
type AnswerStatus struct {
	// ScaledObject and Namespace are those of KEDA's request.
	ScaledObject    string    `json:"scaledObject"`
	Namespace       string    `json:"namespace"`
	Metric          string    `json:"metric"`
	Policy          string    `json:"policy"`
	PolicyNamespace string    `json:"policyNamespace,omitempty"`
	Series          string    `json:"series"`
	Method          string    `json:"method"`
	Time            time.Time `json:"time"`
	Answers         int       `json:"answers"`
	// Source is forecast, hybrid or reactive, or error when the scaler
	// gave no answer (KEDA's fallback then applies); Error says why.
	Source   string  `json:"source"`
	Replicas float64 `json:"replicas"`
	Error    string  `json:"error,omitempty"`
	// ForecastAgeSeconds is the age of the forecast sample the answer
	// read; absent when there was none.
	ForecastAgeSeconds *float64 `json:"forecastAgeSeconds,omitempty"`
}

// answerLog keeps the last answer per ScaledObject trigger.
type answerLog struct {
	mu   sync.Mutex
	last map[string]*AnswerStatus
}

func newAnswerLog() *answerLog { return &answerLog{last: map[string]*AnswerStatus{}} }

func (l *answerLog) record(ref *pb.ScaledObjectRef, t *trigger, method string, d decision, err error, now time.Time) {
	if l == nil || ref == nil || t == nil {
		return
	}
	a := AnswerStatus{
		ScaledObject: ref.GetName(), Namespace: ref.GetNamespace(), Metric: t.name,
		Policy: t.m.Policy, PolicyNamespace: t.m.PolicyNamespace, Series: t.m.Selector(),
		Method: method, Time: now, Source: string(d.Source), Replicas: d.Replicas,
	}
	if err != nil {
		st := status.Convert(grpcError(err))
		a.Source, a.Replicas, a.Error = "error", 0, st.Code().String()+": "+st.Message()
	}
	if d.Forecast {
		age := d.Age.Seconds()
		a.ForecastAgeSeconds = &age
	}
	key := a.Namespace + "/" + a.ScaledObject + "/" + a.Metric
	l.mu.Lock()
	defer l.mu.Unlock()
	if prev := l.last[key]; prev != nil {
		a.Answers = prev.Answers
	} else if len(l.last) >= maxAnswerLog {
		var oldest string
		for k, v := range l.last {
			if oldest == "" || v.Time.Before(l.last[oldest].Time) {
				oldest = k
			}
		}
		delete(l.last, oldest)
	}
	a.Answers++
	l.last[key] = &a
}

// Answers returns the last answer per ScaledObject trigger, by namespace,
// ScaledObject and metric.
func (s *Server) Answers() []AnswerStatus {
	s.answers.mu.Lock()
	out := make([]AnswerStatus, 0, len(s.answers.last))
	for _, a := range s.answers.last {
		c := *a
		out = append(out, c)
	}
	s.answers.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		return a.Namespace+"/"+a.ScaledObject+"/"+a.Metric < b.Namespace+"/"+b.ScaledObject+"/"+b.Metric
	})
	return out
}

// StatusHandler serves the status page: HTML at "/" and JSON at
// "/api/v1/scaledobjects". version and prometheus (the URL the scaler reads,
// without credentials) are shown in the header.
func (s *Server) StatusHandler(version, prometheus string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/scaledobjects", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(struct {
			Status string         `json:"status"`
			Data   []AnswerStatus `json:"data"`
		}{"success", s.Answers()})
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		answers := s.Answers()
		var policies []string
		for _, a := range answers {
			p := a.Policy
			if a.PolicyNamespace != "" {
				p = a.PolicyNamespace + "/" + p
			}
			if !slices.Contains(policies, p) {
				policies = append(policies, p)
			}
		}
		sort.Strings(policies)
		data := struct {
			Version, Prometheus string
			Now                 time.Time
			Policies            []string
			Answers             []AnswerStatus
		}{version, prometheus, s.opts.Now(), policies, answers}
		if err := scalerStatusTemplate.Execute(w, data); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	return mux
}

var scalerStatusTemplate = template.Must(template.New("status").Funcs(template.FuncMap{
	"ago": func(now, t time.Time) string { return now.Sub(t).Truncate(time.Second).String() + " ago" },
	"secs": func(p *float64) string {
		return (time.Duration(*p * float64(time.Second))).Truncate(time.Second).String()
	},
	"num": func(v float64) string {
		return strings.TrimSuffix(strings.TrimRight(strconv.FormatFloat(v, 'f', 3, 64), "0"), ".")
	},
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Kedastral scaler</title>
<style>
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin-bottom:1.5em}
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f3f3f3}.err{color:#b00020}code{font-size:90%}
</style></head><body>
<h1>Kedastral scaler</h1>
<p>Version {{.Version}} · {{.Now.UTC.Format "2006-01-02 15:04:05 MST"}} · reads <code>{{.Prometheus}}</code> · <a href="/metrics">metrics</a> · <a href="/api/v1/scaledobjects">JSON</a></p>
{{if .Policies}}<p>Policies asked about: {{range $i, $p := .Policies}}{{if $i}}, {{end}}<code>{{$p}}</code>{{end}}</p>
<table>
<tr><th>ScaledObject</th><th>Policy</th><th>Series</th><th>Last answer</th><th>Replicas</th><th>Source</th><th>Forecast age</th><th>Answers</th></tr>
{{range .Answers}}<tr><td>{{if .Namespace}}{{.Namespace}}/{{end}}{{.ScaledObject}}</td><td>{{if .PolicyNamespace}}{{.PolicyNamespace}}/{{end}}{{.Policy}}</td><td><code>{{.Series}}</code></td>
<td>{{.Method}}, {{ago $.Now .Time}}</td><td>{{if eq .Source "error"}}–{{else}}{{num .Replicas}}{{end}}</td>
<td{{if eq .Source "error"}} class="err"{{end}}>{{if eq .Source "error"}}error: {{.Error}} (KEDA's fallback applies){{else}}{{.Source}}{{end}}</td>
<td>{{if .ForecastAgeSeconds}}{{secs .ForecastAgeSeconds}}{{else}}none{{end}}</td><td>{{.Answers}}</td></tr>
{{end}}</table>
{{else}}<p>No ScaledObject has asked yet: KEDA calls the scaler at each polling interval of a ScaledObject whose trigger is <code>type: external</code> with this scaler's address.</p>
{{end}}</body></html>
`))
