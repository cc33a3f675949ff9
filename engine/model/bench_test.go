package model_test

import (
	"context"
	"testing"
	"time"

	"github.com/kedastral/kedastral/engine/model"
	"github.com/kedastral/kedastral/engine/trace"
)

// mongo14d is the MongoDB trace (1-minute steps, 11 days) extended to 14
// days by repeating its first three.
func mongo14d(tb testing.TB) model.History {
	tb.Helper()
	path, ok := trace.Locate("ms_mongodb_app_query_rate_1min.csv")
	if !ok {
		tb.Fatal("testdata/traces/ms_mongodb_app_query_rate_1min.csv not found")
	}
	points, err := trace.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	h, err := trace.Regular(points, time.Minute)
	if err != nil {
		tb.Fatal(err)
	}
	h.Values = append(h.Values, h.Values[:14*1440-len(h.Values)]...)
	return h
}

// BenchmarkHoltWintersUpdate: one new point and a 30-minute forecast of a
// fitted series, conformal bound included, as the forecaster runs it.
func BenchmarkHoltWintersUpdate(b *testing.B) {
	h := mongo14d(b)
	m := newModel(b, model.HoltWinters, time.Minute, 0.85)
	warm := 10 * 1440
	ctx := context.Background()
	if _, err := m.Forecast(ctx, model.History{Start: h.Start, Step: h.Step, Values: h.Values[:warm]}, 30); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		// Within a day of new points, so no refit: a day has 1440 (run
		// with -benchtime 1400x or less).
		end := warm + 1 + i%1400
		if _, err := m.Forecast(ctx, model.History{Start: h.Start, Step: h.Step, Values: h.Values[:end]}, 30); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHoltWintersRefit: fitting the parameters on two weeks of
// 1-minute history (and the first forecast).
func BenchmarkHoltWintersRefit(b *testing.B) {
	h := mongo14d(b)
	ctx := context.Background()
	for range b.N {
		m := newModel(b, model.HoltWinters, time.Minute, 0.85)
		if _, err := m.Forecast(ctx, h, 30); err != nil {
			b.Fatal(err)
		}
	}
}
