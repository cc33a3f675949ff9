package backtest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/kedastral/kedastral/engine/policy"
)

// CurvePoint is Kedastral's outcome at one quantile, or at one objective
// (ObjectiveCurve).
type CurvePoint struct {
	Quantile float64
	// Objective is the share of time short the point was run for, 0 at a
	// fixed quantile; the achieved share is Scaling.UnderTime, and Level
	// the calibrated quantile's mean over the scored steps (NaN at a fixed
	// quantile).
	Objective float64
	Level     float64
	// Coverage is the share of targets at or below the forecast at the
	// policy's first ahead.
	Coverage float64
	Scaling  ScalingScore
}

// CurveResult is the trade-off curve of a policy on a trace: Kedastral's
// scaling outcome at each quantile, and the methods that do not depend on
// the quantile (from the first run).
type CurveResult struct {
	First  *Result // the run at Points[0].Quantile (its settings and total, over several series)
	Points []CurvePoint
	// Series is the number of series summed up (CurveMany), 0 for one trace;
	// Failed are those that could not be backtested; Start and End the
	// first and last row of any backtested one.
	Series     int
	Failed     []SeriesOutcome
	Start, End time.Time
}

// Objectives tells whether the curve is over objectives (ObjectiveCurve)
// rather than quantiles.
func (c *CurveResult) Objectives() bool { return len(c.Points) > 0 && c.Points[0].Objective > 0 }

// Curve backtests o.Policy once per quantile (the policy's model.quantile
// and every source's quantile set to it), runs in parallel on up to
// GOMAXPROCS cores, and returns Kedastral's outcome at each in the order
// given: the trade-off between unserved demand and replica-hours the
// quantile sets, on this trace. o.Progress, when set, sees the steps of all
// runs together.
func Curve(ctx context.Context, o Options, quantiles []float64) (*CurveResult, error) {
	if err := checkCurve(o, quantiles); err != nil {
		return nil, err
	}
	return curve(ctx, o, quantiles, nil)
}

// ObjectiveCurve is Curve at each objective (a share of time short, e.g.
// 0.02) instead of each quantile: the policy's spec.objective set to it,
// its quantiles calibrated online. Each point says the share achieved.
func ObjectiveCurve(ctx context.Context, o Options, objectives []float64) (*CurveResult, error) {
	if err := checkObjectives(o, objectives); err != nil {
		return nil, err
	}
	return curve(ctx, o, nil, objectives)
}

func curve(ctx context.Context, o Options, quantiles, objectives []float64) (*CurveResult, error) {
	at, n := curvePolicy(o.Policy, quantiles, objectives)
	runs := make([]Options, n)
	for i := range n {
		runs[i] = o
		runs[i].Policy = at(i)
	}
	results := make([]*Result, n)
	errs := make([]error, n)
	runAll(ctx, runs, o.Progress, true, func(i int, r *Result, err error) { results[i], errs[i] = r, err })
	for i, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return nil, fmt.Errorf("%s: %w", pointName(quantiles, objectives, i), err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	cr := &CurveResult{First: results[0]}
	for i, r := range results {
		pt := CurvePoint{Coverage: math.NaN(), Level: math.NaN(), Scaling: methodScore(r.Scaling, Kedastral)}
		if quantiles != nil {
			pt.Quantile = quantiles[i]
		} else {
			pt.Objective, pt.Quantile, pt.Level = objectives[i], r.Quantile, r.LevelMean
		}
		if len(r.Forecast) > 0 {
			pt.Coverage = r.Forecast[0].Coverage // Kedastral at the first ahead
		}
		cr.Points = append(cr.Points, pt)
	}
	return cr, nil
}

// CurveMany is Curve over several series of the policy's query: at each
// quantile every series is backtested on its own and Kedastral's outcome is
// the total over them (ManyResult.Total), its coverage the share over all
// their scored forecasts. First holds the settings and, as Scaling, every
// method's total at the first quantile; Failed the series that could not be
// backtested. A failed series does not stop the others.
func CurveMany(ctx context.Context, o Options, series []Series, quantiles []float64) (*CurveResult, error) {
	if err := checkCurve(o, quantiles); err != nil {
		return nil, err
	}
	return curveMany(ctx, o, series, quantiles, nil)
}

// ObjectiveCurveMany is CurveMany at each objective (see ObjectiveCurve):
// every series calibrates its own quantile, and the achieved share is the
// total's.
func ObjectiveCurveMany(ctx context.Context, o Options, series []Series, objectives []float64) (*CurveResult, error) {
	if err := checkObjectives(o, objectives); err != nil {
		return nil, err
	}
	return curveMany(ctx, o, series, nil, objectives)
}

func curveMany(ctx context.Context, o Options, series []Series, quantiles, objectives []float64) (*CurveResult, error) {
	if len(series) == 0 {
		return nil, errors.New("backtest: no series")
	}
	n := len(series)
	at, points := curvePolicy(o.Policy, quantiles, objectives)
	runs := make([]Options, 0, points*n)
	for k := range points {
		p := at(k)
		for _, s := range series {
			ro := o
			ro.Policy, ro.Trace = p, s.Trace
			runs = append(runs, ro)
		}
	}
	outs := make([]SeriesOutcome, len(runs))
	settings := make([]*Result, len(runs))
	runAll(ctx, runs, o.Progress, false, func(i int, r *Result, err error) {
		outs[i], settings[i] = outcomeOf(series[i%n].Labels, r, err)
	})
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cr := &CurveResult{Series: n}
	for k := range points {
		part := outs[k*n : (k+1)*n]
		tot := total(part)
		if tot == nil {
			return nil, fmt.Errorf("no series could be backtested; %s: %w", part[0].Labels, part[0].Err)
		}
		pt := CurvePoint{Coverage: math.NaN(), Level: math.NaN(), Scaling: methodScore(tot, Kedastral)}
		if quantiles != nil {
			pt.Quantile = quantiles[k]
		} else {
			pt.Objective, pt.Quantile = objectives[k], o.Policy.Spec.Model.Quantile
			var sum float64
			var m int
			for j, s := range part {
				if r := settings[k*n+j]; s.Err == nil && r != nil && !math.IsNaN(r.LevelMean) {
					sum += r.LevelMean
					m++
				}
			}
			if m > 0 {
				pt.Level = sum / float64(m)
			}
		}
		var covered float64
		var scored int
		for _, s := range part {
			if s.Err == nil && !math.IsNaN(s.Coverage) {
				covered += s.Coverage * float64(s.coverageN)
				scored += s.coverageN
			}
		}
		if scored > 0 {
			pt.Coverage = covered / float64(scored)
		}
		cr.Points = append(cr.Points, pt)
		if k == 0 {
			cr.Start, cr.End, cr.Failed = span(part)
			for i, s := range part {
				if s.Err == nil {
					cr.First = settings[i]
					break
				}
			}
			cr.First.Scaling = tot
		}
	}
	return cr, nil
}

func checkCurve(o Options, quantiles []float64) error {
	if o.Policy == nil {
		return errors.New("backtest: no policy")
	}
	if len(quantiles) == 0 {
		return errors.New("backtest: no quantiles")
	}
	for _, q := range quantiles {
		if !(q > 0 && q < 1) {
			return fmt.Errorf("backtest: quantile %v is not in (0, 1)", q)
		}
	}
	return nil
}

// atQuantile is a copy of p whose model.quantile and every source's
// quantile is q.
func atQuantile(p *policy.ForecastPolicy, q float64) *policy.ForecastPolicy {
	c := *p
	c.Spec.Model.Quantile = q
	c.Spec.Sources = slices.Clone(c.Spec.Sources)
	for k := range c.Spec.Sources {
		c.Spec.Sources[k].Quantile = 0 // the model's, q
	}
	return &c
}

// runAll runs the backtests on up to GOMAXPROCS cores and hands each
// outcome to done (from the goroutine that ran it, so done must be safe for
// that: each index is handed once). progress, when set, sees the steps of
// all runs together; the runs' own Progress is not called. With failFast the
// first error cancels the runs still going.
func runAll(ctx context.Context, runs []Options, progress func(done, total int), failFast bool, done func(i int, r *Result, err error)) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	steps := make([]int, len(runs))
	total, sum := 0, 0
	for _, o := range runs {
		total += len(o.Trace.Values)
	}
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for i := range runs {
		ro := runs[i]
		ro.Progress = nil
		report := func(d int) {
			mu.Lock()
			defer mu.Unlock()
			sum += d - steps[i]
			steps[i] = d
			progress(sum, total)
		}
		if progress != nil {
			ro.Progress = func(d, _ int) { report(d) }
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			r, err := Run(ctx, ro)
			if err != nil && failFast {
				cancel()
			}
			if progress != nil && err != nil {
				report(len(ro.Trace.Values)) // done with it, though it ended early
			}
			done(i, r, err)
		}()
	}
	wg.Wait()
}

// Others are the scaling outcomes of the methods other than Kedastral,
// which do not depend on the quantile.
func (c *CurveResult) Others() []ScalingScore {
	var out []ScalingScore
	for _, s := range c.First.Scaling {
		if s.Method != Kedastral {
			out = append(out, s)
		}
	}
	return out
}

// curvePolicy returns the policy of each point of a curve over quantiles
// or, when quantiles is nil, over objectives, and their number.
func curvePolicy(p *policy.ForecastPolicy, quantiles, objectives []float64) (func(int) *policy.ForecastPolicy, int) {
	if quantiles != nil {
		return func(i int) *policy.ForecastPolicy { return atQuantile(p, quantiles[i]) }, len(quantiles)
	}
	return func(i int) *policy.ForecastPolicy { return atObjective(p, objectives[i]) }, len(objectives)
}

func pointName(quantiles, objectives []float64, i int) string {
	if quantiles != nil {
		return fmt.Sprintf("quantile %v", quantiles[i])
	}
	return fmt.Sprintf("objective %v", policy.Percent(objectives[i]))
}

// atObjective is a copy of p whose spec.objective is o (a share), its
// quantiles left to the calibration.
func atObjective(p *policy.ForecastPolicy, o float64) *policy.ForecastPolicy {
	c := atQuantile(p, policy.DefaultQuantile)
	c.Spec.Objective = &policy.Objective{UnderprovisionedTime: policy.Percent(o)}
	return c
}

func checkObjectives(o Options, objectives []float64) error {
	if o.Policy == nil {
		return errors.New("backtest: no policy")
	}
	if len(objectives) == 0 {
		return errors.New("backtest: no objectives")
	}
	for _, v := range objectives {
		if !(v >= policy.MinObjective && v <= policy.MaxObjective) {
			return fmt.Errorf("backtest: objective %v is not in [%v, %v]", policy.Percent(v), policy.Percent(policy.MinObjective), policy.Percent(policy.MaxObjective))
		}
	}
	return nil
}
