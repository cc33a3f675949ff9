package model_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/kedastral/kedastral/engine/model"
	"github.com/kedastral/kedastral/engine/trace"
)

const day = 24 * time.Hour

// t0 is a Monday 00:00 UTC, aligned to every step used here.
var t0 = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

func newBaseline(tb testing.TB, step time.Duration, q float64) model.Model {
	tb.Helper()
	m, err := model.New(model.Baseline, model.Config{Step: step, Quantile: q})
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// series samples f at every step of span from t0.
func series(step, span time.Duration, f func(t time.Time) float64) model.History {
	h := model.History{Start: t0, Step: step, Values: make([]float64, int(span/step))}
	for i := range h.Values {
		h.Values[i] = f(t0.Add(time.Duration(i) * step))
	}
	return h
}

func dailySine(t time.Time) float64 {
	x := float64(t.Sub(t0)%day) / float64(day)
	return 100 + 50*math.Sin(2*math.Pi*x)
}

func forecast(tb testing.TB, m model.Model, h model.History, n int) []float64 {
	tb.Helper()
	f, err := m.Forecast(context.Background(), h, n)
	if err != nil {
		tb.Fatal(err)
	}
	if len(f) != n {
		tb.Fatalf("got %d values, want %d", len(f), n)
	}
	for j, x := range f {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			tb.Fatalf("forecast[%d] = %v", j, x)
		}
	}
	return f
}

func TestBaselineConfig(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     model.Config
		wantErr string
	}{
		{"ok", model.Config{Step: time.Minute, Quantile: 0.5}, ""},
		{"zero step", model.Config{Quantile: 0.5}, "step 0s must be positive"},
		{"negative step", model.Config{Step: -time.Minute, Quantile: 0.5}, "step -1m0s must be positive"},
		{"quantile 0", model.Config{Step: time.Minute}, "quantile 0 must be in (0,1)"},
		{"quantile 1", model.Config{Step: time.Minute, Quantile: 1}, "quantile 1 must be in (0,1)"},
		{"quantile above 1", model.Config{Step: time.Minute, Quantile: 1.5}, "quantile 1.5"},
		{"quantile NaN", model.Config{Step: time.Minute, Quantile: math.NaN()}, "quantile NaN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := model.New(model.Baseline, tc.cfg)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatal(err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestBaselineForecastArguments(t *testing.T) {
	m := newBaseline(t, time.Minute, 0.5)
	h := series(time.Minute, 2*time.Hour, dailySine)
	if f, err := m.Forecast(context.Background(), h, 0); err != nil || len(f) != 0 {
		t.Errorf("n=0: got %v, %v", f, err)
	}
	if _, err := m.Forecast(context.Background(), h, -1); err == nil {
		t.Error("n=-1: no error")
	}
	h5 := series(5*time.Minute, 2*time.Hour, dailySine)
	if _, err := m.Forecast(context.Background(), h5, 3); err == nil || !strings.Contains(err.Error(), "step") {
		t.Errorf("step mismatch: error %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := m.Forecast(ctx, h, 3); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled context: error %v", err)
	}
}

func TestBaselineInsufficientData(t *testing.T) {
	nan := func(time.Time) float64 { return math.NaN() }
	for _, tc := range []struct {
		name string
		h    model.History
	}{
		{"empty", model.History{Start: t0, Step: time.Minute}},
		{"all NaN, cold", series(time.Minute, time.Hour, nan)},
		{"all NaN, a week", series(time.Minute, 7*day, nan)},
		{"all Inf", series(time.Minute, 2*day, func(time.Time) float64 { return math.Inf(1) })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newBaseline(t, time.Minute, 0.5).Forecast(context.Background(), tc.h, 10)
			if !errors.Is(err, model.ErrInsufficientData) {
				t.Fatalf("error %v, want ErrInsufficientData", err)
			}
		})
	}
}

// TestBaselineColdStart: with less than a day of history the forecast is
// the configured quantile of the last 10 finite points, flat.
func TestBaselineColdStart(t *testing.T) {
	h := series(time.Minute, 20*time.Hour, func(time.Time) float64 { return 1000 })
	last := []float64{5, 1, 9, math.NaN(), 3, 7, 2, math.Inf(1), 8, 4, 6, 10}
	copy(h.Values[len(h.Values)-len(last):], last)
	// The last 10 finite points are 1..10 (5 is the oldest, 10 the newest).
	for _, tc := range []struct {
		q    float64
		want float64
	}{
		{0.5, 5.5},
		{0.9, 9.1},
		{0.1, 1.9},
	} {
		f := forecast(t, newBaseline(t, time.Minute, tc.q), h, 30)
		for j, x := range f {
			if math.Abs(x-tc.want) > 1e-9 {
				t.Fatalf("q=%v: forecast[%d] = %v, want %v", tc.q, j, x, tc.want)
			}
		}
	}
	// A day of history, but not a day plus the level window: still cold.
	h = series(time.Minute, day+5*time.Minute, dailySine)
	f := forecast(t, newBaseline(t, time.Minute, 0.5), h, 5)
	if f[0] != f[4] {
		t.Errorf("a day of history: forecast %v is not flat", f)
	}
}

// TestBaselineDailySine: a clean daily cycle is forecast exactly, and a
// level change in the last day is carried into the forecast.
func TestBaselineDailySine(t *testing.T) {
	const n = 120
	for _, tc := range []struct {
		name  string
		span  time.Duration
		scale float64 // of the last day
	}{
		{"a week", 7 * day, 1},
		{"two days", 2 * day, 1},
		{"two weeks", 14 * day, 1},
		{"a week, last day 20% busier", 7 * day, 1.2},
		{"a week, last day at half", 7 * day, 0.5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			end := t0.Add(tc.span)
			f := func(t time.Time) float64 {
				if t.After(end.Add(-day)) {
					return tc.scale * dailySine(t)
				}
				return dailySine(t)
			}
			h := series(time.Minute, tc.span, f)
			got := forecast(t, newBaseline(t, time.Minute, 0.5), h, n)
			for j, x := range got {
				want := f(h.End().Add(time.Duration(j+1) * time.Minute))
				if math.Abs(x-want) > 1e-9*want {
					t.Fatalf("forecast[%d] = %v, want %v", j, x, want)
				}
			}
		})
	}
}

// TestBaselineQuantiles: a higher quantile never forecasts less, on noisy
// data and across cold and warm starts.
func TestBaselineQuantiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	noisy := func(t time.Time) float64 { return dailySine(t) * (0.5 + rng.Float64()) }
	for _, span := range []time.Duration{6 * time.Hour, 3 * day, 8 * day} {
		h := series(time.Minute, span, noisy)
		f1 := forecast(t, newBaseline(t, time.Minute, 0.1), h, 60)
		f5 := forecast(t, newBaseline(t, time.Minute, 0.5), h, 60)
		f9 := forecast(t, newBaseline(t, time.Minute, 0.9), h, 60)
		spread := 0.0
		for j := range f5 {
			if f1[j] > f5[j] || f5[j] > f9[j] {
				t.Fatalf("span %v step %d: q0.1 %v, q0.5 %v, q0.9 %v", span, j, f1[j], f5[j], f9[j])
			}
			spread += f9[j] - f1[j]
		}
		if spread == 0 {
			t.Errorf("span %v: quantiles 0.1 and 0.9 coincide on noisy data", span)
		}
	}
}

// TestBaselineSkipsMissing: NaN and ±Inf anywhere, including the last
// points and whole lagged days, leave a clean cycle's forecast exact.
func TestBaselineSkipsMissing(t *testing.T) {
	h := series(time.Minute, 7*day, dailySine)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range h.Values {
		if rng.IntN(4) == 0 {
			h.Values[i] = math.NaN()
		}
	}
	h.Values[len(h.Values)-1] = math.NaN()
	h.Values[len(h.Values)-2] = math.Inf(1)
	h.Values[len(h.Values)-3] = math.Inf(-1)
	for i := 2 * 1440; i < 3*1440; i++ { // a whole day missing
		h.Values[i] = math.NaN()
	}
	got := forecast(t, newBaseline(t, time.Minute, 0.5), h, 60)
	for j, x := range got {
		want := dailySine(h.End().Add(time.Duration(j+1) * time.Minute))
		if math.Abs(x-want) > 1e-9*want {
			t.Fatalf("forecast[%d] = %v, want %v", j, x, want)
		}
	}
}

// TestBaselineNearZero: where the seasonal baseline touches zero the level
// correction is an offset, not a ratio, and the forecast stays >= 0.
func TestBaselineNearZero(t *testing.T) {
	// Busy from 08:00 to 18:00, idle otherwise; a burst of 5 now, at 03:00.
	busy := func(t time.Time) float64 {
		if h := t.Hour(); h >= 8 && h < 18 {
			return 10
		}
		return 0
	}
	h := series(time.Minute, 7*day+3*time.Hour, busy)
	for i := len(h.Values) - 15; i < len(h.Values); i++ {
		h.Values[i] = 5
	}
	got := forecast(t, newBaseline(t, time.Minute, 0.5), h, 60)
	for j, x := range got {
		if x != 5 {
			t.Fatalf("forecast[%d] = %v, want 5 (idle baseline 0 + offset 5)", j, x)
		}
	}
	// Now 18:05 and idle since 17:51, which the baseline calls busy until
	// 18:00: offset -6, and the idle baseline minus 6 is floored at 0.
	h = series(time.Minute, 7*day+18*time.Hour+6*time.Minute, busy)
	for i := len(h.Values) - 15; i < len(h.Values); i++ {
		h.Values[i] = 0
	}
	got = forecast(t, newBaseline(t, time.Minute, 0.5), h, 60)
	for j, x := range got {
		if x != 0 {
			t.Fatalf("forecast[%d] = %v, want 0", j, x)
		}
	}
}

// TestBaselineFiniteNonNegative: random non-negative inputs with zeros,
// holes, spikes and huge values give finite non-negative forecasts.
func TestBaselineFiniteNonNegative(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	gens := map[string]func() float64{
		"uniform":   func() float64 { return rng.Float64() * 100 },
		"sparse":    func() float64 { return float64(rng.IntN(10) / 9) },
		"spiky":     func() float64 { return math.Pow(rng.Float64(), -3) },
		"huge":      func() float64 { return math.MaxFloat64 * rng.Float64() },
		"tiny":      func() float64 { return math.SmallestNonzeroFloat64 * float64(rng.IntN(3)) },
		"holes":     func() float64 { return [...]float64{math.NaN(), 0, 1, math.Inf(1)}[rng.IntN(4)] },
		"zero":      func() float64 { return 0 },
		"zero+huge": func() float64 { return [...]float64{0, math.MaxFloat64}[rng.IntN(2)] },
	}
	for name, gen := range gens {
		for _, span := range []time.Duration{30 * time.Minute, 2 * day, 8 * day} {
			h := series(5*time.Minute, span, func(time.Time) float64 { return gen() })
			for _, q := range []float64{0.05, 0.5, 0.95} {
				got, err := newBaseline(t, 5*time.Minute, q).Forecast(context.Background(), h, 48)
				if errors.Is(err, model.ErrInsufficientData) {
					continue
				}
				if err != nil {
					t.Fatalf("%s span %v q %v: %v", name, span, q, err)
				}
				for j, x := range got {
					if math.IsNaN(x) || math.IsInf(x, 0) || x < 0 {
						t.Fatalf("%s span %v q %v: forecast[%d] = %v", name, span, q, j, x)
					}
				}
			}
		}
	}
}

// TestBaselineLongHorizon: steps further ahead than the available lags get
// the recent level instead of failing.
func TestBaselineLongHorizon(t *testing.T) {
	h := series(time.Hour, 2*day, dailySine) // lags: 1 day only
	got := forecast(t, newBaseline(t, time.Hour, 0.5), h, 36)
	for j := range 24 {
		want := dailySine(h.End().Add(time.Duration(j+1) * time.Hour))
		if math.Abs(got[j]-want) > 1e-9*want {
			t.Fatalf("forecast[%d] = %v, want %v", j, got[j], want)
		}
	}
	for j := 24; j < 36; j++ {
		if got[j] != got[24] {
			t.Fatalf("beyond a day the forecast is not the flat recent level: %v", got[24:])
		}
	}
}

// traceCase is one real trace and whether it has a clear daily cycle.
type traceCase struct {
	file  string
	daily bool
}

// All are in testdata/traces.
var traceCases = []traceCase{
	{"ms_mongodb_app_query_rate_1min.csv", true},
	{"nab_nyc_taxi_passengers_30min.csv", true},
	{"nab_twitter_volume_aapl_5min.csv", false},
	{"nab_aws_elb_request_count_5min.csv", false},
}

// loadTrace reads a trace as a History, moved back by less than a step when
// its clock is not aligned to the step.
func loadTrace(tb testing.TB, name string) model.History {
	tb.Helper()
	path, ok := trace.Locate(name)
	if !ok {
		tb.Fatalf("trace %s is in neither testdata/traces nor $%s", name, trace.TracesEnv)
	}
	points, err := trace.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	step := trace.Step(points)
	points, _ = trace.Align(points, step)
	h, err := trace.Regular(points, step)
	if err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	return h
}

// walk describes a walk-forward evaluation.
type walk struct {
	ahead    time.Duration // how far ahead is scored (at least one step)
	lookback int           // days of history given to the model at most
	warmup   int           // days before the first forecast; 0: 7, or 2 for traces under 14 days
	every    int           // forecast from every every-th point
}

// score holds mean absolute errors over the same evaluation points.
type score struct {
	points                 int
	model, naive, seasonal float64 // MAE of the model, the last value, the value a day before
	scale                  float64 // in-sample MAE of the one-day seasonal naive, for MASE
}

// run forecasts with m from successive points of h as the forecaster would
// (at most lookback days of history) and scores the value w.ahead later
// against the naive and the one-day seasonal naive forecasts. Points where
// the target or the value a day before it is missing are not scored.
func (w walk) run(tb testing.TB, m model.Model, h model.History) score {
	tb.Helper()
	v, step := h.Values, h.Step
	dayN := int(day / step)
	ahead := max(1, int(w.ahead/step))
	warm := w.warmup * dayN
	if warm == 0 {
		warm = 7 * dayN
		if len(v) < 14*dayN {
			warm = 2 * dayN
		}
	}

	var s score
	var scaleN int
	for i := dayN; i < len(v); i++ {
		if a, b := v[i], v[i-dayN]; !math.IsNaN(a) && !math.IsNaN(b) {
			s.scale += math.Abs(a - b)
			scaleN++
		}
	}
	s.scale /= float64(scaleN)

	for o := warm - 1; o+ahead < len(v); o += max(1, w.every) {
		target := o + ahead
		y, seasonal := v[target], v[target-dayN]
		naive := math.NaN()
		for k := o; k >= 0 && math.IsNaN(naive); k-- {
			naive = v[k]
		}
		if math.IsNaN(y) || math.IsNaN(seasonal) || math.IsNaN(naive) {
			continue
		}
		start := max(0, o+1-w.lookback*dayN)
		hist := model.History{Start: h.Start.Add(time.Duration(start) * step), Step: step, Values: v[start : o+1]}
		f, err := m.Forecast(context.Background(), hist, ahead)
		if err != nil {
			tb.Fatalf("forecast at %v: %v", hist.End(), err)
		}
		if x := f[ahead-1]; math.IsNaN(x) || math.IsInf(x, 0) || x < 0 {
			tb.Fatalf("forecast at %v: %v", hist.End(), f)
		}
		s.model += math.Abs(f[ahead-1] - y)
		s.naive += math.Abs(naive - y)
		s.seasonal += math.Abs(seasonal - y)
		s.points++
	}
	if s.points == 0 {
		tb.Fatal("no evaluation points")
	}
	s.model /= float64(s.points)
	s.naive /= float64(s.points)
	s.seasonal /= float64(s.points)
	return s
}

// forecaster is the evaluation that matches the forecaster: 7 days of
// lookback, 15 minutes ahead, from every point (a call takes microseconds).
var forecaster = walk{ahead: 15 * time.Minute, lookback: 7, every: 1}

// TestBaselineOnTraces walks forward over the real traces and checks that
// the baseline beats the one-day seasonal naive forecast 15 minutes ahead on
// every trace with a daily cycle. It logs the MASE of the baseline, the
// naive (last value) and the seasonal naive forecasts.
func TestBaselineOnTraces(t *testing.T) {
	var table []string
	for _, tc := range traceCases {
		t.Run(strings.TrimSuffix(tc.file, ".csv"), func(t *testing.T) {
			h := loadTrace(t, tc.file)
			s := forecaster.run(t, newBaseline(t, h.Step, 0.5), h)
			ahead := max(h.Step, forecaster.ahead)
			row := fmt.Sprintf("| %s | %v | %v | %d | %.3f | %.3f | %.3f |", tc.file, h.Step, ahead, s.points,
				s.model/s.scale, s.naive/s.scale, s.seasonal/s.scale)
			table = append(table, row)
			t.Log(row)
			if tc.daily && s.model >= s.seasonal {
				t.Errorf("baseline MAE %.4g is not below the seasonal naive's %.4g on a trace with a daily cycle", s.model, s.seasonal)
			}
		})
	}
	t.Logf("MASE, scaled by the in-sample MAE of the one-day seasonal naive:\n"+
		"| trace | step | ahead | points | baseline | naive | seasonal naive |\n|---|---|---|---|---|---|---|\n%s",
		strings.Join(table, "\n"))
}

// TestBaselineWeekLags shows what the same-time-of-week lags buy when the
// history is longer than a week: on the MongoDB trace (weekday/weekend
// differences) they cut the 15-minute-ahead error.
func TestBaselineWeekLags(t *testing.T) {
	h := loadTrace(t, traceCases[0].file)
	w := walk{ahead: 15 * time.Minute, lookback: 8, warmup: 8, every: 1}
	with := model.DefaultBaselineKnobs()
	without := with
	without.Weeks = 0
	cfg := model.Config{Step: h.Step, Quantile: 0.5}
	mWith, err := model.NewBaselineWith(cfg, with)
	if err != nil {
		t.Fatal(err)
	}
	mWithout, err := model.NewBaselineWith(cfg, without)
	if err != nil {
		t.Fatal(err)
	}
	sWith, sWithout := w.run(t, mWith, h), w.run(t, mWithout, h)
	t.Logf("8 days of lookback, MASE 15m ahead: with week lags %.3f, without %.3f", sWith.model/sWith.scale, sWithout.model/sWithout.scale)
	if sWith.model >= sWithout.model {
		t.Errorf("week lags do not help: MAE %.4g with, %.4g without", sWith.model, sWithout.model)
	}
}

// BenchmarkBaselineForecast forecasts an hour ahead from 7 days of 1-minute
// history, as the forecaster does every 30 seconds per series.
func BenchmarkBaselineForecast(b *testing.B) {
	h := loadTrace(b, traceCases[0].file)
	cut := len(h.Values) - 10080
	h.Start, h.Values = h.Start.Add(time.Duration(cut)*h.Step), h.Values[cut:]
	m := newBaseline(b, h.Step, 0.9)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Forecast(ctx, h, 60); err != nil {
			b.Fatal(err)
		}
	}
}
