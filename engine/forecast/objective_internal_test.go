package forecast

import (
	"bytes"
	"encoding/json"
	"html/template"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/kedastral/kedastral/engine/capacity"
)

// TestObjectiveStatusAndMetrics: the calibration of each series is on the
// status page (HTML and API) and summed up in /metrics, with the feedback
// each series uses.
func TestObjectiveStatusAndMetrics(t *testing.T) {
	a, b := capacity.NewCalibrator(0.02), capacity.NewCalibrator(0.02)
	for range 60 {
		a.Observe(time.Minute, true)
		b.Observe(time.Minute, false)
	}
	da, wa := a.Achieved()
	c := &Cycle{Series: []SeriesResult{
		{Labels: labels.FromStrings("policy", "p", "svc", "a"), Sources: []SourceResult{{Source: "q", Quantile: a.Level(), cal: a, Feedback: FeedbackReady, Short: true, AchievedDay: da, AchievedWeek: wa}}},
		{Labels: labels.FromStrings("policy", "p", "svc", "b"), Sources: []SourceResult{{Source: "q", Quantile: b.Level(), cal: b, Feedback: FeedbackModel, AchievedDay: 0, AchievedWeek: math.NaN()}}},
	}}
	po := &policyObjective{value: 0.02, text: "2%"}
	st := objectiveStatus(po, c)
	js, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"underprovisionedTime":"2%"`, `"feedback":"ready_replicas"`, `"feedback":"hpa_model"`, `"achievedDay":1`, `"short":true`} {
		if !strings.Contains(string(js), want) {
			t.Errorf("status JSON %s lacks %s", js, want)
		}
	}
	if strings.Count(string(js), "achievedWeek") != 1 {
		t.Errorf("status JSON %s: a NaN share must be left out", js)
	}
	var page bytes.Buffer
	data := struct {
		Version  string
		Now      time.Time
		Policies []PolicyStatus
		Warnings []string
		Charts   map[string]map[string]template.HTML
	}{"test", time.Now(), []PolicyStatus{{Name: "p", Series: []SeriesStatus{{Labels: map[string]string{"svc": "a"}}}, Sources: []SourceInfo{{Name: "q"}}, Objective: st}}, nil, map[string]map[string]template.HTML{}}
	if err := statusTemplate.Execute(&page, data); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Objective: at most 2% of time short", "ready_replicas", "hpa_model", "100.00%", "0.00%", trimFloat(a.Level())} {
		if !strings.Contains(page.String(), want) {
			t.Errorf("status page lacks %q", want)
		}
	}

	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	m.objective.set("p", po, c)
	want := `
# HELP kedastral_forecaster_objective_achieved_ratio The highest share of time short over a policy's series, over about the last day and week (window=1d, 7d).
# TYPE kedastral_forecaster_objective_achieved_ratio gauge
kedastral_forecaster_objective_achieved_ratio{policy="p",window="1d"} 1
kedastral_forecaster_objective_achieved_ratio{policy="p",window="7d"} 1
# HELP kedastral_forecaster_objective_series Series (and sources) of a policy with an objective, by the feedback their calibration learns from: ready_replicas (readyReplicasQuery) or hpa_model (the forecaster's model of the HPA); none before any.
# TYPE kedastral_forecaster_objective_series gauge
kedastral_forecaster_objective_series{feedback="hpa_model",policy="p"} 1
kedastral_forecaster_objective_series{feedback="ready_replicas",policy="p"} 1
# HELP kedastral_forecaster_objective_underprovisioned_time_ratio A policy's objective: the share of time its workload may run short of ready pods.
# TYPE kedastral_forecaster_objective_underprovisioned_time_ratio gauge
kedastral_forecaster_objective_underprovisioned_time_ratio{policy="p"} 0.02
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "kedastral_forecaster_objective_achieved_ratio", "kedastral_forecaster_objective_series", "kedastral_forecaster_objective_underprovisioned_time_ratio"); err != nil {
		t.Error(err)
	}
	if got := testutil.ToFloat64(m.objective.level.WithLabelValues("p", "max")); got != a.Level() {
		t.Errorf("level max %v, want %v", got, a.Level())
	}
	if got := testutil.ToFloat64(m.objective.level.WithLabelValues("p", "min")); got != b.Level() {
		t.Errorf("level min %v, want %v", got, b.Level())
	}
	// Without an objective, nothing.
	m.objective.set("p", nil, c)
	if n := testutil.CollectAndCount(m.objective.series); n != 0 {
		t.Errorf("%d objective series after the objective was removed", n)
	}
}
