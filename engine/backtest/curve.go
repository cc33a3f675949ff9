package backtest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
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
	First  *Result // the run at Points[0].Quantile
	Points []CurvePoint
}

// Curve backtests o.Policy once per quantile (the policy's model.quantile
// and every source's quantile set to it), runs in parallel on up to
// GOMAXPROCS cores, and returns Kedastral's outcome at each in the order
// given: the trade-off between unserved demand and replica-hours the
// quantile sets, on this trace. o.Progress, when set, sees the steps of all
// runs together.
func Curve(ctx context.Context, o Options, quantiles []float64) (*CurveResult, error) {
	if o.Policy == nil {
		return nil, errors.New("backtest: no policy")
	}
	if len(quantiles) == 0 {
		return nil, errors.New("backtest: no quantiles")
	}
	for _, q := range quantiles {
		if !(q > 0 && q < 1) {
			return nil, fmt.Errorf("backtest: quantile %v is not in (0, 1)", q)
		}
	}
	runs := make([]Options, len(quantiles))
	for i, q := range quantiles {
		p := *o.Policy
		p.Spec.Model.Quantile = q
		p.Spec.Sources = slices.Clone(p.Spec.Sources)
		for k := range p.Spec.Sources {
			p.Spec.Sources[k].Quantile = 0 // the model's, q
		}
		runs[i] = o
		runs[i].Policy = &p
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
		pt := CurvePoint{Quantile: quantiles[i], Coverage: math.NaN()}
		if len(r.Forecast) > 0 {
			pt.Coverage = r.Forecast[0].Coverage // Kedastral at the first ahead
		}
		for _, s := range r.Scaling {
			if s.Method == Kedastral {
				pt.Scaling = s
			}
		}
		cr.Points = append(cr.Points, pt)
	}
	return cr, nil
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
	total := 0
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
			steps[i] = d
			var sum int
			for _, v := range steps {
				sum += v
			}
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
