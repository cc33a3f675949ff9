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

// CurvePoint is Kedastral's outcome at one quantile.
type CurvePoint struct {
	Quantile float64
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
	runs := make([]Options, len(quantiles))
	for i, q := range quantiles {
		runs[i] = o
		runs[i].Policy = atQuantile(o.Policy, q)
	}
	results := make([]*Result, len(quantiles))
	errs := make([]error, len(quantiles))
	runAll(ctx, runs, o.Progress, true, func(i int, r *Result, err error) { results[i], errs[i] = r, err })
	for i, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return nil, fmt.Errorf("quantile %v: %w", quantiles[i], err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	cr := &CurveResult{First: results[0]}
	for i, r := range results {
		pt := CurvePoint{Quantile: quantiles[i], Coverage: math.NaN(), Scaling: methodScore(r.Scaling, Kedastral)}
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
	if len(series) == 0 {
		return nil, errors.New("backtest: no series")
	}
	n := len(series)
	runs := make([]Options, 0, len(quantiles)*n)
	for _, q := range quantiles {
		p := atQuantile(o.Policy, q)
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
	for k, q := range quantiles {
		part := outs[k*n : (k+1)*n]
		tot := total(part)
		if tot == nil {
			return nil, fmt.Errorf("no series could be backtested; %s: %w", part[0].Labels, part[0].Err)
		}
		pt := CurvePoint{Quantile: q, Coverage: math.NaN(), Scaling: methodScore(tot, Kedastral)}
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
