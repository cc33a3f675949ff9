package backtest

import (
	"math"
	"time"

	"github.com/kedastral/kedastral/engine/capacity"
	"github.com/kedastral/kedastral/engine/model"
	"github.com/kedastral/kedastral/engine/policy"
)

// hpaSyncPeriod is the HorizontalPodAutoscaler controller's default
// --horizontal-pod-autoscaler-sync-period: it records a recommendation this
// often.
const hpaSyncPeriod = 15 * time.Second

// simulate plays a method's answers through a HorizontalPodAutoscaler.
// want[i] is the answer made at the end of row i as the HPA sees it: the
// metric divided by its per-pod target (AverageValue), in pods. For a
// replica answer (Kedastral's scaler, target 1) it is the replica count;
// for reactive KEDA it is observed / targetPerPod. The answer reaches the
// HPA at the end of row i (the start of row i+1), and the HPA does what
// its controller does for an external AverageValue metric: it keeps the
// current count when |want/current − 1| ≤ tolerance (the ratio of the
// metric to the target, not of the rounded replica counts), else proposes
// ceil(want) clamped to [min, max]; it scales down no lower than the
// highest proposal of the stabilization window, and scales up without a
// rate limit. An answer holds for a whole row and the HPA records it at
// every sync until the next one, so a scale-down at t is bounded by every
// answer still in force after t − window: the answers made after
// t − window − step + hpaSyncPeriod. A new pod is ready PodStartup after
// the HPA asks for it; a scale-down removes pods at once, the not yet ready
// ones first. The capacity of a row is the ready pods, weighted by the part
// of the row they were ready for, times targetPerPod.
func simulate(want []float64, tr model.History, c policy.Capacity, o Options) Sim {
	n := len(want)
	sim := Sim{Replicas: make([]int32, n), Capacity: make([]float64, n)}
	step := tr.Step
	hc := c
	hc.Tolerance, hc.ClearTolerance = new(0.0), new(false)
	window := o.ScaleDownStabilization
	if window > 0 {
		window = max(window, window+step-hpaSyncPeriod)
	}
	hc.Behavior = &policy.Behavior{ScaleDown: &policy.ScalingRules{
		StabilizationWindowSeconds: new(int32(window / time.Second)),
	}}
	pl := capacity.NewPlanner(hc)
	cur := proposal(want[0], c)
	pl.Seed(cur)
	var pods []time.Time // ready times, non-decreasing
	for range cur {
		pods = append(pods, tr.Start)
	}
	sim.Replicas[0] = cur
	sim.Capacity[0] = float64(cur) * c.TargetPerPod
	for i := 0; i+1 < n; i++ {
		t := tr.Start.Add(time.Duration(i+1) * step)
		rec := cur
		if !metricWithinTolerance(want[i], cur, o.Tolerance) {
			rec = proposal(want[i], c)
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

// proposal is the HPA's count for a metric of want pods: ceil(want), up to
// float noise, clamped to [min, max]; min for an unknown metric.
func proposal(want float64, c policy.Capacity) int32 {
	return capacity.Need(want, policy.Capacity{TargetPerPod: 1, Headroom: 1, Min: c.Min, Max: c.Max})
}

// metricWithinTolerance is the HPA's test on the usage ratio:
// |want/current − 1| ≤ tolerance (up to float noise). An unknown metric
// changes nothing; from zero replicas every positive metric counts.
func metricWithinTolerance(want float64, current int32, tolerance float64) bool {
	return math.IsNaN(want) || capacity.UsageWithinTolerance(want, current, tolerance)
}

// replicaAnswers turns replica counts into the metric the HPA sees from
// Kedastral's scaler (target 1, AverageValue): the counts themselves.
func replicaAnswers(d []int32) []float64 {
	out := make([]float64, len(d))
	for i, v := range d {
		out[i] = float64(v)
	}
	return out
}
