package backtest

import (
	"math"

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
