package backtest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/kedastral/kedastral/engine/model"
)

// Series is one series of a policy's query and its recorded demand.
type Series struct {
	Labels labels.Labels
	Trace  model.History
}

// SeriesOutcome is the backtest of one series of a ManyResult: its scores,
// without the per-step rows (thousands of series would not fit).
type SeriesOutcome struct {
	Labels     labels.Labels
	Start, End time.Time // the first and last row of its trace
	Scored     int       // scored steps
	// Coverage is Kedastral's share of targets at or below its forecast at
	// the policy's first ahead, of coverageN scored forecasts.
	Coverage  float64
	coverageN int
	Scaling   []ScalingScore // every method, as in Result.Scaling
	// Errors counts the steps the engine could not evaluate (answered
	// reactively), FirstError the first of them.
	Errors     int
	FirstError error
	// Err is why the series could not be backtested at all (e.g. too few
	// steps); the other fields are then empty.
	Err error
}

// ManyResult is the backtest of every series of a policy's query.
type ManyResult struct {
	// Settings is the first backtested series' result without its rows
	// and simulations: the policy and simulation settings, the same for
	// every series (RunMany fails when no series could be backtested).
	Settings *Result
	Series   []SeriesOutcome // in the order given
	// Total is every method's outcome over the backtested series together:
	// unserved and over-provisioned demand summed and divided by the summed
	// demand, replica-hours and scale events summed, the share of
	// under-provisioned steps over all their scored steps.
	Total []ScalingScore
}

// RunMany backtests o.Policy on each series, in parallel on up to
// GOMAXPROCS cores, as Run does on one (o.Trace is ignored). A series that
// cannot be backtested is reported in its outcome and does not stop the
// others; only a cancelled ctx does. o.Progress, when set, sees the steps of
// all series together.
func RunMany(ctx context.Context, o Options, series []Series) (*ManyResult, error) {
	if o.Policy == nil {
		return nil, errors.New("backtest: no policy")
	}
	if len(series) == 0 {
		return nil, errors.New("backtest: no series")
	}
	runs := make([]Options, len(series))
	for i, s := range series {
		runs[i] = o
		runs[i].Trace = s.Trace
	}
	res := &ManyResult{Series: make([]SeriesOutcome, len(series))}
	settings := make([]*Result, len(series))
	runAll(ctx, runs, o.Progress, false, func(i int, r *Result, err error) {
		res.Series[i], settings[i] = outcomeOf(series[i].Labels, r, err)
	})
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for _, s := range settings {
		if s != nil {
			res.Settings = s
			break
		}
	}
	if res.Settings == nil {
		return nil, fmt.Errorf("no series could be backtested; %s: %w", res.Series[0].Labels, res.Series[0].Err)
	}
	res.Total = total(res.Series)
	return res, nil
}

// outcomeOf is the outcome of one series' run, and its result without the
// rows, simulations and scores (the settings); nil when it failed.
func outcomeOf(l labels.Labels, r *Result, err error) (SeriesOutcome, *Result) {
	out := SeriesOutcome{Labels: l, Err: err, Coverage: math.NaN()}
	if err != nil {
		return out, nil
	}
	out.Start, out.End = r.Rows[0].Time, r.Rows[len(r.Rows)-1].Time
	out.Scored = len(r.Rows) - r.ScoredFrom
	if len(r.Forecast) > 0 {
		out.Coverage, out.coverageN = r.Forecast[0].Coverage, r.Forecast[0].N // Kedastral at the first ahead
	}
	out.Scaling, out.Errors, out.FirstError = r.Scaling, r.Errors, r.FirstError
	hdr := *r
	hdr.Rows, hdr.Sims, hdr.Forecast, hdr.Scaling, hdr.Labels = nil, nil, nil, nil, labels.EmptyLabels()
	return out, &hdr
}

// span is the first and last row of the backtested series, and the series
// that could not be backtested.
func span(series []SeriesOutcome) (start, end time.Time, failed []SeriesOutcome) {
	for _, s := range series {
		switch {
		case s.Err != nil:
			failed = append(failed, s)
			continue
		case start.IsZero() || s.Start.Before(start):
			start = s.Start
		}
		if s.End.After(end) {
			end = s.End
		}
	}
	return start, end, failed
}

// total sums the scaling outcomes of the backtested series, method by
// method (see ManyResult.Total); nil when none was backtested.
func total(series []SeriesOutcome) []ScalingScore {
	var out []ScalingScore
	var unserved, over []float64
	for _, s := range series {
		if s.Err != nil {
			continue
		}
		if out == nil {
			out = make([]ScalingScore, len(s.Scaling))
			unserved, over = make([]float64, len(s.Scaling)), make([]float64, len(s.Scaling))
			for k, sc := range s.Scaling {
				out[k].Method = sc.Method
			}
		}
		for k, sc := range s.Scaling {
			t := &out[k]
			unserved[k] += sc.Unserved * sc.demand
			over[k] += sc.Over * sc.demand
			t.demand += sc.demand
			t.steps += sc.steps
			t.under += sc.under
			t.ReplicaHours += sc.ReplicaHours
			t.ScaleEvents += sc.ScaleEvents
		}
	}
	var reactive, oracle *ScalingScore
	for k := range out {
		t := &out[k]
		t.Unserved, t.Over, t.UnderTime = math.NaN(), math.NaN(), math.NaN()
		if t.demand > 0 {
			t.Unserved, t.Over = unserved[k]/t.demand, over[k]/t.demand
		}
		if t.steps > 0 {
			t.UnderTime = float64(t.under) / float64(t.steps)
		}
		switch t.Method {
		case Reactive:
			reactive = t
		case Oracle:
			oracle = t
		}
	}
	for k := range out {
		t := &out[k]
		t.UnservedVsReactive, t.VsOracle = math.NaN(), math.NaN()
		if reactive != nil {
			t.UnservedVsReactive = ratio(t.Unserved, reactive.Unserved)
		}
		if oracle != nil {
			t.VsOracle = ratio(t.ReplicaHours, oracle.ReplicaHours)
		}
	}
	return out
}
