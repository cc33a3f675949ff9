package model_test

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/kedastral/kedastral/engine/model"
)

// TestEveryModelIsLeveled: an objective calibrates the quantile of any
// model, so every registered model must take a new quantile, and a higher
// one must forecast no less (and, on a noisy series, more).
func TestEveryModelIsLeveled(t *testing.T) {
	step := 5 * time.Minute
	rng := rand.New(rand.NewPCG(1, 2))
	vals := make([]float64, 4*288)
	for i := range vals {
		vals[i] = 100 + 20*rng.NormFloat64()
	}
	for _, name := range model.Names() {
		if name == model.BYOM {
			continue // needs a server; its SetQuantile forwards to the conformal bound tested here
		}
		t.Run(name, func(t *testing.T) {
			low, high := newModel(t, name, step, 0.5), newModel(t, name, step, 0.5)
			if !model.SetQuantile(high, 0.5) {
				t.Fatalf("%s is not model.Leveled", name)
			}
			// Walk both forward so that conformal bounds have errors.
			var a, b []float64
			for end := 2 * 288; end <= len(vals); end += 6 {
				h := model.History{Start: t0, Step: step, Values: vals[:end]}
				if end == len(vals) {
					model.SetQuantile(high, 0.9)
				}
				var err error
				if a, err = low.Forecast(context.Background(), h, 6); err != nil {
					t.Fatal(err)
				}
				if b, err = high.Forecast(context.Background(), h, 6); err != nil {
					t.Fatal(err)
				}
			}
			more := false
			for j := range a {
				if b[j] < a[j]-1e-9 {
					t.Errorf("step %d: q 0.9 forecasts %v, below q 0.5's %v", j+1, b[j], a[j])
				}
				more = more || b[j] > a[j]+1
			}
			if !more {
				t.Errorf("q 0.9 forecasts %v, no more than q 0.5's %v", b, a)
			}
		})
	}
}
