package backtest

import (
	"math"
	"time"

	"github.com/kedastral/kedastral/engine/capacity"
	"github.com/kedastral/kedastral/engine/model"
	"github.com/kedastral/kedastral/engine/policy"
)

// ReactiveHeadroom scores reactive KEDA with a fixed headroom (the metric
// handed to the HPA is observed × headroom, target targetPerPod) in the
// simulation of r, relative to r's reactive scaling and oracle.
func ReactiveHeadroom(r *Result, tr model.History, c policy.Capacity, headroom float64) ScalingScore {
	want := nanSlice(len(tr.Values))
	last := math.NaN()
	for i, v := range tr.Values {
		if !math.IsNaN(v) {
			last = v
		}
		want[i] = last * headroom / c.TargetPerPod
	}
	o := Options{Tolerance: r.Tolerance, ScaleDownStabilization: r.Stabilize, PodStartup: r.PodStartup}
	sim := simulate(want, tr, c, o)
	sc := scoreScaling("reactive_headroom", sim, tr.Values, r.ScoredFrom, tr.Step)
	for _, b := range r.Scaling {
		switch b.Method {
		case Reactive:
			sc.UnservedVsReactive = ratio(sc.Unserved, b.Unserved)
		case Oracle:
			sc.VsOracle = ratio(sc.ReplicaHours, b.ReplicaHours)
		}
	}
	return sc
}

// PerfectForecast scores a forecast that knows the future (the rows the
// answer covers) through the policy's own capacity code (capacity.Recommend
// and a capacity.Planner: the lift past the tolerance, never below
// reactive), in the simulation of r: how much of Kedastral's unserved
// demand and replica-hours the capacity code leaves with no forecast error.
func PerfectForecast(r *Result, tr model.History, s *policy.ForecastPolicySpec) ScalingScore {
	n := len(tr.Values)
	step := tr.Step
	cover := s.CoverSteps()
	pl := capacity.NewPlanner(s.Capacity)
	want := make([]float64, n)
	fc := make([]float64, cover)
	last := math.NaN()
	for i := range n {
		if v := tr.Values[i]; !math.IsNaN(v) {
			last = v
		}
		for j := range fc {
			fc[j] = math.NaN()
			if k := i + 1 + j; k < n {
				fc[j] = tr.Values[k]
			}
		}
		now := tr.Start.Add(time.Duration(i+1) * step)
		want[i] = float64(pl.Next(now, capacity.Recommend(fc, cover, last, s.Capacity)))
	}
	o := Options{Tolerance: r.Tolerance, ScaleDownStabilization: r.Stabilize, PodStartup: r.PodStartup}
	sim := simulate(want, tr, s.Capacity, o)
	sc := scoreScaling("perfect_forecast", sim, tr.Values, r.ScoredFrom, step)
	for _, b := range r.Scaling {
		switch b.Method {
		case Reactive:
			sc.UnservedVsReactive = ratio(sc.Unserved, b.Unserved)
		case Oracle:
			sc.VsOracle = ratio(sc.ReplicaHours, b.ReplicaHours)
		}
	}
	return sc
}
