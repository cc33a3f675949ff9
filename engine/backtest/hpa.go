package backtest

import (
	"time"

	"github.com/kedastral/kedastral/engine/capacity"
	"github.com/kedastral/kedastral/engine/model"
	"github.com/kedastral/kedastral/engine/policy"
)

// simulate plays a method's answers through a HorizontalPodAutoscaler: the
// answer made at the end of row i reaches the HPA at that moment (the start of
// row i+1); the HPA ignores a change within its tolerance of the current
// count, scales down no lower than the highest recommendation of the
// stabilization window, and scales up without a rate limit. A new pod is
// ready PodStartup after the HPA asks for it; a scale-down removes pods at
// once, the not yet ready ones first. The capacity of a row is the ready
// pods, weighted by the part of the row they were ready for, times
// targetPerPod.
func simulate(desired []int32, tr model.History, c policy.Capacity, o Options) Sim {
	n := len(desired)
	sim := Sim{Replicas: make([]int32, n), Capacity: make([]float64, n)}
	hc := c
	hc.Tolerance, hc.ClearTolerance = new(0.0), new(false)
	hc.Behavior = &policy.Behavior{ScaleDown: &policy.ScalingRules{
		StabilizationWindowSeconds: new(int32(o.ScaleDownStabilization / time.Second)),
	}}
	pl := capacity.NewPlanner(hc)
	step := tr.Step
	cur := max(c.Min, min(desired[0], c.Max))
	pl.Seed(cur)
	var pods []time.Time // ready times, non-decreasing
	for range cur {
		pods = append(pods, tr.Start)
	}
	sim.Replicas[0] = cur
	sim.Capacity[0] = float64(cur) * c.TargetPerPod
	for i := 0; i+1 < n; i++ {
		t := tr.Start.Add(time.Duration(i+1) * step)
		rec := desired[i]
		if capacity.WithinTolerance(rec, cur, o.Tolerance) {
			rec = cur
		}
		next := pl.Next(t, rec)
		for int32(len(pods)) < next {
			pods = append(pods, t.Add(o.PodStartup))
		}
		pods = pods[:next]
		cur = next
		end := t.Add(step)
		var ready float64
		for k := len(pods) - 1; k >= 0; k-- {
			r := pods[k]
			if !r.After(t) {
				ready += float64(k + 1) // pods[:k+1] are all ready
				break
			}
			if r.Before(end) {
				ready += float64(end.Sub(r)) / float64(step)
			}
		}
		sim.Replicas[i+1] = cur
		sim.Capacity[i+1] = ready * c.TargetPerPod
	}
	return sim
}
