package forecast_test

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/kedastral/kedastral/engine/capacity"
	"github.com/kedastral/kedastral/engine/forecast"
	"github.com/kedastral/kedastral/engine/policy"
	"github.com/kedastral/kedastral/engine/trace"
	"github.com/kedastral/kedastral/promapi"
	"github.com/kedastral/kedastral/promapi/promtest"
)

func objectivePolicy(t *testing.T, extra string) *policy.ForecastPolicy {
	t.Helper()
	set, errs := policy.Parse([]byte(fmt.Sprintf(`
apiVersion: kedastral.io/v1alpha1
kind: ForecastPolicy
metadata: {name: demo}
spec:
  targetRef: {name: demo-api}
  horizon: 30m
  leadTime: 5m
  interval: 1m
  capacity: {targetPerPod: 500, min: 1, max: 100}
  model: {type: baseline}
  objective: {underprovisionedTime: 2%%}
  sources: [{name: qps, query: 'sum by (service) (%s)'}]
%s`, testMetric, extra)), "test.yaml")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return set.Policies[0]
}

// TestObjectiveAgainstPrometheus runs a policy with an objective against a
// real Prometheus holding two days of the MongoDB trace (service a, and b at
// half of it) and ready replicas for them (a: 1, always short; b: 1000,
// never). With readyReplicasQuery the calibration learns from the ready
// replicas: a's level rises, b's falls. It writes the objective's series;
// a second evaluator, as after a restart, reads them back and starts from
// the written level and shares. Without ready replicas the feedback is the
// forecaster's model of the HPA.
func TestObjectiveAgainstPrometheus(t *testing.T) {
	promtest.RequireBinaries(t)
	path, ok := trace.Locate("ms_mongodb_app_query_rate_1min.csv")
	if !ok {
		t.Fatal("trace ms_mongodb_app_query_rate_1min.csv not found in testdata/traces")
	}
	pts, err := trace.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pts = pts[len(pts)-2*24*60:]
	end := time.Now().Truncate(time.Minute)
	shift := end.Sub(pts[len(pts)-1].T)
	a := promtest.Series{Name: testMetric, Labels: labels.FromStrings("service", "a")}
	b := promtest.Series{Name: testMetric, Labels: labels.FromStrings("service", "b")}
	ra := promtest.Series{Name: "ready_pods", Labels: labels.FromStrings("service", "a")}
	rb := promtest.Series{Name: "ready_pods", Labels: labels.FromStrings("service", "b")}
	// The last 45 minutes are remote-written after the start, so that the
	// head of the TSDB takes the forecaster's samples of those minutes.
	headFrom := end.Add(-45 * time.Minute)
	var head []promapi.Sample
	for _, p := range pts {
		ms := p.T.Add(shift).UnixMilli()
		if !p.T.Add(shift).Before(headFrom) {
			for _, x := range []struct {
				name, svc string
				v         float64
			}{{testMetric, "a", p.V}, {testMetric, "b", p.V / 2}, {"ready_pods", "a", 1}, {"ready_pods", "b", 1000}} {
				head = append(head, promapi.Sample{Labels: labels.FromStrings("__name__", x.name, "service", x.svc), T: ms, V: x.v})
			}
			continue
		}
		a.Points = append(a.Points, promtest.Point{T: ms, V: p.V})
		b.Points = append(b.Points, promtest.Point{T: ms, V: p.V / 2})
		ra.Points = append(ra.Points, promtest.Point{T: ms, V: 1})
		rb.Points = append(rb.Points, promtest.Point{T: ms, V: 1000})
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := promtest.CreateBlocks(ctx, dir, []promtest.Series{a, b, ra, rb}); err != nil {
		t.Fatal(err)
	}
	srv := promtest.StartInT(t, dir, promtest.Options{})
	q, w := newClients(t, srv)
	if _, err := w.Write(ctx, head); err != nil {
		t.Fatal(err)
	}

	p := objectivePolicy(t, "  readyReplicasQuery: ready_pods\n")
	e := forecast.NewEvaluator(p, q)
	e.AccountUnderprovision()
	e.RestoreObjective() // nothing written yet: starts at the start level
	start := end.Add(-40 * time.Minute)
	last := map[string]forecast.SourceResult{}
	for k := 0; k <= 40; k++ {
		now := start.Add(time.Duration(k) * time.Minute)
		if _, err := e.Fetch(ctx, now); err != nil {
			t.Fatal(err)
		}
		c := e.Evaluate(ctx, now)
		if _, err := w.Write(ctx, c.Samples); err != nil {
			t.Fatal(err)
		}
		for _, r := range c.Series {
			if r.Err != nil {
				t.Fatalf("%s: %v", r.Labels, r.Err)
			}
			sr := r.Sources[0]
			if k == 0 && sr.Quantile != capacity.StartLevel(0.02) {
				t.Errorf("%s starts at level %v, want %v", r.Labels, sr.Quantile, capacity.StartLevel(0.02))
			}
			if k > 0 && sr.Feedback != forecast.FeedbackReady {
				t.Errorf("%s: feedback %q, want %q", r.Labels, sr.Feedback, forecast.FeedbackReady)
			}
			last[r.Labels.Get("service")] = sr
		}
	}
	if len(last) != 2 {
		t.Fatalf("series %v, want a and b", last)
	}
	at := start.Add(40 * time.Minute)
	levels := queryAt(t, q, forecast.ObjectiveLevelMetric, at)
	level := func(svc string) float64 {
		t.Helper()
		s, ok := levels[labels.FromStrings("policy", "demo", "service", svc).String()]
		if !ok {
			t.Fatalf("no %s for service %s in %v", forecast.ObjectiveLevelMetric, svc, levels)
		}
		return s.V
	}
	la, lb := level("a"), level("b")
	// 40 intervals of a minute, a always short, b never.
	wantA := min(capacity.MaxLevel, capacity.StartLevel(0.02)+40*capacity.CalibrationGain/60*(1-0.02))
	wantB := capacity.StartLevel(0.02) - 40*capacity.CalibrationGain/60*0.02
	if math.Abs(la-wantA) > 1e-9 || math.Abs(lb-wantB) > 1e-9 {
		t.Errorf("written levels a %v, b %v, want %v, %v", la, lb, wantA, wantB)
	}
	if !last["a"].Short || last["b"].Short || last["a"].AchievedDay != 1 || last["b"].AchievedWeek != 0 {
		t.Errorf("a short %v (day %v), b short %v (week %v); want a always short, b never",
			last["a"].Short, last["a"].AchievedDay, last["b"].Short, last["b"].AchievedWeek)
	}
	short := queryAt(t, q, fmt.Sprintf("avg_over_time(%s[30m])", forecast.ObjectiveShortMetric), at)
	if s := short[labels.FromStrings("policy", "demo", "service", "a").String()]; s.V != 1 {
		t.Errorf("avg_over_time of a's short series %v, want 1 (%v)", s.V, short)
	}
	obj := queryAt(t, q, forecast.ObjectiveMetric, at)
	if len(obj) != 2 {
		t.Errorf("objective series %v, want one per series", obj)
	}
	for _, s := range obj {
		if s.V != 0.02 {
			t.Errorf("%s = %v, want 0.02", s.Labels, s.V)
		}
	}
	ach := queryAt(t, q, forecast.ObjectiveAchievedMetric, at)
	if len(ach) != 4 {
		t.Errorf("achieved series %v, want 1d and 7d per series", ach)
	}

	// A restart: a new evaluator reads the written level and shares back.
	// Without ready replicas (no AccountUnderprovision) it learns from its
	// model of the HPA.
	e2 := forecast.NewEvaluator(p, q)
	e2.RestoreObjective()
	now := at.Add(time.Minute)
	if _, err := e2.Fetch(ctx, now); err != nil {
		t.Fatal(err)
	}
	c := e2.Evaluate(ctx, now)
	for _, r := range c.Series {
		sr := r.Sources[0]
		svc := r.Labels.Get("service")
		if want := map[string]float64{"a": la, "b": lb}[svc]; sr.Quantile != want {
			t.Errorf("after the restart %s plans at %v, want the written %v", svc, sr.Quantile, want)
		}
		if want := map[string]float64{"a": 1, "b": 0}[svc]; sr.AchievedDay != want || sr.AchievedWeek != want {
			t.Errorf("after the restart %s achieved %v / %v, want %v", svc, sr.AchievedDay, sr.AchievedWeek, want)
		}
	}
	now = now.Add(time.Minute)
	if _, err := e2.Fetch(ctx, now); err != nil {
		t.Fatal(err)
	}
	c = e2.Evaluate(ctx, now)
	for _, r := range c.Series {
		if f := r.Sources[0].Feedback; f != forecast.FeedbackModel {
			t.Errorf("%s: feedback %q without ready replicas, want %q", r.Labels, f, forecast.FeedbackModel)
		}
		for _, s := range c.Samples {
			if s.Labels.Get("__name__") == forecast.PredictedMetric && s.Labels.Get(forecast.QuantileLabel) != forecast.CalibrationQuantile {
				t.Fatalf("%s: quantile label %q, want %q", s.Labels, s.Labels.Get(forecast.QuantileLabel), forecast.CalibrationQuantile)
			}
		}
	}
}
