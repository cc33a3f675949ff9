package backtest

import (
	"math"
	"testing"
	"time"

	"github.com/kedastral/kedastral/engine/model"
	"github.com/kedastral/kedastral/engine/policy"
)

// TestSimulate pins the simulated HPA: tolerance, scale-down stabilization,
// immediate scale-down (not-ready pods first) and readiness weighted within
// a step.
func TestSimulate(t *testing.T) {
	t0 := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	c := policy.Capacity{TargetPerPod: 10, Min: 1, Max: 100}
	for _, tc := range []struct {
		name     string
		step     time.Duration
		startup  time.Duration
		desired  []float64 // the metric over its target, in pods
		replicas []int32
		capacity []float64 // in pods

		noStabilization bool
	}{
		{
			name: "tolerance skips 10 to 11, takes 10 to 12", step: time.Minute, startup: 2 * time.Minute,
			desired:  []float64{10, 11, 12, 12, 12, 12},
			replicas: []int32{10, 10, 10, 12, 12, 12},
			capacity: []float64{10, 10, 10, 10, 10, 12},
		},
		{
			name: "scale-down waits for the stabilization window", step: time.Minute,
			// The answer 20, made at 1m, holds until 2m and the HPA
			// records it until 1m45s: it still bounds the scale-down at
			// 6m (after 6m − 5m), not at 7m.
			desired:  []float64{20, 10, 10, 10, 10, 10, 10, 10},
			replicas: []int32{20, 20, 20, 20, 20, 20, 20, 10},
			capacity: []float64{20, 20, 20, 20, 20, 20, 20, 10},
		},
		{
			name: "the window ends after five minutes", step: time.Minute, startup: 3 * time.Minute,
			desired:  []float64{10, 20, 15, 15, 15, 15, 15, 15, 15, 15},
			replicas: []int32{10, 10, 20, 20, 20, 20, 20, 20, 15, 15},
			capacity: []float64{10, 10, 10, 10, 10, 20, 20, 20, 15, 15},
		},
		{
			// At a 5-minute step the previous answer was in force until
			// now: the window holds it, so a drop waits one step.
			name: "the window holds the previous answer at a 5m step", step: 5 * time.Minute,
			desired:  []float64{20, 10, 10, 10},
			replicas: []int32{20, 20, 20, 10},
			capacity: []float64{20, 20, 20, 10},
		},
		{
			// The HPA tests the metric against its target (16.4/15 is
			// within 10%), not the rounded count (17/15 is not).
			name: "tolerance on the metric ratio, up", step: time.Minute, noStabilization: true,
			desired:  []float64{15, 16.4, 16.6, 16.6},
			replicas: []int32{15, 15, 15, 17},
			capacity: []float64{15, 15, 15, 17},
		},
		{
			// 8.95/10 is outside 10% though 9/10 is not.
			name: "tolerance on the metric ratio, down", step: time.Minute, noStabilization: true,
			desired:  []float64{10, 8.95, 8.95},
			replicas: []int32{10, 10, 9},
			capacity: []float64{10, 10, 9},
		},
		{
			name: "not-ready pods go first", step: time.Minute, startup: 3 * time.Minute, noStabilization: true,
			desired:  []float64{10, 20, 15, 15, 15, 15},
			replicas: []int32{10, 10, 20, 15, 15, 15},
			capacity: []float64{10, 10, 10, 10, 10, 15},
		},
		{
			name: "readiness within a step is weighted", step: 5 * time.Minute, startup: 3 * time.Minute,
			desired:  []float64{10, 20, 20, 20},
			replicas: []int32{10, 10, 20, 20},
			capacity: []float64{10, 10, 14, 20}, // 10 + 10·2/5
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := model.History{Start: t0, Step: tc.step, Values: make([]float64, len(tc.desired))}
			o := Options{Tolerance: 0.1, ScaleDownStabilization: 5 * time.Minute, PodStartup: tc.startup}
			if tc.noStabilization {
				o.ScaleDownStabilization = 0
			}
			sim := simulate(tc.desired, tr, c, o)
			for i := range tc.desired {
				if sim.Replicas[i] != tc.replicas[i] {
					t.Errorf("step %d: replicas %d, want %d", i, sim.Replicas[i], tc.replicas[i])
				}
				if want := tc.capacity[i] * c.TargetPerPod; math.Abs(sim.Capacity[i]-want) > 1e-9 {
					t.Errorf("step %d: capacity %v, want %v", i, sim.Capacity[i], want)
				}
			}
		})
	}
}

func TestSeasonalNaive(t *testing.T) {
	v := []float64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
	for _, tc := range []struct {
		i, h, day int
		want      float64
	}{
		{5, 1, 4, 2}, // row 6 − 4
		{5, 4, 4, 5}, // row 9 − 4
		{5, 5, 4, 2}, // row 10 − 8: a horizon beyond a day goes back two days
		{1, 1, 4, math.NaN()},
	} {
		got := seasonalNaive(v, tc.i, tc.h, tc.day)
		if !(got == tc.want || math.IsNaN(got) && math.IsNaN(tc.want)) {
			t.Errorf("seasonalNaive(i=%d, h=%d) = %v, want %v", tc.i, tc.h, got, tc.want)
		}
	}
}
