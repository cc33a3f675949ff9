package capacity_test

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/kedastral/kedastral/engine/capacity"
)

// TestCalibratorConverges: demand is normal around 100 and the planned
// level is its quantile; an interval is short when the demand exceeds the
// planned level. The calibrated level must converge to 1 − objective, and
// the share of time short to the objective.
func TestCalibratorConverges(t *testing.T) {
	for _, objective := range []float64{0.01, 0.02, 0.05, 0.2} {
		rng := rand.New(rand.NewPCG(7, uint64(objective*1000)))
		c := capacity.NewCalibrator(objective)
		const step = time.Minute
		short, n := 0, 0
		var levelSum float64
		for i := range 60 * 24 * 28 { // four weeks at 1m
			planned := 100 + 10*normQuantile(c.Level())
			d := 100 + 10*rng.NormFloat64()
			miss := d > planned
			c.Observe(step, miss)
			if i >= 60*24*7 { // after a week
				n++
				levelSum += c.Level()
				if miss {
					short++
				}
			}
		}
		share := float64(short) / float64(n)
		// Gibbs and Candès' bound over the span, and closer in practice.
		hours := float64(n) * step.Hours()
		bound := (capacity.MaxLevel - capacity.MinLevel + capacity.CalibrationGain*step.Hours()) / (capacity.CalibrationGain * hours)
		if math.Abs(share-objective) > bound {
			t.Errorf("objective %v: share of time short %.4f, beyond the bound %.4f", objective, share, bound)
		}
		if r := share / objective; r < 0.85 || r > 1.15 {
			t.Errorf("objective %v: share of time short %.4f, %.2f× the objective", objective, share, r)
		}
		if mean := levelSum / float64(n); math.Abs(mean-(1-objective)) > 0.01 {
			t.Errorf("objective %v: mean level %.4f, want about %.4f", objective, mean, 1-objective)
		}
		day, week := c.Achieved()
		if math.Abs(day-objective) > objective || math.Abs(week-objective) > 0.5*objective {
			t.Errorf("objective %v: achieved day %.4f, week %.4f", objective, day, week)
		}
	}
}

// TestCalibratorBoundedStep: one interval moves the level by at most
// CalibrationGain · Δt/1h (Δt capped at MaxCalibrationInterval), so a
// 10-minute burst moves it by at most 0.1 and a long gap counts as
// MaxCalibrationInterval.
func TestCalibratorBoundedStep(t *testing.T) {
	c := capacity.NewCalibrator(0.02)
	start := c.Level()
	for range 10 {
		before := c.Level()
		c.Observe(time.Minute, true)
		if d := c.Level() - before; d <= 0 || d > capacity.CalibrationGain/60+1e-12 {
			t.Fatalf("one short minute moved the level by %v, want (0, %v]", d, capacity.CalibrationGain/60)
		}
	}
	if d := c.Level() - start; d > capacity.CalibrationGain/6+1e-12 {
		t.Errorf("a 10-minute burst moved the level by %v, more than %v", d, capacity.CalibrationGain/6)
	}
	before := c.Level()
	c.Observe(24*time.Hour, true)
	if d := c.Level() - before; d > capacity.CalibrationGain*capacity.MaxCalibrationInterval.Hours()+1e-12 {
		t.Errorf("a day-long interval moved the level by %v, more than %v", d, capacity.CalibrationGain*capacity.MaxCalibrationInterval.Hours())
	}
	// The level stays in its bounds.
	for range 10_000 {
		c.Observe(time.Hour, true)
	}
	if c.Level() != capacity.MaxLevel {
		t.Errorf("level after a long shortage %v, want the bound %v", c.Level(), capacity.MaxLevel)
	}
	for range 100_000 {
		c.Observe(time.Hour, false)
	}
	if c.Level() != capacity.MinLevel {
		t.Errorf("level after a long surplus %v, want the bound %v", c.Level(), capacity.MinLevel)
	}
	// No time, no change.
	before = c.Level()
	c.Observe(0, true)
	if c.Level() != before {
		t.Errorf("a zero interval moved the level")
	}
}

// TestCalibratorRestore: a restored calibrator continues where the previous
// one stopped.
func TestCalibratorRestore(t *testing.T) {
	a := capacity.NewCalibrator(0.02)
	for i := range 5000 {
		a.Observe(time.Minute, i%20 == 0)
	}
	day, week := a.Achieved()
	b := capacity.NewCalibrator(0.02)
	if d, w := b.Achieved(); !math.IsNaN(d) || !math.IsNaN(w) {
		t.Errorf("a new calibrator's achieved shares are %v, %v, want NaN", d, w)
	}
	b.Restore(a.Level(), day, week)
	if b.Level() != a.Level() {
		t.Errorf("restored level %v, want %v", b.Level(), a.Level())
	}
	if d, w := b.Achieved(); d != day || w != week {
		t.Errorf("restored shares %v, %v, want %v, %v", d, w, day, week)
	}
	a.Observe(time.Minute, true)
	b.Observe(time.Minute, true)
	if math.Abs(a.Level()-b.Level()) > 1e-12 {
		t.Errorf("after one more interval: %v and %v", a.Level(), b.Level())
	}
	// What was not written stays as it was.
	c := capacity.NewCalibrator(0.02)
	c.Restore(math.NaN(), math.NaN(), 2)
	if c.Level() != capacity.StartLevel(0.02) {
		t.Errorf("level %v after restoring nothing, want the start %v", c.Level(), capacity.StartLevel(0.02))
	}
	if d, w := c.Achieved(); !math.IsNaN(d) || !math.IsNaN(w) {
		t.Errorf("restoring NaN and 2 gave shares %v, %v", d, w)
	}
}

// normQuantile is the standard normal quantile (bisection on Erfc).
func normQuantile(p float64) float64 {
	lo, hi := -10.0, 10.0
	for range 100 {
		mid := (lo + hi) / 2
		if 0.5*math.Erfc(-mid/math.Sqrt2) < p {
			lo = mid
		} else {
			hi = mid
		}
	}
	return (lo + hi) / 2
}
