package model

import "time"

// Staggerer is a model with a periodic refit (holtwinters, and auto through
// it) whose refit time of day can be set per series: with thousands of
// series fitted at one start, refits 24 hours after each fit would all land
// in the same few cycles a day later, each as long as the start.
type Staggerer interface {
	// Stagger sets the refit time to frac (in [0,1)) of the way through
	// each refit period.
	Stagger(frac float64)
}

// Stagger sets m's refit phase when m is a Staggerer.
func Stagger(m Model, frac float64) {
	if s, ok := m.(Staggerer); ok {
		s.Stagger(frac)
	}
}

// Stagger implements Staggerer: the model refits when its history's end
// passes frac of a day after midnight UTC, if that is at least 12 hours
// after the last fit: once a day at the series' own time (the first refit
// after a start within 12 to 36 hours).
func (hw *holtWinters) Stagger(frac float64) {
	frac = min(max(frac, 0), 1)
	hw.phase, hw.staggered = time.Duration(frac*float64(hwRefit)), true
}

// refitDue says whether a history ending at end needs a new fit.
func (hw *holtWinters) refitDue(end time.Time) bool {
	if !hw.staggered {
		return end.Sub(hw.lastFit) >= hwRefit
	}
	// A refit time lies in (lastFit + 12h, end].
	period := func(t time.Time) int64 {
		return t.Add(-hw.phase).UnixNano() / int64(hwRefit)
	}
	return period(end) > period(hw.lastFit.Add(hwRefit/2))
}

// Stagger implements Staggerer.
func (c *conformal) Stagger(frac float64) { Stagger(c.inner, frac) }

// Stagger implements Staggerer.
func (a *auto) Stagger(frac float64) {
	for _, m := range a.models {
		m.Stagger(frac)
	}
}
