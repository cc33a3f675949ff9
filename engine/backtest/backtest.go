// Package backtest replays a recorded series through the forecaster's own
// evaluation code (engine/forecast), step by step with only the past visible,
// and scores what it would have done: forecast error per horizon against
// naive, seasonal-naive and predict_linear forecasts, and the scaling outcome
// of its desired replicas against reactive KEDA scaling and a perfect-foresight
// oracle, all passed through the same simulated HorizontalPodAutoscaler.
// docs/backtest.md states every convention.
package backtest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"time"

	prommodel "github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/kedastral/kedastral/engine/capacity"
	"github.com/kedastral/kedastral/engine/forecast"
	"github.com/kedastral/kedastral/engine/model"
	"github.com/kedastral/kedastral/engine/policy"
	"github.com/kedastral/kedastral/promapi"
)

// Names of the compared methods, in report order.
const (
	Kedastral     = "kedastral"
	Reactive      = "reactive"
	Naive         = "naive"
	SeasonalNaive = "seasonal_naive"
	PredictLinear = "predict_linear"
	// PerfectForecast is the true future through the policy's capacity
	// code: what Kedastral would do with no forecast error.
	PerfectForecast = "perfect_forecast"
	Oracle          = "oracle"
)

// Options configure a backtest.
type Options struct {
	// Policy is a validated policy; its step must be the trace's step.
	Policy *policy.ForecastPolicy
	// Trace is the recorded demand: Values[i] is the demand in the interval
	// [Start+i·Step, Start+(i+1)·Step), NaN where the trace has no row.
	Trace model.History
	// Warmup is the span at the start of the trace that is replayed but not
	// scored; by default the policy's lookback, at most half the trace.
	Warmup time.Duration
	// Tolerance of the simulated HPA; negative means the policy's
	// capacity.tolerance (0.1 unless set).
	Tolerance float64
	// ScaleDownStabilization of the simulated HPA; negative means the
	// policy's capacity.hpaScaleDownStabilization (5m unless set).
	ScaleDownStabilization time.Duration
	// PodStartup is how long a requested pod takes to be ready; by default
	// (zero) the policy's leadTime.
	PodStartup time.Duration
	// Progress, when set, is called with the steps done and the total.
	Progress func(done, total int)
	// Labels are the labels of the series the trace is (from the policy's
	// query), for the reports; empty for a trace file.
	Labels labels.Labels
	// Offset is added to the times of the rows: a trace recorded on a clock
	// that is not aligned to the step was moved back onto the step's grid
	// by that much (trace.Align), and the reports show its own timestamps.
	Offset time.Duration
}

// Row is one step of the replay, made at the end of the step with data up
// to and including it.
type Row struct {
	Time     time.Time // start of the step (the trace's timestamp)
	Observed float64   // NaN when the trace has no row
	// Pred[k] is the forecast made now for Time + Ahead[k]; NaN when none.
	Pred []float64
	// Desired is what the forecaster would write now; -1 when it wrote none.
	Desired int32
}

// ForecastScore is the forecast error of one method at one horizon over the
// scored steps.
type ForecastScore struct {
	Method string
	Ahead  time.Duration
	AheadS string // Ahead as a Prometheus duration, e.g. 15m
	N      int
	MAE    float64
	WMAPE  float64
	MASE   float64
	// Coverage is the share of targets at or below the forecast (Kedastral
	// only, which forecasts the policy's quantile); NaN for the others.
	Coverage float64
}

// ScalingScore is the simulated outcome of one method's replica answers.
type ScalingScore struct {
	Method string
	// Unserved is the share of demand above the ready capacity.
	Unserved float64
	// UnservedVsReactive is Unserved divided by reactive scaling's.
	UnservedVsReactive float64
	// UnderTime is the share of scored steps with unserved demand.
	UnderTime float64
	// Over is the ready capacity above demand, as a share of demand.
	Over float64
	// ReplicaHours counts every pod the HPA asked for, ready or not.
	ReplicaHours float64
	// VsOracle is ReplicaHours divided by the oracle's.
	VsOracle float64
	// ScaleEvents counts changes of the HPA's replica count.
	ScaleEvents int
	// demand is the summed demand of the scored steps with a value, steps
	// their count and under those with unserved demand: what outcomes of
	// several series are summed with (ManyResult.Total).
	demand       float64
	steps, under int
}

// Sim is the simulated HPA of one method, per step.
type Sim struct {
	Method   string
	Replicas []int32   // the HPA's count at the start of the step, once it took the answer
	End      []int32   // the HPA's count at the end of the step
	Held     []float64 // the HPA's count averaged over the step (it may scale down within it)
	Capacity []float64 // ready capacity averaged over the step, in the signal's unit
	// Unserved is the demand above the ready capacity, integrated over the
	// step, in the signal's unit (the same unit as the trace's value).
	Unserved []float64
	Changes  []int32 // changes of the HPA's count during the step
}

// Result is a backtest's outcome.
type Result struct {
	Policy     string
	Labels     labels.Labels // Options.Labels
	Metric     string        // the policy's spec.metric: what the demand is measured in
	Model      string
	Quantile   float64
	Step       time.Duration
	LeadTime   time.Duration
	PodStartup time.Duration
	Tolerance  float64
	Stabilize  time.Duration
	Ahead      []time.Duration
	Rows       []Row
	ScoredFrom int // index of the first scored row
	Forecast   []ForecastScore
	Scaling    []ScalingScore
	Sims       []Sim
	MASEScale  float64 // MAE of the one-day seasonal naive forecast over the scored steps
	Elapsed    time.Duration
	// Errors counts the steps whose evaluation failed for another reason
	// than too little history (Desired -1, answered reactively); FirstError
	// is the first of them.
	Errors       int
	FirstError   error
	TargetPerPod float64
}

// replay is a forecast.Querier over a recorded series that reveals only the
// samples up to until. A trace row at t (the demand in [t, t+step)) is the
// sample a Prometheus rate would have at t+step, the end of its window.
type replay struct {
	points []promapi.Point
	until  int64 // ms
}

func (r *replay) QueryRange(_ context.Context, _ string, start, end time.Time, step time.Duration) ([]promapi.Series, error) {
	lo, hi := start.UnixMilli(), min(end.UnixMilli(), r.until)
	i := sort.Search(len(r.points), func(i int) bool { return r.points[i].T >= lo })
	j := sort.Search(len(r.points), func(i int) bool { return r.points[i].T > hi })
	if i >= j {
		return nil, nil
	}
	return []promapi.Series{{Labels: labels.EmptyLabels(), Points: r.points[i:j:j]}}, nil
}

// Run replays the trace and scores it.
func Run(ctx context.Context, o Options) (*Result, error) {
	began := time.Now()
	p := o.Policy
	if p == nil {
		return nil, errors.New("backtest: no policy")
	}
	s := &p.Spec
	if len(s.Sources) != 1 {
		// The replay answers every query with the one trace.
		return nil, fmt.Errorf("backtest: the policy has %d sources and a trace is one signal; backtest a copy of the policy with the source to replay", len(s.Sources))
	}
	step := time.Duration(s.Step)
	tr := o.Trace
	if tr.Step != step {
		return nil, fmt.Errorf("backtest: the trace's step %v differs from the policy's step %v", tr.Step, step)
	}
	if len(tr.Values) < 2 {
		return nil, fmt.Errorf("backtest: the trace has %d steps, need at least 2", len(tr.Values))
	}
	if o.Tolerance < 0 {
		o.Tolerance = s.Capacity.ToleranceValue()
	}
	if o.ScaleDownStabilization < 0 {
		o.ScaleDownStabilization = s.Capacity.HPAScaleDownWindow()
	}
	if o.PodStartup == 0 {
		o.PodStartup = time.Duration(s.LeadTime)
	}
	n := len(tr.Values)
	span := time.Duration(n) * step
	if o.Warmup == 0 {
		o.Warmup = min(time.Duration(s.Lookback), span/2)
	}
	scoredFrom := min(int(o.Warmup/step), n-1)

	res := &Result{
		Policy: p.Metadata.Name, Labels: o.Labels, Metric: s.Metric, Model: s.Model.Type, Quantile: s.Model.Quantile,
		Step: step, LeadTime: time.Duration(s.LeadTime), PodStartup: o.PodStartup,
		Tolerance: o.Tolerance, Stabilize: o.ScaleDownStabilization,
		ScoredFrom: scoredFrom, TargetPerPod: s.Capacity.TargetPerPod,
	}
	for _, a := range s.Ahead {
		res.Ahead = append(res.Ahead, time.Duration(a))
	}

	// The replay: trace row i is the sample at Start+(i+1)·step.
	q := &replay{}
	for i, v := range tr.Values {
		if !math.IsNaN(v) {
			q.points = append(q.points, promapi.Point{T: tr.Start.Add(time.Duration(i+1) * step).UnixMilli(), V: v})
		}
	}
	ev := forecast.NewEvaluator(p, q)

	// The comparison forecasts share the policy's capacity code.
	methods := []string{Kedastral, Reactive, Naive, SeasonalNaive, PredictLinear, PerfectForecast, Oracle}
	planners := map[string]*capacity.Planner{}
	for _, m := range []string{Naive, SeasonalNaive, PredictLinear, PerfectForecast} {
		planners[m] = capacity.NewPlanner(s.Capacity)
	}
	desired := make(map[string][]int32, len(methods))
	for _, m := range methods {
		desired[m] = make([]int32, n)
	}
	// Reactive KEDA hands the HPA the observed value itself (target
	// targetPerPod), so the HPA's tolerance applies to observed /
	// (targetPerPod × current), not to the rounded count.
	reactiveLoad := nanSlice(n)
	// preds[method][k][j] is the forecast for row j at Ahead[k].
	fmethods := []string{Kedastral, Naive, SeasonalNaive, PredictLinear}
	preds := map[string][][]float64{}
	for _, m := range fmethods {
		preds[m] = make([][]float64, len(res.Ahead))
		for k := range res.Ahead {
			preds[m][k] = nanSlice(n)
		}
	}
	horizon := max(s.HorizonSteps(), s.CoverSteps())
	for _, a := range s.Ahead {
		horizon = max(horizon, int(time.Duration(a)/step))
	}
	daySteps := int(24 * time.Hour / step)
	lookSteps := int(time.Duration(s.Lookback) / step)
	lead := s.CoverSteps()
	cover := int(math.Ceil(float64(o.PodStartup+step)/float64(step) - 1e-9))

	res.Rows = make([]Row, n)
	lastFinite := math.NaN()
	fc := make([]float64, horizon)
	for i := range n {
		if i%256 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if o.Progress != nil {
				o.Progress(i, n)
			}
		}
		now := tr.Start.Add(time.Duration(i+1) * step)
		q.until = now.UnixMilli()
		obs := tr.Values[i]
		if !math.IsNaN(obs) {
			lastFinite = obs
		}
		row := Row{Time: tr.Start.Add(time.Duration(i)*step + o.Offset), Observed: obs, Pred: nanSlice(len(res.Ahead)), Desired: -1}
		if _, err := ev.Fetch(ctx, now); err != nil {
			return nil, fmt.Errorf("backtest: fetch at %s: %w", now.Format(time.RFC3339), err)
		}
		c := ev.Evaluate(ctx, now)
		if len(c.Series) == 1 && c.Series[0].Err == nil {
			r := c.Series[0]
			row.Desired = r.Desired
			for k, a := range res.Ahead {
				row.Pred[k] = r.Predicted[a]
				if j := i + int(a/step); j < n {
					preds[Kedastral][k][j] = r.Predicted[a]
				}
			}
		} else if len(c.Series) == 1 && !forecast.IsInsufficientData(c.Series[0].Err) {
			// The forecaster would log it and write nothing for the series.
			if res.Errors == 0 {
				res.FirstError = fmt.Errorf("evaluate at %s: %w", now.Format(time.RFC3339), c.Series[0].Err)
			}
			res.Errors++
		}
		res.Rows[i] = row

		// Reactive: the observed value now; unknown without a value yet.
		desired[Reactive][i] = capacity.Reactive(lastFinite, s.Capacity)
		reactiveLoad[i] = lastFinite / s.Capacity.TargetPerPod
		if row.Desired >= 0 {
			desired[Kedastral][i] = row.Desired
		} else {
			// No forecast: the scaler answers reactively (hybrid fallback).
			desired[Kedastral][i] = desired[Reactive][i]
		}
		// Oracle: the peak demand until the next answer's pods are ready.
		peak := math.NaN()
		for j := i + 1; j <= min(i+cover, n-1); j++ {
			if v := tr.Values[j]; !math.IsNaN(v) && !(v <= peak) {
				peak = v
			}
		}
		if math.IsNaN(peak) {
			peak = lastFinite
		}
		desired[Oracle][i] = capacity.Reactive(peak, s.Capacity)

		// Perfect forecast: the demand of the rows the answer covers.
		for j := range fc {
			fc[j] = math.NaN()
			if k := i + 1 + j; k < n {
				fc[j] = tr.Values[k]
			}
		}
		desired[PerfectForecast][i] = planners[PerfectForecast].Next(now, capacity.Recommend(fc, lead, lastFinite, s.Capacity))

		// Naive, seasonal naive, predict_linear.
		for j := range fc {
			fc[j] = lastFinite
		}
		record(preds[Naive], res.Ahead, step, i, n, fc)
		desired[Naive][i] = planners[Naive].Next(now, capacity.Recommend(fc, lead, lastFinite, s.Capacity))
		for j := range fc {
			fc[j] = seasonalNaive(tr.Values, i, j+1, daySteps)
		}
		record(preds[SeasonalNaive], res.Ahead, step, i, n, fc)
		desired[SeasonalNaive][i] = planners[SeasonalNaive].Next(now, capacity.Recommend(fc, lead, lastFinite, s.Capacity))
		from := max(0, i+1-lookSteps)
		h := model.History{Start: tr.Start.Add(time.Duration(from) * step), Step: step, Values: tr.Values[from : i+1]}
		if lf, ok := model.PredictLinear(h, model.LinearWindow(step), horizon); ok {
			for j := range lf {
				lf[j] = max(lf[j], 0)
			}
			record(preds[PredictLinear], res.Ahead, step, i, n, lf)
			desired[PredictLinear][i] = planners[PredictLinear].Next(now, capacity.Recommend(lf, lead, lastFinite, s.Capacity))
		} else {
			desired[PredictLinear][i] = desired[Reactive][i]
		}
	}
	if o.Progress != nil {
		o.Progress(n, n)
	}

	// Forecast scores.
	res.MASEScale = maseScale(tr.Values, scoredFrom, daySteps)
	for k, a := range res.Ahead {
		for _, m := range fmethods {
			fs := scoreForecast(tr.Values, preds[m][k], scoredFrom, res.MASEScale, m == Kedastral)
			fs.Method, fs.Ahead, fs.AheadS = m, a, fmtDuration(a)
			res.Forecast = append(res.Forecast, fs)
		}
	}

	// Scaling: every method through the same simulated HPA.
	for _, m := range methods {
		want := replicaAnswers(desired[m])
		if m == Reactive {
			want = reactiveLoad
		}
		sim := simulate(want, tr, s.Capacity, o)
		sim.Method = m
		res.Sims = append(res.Sims, sim)
		res.Scaling = append(res.Scaling, scoreScaling(m, sim, tr.Values, scoredFrom, step))
	}
	var reactive, oracle ScalingScore
	for _, sc := range res.Scaling {
		switch sc.Method {
		case Reactive:
			reactive = sc
		case Oracle:
			oracle = sc
		}
	}
	for i := range res.Scaling {
		res.Scaling[i].UnservedVsReactive = ratio(res.Scaling[i].Unserved, reactive.Unserved)
		res.Scaling[i].VsOracle = ratio(res.Scaling[i].ReplicaHours, oracle.ReplicaHours)
	}
	res.Elapsed = time.Since(began)
	return res, nil
}

func ratio(a, b float64) float64 {
	if b == 0 {
		if a == 0 {
			return 1
		}
		return math.Inf(1)
	}
	return a / b
}

func nanSlice(n int) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = math.NaN()
	}
	return s
}

// record stores the forecast made at row i (fc[m] for row i+1+m) at each ahead.
func record(dst [][]float64, ahead []time.Duration, step time.Duration, i, n int, fc []float64) {
	for k, a := range ahead {
		h := int(a / step)
		if j := i + h; j < n && h-1 < len(fc) {
			dst[k][j] = fc[h-1]
		}
	}
}

// seasonalNaive is the value one day before row i+h (whole days back, so that
// the lag is in the past), NaN when that row is missing or before the trace.
func seasonalNaive(v []float64, i, h, daySteps int) float64 {
	if daySteps <= 0 {
		return math.NaN()
	}
	back := daySteps * ((h + daySteps - 1) / daySteps)
	if j := i + h - back; j >= 0 {
		return v[j]
	}
	return math.NaN()
}

// maseScale is the mean absolute error of the one-day seasonal naive forecast
// over the scored rows.
func maseScale(v []float64, from, daySteps int) float64 {
	var sum float64
	var n int
	for j := max(from, daySteps); j < len(v); j++ {
		if a, b := v[j], v[j-daySteps]; !math.IsNaN(a) && !math.IsNaN(b) {
			sum += math.Abs(a - b)
			n++
		}
	}
	if n == 0 {
		return math.NaN()
	}
	return sum / float64(n)
}

func scoreForecast(v, pred []float64, from int, scale float64, coverage bool) ForecastScore {
	var fs ForecastScore
	var sumAbs, sumObs float64
	var covered int
	for j := from; j < len(v); j++ {
		a, f := v[j], pred[j]
		if math.IsNaN(a) || math.IsNaN(f) {
			continue
		}
		fs.N++
		sumAbs += math.Abs(a - f)
		sumObs += math.Abs(a)
		if a <= f {
			covered++
		}
	}
	fs.MAE, fs.WMAPE, fs.MASE, fs.Coverage = math.NaN(), math.NaN(), math.NaN(), math.NaN()
	if fs.N > 0 {
		fs.MAE = sumAbs / float64(fs.N)
		fs.MASE = fs.MAE / scale
		if sumObs > 0 {
			fs.WMAPE = sumAbs / sumObs
		}
		if coverage {
			fs.Coverage = float64(covered) / float64(fs.N)
		}
	}
	return fs
}

func scoreScaling(method string, sim Sim, v []float64, from int, step time.Duration) ScalingScore {
	sc := ScalingScore{Method: method}
	var demand, unserved, over float64
	var steps, under int
	for j := from; j < len(v); j++ {
		if j > from {
			sc.ScaleEvents += int(sim.Changes[j])
		}
		sc.ReplicaHours += sim.Held[j] * step.Hours()
		d := v[j]
		if math.IsNaN(d) {
			continue
		}
		steps++
		demand += d
		if miss := sim.Unserved[j]; miss > 1e-9*max(d, 1) {
			unserved += miss
			under++
		}
		// The ready capacity above demand; capacity − demand + lost is
		// the integral of max(0, capacity − demand) over the step.
		over += max(0, sim.Capacity[j]-d+sim.Unserved[j])
	}
	sc.demand, sc.steps, sc.under = demand, steps, under
	if demand > 0 {
		sc.Unserved = unserved / demand
		sc.Over = over / demand
	}
	if steps > 0 {
		sc.UnderTime = float64(under) / float64(steps)
	}
	return sc
}

// fmtDuration formats d as Prometheus does (5m, 1h30m).
func fmtDuration(d time.Duration) string { return prommodel.Duration(d).String() }

// FromSamples turns the samples of a Prometheus range query at step into a
// trace: the sample at T (a rate over [T−step, T]) is the trace row at
// T−step, the inverse of what the replay does. Missing steps are NaN.
func FromSamples(points []promapi.Point, step time.Duration) (model.History, error) {
	if len(points) == 0 {
		return model.History{}, errors.New("no samples")
	}
	first := time.UnixMilli(points[0].T).UTC().Add(-step)
	last := time.UnixMilli(points[len(points)-1].T).UTC().Add(-step)
	h := model.History{Start: first, Step: step, Values: nanSlice(int(last.Sub(first)/step) + 1)}
	for _, p := range points {
		d := time.UnixMilli(p.T).UTC().Add(-step).Sub(first)
		if d%step != 0 {
			return model.History{}, fmt.Errorf("sample at %s is not on the %s grid", time.UnixMilli(p.T).UTC().Format(time.RFC3339), fmtDuration(step))
		}
		h.Values[d/step] = p.V
	}
	return h, nil
}
