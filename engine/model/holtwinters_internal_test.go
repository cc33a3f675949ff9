package model

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestHoltWintersIncremental: between refits each new point updates the
// state in O(1), and the state is the one a full replay with the fitted
// parameters reaches.
func TestHoltWintersIncremental(t *testing.T) {
	const step = 5 * time.Minute
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(7, 8))
	v := make([]float64, 4*288)
	for i := range v {
		v[i] = 100 + 50*math.Sin(2*math.Pi*float64(i)/288) + 5*rng.NormFloat64()
		if i%97 == 0 {
			v[i] = math.NaN()
		}
	}
	hw := newHoltWinters(step)
	first := 3*288 + 1
	for i := first; i <= len(v); i++ {
		if _, err := hw.Forecast(context.Background(), History{Start: start, Step: step, Values: v[:i]}, 6); err != nil {
			t.Fatal(err)
		}
	}
	if !hw.ready || !hw.lastFit.Equal(start.Add(time.Duration(first-1)*step)) {
		t.Fatalf("ready %v, last fit %v: refitted between calls within a day", hw.ready, hw.lastFit)
	}
	// The replay sees the single missing points after the fit interpolated,
	// as the incremental updates do; the fit coasted over the ones before.
	w := append([]float64(nil), v...)
	for i := first; i < len(w)-1; i++ {
		if math.IsNaN(w[i]) {
			w[i] = (w[i-1] + w[i+1]) / 2
		}
	}
	want, _, ok := hw.p.run(w, hw.m, int(hwFitAhead/step))
	if !ok {
		t.Fatal("replay failed")
	}
	got := hw.st
	if math.Abs(got.level-want.level) > 1e-9 || math.Abs(got.trend-want.trend) > 1e-9 || got.pos != want.pos {
		t.Fatalf("incremental state level %v trend %v pos %d, replay %v %v %d", got.level, got.trend, got.pos, want.level, want.trend, want.pos)
	}
	for i := range got.season {
		if math.Abs(float64(got.season[i]-want.season[i])) > 1e-9 {
			t.Fatalf("season[%d] = %v, replay %v", i, got.season[i], want.season[i])
		}
	}
	// A short trailing gap is held back: the state waits for the next value
	// and the forecast starts further out.
	hw2 := newHoltWinters(step)
	full, err := hw2.Forecast(context.Background(), History{Start: start, Step: step, Values: v[:first+10]}, 8)
	if err != nil {
		t.Fatal(err)
	}
	gap := append(append([]float64(nil), v[:first+10]...), math.NaN(), math.NaN())
	shifted, err := hw2.Forecast(context.Background(), History{Start: start, Step: step, Values: gap}, 6)
	if err != nil {
		t.Fatal(err)
	}
	for j := range shifted {
		if math.Abs(shifted[j]-full[j+2]) > 1e-9 {
			t.Fatalf("after 2 missing points: forecast[%d] = %v, want the earlier forecast[%d] = %v", j, shifted[j], j+2, full[j+2])
		}
	}
	// A day of new points triggers a refit.
	for i := len(v); i < len(v)+1; i++ {
		more := append(v[:len(v):len(v)], make([]float64, 288)...)
		copy(more[len(v):], v[len(v)-288:])
		if _, err := hw.Forecast(context.Background(), History{Start: start, Step: step, Values: more}, 6); err != nil {
			t.Fatal(err)
		}
		if want := start.Add(time.Duration(len(more)-1) * step); !hw.lastFit.Equal(want) {
			t.Errorf("last fit %v after a day, want %v", hw.lastFit, want)
		}
	}
}

// TestHoltWintersStagger: a staggered model refits once a day at its own
// time of day, whenever it started; an unstaggered one 24 hours after its
// last fit.
func TestHoltWintersStagger(t *testing.T) {
	day := 24 * time.Hour
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name     string
		frac     float64 // < 0: not staggered
		firstFit time.Duration
		wantFits []time.Duration // after start, within 4 days
	}{
		{"unstaggered", -1, 10 * time.Hour, []time.Duration{10 * time.Hour, 34 * time.Hour, 58 * time.Hour, 82 * time.Hour}},
		{"phase 6h, started at 10h", 0.25, 10 * time.Hour, []time.Duration{10 * time.Hour, 30 * time.Hour, 54 * time.Hour, 78 * time.Hour}},
		// The next 6:00 is 20 hours away: not before 12 hours have passed.
		{"phase 6h, started at 2h", 0.25, 2 * time.Hour, []time.Duration{2 * time.Hour, 30 * time.Hour, 54 * time.Hour, 78 * time.Hour}},
		{"phase 18h, started at 2h", 0.75, 2 * time.Hour, []time.Duration{2 * time.Hour, 18 * time.Hour, 42 * time.Hour, 66 * time.Hour, 90 * time.Hour}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hw := newHoltWinters(time.Minute)
			if tc.frac >= 0 {
				hw.Stagger(tc.frac)
			}
			var fits []time.Duration
			for at := tc.firstFit; at < 4*day; at += time.Minute {
				end := start.Add(at)
				if at == tc.firstFit || hw.refitDue(end) {
					fits = append(fits, at)
					hw.lastFit = end
				}
			}
			if !slices.Equal(fits, tc.wantFits) {
				t.Errorf("fits at %v, want %v", fits, tc.wantFits)
			}
		})
	}
}
