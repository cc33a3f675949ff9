package forecast

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"go.uber.org/goleak"

	"github.com/kedastral/kedastral/engine/model"
	"github.com/kedastral/kedastral/engine/policy"
	"github.com/kedastral/kedastral/promapi"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// Idle keep-alive connections of the Prometheus clients in the
		// integration tests close on their own after the test.
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

// recorded is a Querier over in-memory series: a recorded history, as the
// backtest replays one, answering like query_range (points in [start, end]
// on the step grid). It counts calls and can be made to fail.
//
// It evaluates the regular-expression matchers of the query's selectors
// (those a series split adds) on the series' labels, and records each query
// and the number of series it returned.
type recorded struct {
	mu      sync.Mutex
	series  []promapi.Series
	calls   []([2]time.Time)
	queries []string
	counts  []int
	fail    error
}

func (r *recorded) QueryRange(_ context.Context, query string, start, end time.Time, step time.Duration) ([]promapi.Series, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, [2]time.Time{start, end})
	r.queries = append(r.queries, query)
	r.counts = append(r.counts, 0)
	if r.fail != nil {
		return nil, r.fail
	}
	matchers, _ := regexpMatchers(query) // an unparsable query: unfiltered
	var out []promapi.Series
	for _, s := range r.series {
		if !labels.Selector(matchers).Matches(s.Labels) {
			continue
		}
		o := promapi.Series{Labels: s.Labels}
		for _, p := range s.Points {
			t := time.UnixMilli(p.T)
			if !t.Before(start) && !t.After(end) && t.Sub(start)%step == 0 {
				o.Points = append(o.Points, p)
			}
		}
		if len(o.Points) > 0 {
			out = append(out, o)
		}
	}
	r.counts[len(r.counts)-1] = len(out)
	return out, nil
}

// flat returns a series of value v every minute over [from, to].
func flat(l labels.Labels, from, to time.Time, v float64) promapi.Series {
	s := promapi.Series{Labels: l}
	for t := from.Truncate(time.Minute); !t.After(to); t = t.Add(time.Minute) {
		s.Points = append(s.Points, promapi.Point{T: t.UnixMilli(), V: v})
	}
	return s
}

func mustPolicy(t *testing.T, name, extra string) *policy.ForecastPolicy {
	t.Helper()
	set, errs := policy.Parse([]byte(fmt.Sprintf(`
apiVersion: kedastral.io/v1alpha1
kind: ForecastPolicy
metadata: {name: %s}
spec:
  targetRef: {name: api}
  horizon: 30m
  leadTime: 5m
  interval: 1s
  lookback: 1d
  capacity: {targetPerPod: 10, min: 1, max: 20}
  sources: [{name: rps, query: 'sum by (svc) (rate(http_requests_total[1m]))'}]
%s`, name, extra)), "test.yaml")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return set.Policies[0]
}

func TestAlignDown(t *testing.T) {
	for _, tc := range []struct {
		in   string
		step time.Duration
		want string
	}{
		{"2026-01-01T10:07:31Z", time.Minute, "2026-01-01T10:07:00Z"},
		{"2026-01-01T10:07:00Z", time.Minute, "2026-01-01T10:07:00Z"},
		{"2026-01-01T10:07:31Z", 5 * time.Minute, "2026-01-01T10:05:00Z"},
		{"1969-12-31T23:59:30Z", time.Minute, "1969-12-31T23:59:00Z"},
	} {
		in, _ := time.Parse(time.RFC3339, tc.in)
		if got := alignDown(in, tc.step).Format(time.RFC3339); got != tc.want {
			t.Errorf("alignDown(%s, %s) = %s, want %s", tc.in, tc.step, got, tc.want)
		}
	}
}

func TestHistory(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	h := history{step: time.Minute}
	h.set(t0, 1)
	h.set(t0.Add(3*time.Minute), 4)
	h.set(t0.Add(-time.Minute), 99) // before the start: ignored
	if got := h.view(new([]float64)); len(got.Values) != 4 || !math.IsNaN(got.Values[1]) || got.Values[3] != 4 || !got.Start.Equal(t0) {
		t.Fatalf("after sets: %+v", got)
	}
	h.set(t0.Add(time.Minute), 2) // fill a gap
	h.trimBefore(t0.Add(time.Minute))
	if got := h.view(new([]float64)); len(got.Values) != 3 || got.Values[0] != 2 || !got.Start.Equal(t0.Add(time.Minute)) {
		t.Fatalf("after trim: %+v", got)
	}
	h.extendTo(t0.Add(5 * time.Minute))
	if ts, v, ok := h.last(); !ok || v != 4 || !ts.Equal(t0.Add(3*time.Minute)) || h.view(new([]float64)).Len() != 5 {
		t.Fatalf("last after extend: %v %v %v len %d", ts, v, ok, h.view(new([]float64)).Len())
	}
	h.trimBefore(t0.Add(time.Hour))
	if _, _, ok := h.last(); ok || h.view(new([]float64)).Len() != 0 {
		t.Fatalf("trim past the end left %+v", h.view(new([]float64)))
	}
}

// TestEvaluatorIncrementalFetch checks that only the first fetch reads the
// whole lookback, later ones the new points plus a few recent ones again, and
// that a series that stops reporting stops being forecast.
func TestEvaluatorIncrementalFetch(t *testing.T) {
	now := time.Date(2026, 3, 2, 12, 0, 30, 0, time.UTC)
	a := labels.FromStrings("svc", "a")
	b := labels.FromStrings("svc", "b")
	q := &recorded{series: []promapi.Series{
		flat(a, now.Add(-48*time.Hour), now.Add(time.Hour), 55),
		flat(b, now.Add(-48*time.Hour), now.Add(-10*time.Minute), 5), // stopped 10m ago
	}}
	p := mustPolicy(t, "inc", "")
	e := NewEvaluator(p, q)
	ctx := context.Background()
	if _, err := e.Fetch(ctx, now); err != nil {
		t.Fatal(err)
	}
	// The first fetch reads the lookback in chunks of fetchChunkSteps.
	first := [2]time.Time{q.calls[0][0], q.calls[len(q.calls)-1][1]}
	if want := now.Truncate(time.Minute).Add(-24*time.Hour - historyMargin + time.Minute); !first[0].Equal(want) || !first[1].Equal(now.Truncate(time.Minute)) {
		t.Errorf("first fetch %v, want [%v, %v]", first, want, now.Truncate(time.Minute))
	}
	if want := (25*60 + fetchChunkSteps - 1) / fetchChunkSteps; len(q.calls) != want {
		t.Errorf("first fetch in %d queries, want %d", len(q.calls), want)
	}
	for i, c := range q.calls {
		if i > 0 && !c[0].Equal(q.calls[i-1][1].Add(time.Minute)) {
			t.Errorf("chunk %d starts at %v, want the minute after %v", i, c[0], q.calls[i-1][1])
		}
	}
	firstCalls := len(q.calls)
	c := e.Evaluate(ctx, now)
	if len(c.Series) != 1 || c.Series[0].Labels.Get("svc") != "a" {
		t.Fatalf("want only the live series a forecast, got %+v", c.Series)
	}
	r := c.Series[0]
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	// A flat 55 needs ceil(55/10) = 6 replicas; 5 for ahead 5m and 30m.
	if r.Desired != 6 || r.Raw != 6 || r.Observed != 55 || len(r.Predicted) != 2 || math.Abs(r.Predicted[30*time.Minute]-55) > 1e-9 {
		t.Errorf("flat series: %+v", r)
	}
	// observed + 2 predicted + desired, then the policy's capacity per
	// replica, all at the evaluation time.
	if len(c.Samples) != 5 {
		t.Fatalf("%d samples, want 5", len(c.Samples))
	}
	for _, s := range c.Samples[:4] {
		if s.T != now.UnixMilli() || s.Labels.Get(PolicyLabel) != "inc" || s.Labels.Get("svc") != "a" {
			t.Errorf("sample %v", s)
		}
	}
	if cp := c.Samples[4]; cp.Labels.String() != `{__name__="kedastral_capacity_per_replica", policy="inc"}` || cp.V != 10 || cp.T != now.UnixMilli() {
		t.Errorf("capacity sample %v", cp)
	}
	// The policy's model is the default, auto: the series names the model it chose.
	if p.Spec.Model.Type != "auto" || r.Model == "auto" || !slices.Contains(model.Names(), r.Model) {
		t.Errorf("policy model %q, series model %q: want auto choosing a registered model", p.Spec.Model.Type, r.Model)
	}

	later := now.Add(2 * time.Minute)
	if _, err := e.Fetch(ctx, later); err != nil {
		t.Fatal(err)
	}
	second := q.calls[firstCalls]
	if want := now.Truncate(time.Minute).Add(-refetchSteps * time.Minute); !second[0].Equal(want) || !second[1].Equal(later.Truncate(time.Minute)) {
		t.Errorf("incremental fetch %v, want [%v, %v]", second, want, later.Truncate(time.Minute))
	}

	// A failed fetch keeps the state.
	q.fail = errors.New("connection refused")
	if _, err := e.Fetch(ctx, later.Add(time.Minute)); err == nil {
		t.Fatal("want the query error")
	}
	if e.SeriesCount() != 2 {
		t.Errorf("a failed fetch dropped state: %d series", e.SeriesCount())
	}
}

// TestEvaluatorBadValues feeds NaN, Inf and negative values: forecasts stay
// finite and desired replicas within [min, max].
func TestEvaluatorBadValues(t *testing.T) {
	now := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	s := promapi.Series{Labels: labels.FromStrings("svc", "x")}
	for i := 0; i < 200; i++ {
		v := []float64{math.NaN(), math.Inf(1), -5, 1e300, 30}[i%5]
		s.Points = append(s.Points, promapi.Point{T: now.Add(time.Duration(i-199) * time.Minute).UnixMilli(), V: v})
	}
	e := NewEvaluator(mustPolicy(t, "bad", ""), &recorded{series: []promapi.Series{s}})
	if _, err := e.Fetch(context.Background(), now); err != nil {
		t.Fatal(err)
	}
	c := e.Evaluate(context.Background(), now)
	for _, r := range c.Series {
		if r.Err != nil {
			continue
		}
		for _, v := range r.Forecast {
			if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
				t.Fatalf("forecast value %v", v)
			}
		}
		if r.Desired < 1 || r.Desired > 20 {
			t.Errorf("desired %d outside [1, 20]", r.Desired)
		}
	}
	for _, smp := range c.Samples {
		if math.IsNaN(smp.V) || math.IsInf(smp.V, 0) {
			t.Errorf("sample %v is not finite", smp)
		}
	}
}

// memWriter records what would be remote-written.
type memWriter struct {
	mu      sync.Mutex
	samples []promapi.Sample
}

func (w *memWriter) Write(_ context.Context, s []promapi.Sample) (promapi.WriteStats, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.samples = append(w.samples, s...)
	return promapi.WriteStats{}, nil
}

// TestManagerApply checks reload semantics: an unchanged policy keeps its
// runner, a changed one is restarted, a removed one stops, and one that became
// invalid keeps running in its last good version with the error shown.
func TestManagerApply(t *testing.T) {
	now := time.Now()
	q := &recorded{series: []promapi.Series{flat(labels.FromStrings("svc", "a"), now.Add(-2*time.Hour), now.Add(time.Hour), 42)}}
	m, err := NewManager(Options{Writer: &memWriter{}, Registerer: prometheus.NewRegistry(),
		Queriers: func(*policy.DataSource) (Querier, error) { return q, nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop()
	one, two := mustPolicy(t, "one", ""), mustPolicy(t, "two", "")
	if err := m.Apply(&policy.Set{Policies: []*policy.ForecastPolicy{one, two}}, nil); err != nil {
		t.Fatal(err)
	}
	r1, r2 := m.runners["one"], m.runners["two"]

	// Same content, new objects: nothing restarts.
	if err := m.Apply(&policy.Set{Policies: []*policy.ForecastPolicy{mustPolicy(t, "one", ""), mustPolicy(t, "two", "")}}, nil); err != nil {
		t.Fatal(err)
	}
	if m.runners["one"] != r1 || m.runners["two"] != r2 {
		t.Error("unchanged policies were restarted")
	}

	// "one" changed, "two" now invalid (absent from the set, named in the errors).
	changed := mustPolicy(t, "one", "  ahead: [10m]\n")
	loadErr := &policy.Error{File: "p.yaml", Line: 3, Kind: policy.KindForecastPolicy, Name: "two", Field: "spec.capacity.max", Err: errors.New("must be in [1, 100000], got 0")}
	if err := m.Apply(&policy.Set{Policies: []*policy.ForecastPolicy{changed}}, []error{loadErr}); err != nil {
		t.Fatal(err)
	}
	if m.runners["one"] == r1 {
		t.Error("changed policy kept its old runner")
	}
	if m.runners["two"] != r2 {
		t.Error("policy that became invalid was stopped")
	}
	st := m.Status()
	if len(st) != 2 || st[1].Name != "two" || st[1].LoadError != loadErr.Error() {
		t.Errorf("status does not show the load error: %+v", st)
	}

	// "two" removed for good.
	if err := m.Apply(&policy.Set{Policies: []*policy.ForecastPolicy{changed}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, ok := m.runners["two"]; ok || len(m.Status()) != 1 {
		t.Errorf("removed policy still running: %+v", m.Status())
	}
}

// TestSlotAlignment checks evaluation times: aligned to the interval plus the
// policy's offset, whole milliseconds, stable across runners (restarts).
func TestSlotAlignment(t *testing.T) {
	m, err := NewManager(Options{Writer: &memWriter{}, Queriers: func(*policy.DataSource) (Querier, error) { return &recorded{}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop()
	p := mustPolicy(t, "slots", "")
	r1 := m.newRunner(p, nil, &recorded{})
	r2 := m.newRunner(p, nil, &recorded{})
	now := time.Date(2026, 5, 1, 10, 0, 0, 123456789, time.UTC)
	for i := range 50 {
		t0 := now.Add(time.Duration(i) * 37 * time.Millisecond)
		s1, s2 := r1.slot(t0), r2.slot(t0)
		if !s1.Equal(s2) {
			t.Fatalf("two runners of one policy disagree: %v vs %v", s1, s2)
		}
		if s1.After(t0) || t0.Sub(s1) >= time.Second {
			t.Fatalf("slot %v not within the interval before %v", s1, t0)
		}
		if s1.Nanosecond()%int(time.Millisecond) != 0 {
			t.Fatalf("slot %v is not a whole millisecond", s1)
		}
	}
}

// TestEvaluatorFetchChunksBySeries: once the first chunk of the first fetch
// shows how many series the query has, the next chunks are short enough
// that no response holds more than maxFetchPoints points, contiguous and
// still covering the lookback.
func TestEvaluatorFetchChunksBySeries(t *testing.T) {
	now := time.Date(2026, 3, 2, 12, 0, 30, 0, time.UTC)
	q := &recorded{}
	for i := range 50 {
		q.series = append(q.series, flat(labels.FromStrings("svc", fmt.Sprint("s", i)), now.Add(-48*time.Hour), now.Add(time.Hour), 10))
	}
	e := NewEvaluator(mustPolicy(t, "chunks", ""), q)
	e.maxFetchPoints = 50 * 60
	if _, err := e.Fetch(t.Context(), now); err != nil {
		t.Fatal(err)
	}
	if len(q.calls) < 2 {
		t.Fatalf("%d queries", len(q.calls))
	}
	for i, c := range q.calls {
		steps := int(c[1].Sub(c[0])/time.Minute) + 1
		switch {
		case i == 0 && steps != fetchChunkSteps:
			t.Errorf("first chunk %d steps, want %d", steps, fetchChunkSteps)
		case i > 0 && i < len(q.calls)-1 && steps != 60:
			t.Errorf("chunk %d: %d steps, want 60 (50 series, 3000 points)", i, steps)
		}
		if i > 0 && !c[0].Equal(q.calls[i-1][1].Add(time.Minute)) {
			t.Errorf("chunk %d starts at %v, want the minute after %v", i, c[0], q.calls[i-1][1])
		}
	}
	if last := q.calls[len(q.calls)-1][1]; !last.Equal(now.Truncate(time.Minute)) {
		t.Errorf("last chunk ends at %v", last)
	}
	c := e.Evaluate(t.Context(), now)
	if len(c.Series) != 50 {
		t.Fatalf("%d series forecast, want 50", len(c.Series))
	}
	for _, r := range c.Series {
		if r.Err != nil || r.Observed != 10 {
			t.Errorf("%s: %v, observed %v", r.Labels, r.Err, r.Observed)
		}
	}
}

// TestEvaluatorHPAHeld: a series result says what the HPA is expected to
// hold next to desired replicas: a rise within the HPA's tolerance is
// lifted past it (need 11, desired 12), and a fall the HPA's scale-down
// window holds back leaves it at the higher count (desired 10, HPA 12).
func TestEvaluatorHPAHeld(t *testing.T) {
	t1 := time.Date(2026, 3, 2, 12, 0, 30, 0, time.UTC)
	a := labels.FromStrings("svc", "a")
	base := flat(a, t1.Add(-48*time.Hour), t1, 100)
	q := &recorded{series: []promapi.Series{base}}
	e := NewEvaluator(mustPolicy(t, "held", "  model: {type: seasonal}\n"), q)
	ctx := context.Background()
	step := func(now time.Time, v float64) SeriesResult {
		t.Helper()
		if v > 0 {
			q.mu.Lock()
			q.series[0].Points = append(q.series[0].Points, promapi.Point{T: now.Truncate(time.Minute).UnixMilli(), V: v})
			q.mu.Unlock()
		}
		if _, err := e.Fetch(ctx, now); err != nil {
			t.Fatal(err)
		}
		c := e.Evaluate(ctx, now)
		if len(c.Series) != 1 || c.Series[0].Err != nil {
			t.Fatalf("%+v", c.Series)
		}
		return c.Series[0]
	}
	for i, want := range []struct {
		v                 float64
		need, desired, hp int32
	}{
		{0, 10, 10, 10},   // flat 100 at 10 per pod
		{105, 11, 12, 12}, // 11/10 is within 10%: lifted to 12, which the HPA takes
		{100, 10, 10, 12}, // the HPA's window holds 12 for 5 minutes
	} {
		r := step(t1.Add(time.Duration(i)*time.Minute), want.v)
		if r.Raw != want.need || r.Desired != want.desired || r.HPA != want.hp {
			t.Errorf("step %d: need %d, desired %d, HPA %d; want %d, %d, %d", i, r.Raw, r.Desired, r.HPA, want.need, want.desired, want.hp)
		}
	}
}
