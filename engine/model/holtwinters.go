package model

import (
	"context"
	"fmt"
	"math"
	"time"
)

// HoltWinters is the name of the Holt-Winters model: additive level, damped
// trend and a daily season at the policy's step (1440 points at 1m; none when
// the step does not divide a day), in the error-correction form of
// ETS(A,Ad,A):
//
//	e = x − (ℓ + φb + s)    ℓ ← ℓ + φb + αe    b ← φb + βe    s ← s + γe
//
// The forecast h steps ahead is ℓ + (φ + … + φ^h)·b + s at that time of day.
// The parameters are fitted on the last two weeks of history by a grid search
// that minimizes the sum of absolute one-step and 15-minute-ahead errors, and
// refitted once a day of new history has arrived (or, once staggered, daily
// at a time of day that the forecaster sets per series, see Stagger, so
// that thousands of series do not refit in one cycle); in between, each new point
// updates the state in O(1), so a cycle costs O(horizon). Gaps of at most
// 15 minutes (one step on coarser series) are interpolated linearly once the
// value after them arrives; longer ones are coasted over. Robustness: an
// error is clipped to 4 times its recent mean absolute value before it
// updates the state, so that a burst or a scrape failure moves the model by a
// bounded amount; a coasted point (NaN) gets the forecast in its place
// without learning from it. With less than two days of history it
// forecasts the median of the last 10 finite points, flat. The policy's
// quantile is met with a conformal bound (see NewConformal).
const HoltWinters = "holtwinters"

func init() {
	Register(HoltWinters, func(cfg Config) (Model, error) {
		if err := cfg.check(HoltWinters); err != nil {
			return nil, err
		}
		return NewConformal(cfg, newHoltWinters(cfg.Step)), nil
	})
}

type hwParams struct{ alpha, beta, gamma, phi float64 }

// hwState is the model's state after a point.
type hwState struct {
	level, trend float64
	// season is float32: 1440 values at 1m for each of thousands of
	// series, and a seasonal component needs nowhere near 16 digits (its
	// rounding, 6e-8 of its size, is far below the smoothing's own noise).
	season   []float32
	pos      int     // season index of the next point
	errScale float64 // moving mean of |error| for clipping
}

const (
	hwRefit    = 24 * time.Hour
	hwFitSpan  = 14 * 24 * time.Hour
	hwFitAhead = 15 * time.Minute
	hwClip     = 4.0
	hwErrDecay = 0.02
	// hwMaxGap is the longest gap interpolated rather than coasted over.
	hwMaxGap = 15 * time.Minute
)

var hwGrid = func() []hwParams {
	var g []hwParams
	for _, a := range []float64{0.05, 0.1, 0.2, 0.35, 0.5, 0.7, 0.85, 1} {
		for _, b := range []float64{0, 0.005, 0.02} {
			for _, gm := range []float64{0.05, 0.1, 0.2, 0.35} {
				for _, phi := range []float64{0.9, 0.98} {
					g = append(g, hwParams{a, b, gm, phi})
				}
			}
		}
	}
	return g
}()

type holtWinters struct {
	step    time.Duration
	m       int // season length in steps
	p       hwParams
	st      hwState
	ready   bool
	end     time.Time // time of the last point consumed
	lastFit time.Time
	prev    float64 // the last value consumed
	hasPrev bool
	recent  []float64 // scratch
	// phase is the refit time after the start of each day once staggered
	// (see Stagger).
	phase     time.Duration
	staggered bool
}

func newHoltWinters(step time.Duration) *holtWinters {
	m := 1
	if day := 24 * time.Hour; step <= day/2 && day%step == 0 {
		m = int(day / step)
	}
	return &holtWinters{step: step, m: m}
}

// update consumes one point.
func (p hwParams) update(s *hwState, x float64) {
	m := len(s.season)
	sv := float64(s.season[s.pos])
	damped := p.phi * s.trend
	if !finite(x) {
		s.level += damped
		s.trend = damped
		s.pos = (s.pos + 1) % m
		return
	}
	e := x - (s.level + damped + sv)
	if s.errScale > 0 {
		lim := hwClip * s.errScale
		e = max(-lim, min(lim, e))
	}
	s.errScale += hwErrDecay * (math.Abs(e) - s.errScale)
	s.level += damped + p.alpha*e
	s.trend = damped + p.beta*e
	s.season[s.pos] = float32(sv + p.gamma*e)
	s.pos = (s.pos + 1) % m
}

// initState starts a state from the first two seasons of v (one when m is 1),
// returning the index of the first point not used, or false when v has too
// few finite points.
func initState(v []float64, m int) (hwState, int, bool) {
	n := 2 * m
	if m == 1 {
		n = 2
	}
	if len(v) < n+1 {
		return hwState{}, 0, false
	}
	mean := func(s []float64) (float64, bool) {
		var sum float64
		var c int
		for _, x := range s {
			if finite(x) {
				sum += x
				c++
			}
		}
		return sum / float64(c), c > len(s)/2
	}
	m1, ok1 := mean(v[:n/2])
	m2, ok2 := mean(v[n/2 : n])
	if !ok1 || !ok2 {
		return hwState{}, 0, false
	}
	st := hwState{season: make([]float32, m)}
	if m > 1 {
		for i := range m {
			var sum float64
			var c int
			for k, mk := range []float64{m1, m2} {
				if x := v[k*m+i]; finite(x) {
					sum += x - mk
					c++
				}
			}
			if c > 0 {
				st.season[i] = float32(sum / float64(c))
			}
		}
		st.trend = (m2 - m1) / float64(m)
		st.level = m2
	} else {
		st.level, st.trend = m2, m2-m1
	}
	// The state is at the end of the second season; replay it so the season
	// index lines up.
	return st, n, true
}

// run replays v from a fresh state and returns the final state and the sum
// of absolute one-step and ahead-step errors after the first two seasons.
func (p hwParams) run(v []float64, m, ahead int) (hwState, float64, bool) {
	st, from, ok := initState(v, m)
	if !ok {
		return st, 0, false
	}
	st.pos = from % m
	var loss float64
	levels := make([]float64, ahead)
	trends := make([]float64, ahead)
	phiSum := 0.0
	for k, f := 1, p.phi; k <= ahead; k++ {
		phiSum += f
		f *= p.phi
	}
	for i := from; i < len(v); i++ {
		x := v[i]
		if finite(x) {
			sv := float64(st.season[st.pos])
			loss += math.Abs(x - (st.level + p.phi*st.trend + sv))
			if i-from >= ahead {
				r := i % ahead
				loss += math.Abs(x - (levels[r] + phiSum*trends[r] + sv))
			}
		}
		p.update(&st, x)
		levels[i%ahead], trends[i%ahead] = st.level, st.trend
	}
	return st, loss, true
}

// fit searches the grid on the last hwFitSpan of v and leaves the state at
// the end of v.
func (hw *holtWinters) fit(v []float64) bool {
	span := min(len(v), int(hwFitSpan/hw.step))
	w := v[len(v)-span:]
	ahead := max(1, int(hwFitAhead/hw.step))
	best := math.Inf(1)
	var bestSt hwState
	ok := false
	for _, p := range hwGrid {
		st, loss, good := p.run(w, hw.m, ahead)
		if !good {
			return false
		}
		if loss < best {
			best, bestSt, hw.p, ok = loss, st, p, true
		}
	}
	hw.st = bestSt
	return ok
}

// Forecast implements Model.
func (hw *holtWinters) Forecast(ctx context.Context, h History, n int) ([]float64, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if n < 0 {
		return nil, fmt.Errorf("holtwinters model: negative horizon %d", n)
	}
	if h.Step != hw.step {
		return nil, fmt.Errorf("holtwinters model: history step %v differs from the model's step %v", h.Step, hw.step)
	}
	if len(h.Values) == 0 {
		return nil, fmt.Errorf("holtwinters model: empty history: %w", ErrInsufficientData)
	}
	end := h.End()
	switch {
	case hw.ready && !end.Before(hw.end) && !hw.refitDue(end) && !hw.end.Before(h.Start.Add(-h.Step)):
		hw.consume(h, end)
	default:
		hw.ready = hw.fit(h.Values)
		hw.end, hw.lastFit = end, end
		hw.prev, hw.hasPrev = 0, false
		for i := len(h.Values) - 1; i >= 0; i-- {
			if finite(h.Values[i]) {
				hw.prev, hw.hasPrev = h.Values[i], true
				break
			}
		}
	}
	out := make([]float64, n)
	if !hw.ready {
		return hw.flat(out, h.Values)
	}
	// Points held back (a short trailing gap) shift the forecast.
	g := int(end.Sub(hw.end) / hw.step)
	st := &hw.st
	f := 0.0 // φ + … + φ^(j+1+g)
	for range g {
		f = f*hw.p.phi + hw.p.phi
	}
	for j := range out {
		f = f*hw.p.phi + hw.p.phi
		out[j] = st.level + f*st.trend + float64(st.season[(st.pos+j+g)%len(st.season)])
		if !finite(out[j]) {
			return hw.flat(out, h.Values)
		}
	}
	return out, nil
}

// consume updates the state with the points after hw.end up to end. A run
// of at most hwMaxGap missing points between two values is interpolated
// linearly; a longer run is coasted over. A trailing run of at most
// hwMaxGap missing points is held back until a value follows it.
func (hw *holtWinters) consume(h History, end time.Time) {
	maxGap := max(1, int(hwMaxGap/hw.step))
	to := end
	trailing := 0
	for t := end; t.After(hw.end) && !finite(h.At(t)); t = t.Add(-hw.step) {
		trailing++
	}
	if trailing <= maxGap {
		to = end.Add(-time.Duration(trailing) * hw.step)
	}
	for t := hw.end.Add(hw.step); !t.After(to); {
		if x := h.At(t); finite(x) {
			hw.p.update(&hw.st, x)
			hw.prev, hw.hasPrev = x, true
			t = t.Add(hw.step)
			continue
		}
		k, u := 0, t
		for !u.After(to) && !finite(h.At(u)) {
			k++
			u = u.Add(hw.step)
		}
		if next := h.At(u); k <= maxGap && hw.hasPrev && !u.After(to) && finite(next) {
			for i := 1; i <= k; i++ {
				hw.p.update(&hw.st, hw.prev+(next-hw.prev)*float64(i)/float64(k+1))
			}
		} else {
			for range k {
				hw.p.update(&hw.st, math.NaN())
			}
		}
		t = u
	}
	hw.end = to
}

// flat forecasts the median of the last 10 finite points.
func (hw *holtWinters) flat(out, v []float64) ([]float64, error) {
	s := hw.recent[:0]
	for i := len(v) - 1; i >= 0 && len(s) < 10; i-- {
		if finite(v[i]) {
			s = append(s, v[i])
		}
	}
	hw.recent = s
	if len(s) == 0 {
		return nil, fmt.Errorf("holtwinters model: no finite value in %d points: %w", len(v), ErrInsufficientData)
	}
	level := quantile(s, 0.5)
	for j := range out {
		out[j] = level
	}
	return out, nil
}
