package capacity

import (
	"math"
	"time"

	"github.com/kedastral/kedastral/engine/policy"
)

// HPASyncPeriod is the HorizontalPodAutoscaler controller's default
// --horizontal-pod-autoscaler-sync-period: it acts and records a
// recommendation this often.
const HPASyncPeriod = 15 * time.Second

// HPA models the HorizontalPodAutoscaler controller acting on one external
// metric with an AverageValue target, one sync at a time. At every sync it
// computes the usage ratio metric / (target × current) and recommends the
// count it holds when |ratio − 1| ≤ tolerance, else ceil(metric / target)
// clamped to [min, max] (the metric here is already divided by its target,
// so it is in pods); it records the recommendation, scales up to it at once,
// and scales down no lower than the highest recommendation recorded within
// its scale-down stabilization window (stabilizeRecommendationWithBehaviors
// without a scale-up window or rate limits). The planner uses it to know the
// count the HPA holds; the backtest simulates the HPA with it.
type HPA struct {
	tolerance float64
	window    time.Duration
	min, max  int32
	count     int32
	runs      []hpaRun // recommendations in the window, oldest first
}

// hpaRun is a recommendation the HPA recorded at consecutive syncs, the last
// of them at last: a run of equal ones takes one entry.
type hpaRun struct {
	last time.Time
	rec  int32
}

// NewHPA returns an HPA with the given tolerance and scale-down window that
// clamps its recommendations to c's min and max, holding count replicas.
func NewHPA(c policy.Capacity, tolerance float64, window time.Duration, count int32) *HPA {
	return &HPA{tolerance: tolerance, window: window, min: c.Min, max: c.Max, count: count}
}

// Count is the count the HPA holds.
func (h *HPA) Count() int32 { return h.count }

// Seed sets the count the HPA holds and forgets its recommendations.
func (h *HPA) Seed(count int32) {
	h.count = count
	h.runs = h.runs[:0]
}

// Proposal is the HPA's count for a metric of want pods (the metric over
// its per-pod target): ceil(want), up to float noise, clamped to
// [min, max]; min for an unknown metric.
func Proposal(want float64, min, max int32) int32 {
	return Need(want, policy.Capacity{TargetPerPod: 1, Headroom: 1, Min: min, Max: max})
}

// Settled reports whether further syncs with the metric of the last one
// would change nothing but the time of its recommendation: the window holds
// one run of recommendations, of the count the HPA holds.
func (h *HPA) Settled() bool { return len(h.runs) == 1 && h.runs[0].rec == h.count }

// Sync is one sync at time at (calls in non-decreasing time) with the metric
// in force, in pods (metric over its per-pod target); it returns the count
// the HPA holds after it. A NaN metric changes nothing.
func (h *HPA) Sync(at time.Time, metric float64) int32 {
	cut := at.Add(-h.window)
	i := 0
	for i < len(h.runs) && !h.runs[i].last.After(cut) {
		i++
	}
	h.runs = h.runs[i:]
	rec := h.count
	if !math.IsNaN(metric) && !UsageWithinTolerance(metric, h.count, h.tolerance) {
		rec = Proposal(metric, h.min, h.max)
	}
	if n := len(h.runs); n > 0 && h.runs[n-1].rec == rec {
		h.runs[n-1].last = at
	} else {
		h.runs = append(h.runs, hpaRun{last: at, rec: rec})
	}
	if rec >= h.count {
		h.count = rec
		return rec
	}
	for _, r := range h.runs {
		rec = max(rec, r.rec)
	}
	h.count = min(h.count, rec)
	return h.count
}
