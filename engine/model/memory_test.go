package model_test

import (
	"context"
	"math"
	"runtime"
	"testing"
	"time"

	"github.com/kedastral/kedastral/engine/model"
)

// TestAutoMemoryPerSeries runs auto on two weeks of the MongoDB trace at
// the 1-minute step with a 30-step horizon, a new point per cycle, long
// enough for every error window to fill, and measures the heap a series'
// model keeps: its six point models and their conformal bounds (not the
// history, which the caller owns). The scaling issue's target for all of a
// series' state is 64 KiB; the model, the largest part, must fit in it.
func TestAutoMemoryPerSeries(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 1000 cycles of auto on several series")
	}
	h := mongo14d(t)
	const (
		series = 8
		warm   = 13 * 1440
		cycles = 1000
	)
	ctx := context.Background()
	heap := func() int64 {
		// Twice, so that what sync.Pools held is gone too.
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return int64(m.HeapAlloc)
	}
	ms := make([]model.Model, series)
	for i := range ms {
		ms[i] = newModel(t, model.Auto, time.Minute, 0.85)
	}
	for c := range cycles {
		for i, m := range ms {
			// Each series its own stretch of the trace.
			off := i * (14*1440 - warm - cycles) / series
			hist := model.History{Start: h.Start, Step: h.Step, Values: h.Values[off : off+warm+c]}
			if _, err := m.Forecast(ctx, hist, 30); err != nil {
				t.Fatal(err)
			}
		}
	}
	est := 0
	for _, m := range ms {
		est += model.StateBytes(m)
	}
	est /= series
	// The heap with the models and without them, everything else the same.
	with := heap()
	runtime.KeepAlive(ms)
	ms = nil
	per := (with - heap()) / series
	t.Logf("auto, 30-step horizon, after %d cycles: %d bytes (%.1f KiB) per series", cycles, per, float64(per)/1024)
	// What the forecaster reports as kedastral_forecaster_model_bytes: the
	// arrays it counts are all but a few hundred bytes of what the heap holds.
	t.Logf("StateBytes: %d bytes per series", est)
	if d := float64(int64(est)-per) / float64(per); math.Abs(d) > 0.1 {
		t.Errorf("StateBytes %d, heap %d per series: off by %.0f%%", est, per, 100*d)
	}
	if per > 64<<10 {
		t.Errorf("%d bytes per series, want at most 64 KiB", per)
	}
}
