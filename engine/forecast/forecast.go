// Package forecast is Kedastral's evaluation loop: for each policy, every
// interval, it fetches the new history of each series its query returns,
// forecasts it with the policy's model, turns the forecast into desired
// replicas with the capacity model, and writes the kedastral_* series.
package forecast

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/kedastral/kedastral/engine/capacity"
	"github.com/kedastral/kedastral/engine/model"
	"github.com/kedastral/kedastral/engine/policy"
	"github.com/kedastral/kedastral/promapi"
)

// Names of the series Kedastral writes (the series contract in DESIGN.md).
const (
	ObservedMetric  = "kedastral_observed_value"
	PredictedMetric = "kedastral_predicted_value"
	DesiredMetric   = "kedastral_desired_replicas"
	// CapacityMetric is the policy's targetPerPod, one series per policy, so
	// PromQL can compare demand with what the desired replicas can serve:
	// kedastral_desired_replicas * on (policy) group_left kedastral_capacity_per_replica.
	CapacityMetric = "kedastral_capacity_per_replica"

	PolicyLabel   = "policy"
	AheadLabel    = "ahead"
	QuantileLabel = "quantile"
)

// Querier runs range queries; promapi.Client is one.
type Querier interface {
	QueryRange(ctx context.Context, query string, start, end time.Time, step time.Duration) ([]promapi.Series, error)
}

// staleAfter is how long a series may go without a value and still get a
// forecast: Prometheus' own lookback delta.
const staleAfter = 5 * time.Minute

// historyMargin is read beyond the lookback so that a seasonal lag of
// exactly the lookback (same time last week, with a 7d lookback) still has the
// recent window before it that models compare levels over.
const historyMargin = time.Hour

// refetchSteps is how many of the newest steps each incremental fetch reads
// again, since the newest points of a rate may still change as scrapes land.
const refetchSteps = 3

// Cycle is what one evaluation of a policy produced.
type Cycle struct {
	Time     time.Time
	Samples  []promapi.Sample
	Series   []SeriesResult
	Fetched  int // points read from the query
	Duration time.Duration
}

// SeriesResult is the outcome for one series of a cycle.
type SeriesResult struct {
	Labels    labels.Labels // the query's labels plus policy
	Observed  float64
	Forecast  []float64 // Forecast[i] is for HistoryEnd + (i+1)*step
	Predicted map[time.Duration]float64
	Raw       int32 // replicas the forecast needs, before behavior limits
	Desired   int32
	// Model names the model answering over the lead time: the policy's, or
	// the one auto chose for this series.
	Model string
	Err   error // set when the series could not be forecast
}

// seriesState is what the evaluator keeps for one series between cycles.
type seriesState struct {
	labels  labels.Labels // output labels: the query's plus policy
	hist    history
	model   model.Model
	planner *capacity.Planner
}

// Evaluator runs the cycles of one policy and keeps its per-series state.
// Cycles of one Evaluator must not run concurrently.
type Evaluator struct {
	policy  *policy.ForecastPolicy
	querier Querier
	series  map[uint64]*seriesState
	// fetchedUntil is the end of the last successful fetch; zero before the
	// first one, which then reads the whole lookback.
	fetchedUntil time.Time
	parallelism  int
}

// NewEvaluator returns an evaluator for a validated policy.
func NewEvaluator(p *policy.ForecastPolicy, q Querier) *Evaluator {
	return &Evaluator{policy: p, querier: q, series: map[uint64]*seriesState{}, parallelism: runtime.GOMAXPROCS(0)}
}

// Policy returns the evaluated policy.
func (e *Evaluator) Policy() *policy.ForecastPolicy { return e.policy }

// SeriesCount is the number of series with state.
func (e *Evaluator) SeriesCount() int { return len(e.series) }

// alignDown rounds t down to a multiple of d since the Unix epoch.
func alignDown(t time.Time, d time.Duration) time.Time {
	ms := t.UnixMilli()
	dm := d.Milliseconds()
	return time.UnixMilli(ms - ((ms%dm)+dm)%dm).UTC()
}

// Fetch reads the history new since the last fetch (the whole lookback the
// first time or after a long gap) into the per-series state.
func (e *Evaluator) Fetch(ctx context.Context, now time.Time) (int, error) {
	s := &e.policy.Spec
	step := time.Duration(s.Step)
	end := alignDown(now, step)
	windowStart := end.Add(-time.Duration(s.Lookback) - historyMargin).Add(step)
	start := windowStart
	if !e.fetchedUntil.IsZero() {
		if inc := e.fetchedUntil.Add(-refetchSteps * step); inc.After(start) {
			start = inc
		}
	}
	if start.After(end) {
		start = end
	}
	res, err := e.querier.QueryRange(ctx, s.Sources[0].Query, start, end, step)
	if err != nil {
		return 0, err
	}
	points := 0
	seen := make(map[uint64]bool, len(res))
	for _, r := range res {
		lbls := outputLabels(r.Labels, e.policy.Metadata.Name)
		h := lbls.Hash()
		seen[h] = true
		st, ok := e.series[h]
		if !ok {
			st = &seriesState{labels: lbls, hist: history{step: step}}
			e.series[h] = st
		}
		st.hist.trimBefore(windowStart)
		for _, p := range r.Points {
			st.hist.set(time.UnixMilli(p.T).UTC(), p.V)
		}
		points += len(r.Points)
	}
	for h, st := range e.series {
		st.hist.trimBefore(windowStart)
		if !seen[h] {
			st.hist.extendTo(end)
		}
		if _, _, ok := st.hist.last(); !ok {
			// Nothing left in the lookback: forget the series.
			delete(e.series, h)
		}
	}
	e.fetchedUntil = end
	return points, nil
}

// outputLabels are the query's labels (without __name__) plus policy, which
// overrides a policy label of the query's own.
func outputLabels(l labels.Labels, policyName string) labels.Labels {
	b := labels.NewBuilder(l)
	b.Del(labels.MetricName)
	b.Set(PolicyLabel, policyName)
	return b.Labels()
}

// Evaluate forecasts every live series and computes desired replicas and the
// samples to write, all stamped with now. It does not fetch.
func (e *Evaluator) Evaluate(ctx context.Context, now time.Time) *Cycle {
	s := &e.policy.Spec
	step := time.Duration(s.Step)
	end := alignDown(now, step)
	n := max(s.HorizonSteps(), s.CoverSteps())
	for _, a := range s.Ahead {
		n = max(n, int(time.Duration(a)/step))
	}

	live := make([]*seriesState, 0, len(e.series))
	for _, st := range e.series {
		if t, _, ok := st.hist.last(); ok && end.Sub(t) <= max(staleAfter, 2*step) {
			live = append(live, st)
		}
	}
	slices.SortFunc(live, func(a, b *seriesState) int { return labels.Compare(a.labels, b.labels) })

	results := make([]SeriesResult, len(live))
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(1, e.parallelism))
	for i, st := range live {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			results[i] = e.evaluateSeries(ctx, st, now, n)
		}()
	}
	wg.Wait()

	c := &Cycle{Time: now, Series: results}
	ts := now.UnixMilli()
	q := strconv.FormatFloat(s.Model.Quantile, 'f', -1, 64)
	for _, r := range results {
		if r.Err != nil {
			continue
		}
		c.Samples = append(c.Samples, promapi.Sample{Labels: withName(r.Labels, ObservedMetric), T: ts, V: r.Observed})
		for _, a := range s.Ahead {
			b := labels.NewBuilder(r.Labels)
			b.Set(labels.MetricName, PredictedMetric)
			b.Set(AheadLabel, a.String())
			b.Set(QuantileLabel, q)
			c.Samples = append(c.Samples, promapi.Sample{Labels: b.Labels(), T: ts, V: r.Predicted[time.Duration(a)]})
		}
		c.Samples = append(c.Samples, promapi.Sample{Labels: withName(r.Labels, DesiredMetric), T: ts, V: float64(r.Desired)})
	}
	if len(c.Samples) > 0 {
		c.Samples = append(c.Samples, promapi.Sample{
			Labels: labels.FromStrings(labels.MetricName, CapacityMetric, PolicyLabel, e.policy.Metadata.Name),
			T:      ts, V: s.Capacity.TargetPerPod,
		})
	}
	return c
}

func withName(l labels.Labels, name string) labels.Labels {
	b := labels.NewBuilder(l)
	b.Set(labels.MetricName, name)
	return b.Labels()
}

func (e *Evaluator) evaluateSeries(ctx context.Context, st *seriesState, now time.Time, n int) SeriesResult {
	s := &e.policy.Spec
	step := time.Duration(s.Step)
	r := SeriesResult{Labels: st.labels}
	_, obs, _ := st.hist.last()
	r.Observed = obs
	if st.model == nil {
		m, err := model.New(s.Model.Type, s.ModelConfig())
		if err != nil {
			r.Err = fmt.Errorf("build model %q: %w", s.Model.Type, err)
			return r
		}
		st.model = m
		st.planner = capacity.NewPlanner(s.Capacity)
	}
	fc, err := st.model.Forecast(ctx, st.hist.view(), n)
	if err == nil && len(fc) < n {
		err = fmt.Errorf("model %q returned %d points, want %d", s.Model.Type, len(fc), n)
	}
	if err != nil {
		r.Err = fmt.Errorf("forecast: %w", err)
		return r
	}
	// A forecast is demand: never negative, never NaN. The model may reuse
	// its slice, so the series keeps a copy.
	fc = slices.Clone(fc[:n])
	for i, v := range fc {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			r.Err = fmt.Errorf("forecast: model %q returned %v at step %d", s.Model.Type, v, i+1)
			return r
		}
		fc[i] = max(v, 0)
	}
	r.Forecast = fc
	r.Predicted = make(map[time.Duration]float64, len(s.Ahead))
	for _, a := range s.Ahead {
		r.Predicted[time.Duration(a)] = fc[int(time.Duration(a)/step)-1]
	}
	r.Model = s.Model.Type
	if ch, ok := st.model.(model.Chooser); ok {
		r.Model = ch.Chosen(s.CoverSteps())
	}
	r.Raw = capacity.Recommend(fc, s.CoverSteps(), obs, s.Capacity)
	r.Desired = st.planner.Next(now, r.Raw)
	return r
}

// IsInsufficientData tells whether a series error only means it is too new.
func IsInsufficientData(err error) bool { return errors.Is(err, model.ErrInsufficientData) }
