package forecast

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	prommodel "github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/kedastral/kedastral/engine/policy"
	"github.com/kedastral/kedastral/promapi"
)

// byQuery is a Querier answering each query with its own recorded series.
type byQuery struct {
	mu      sync.Mutex
	answers map[string]*recorded
}

func (b *byQuery) set(query string, r *recorded) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.answers == nil {
		b.answers = map[string]*recorded{}
	}
	b.answers[query] = r
}

func (b *byQuery) QueryRange(ctx context.Context, q string, start, end time.Time, step time.Duration) ([]promapi.Series, error) {
	b.mu.Lock()
	r, ok := b.answers[q]
	b.mu.Unlock()
	if !ok {
		return nil, nil
	}
	return r.QueryRange(ctx, q, start, end, step)
}

const (
	rpsQuery   = "sum by (svc) (rate(http_requests_total[1m]))"
	queueQuery = "sum by (svc) (queue_depth)"
	readyQuery = "sum by (svc) (ready_replicas)"
)

// signalsPolicy has the sources rps (10 per replica, the policy's) and, when
// two is set, queue (5 per replica, quantile 0.9), the seasonal model (a flat
// history forecasts flat), and extra spec lines.
func signalsPolicy(t *testing.T, two bool, extra string) *policy.ForecastPolicy {
	t.Helper()
	sources := fmt.Sprintf("  sources:\n    - {name: rps, query: '%s'}\n", rpsQuery)
	if two {
		sources += fmt.Sprintf("    - {name: queue, query: '%s', targetPerPod: 5, quantile: 0.9}\n", queueQuery)
	}
	set, errs := policy.Parse([]byte(fmt.Sprintf(`
apiVersion: kedastral.io/v1alpha1
kind: ForecastPolicy
metadata: {name: sig}
spec:
  targetRef: {name: api}
  horizon: 30m
  leadTime: 5m
  interval: 30s
  lookback: 1d
  ahead: [5m]
  capacity: {targetPerPod: 10, min: 1, max: 20}
  model: {type: seasonal}
  readyReplicasQuery: '%s'
%s%s`, readyQuery, sources, extra)), "test.yaml")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return set.Policies[0]
}

func flatSeries(now time.Time, vals map[string]float64, extra ...string) *recorded {
	r := &recorded{}
	for svc, v := range vals {
		l := labels.FromStrings(append([]string{"svc", svc}, extra...)...)
		r.series = append(r.series, flat(l, now.Add(-26*time.Hour), now.Add(2*time.Hour), v))
	}
	return r
}

func evaluateAt(t *testing.T, e *Evaluator, now time.Time) *Cycle {
	t.Helper()
	if _, err := e.Fetch(context.Background(), now); err != nil {
		t.Fatal(err)
	}
	return e.Evaluate(context.Background(), now)
}

// samplesByName maps metric name → series labels (without __name__) → value.
func samplesByName(c *Cycle) map[string]map[string]float64 {
	out := map[string]map[string]float64{}
	for _, s := range c.Samples {
		name := s.Labels.Get(labels.MetricName)
		if out[name] == nil {
			out[name] = map[string]float64{}
		}
		out[name][labels.NewBuilder(s.Labels).Del(labels.MetricName).Labels().String()] = s.V
	}
	return out
}

func TestSeveralSources(t *testing.T) {
	now := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name                     string
		rps, queue               map[string]float64
		want                     map[string]int32  // svc → desired
		source                   map[string]string // svc → driving source
		err                      map[string]string // svc → error
		observed, predicted, cap int
	}{
		{
			name: "each source drives one series",
			// a: rps 55 needs 6, queue 20 needs 4; b: rps 10 needs 1, queue 40 needs 8.
			rps: map[string]float64{"a": 55, "b": 10}, queue: map[string]float64{"a": 20, "b": 40},
			want: map[string]int32{"a": 6, "b": 8}, source: map[string]string{"a": "rps", "b": "queue"},
			observed: 4, predicted: 4, cap: 2,
		},
		{
			name: "equal needs: the first source",
			rps:  map[string]float64{"a": 50}, queue: map[string]float64{"a": 25},
			want: map[string]int32{"a": 5}, source: map[string]string{"a": "rps"},
			observed: 2, predicted: 2, cap: 2,
		},
		{
			name: "a source without the series: no count, the other's values still written",
			rps:  map[string]float64{"a": 55, "c": 30}, queue: map[string]float64{"a": 20},
			want: map[string]int32{"a": 6}, source: map[string]string{"a": "rps"},
			err:      map[string]string{"c": `source "queue" has no recent series with these labels`},
			observed: 3, predicted: 3, cap: 2,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			q := &byQuery{}
			q.set(rpsQuery, flatSeries(now, c.rps))
			q.set(queueQuery, flatSeries(now, c.queue))
			cy := evaluateAt(t, NewEvaluator(signalsPolicy(t, true, ""), q), now)
			got := samplesByName(cy)
			for _, r := range cy.Series {
				svc := r.Labels.Get("svc")
				if r.Labels.Has(SourceLabel) {
					t.Errorf("desired-replicas series %s has a source label", r.Labels)
				}
				if msg, bad := c.err[svc]; bad {
					if r.Err == nil || !strings.Contains(r.Err.Error(), msg) {
						t.Errorf("svc %s: error %v, want %q", svc, r.Err, msg)
					}
					continue
				}
				if r.Err != nil {
					t.Fatalf("svc %s: %v", svc, r.Err)
				}
				if r.Desired != c.want[svc] || r.Source != c.source[svc] {
					t.Errorf("svc %s: desired %d driven by %s, want %d by %s", svc, r.Desired, r.Source, c.want[svc], c.source[svc])
				}
				if v := got[DesiredMetric][fmt.Sprintf(`{policy="sig", svc=%q}`, svc)]; v != float64(c.want[svc]) {
					t.Errorf("svc %s: desired sample %v", svc, v)
				}
			}
			if len(got[ObservedMetric]) != c.observed || len(got[PredictedMetric]) != c.predicted || len(got[CapacityMetric]) != c.cap {
				t.Errorf("observed %v\npredicted %v\ncapacity %v", got[ObservedMetric], got[PredictedMetric], got[CapacityMetric])
			}
			if v, ok := got[ObservedMetric][`{policy="sig", source="queue", svc="a"}`]; !ok || v != c.queue["a"] {
				t.Errorf("queue's observed for a: %v %v in %v", v, ok, got[ObservedMetric])
			}
			if _, ok := got[PredictedMetric][`{ahead="5m", policy="sig", quantile="0.9", source="queue", svc="a"}`]; !ok {
				t.Errorf("queue's prediction at its own quantile missing: %v", got[PredictedMetric])
			}
			if _, ok := got[PredictedMetric][`{ahead="5m", policy="sig", quantile="0.5", source="rps", svc="a"}`]; !ok {
				t.Errorf("rps' prediction at the model's quantile missing: %v", got[PredictedMetric])
			}
			// One capacity series per source, each with its own
			// targetPerPod, as the mixin joins them on policy and source.
			if got[CapacityMetric][`{policy="sig", source="rps"}`] != 10 || got[CapacityMetric][`{policy="sig", source="queue"}`] != 5 {
				t.Errorf("capacity per replica: %v", got[CapacityMetric])
			}
		})
	}
}

// TestOneSourceHasNoSourceLabel keeps a single-source policy's series as
// they were before several sources existed.
func TestOneSourceHasNoSourceLabel(t *testing.T) {
	now := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	q := &byQuery{}
	q.set(rpsQuery, flatSeries(now, map[string]float64{"a": 55}))
	cy := evaluateAt(t, NewEvaluator(signalsPolicy(t, false, ""), q), now)
	if len(cy.Samples) != 4 {
		t.Fatalf("%d samples, want observed, predicted, desired, capacity: %v", len(cy.Samples), cy.Samples)
	}
	for _, s := range cy.Samples {
		if s.Labels.Has(SourceLabel) {
			t.Errorf("sample %s has a source label", s.Labels)
		}
	}
	if r := cy.Series[0]; r.Source != "rps" || r.Desired != 6 {
		t.Errorf("result %+v", r)
	}
}

func TestSourcesThatDoNotJoin(t *testing.T) {
	now := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	q := &byQuery{}
	q.set(rpsQuery, flatSeries(now, map[string]float64{"a": 55}))
	q.set(queueQuery, flatSeries(now, map[string]float64{"a": 20}, "pod", "p-1"))
	e := NewEvaluator(signalsPolicy(t, true, ""), q)
	_, err := e.Fetch(context.Background(), now)
	want := `source "queue" returns series labelled by (pod, svc) but source "rps" by (svc): sources are joined on the same labels; only this one has pod`
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
	if e.SeriesCount() != 0 {
		t.Errorf("a refused fetch kept %d series", e.SeriesCount())
	}
}

func TestApplyEvents(t *testing.T) {
	base := time.Date(2026, 11, 26, 23, 50, 0, 0, time.UTC)
	compile := func(t *testing.T, yaml string) []*policy.CompiledEvent {
		t.Helper()
		p := signalsPolicy(t, false, "  events:\n"+yaml)
		evs, err := policy.CompileEvents(p.Spec.Events)
		if err != nil {
			t.Fatal(err)
		}
		return evs
	}
	c := policy.Capacity{TargetPerPod: 10, Headroom: 1.25, Max: 100}
	cases := []struct {
		name   string
		events string
		want   []float64 // for t = base+1m … base+14m; input is 8 everywhere
	}{
		{"no event", "    - {name: later, start: '2026-11-28T00:00:00Z', end: '2026-11-29T00:00:00Z', scale: 2}\n",
			[]float64{8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8}},
		// [23:55, 00:05): the points ending 23:56 … 00:05.
		{"scale", "    - {name: s, start: '2026-11-26T23:55:00Z', end: '2026-11-27T00:05:00Z', scale: 2}\n",
			[]float64{8, 8, 8, 8, 8, 16, 16, 16, 16, 16, 16, 16, 16, 16}},
		// 10 replicas at 10 per replica with headroom 1.25 carry 80.
		{"floor", "    - {name: f, start: '2026-11-26T23:55:00Z', end: '2026-11-27T00:00:00Z', minReplicas: 10}\n",
			[]float64{8, 8, 8, 8, 8, 80, 80, 80, 80, 80, 8, 8, 8, 8}},
		{"window not on the step covers the steps it touches", "    - {name: f, start: '2026-11-26T23:55:30Z', end: '2026-11-26T23:56:30Z', scale: 3}\n",
			[]float64{8, 8, 8, 8, 8, 24, 24, 8, 8, 8, 8, 8, 8, 8}},
		{"floor above a scale", "    - {name: s, start: '2026-11-26T23:52:00Z', end: '2026-11-27T00:00:00Z', scale: 2}\n" +
			"    - {name: f, start: '2026-11-26T23:55:00Z', end: '2026-11-26T23:57:00Z', minReplicas: 5}\n",
			[]float64{8, 8, 16, 16, 16, 40, 40, 16, 16, 16, 8, 8, 8, 8}},
		{"recurring", "    - {name: r, schedule: '58 23 * * *', duration: 3m, scale: 0.5}\n",
			[]float64{8, 8, 8, 8, 8, 8, 8, 8, 4, 4, 4, 8, 8, 8}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fc := make([]float64, 14)
			for i := range fc {
				fc[i] = 8
			}
			applyEvents(fc, base, time.Minute, compile(t, tc.events), c)
			for i := range fc {
				if math.Abs(fc[i]-tc.want[i]) > 1e-9 {
					t.Fatalf("got %v\nwant %v", fc, tc.want)
				}
			}
		})
	}
}

// TestEventRaisesTheFloorLeadTimeBefore evaluates minute by minute around an
// event's window: the count is raised from leadTime (5m) before it opens
// until it closes, and the published prediction shows the adjusted forecast.
func TestEventRaisesTheFloorLeadTimeBefore(t *testing.T) {
	open := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	q := &byQuery{}
	q.set(rpsQuery, flatSeries(open.Add(-time.Hour), map[string]float64{"a": 5}))
	p := signalsPolicy(t, false, "  events:\n    - {name: black-friday, start: '2026-11-27T00:00:00Z', end: '2026-11-27T00:10:00Z', minReplicas: 12}\n")
	e := NewEvaluator(p, q)
	for _, c := range []struct {
		at        time.Duration // from the opening
		desired   int32
		predicted float64 // ahead 5m
		events    string
	}{
		{-7 * time.Minute, 1, 5, ""},
		{-6 * time.Minute, 1, 5, ""},
		{-5 * time.Minute, 12, 5, "black-friday/false"},
		{-4 * time.Minute, 12, 120, "black-friday/false"},
		{0, 12, 120, "black-friday/true"},
		{9 * time.Minute, 12, 5, "black-friday/true"},
		{10 * time.Minute, 1, 5, ""},
	} {
		now := open.Add(c.at)
		cy := evaluateAt(t, e, now)
		r := cy.Series[0]
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		var evs []string
		for _, ae := range cy.Events {
			evs = append(evs, fmt.Sprintf("%s/%v", ae.Event.Name, ae.Open))
		}
		if r.Desired != c.desired || r.Predicted[5*time.Minute] != c.predicted || strings.Join(evs, ",") != c.events {
			t.Errorf("at %v: desired %d, predicted %v, events %v; want %d, %v, %q", c.at, r.Desired, r.Predicted[5*time.Minute], evs, c.desired, c.predicted, c.events)
		}
	}
}

func TestUnderprovisionAccount(t *testing.T) {
	t0 := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	q := &byQuery{}
	q.set(rpsQuery, flatSeries(t0, map[string]float64{"a": 55, "b": 10}))
	// The ready replicas are read at the evaluation time: a sample every 30s.
	ready := func(a, b float64) *recorded {
		r := &recorded{}
		for svc, v := range map[string]float64{"a": a, "b": b} {
			s := promapi.Series{Labels: labels.FromStrings("svc", svc)}
			for tm := t0.Add(-time.Hour); tm.Before(t0.Add(3 * time.Hour)); tm = tm.Add(30 * time.Second) {
				s.Points = append(s.Points, promapi.Point{T: tm.UnixMilli(), V: v})
			}
			r.series = append(r.series, s)
		}
		return r
	}
	p := signalsPolicy(t, false, "")
	e := NewEvaluator(p, q)
	e.AccountUnderprovision()
	steps := []struct {
		name   string
		after  time.Duration
		ready  *recorded
		fail   bool
		totalA float64
		underA bool
		note   string
	}{
		// a: 55 observed with 3 ready at 10 each (30): under; b: 10 with 10 ready: not.
		{name: "first cycle starts at 0", after: 0, ready: ready(3, 10), totalA: 0, underA: true},
		{name: "30s under", after: 30 * time.Second, ready: ready(3, 10), totalA: 30, underA: true},
		{name: "another 30s", after: time.Minute, ready: ready(3, 10), totalA: 60, underA: true},
		{name: "enough ready replicas", after: 90 * time.Second, ready: ready(6, 10), totalA: 60},
		{name: "exactly enough is not under", after: 2 * time.Minute, ready: ready(5.5, 10), totalA: 60},
		{name: "query returns nothing", after: 150 * time.Second, ready: &recorded{}, totalA: 60, note: "returned nothing"},
		{name: "query fails", after: 3 * time.Minute, fail: true, totalA: 60, note: "failed: connection refused"},
		{name: "under again", after: 210 * time.Second, ready: ready(1, 10), totalA: 90, underA: true},
		{name: "a long gap counts at most 5m", after: 2 * time.Hour, ready: ready(1, 10), totalA: 390, underA: true},
	}
	for _, s := range steps {
		now := t0.Add(s.after)
		if s.fail {
			q.set(readyQuery, &recorded{fail: errors.New("connection refused")})
		} else {
			q.set(readyQuery, s.ready)
		}
		if s.after > time.Hour {
			q.set(rpsQuery, flatSeries(now, map[string]float64{"a": 55, "b": 10}))
		}
		cy := evaluateAt(t, e, now)
		if len(cy.Series) != 2 {
			t.Fatalf("%s: %d series", s.name, len(cy.Series))
		}
		a, b := cy.Series[0], cy.Series[1]
		if a.UnderprovisionSeconds != s.totalA || a.Underprovisioned != s.underA || !strings.Contains(a.ReadyNote, s.note) || (s.note == "") != (a.ReadyNote == "") {
			t.Errorf("%s: a total %v under %v note %q; want %v %v %q", s.name, a.UnderprovisionSeconds, a.Underprovisioned, a.ReadyNote, s.totalA, s.underA, s.note)
		}
		if b.UnderprovisionSeconds != 0 || b.Underprovisioned {
			t.Errorf("%s: b total %v under %v", s.name, b.UnderprovisionSeconds, b.Underprovisioned)
		}
		got := samplesByName(cy)[UnderprovisionMetric]
		if got[`{policy="sig", svc="a"}`] != s.totalA || len(got) != 2 {
			t.Errorf("%s: samples %v", s.name, got)
		}
	}
}

func TestReadyFor(t *testing.T) {
	l := labels.FromStrings("policy", "sig", "namespace", "shop", "deployment", "api")
	one := func(ls ...string) promapi.Series {
		return promapi.Series{Labels: labels.FromStrings(ls...), Points: []promapi.Point{{T: 0, V: 4}}}
	}
	cases := []struct {
		name  string
		ready []promapi.Series
		want  float64
		note  string
	}{
		{"one series without labels", []promapi.Series{one()}, 4, ""},
		{"kube-state-metrics labels beyond the series'", []promapi.Series{one("__name__", "kube_deployment_status_replicas_available", "namespace", "shop", "deployment", "api", "instance", "ksm:8080")}, 4, ""},
		{"the matching one of several", []promapi.Series{one("deployment", "web"), one("deployment", "api")}, 4, ""},
		{"none matching", []promapi.Series{one("deployment", "web")}, 0, "has these labels"},
		{"ambiguous", []promapi.Series{one("instance", "1"), one("instance", "2")}, 0, "returned 2 series"},
		{"nothing", nil, 0, "returned nothing"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := &Evaluator{policy: signalsPolicy(t, false, ""), ready: c.ready}
			v, note := e.readyFor(l)
			if v != c.want || !strings.Contains(note, c.note) || (c.note == "") != (note == "") {
				t.Errorf("got %v %q, want %v %q", v, note, c.want, c.note)
			}
		})
	}
}

// TestStatusShowsSignals runs a two-source policy with an open event and no
// ready replicas in the manager, then reads the status page and /metrics.
func TestStatusShowsSignals(t *testing.T) {
	now := time.Now()
	q := &byQuery{}
	q.set(rpsQuery, flatSeries(now, map[string]float64{"a": 55, "b": 10}))
	q.set(queueQuery, flatSeries(now, map[string]float64{"a": 20, "b": 40}))
	p := signalsPolicy(t, true, fmt.Sprintf("  events:\n    - {name: black-friday, start: '%s', end: '%s', scale: 1.5}\n",
		now.Add(-time.Hour).UTC().Format(time.RFC3339), now.Add(time.Hour).UTC().Format(time.RFC3339)))
	p.Spec.Interval = policyDuration(time.Second)
	reg := prometheus.NewRegistry()
	m, err := NewManager(Options{Writer: &memWriter{}, Registerer: reg,
		Queriers: func(*policy.DataSource) (Querier, error) { return q, nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop()
	one := signalsPolicy(t, false, "")
	one.Metadata.Name = "one"
	one.Spec.Interval = policyDuration(time.Second)
	if err := m.Apply(&policy.Set{Policies: []*policy.ForecastPolicy{p, one}}, nil); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for m.Status()[0].LastSuccess.IsZero() || m.Status()[1].LastSuccess.IsZero() {
		if time.Now().After(deadline) {
			t.Fatalf("no successful cycle: %+v", m.Status()[0])
		}
		time.Sleep(20 * time.Millisecond)
	}
	st := m.Status()[1] // by name: one, sig
	if st.DrivenBy["rps"] != 1 || st.DrivenBy["queue"] != 1 || len(st.Events) != 1 || !st.Events[0].Open {
		t.Errorf("status %+v", st)
	}
	rec := httptest.NewRecorder()
	m.StatusHandler("test").ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		"Driving the count: queue: 1, rps: 1",
		"event &#39;black-friday&#39; active until " + now.Add(time.Hour).UTC().Format(time.RFC3339) + " (scale 1.5)",
		"readyReplicasQuery sum by (svc) (ready_replicas) returned nothing",
		"<td>queue</td>",
		"queue: observed 40",
		// The single-source policy as before.
		"Query <code>sum by (svc) (rate(http_requests_total[1m]))</code> every 1s",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("status page lacks %q:\n%s", want, body)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]int{}
	for _, mf := range mfs {
		for _, mm := range mf.GetMetric() {
			switch mf.GetName() {
			case "kedastral_forecaster_series_by_source":
				ls := map[string]string{}
				for _, lp := range mm.GetLabel() {
					ls[lp.GetName()] = lp.GetValue()
				}
				found[ls["policy"]+"/"+ls["source"]] = int(mm.GetGauge().GetValue())
			case UnderprovisionMetric:
				found["under"]++
				if v := mm.GetCounter().GetValue(); v != 0 {
					t.Errorf("underprovision counter advanced to %v without ready replicas", v)
				}
			}
		}
	}
	if found["sig/rps"] != 1 || found["sig/queue"] != 1 || found["one/rps"] != 2 || found["under"] != 4 {
		t.Errorf("metrics: %v", found)
	}
}

func policyDuration(d time.Duration) prommodel.Duration { return prommodel.Duration(d) }
