package model

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestSketchQuantile: the sketch's quantiles are close to the exact ones of
// the last conformalWindow errors, and exact for a point mass at zero.
func TestSketchQuantile(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	tests := []struct {
		name string
		gen  func(i int) float64
	}{
		{"normal", func(int) float64 { return 0.01 + 0.05*rng.NormFloat64() }},
		{"skewed", func(int) float64 { return rng.ExpFloat64()*0.2 - 0.1 }},
		{"drift", func(i int) float64 { return 0.0001*float64(i) + 0.1*rng.NormFloat64() }},
		{"heavy tail", func(int) float64 { return 0.05 * rng.NormFloat64() / max(0.05, math.Abs(rng.NormFloat64())) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var s sketch
			var all []float64
			for i := range 3000 {
				x := tc.gen(i)
				s.push(x)
				all = append(all, x)
			}
			last := slices.Clone(all[len(all)-conformalWindow:])
			slices.Sort(last)
			exact := func(q float64) float64 { return last[int(q*float64(len(last)-1))] }
			spread := exact(0.9) - exact(0.1)
			for _, q := range []float64{0.05, 0.25, 0.5, 0.75, 0.85, 0.95} {
				// The sketch holds the last 630 to 720 errors; on a drifting
				// series those are a little more recent than the exact window.
				if got, want := s.quantile(q), exact(q); math.Abs(got-want) > 0.1*spread {
					t.Errorf("quantile %v: %v, exact %v (spread %v)", q, got, want, spread)
				}
			}
		})
	}
	var z sketch
	for range 100 {
		z.push(0)
	}
	for _, q := range []float64{0.01, 0.5, 0.99} {
		if got := z.quantile(q); got != 0 {
			t.Errorf("all zeros: quantile %v = %v", q, got)
		}
	}
}
