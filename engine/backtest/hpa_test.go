package backtest

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	prommodel "github.com/prometheus/common/model"

	"github.com/kedastral/kedastral/engine/capacity"
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
		end      []int32   // the count at the end of each step; replicas when nil
		demand   []float64 // in pods; 0 when nil
		unserved []float64 // in pods; 0 when nil

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
			// records it until 1m45s: it bounds the scale-down until the
			// sync at 6m45s (1m45s is not after 6m45s − 5m), three
			// quarters into row 6.
			desired:  []float64{20, 10, 10, 10, 10, 10, 10, 10},
			replicas: []int32{20, 20, 20, 20, 20, 20, 20, 10},
			capacity: []float64{20, 20, 20, 20, 20, 20, 17.5, 10},
			end:      []int32{20, 20, 20, 20, 20, 20, 10, 10},
		},
		{
			name: "the window ends after five minutes", step: time.Minute, startup: 3 * time.Minute,
			desired:  []float64{10, 20, 15, 15, 15, 15, 15, 15, 15, 15},
			replicas: []int32{10, 10, 20, 20, 20, 20, 20, 20, 15, 15},
			capacity: []float64{10, 10, 10, 10, 10, 20, 20, 18.75, 15, 15},
			end:      []int32{10, 10, 20, 20, 20, 20, 20, 15, 15, 15},
		},
		{
			// At a 5-minute step the previous answer was in force until
			// now and last recorded 15s ago: the drop comes 4m45s into
			// the step.
			name: "the window holds the previous answer at a 5m step", step: 5 * time.Minute,
			desired:  []float64{20, 10, 10, 10},
			replicas: []int32{20, 20, 20, 10},
			capacity: []float64{20, 20, 19.5, 10}, // 20·285/300 + 10·15/300
			end:      []int32{20, 20, 10, 10},
		},
		{
			// An hourly step: the HPA scales down 4m45s into the step,
			// not at its end.
			name: "a scale-down inside an hourly step", step: time.Hour,
			desired:  []float64{20, 10, 10},
			replicas: []int32{20, 20, 20},
			capacity: []float64{20, 20, 10 + 10*285.0/3600},
			end:      []int32{20, 20, 10},
		},
		{
			// Demand above the ready capacity is lost when it happens:
			// 5 pods of demand short for the 3 minutes before the new
			// pods are ready is 3 pods over the step, not the 1 pod by
			// which the mean capacity (14) falls short of 15.
			name: "unserved demand is integrated over the step", step: 5 * time.Minute, startup: 3 * time.Minute,
			demand:   []float64{10, 15, 15},
			desired:  []float64{10, 20, 20},
			replicas: []int32{10, 10, 20},
			capacity: []float64{10, 10, 14},
			unserved: []float64{0, 5, 3},
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
			for i, d := range tc.demand {
				tr.Values[i] = d * c.TargetPerPod
			}
			if tc.end == nil {
				tc.end = tc.replicas
			}
			if tc.unserved == nil {
				tc.unserved = make([]float64, len(tc.desired))
			}
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
				if sim.End[i] != tc.end[i] {
					t.Errorf("step %d: replicas at the end %d, want %d", i, sim.End[i], tc.end[i])
				}
				if want := tc.unserved[i] * c.TargetPerPod; math.Abs(sim.Unserved[i]-want) > 1e-9 {
					t.Errorf("step %d: unserved %v, want %v", i, sim.Unserved[i], want)
				}
				// Every pod is ready at once in these cases unless
				// startup is set: the mean count is the mean capacity.
				if tc.startup == 0 && math.Abs(sim.Held[i]-tc.capacity[i]) > 1e-9 {
					t.Errorf("step %d: mean count %v, want %v", i, sim.Held[i], tc.capacity[i])
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

// TestPlannerAssumesSimulatedHPA: the count the capacity planner assumes the
// HPA holds (the count it lifts increases from) is the count the simulated
// HPA holds after each answer, for random answers at several steps, with and
// without a scale-down window, at the default and a larger tolerance.
func TestPlannerAssumesSimulatedHPA(t *testing.T) {
	t0 := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, step := range []time.Duration{15 * time.Second, 30 * time.Second, time.Minute, 5 * time.Minute, time.Hour} {
		for _, window := range []time.Duration{0, 2 * time.Minute, 5 * time.Minute} {
			for _, tol := range []float64{0.1, 0.25} {
				c := policy.Capacity{TargetPerPod: 1, Min: 1, Max: 200, Tolerance: &tol,
					HPAScaleDownStabilization: new(prommodel.Duration(window))}
				pl := capacity.NewPlanner(c)
				const n = 400
				answers := make([]float64, n)
				assumed := make([]int32, n)
				need := 40.0
				for i := range n {
					// A random walk with jumps, so answers rise and fall
					// within and beyond the tolerance.
					need = max(1, need*(1+0.08*rng.NormFloat64()))
					if rng.IntN(20) == 0 {
						need *= 0.5 + rng.Float64()
					}
					at := t0.Add(time.Duration(i+1) * step)
					answers[i] = float64(pl.Next(at, capacity.Need(need, c)))
					assumed[i] = pl.AssumedHPA()
				}
				tr := model.History{Start: t0, Step: step, Values: make([]float64, n)}
				sim := simulate(answers, tr, c, Options{Tolerance: tol, ScaleDownStabilization: window})
				for i := 0; i+1 < n; i++ {
					if sim.Replicas[i+1] != assumed[i] {
						for k := max(0, i-10); k <= i; k++ {
							t.Logf("answer %d at %s: %v assumed %d sim %d end %d", k, time.Duration(k+1)*step, answers[k], assumed[k], sim.Replicas[k+1], sim.End[k+1])
						}
						t.Fatalf("step %s, window %s, tolerance %v: after answer %d (%v) the planner assumes %d, the HPA holds %d",
							step, window, tol, i, answers[i], assumed[i], sim.Replicas[i+1])
					}
				}
			}
		}
	}
}
