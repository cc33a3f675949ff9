package model_test

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/kedastral/kedastral/engine/model"
)

func newModel(tb testing.TB, name string, step time.Duration, q float64) model.Model {
	tb.Helper()
	m, err := model.New(name, model.Config{Step: step, Quantile: q})
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

func TestRegistry(t *testing.T) {
	for _, name := range []string{model.Auto, model.Baseline, model.HoltWinters, model.Linear, model.Seasonal} {
		if !slices.Contains(model.Names(), name) {
			t.Errorf("%s not registered: %v", name, model.Names())
		}
		for _, cfg := range []model.Config{{Quantile: 0.5}, {Step: time.Minute, Quantile: 1}} {
			if _, err := model.New(name, cfg); err == nil {
				t.Errorf("%s accepts %+v", name, cfg)
			}
		}
	}
}

// TestPredictLinear: predict_linear semantics, the least-squares line
// through the window evaluated from the last point.
func TestPredictLinear(t *testing.T) {
	h := model.History{Start: t0, Step: time.Minute, Values: []float64{100, 1, 3, math.NaN(), 7, 9}}
	// Window 5 steps: points 1,3,NaN,7,9 at x=-4..0 → slope 2, value 9 at x=0.
	got, ok := model.PredictLinear(h, 5*time.Minute, 3)
	if !ok || math.Abs(got[0]-11) > 1e-9 || math.Abs(got[2]-15) > 1e-9 {
		t.Errorf("PredictLinear = %v, %v; want 11, 13, 15", got, ok)
	}
	// Noisy: the least-squares fit, not the last point: y = 0, 2, 1 → slope 0.5, value at x=0 is 1.5.
	h.Values = []float64{0, 2, 1}
	if got, _ := model.PredictLinear(h, time.Hour, 1); math.Abs(got[0]-2) > 1e-9 {
		t.Errorf("noisy: %v, want 2", got)
	}
	h.Values = []float64{math.NaN(), 4}
	if got, _ := model.PredictLinear(h, time.Hour, 2); got[0] != 4 || got[1] != 4 {
		t.Errorf("one point: %v, want flat 4", got)
	}
	h.Values = []float64{math.NaN()}
	if _, ok := model.PredictLinear(h, time.Hour, 2); ok {
		t.Error("no point: ok")
	}
}

// walkForward forecasts every step of v after warm points with m and returns the
// forecasts made ahead steps earlier for each index (NaN where none).
func walkForward(tb testing.TB, m model.Model, v []float64, step time.Duration, warm, n, ahead int) []float64 {
	tb.Helper()
	out := make([]float64, len(v))
	for i := range out {
		out[i] = math.NaN()
	}
	for i := warm; i+ahead < len(v); i++ {
		h := model.History{Start: t0, Step: step, Values: v[:i+1]}
		f, err := m.Forecast(context.Background(), h, n)
		if err != nil {
			tb.Fatalf("at %d: %v", i, err)
		}
		out[i+ahead] = f[ahead-1]
	}
	return out
}

func coverage(v, pred []float64, from int) (float64, int) {
	var hit, n int
	for i := from; i < len(v); i++ {
		if math.IsNaN(pred[i]) || math.IsNaN(v[i]) {
			continue
		}
		n++
		if v[i] <= pred[i] {
			hit++
		}
	}
	return float64(hit) / float64(n), n
}

// TestConformalCoverage: the bound of every conformal model meets its
// quantile on noisy data, and keeps meeting it after the noise doubles.
func TestConformalCoverage(t *testing.T) {
	const step = 5 * time.Minute
	rng := rand.New(rand.NewPCG(3, 4))
	n := 6 * 288
	v := make([]float64, n)
	for i := range v {
		noise := 10.0
		if i > 4*288 {
			noise = 20 // drift: the last two days are noisier
		}
		v[i] = dailySine(t0.Add(time.Duration(i)*step)) + noise*rng.NormFloat64()
	}
	for _, name := range []string{model.HoltWinters, model.Linear, model.Auto} {
		for _, q := range []float64{0.5, 0.9} {
			pred := walkForward(t, newModel(t, name, step, q), v, step, 2*288, 6, 3)
			c1, _ := coverage(v[:4*288], pred[:4*288], 3*288)
			c2, _ := coverage(v, pred, 5*288)
			if math.Abs(c1-q) > 0.06 || math.Abs(c2-q) > 0.06 {
				t.Errorf("%s q=%v: coverage %.3f on day 4, %.3f on day 6 after the noise doubled", name, q, c1, c2)
			}
		}
	}
}

// TestHoltWintersSeason: a daily cycle with a trend is forecast within the
// noise, and the forecast follows a level shift within a few hours.
func TestHoltWintersSeason(t *testing.T) {
	const step = 5 * time.Minute
	rng := rand.New(rand.NewPCG(5, 6))
	n := 5 * 288
	v := make([]float64, n)
	for i := range v {
		v[i] = dailySine(t0.Add(time.Duration(i)*step)) + 0.01*float64(i) + rng.NormFloat64()
		if i >= 4*288 {
			v[i] += 40
		}
	}
	pred := walkForward(t, newModel(t, model.HoltWinters, step, 0.5), v, step, 3*288, 12, 12)
	var sum float64
	var cnt int
	for i := 3*288 + 24; i < 4*288; i++ {
		sum += math.Abs(v[i] - pred[i])
		cnt++
	}
	if mae := sum / float64(cnt); mae > 3 {
		t.Errorf("day 4, an hour ahead: MAE %.2f, want ≤ 3 (noise σ=1, amplitude 50)", mae)
	}
	sum, cnt = 0, 0
	for i := 4*288 + 48; i < n; i++ {
		sum += math.Abs(v[i] - pred[i])
		cnt++
	}
	if mae := sum / float64(cnt); mae > 5 {
		t.Errorf("after a level shift of 40: MAE %.2f, want ≤ 5", mae)
	}
}

// TestRobustInputs: gaps, NaN, ±Inf, zeros from failed scrapes and a cold
// start give finite forecasts; no finite point at all is insufficient data.
func TestRobustInputs(t *testing.T) {
	const step = 5 * time.Minute
	base := series(step, 4*day, dailySine)
	gap := slices.Clone(base.Values)
	for i := 2 * 288; i < 3*288; i++ {
		gap[i] = math.NaN() // a day missing
	}
	spikes := slices.Clone(base.Values)
	for i := 3 * 288; i < 3*288+30; i++ {
		spikes[i] = 0 // a scrape failure
	}
	spikes[3*288+100] = math.Inf(1)
	spikes[3*288+101] = 1e6
	cold := slices.Clone(base.Values[:100])
	for _, name := range []string{model.HoltWinters, model.Linear, model.Seasonal, model.Auto} {
		for _, tc := range []struct {
			name string
			v    []float64
			max  float64 // a bound on every forecast
		}{
			{"day-long gap", gap, 200},
			{"zeros, Inf and a spike", spikes, 1e8}, // linear extrapolates the spike, as predict_linear does
			{"cold start", cold, 200},
		} {
			m := newModel(t, name, step, 0.9)
			for i := 50; i <= len(tc.v); i += 7 {
				f, err := m.Forecast(context.Background(), model.History{Start: t0, Step: step, Values: tc.v[:i]}, 12)
				if err != nil {
					t.Fatalf("%s, %s at %d: %v", name, tc.name, i, err)
				}
				for _, x := range f {
					if math.IsNaN(x) || math.IsInf(x, 0) || x < 0 || x > tc.max {
						t.Fatalf("%s, %s at %d: forecast %v", name, tc.name, i, f)
					}
				}
			}
		}
		// After a long gap the forecast is still near the daily cycle.
		if name == model.HoltWinters {
			m := newModel(t, name, step, 0.5)
			walkForward(t, m, gap[:3*288], step, 2*288-1, 1, 1)
			f, _ := m.Forecast(context.Background(), model.History{Start: t0, Step: step, Values: gap[:3*288+1]}, 1)
			if want := dailySine(t0.Add(time.Duration(3*288+1) * step)); math.Abs(f[0]-want) > 15 {
				t.Errorf("holtwinters after a day-long gap: %v, want about %v", f[0], want)
			}
		}
		nan := model.History{Start: t0, Step: step, Values: []float64{math.NaN(), math.Inf(1)}}
		if _, err := newModel(t, name, step, 0.5).Forecast(context.Background(), nan, 3); !errors.Is(err, model.ErrInsufficientData) {
			t.Errorf("%s, no finite point: %v, want ErrInsufficientData", name, err)
		}
	}
}

// TestAutoChoice: auto answers with the model that fits the series: the
// line on a ramp, a seasonal one on a clean daily cycle, and it does not
// flap between them.
func TestAutoChoice(t *testing.T) {
	const step = 5 * time.Minute
	type chooser interface{ Chosen(int) string }
	ramp := series(step, 3*day, func(tm time.Time) float64 { return 10 + float64(tm.Sub(t0)/step) })
	cycle := series(step, 4*day, dailySine)
	for _, tc := range []struct {
		name string
		v    []float64
		want []string
	}{
		{"ramp", ramp.Values, []string{model.Linear}},
		{"daily cycle", cycle.Values, []string{model.HoltWinters, model.Baseline, model.Seasonal}},
	} {
		m := newModel(t, model.Auto, step, 0.5)
		switches := 0
		prev := ""
		for i := len(tc.v) - 600; i <= len(tc.v); i++ {
			if _, err := m.Forecast(context.Background(), model.History{Start: t0, Step: step, Values: tc.v[:i]}, 6); err != nil {
				t.Fatal(err)
			}
			c := m.(chooser).Chosen(3)
			if prev != "" && c != prev {
				switches++
			}
			prev = c
		}
		if !slices.Contains(tc.want, prev) || switches > 5 {
			t.Errorf("%s: chose %s at 15m after %d switches, want one of %v", tc.name, prev, switches, tc.want)
		}
	}
}

// TestRepeatedEvaluation: the forecaster evaluates more often than the step,
// so a model sees the same history several times; that must not change
// what it forecasts later.
func TestRepeatedEvaluation(t *testing.T) {
	const step = 5 * time.Minute
	rng := rand.New(rand.NewPCG(9, 10))
	v := series(step, 3*day, func(tm time.Time) float64 { return dailySine(tm) + 5*rng.NormFloat64() }).Values
	for _, name := range []string{model.HoltWinters, model.Linear, model.Auto} {
		once, twice := newModel(t, name, step, 0.8), newModel(t, name, step, 0.8)
		var a, b []float64
		for i := 2 * 288; i <= len(v); i++ {
			h := model.History{Start: t0, Step: step, Values: v[:i]}
			a = forecast(t, once, h, 6)
			forecast(t, twice, h, 6)
			b = forecast(t, twice, h, 6)
		}
		if !slices.Equal(a, b) {
			t.Errorf("%s: evaluating each step twice changed the forecast: %v, once %v", name, b, a)
		}
	}
}
