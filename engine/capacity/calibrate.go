package capacity

import (
	"math"
	"time"
)

// Calibrator holds an objective, the share of time a workload may run short
// of ready pods, by calibrating the forecast quantile it plans for. It is
// the adaptive conformal inference update of Gibbs and Candès (2021), on
// the outcome that matters rather than on forecast coverage: after each
// interval of length Δt it moves the level by
//
//	CalibrationGain · Δt/1h · (short − objective)
//
// where short is 1 when the interval ran short (the demand above what the
// ready pods carry) and 0 otherwise. So the level rises while the share of
// time short is above the objective and falls while it is below, and over a
// span T the share of time short is within (range of the level +
// step)/(CalibrationGain · T/1h) of the objective whatever the demand does
// (their Proposition 4.1, with time in place of a count of intervals).
//
// The step is bounded: one interval moves the level by at most
// CalibrationGain · Δt/1h, with Δt itself at most MaxCalibrationInterval, so
// a burst of 10 minutes short moves it by at most 0.1 — one burst does not
// swing it — and a level that is far off needs hours to move: from 0.5 to
// 0.9, at 20% short against a 2% objective, about 3.7 hours. The level stays
// in [MinLevel, MaxLevel].
//
// It also keeps the achieved share of time short over the last day and week,
// as exponentially weighted averages with those time constants.
type Calibrator struct {
	objective float64
	level     float64
	day, week ewma
}

// Calibration constants (see Calibrator).
const (
	CalibrationGain        = 0.6 // per hour
	MaxCalibrationInterval = 5 * time.Minute
	MinLevel               = 0.01
	MaxLevel               = 0.999
	ShareDay               = 24 * time.Hour
	ShareWeek              = 7 * 24 * time.Hour
)

// StartLevel is where a new calibration starts, before any feedback: the
// level at which, on the public traces, the share of time short is of the
// order of the objective: 1 − 8 × the objective, between 0.5 and 0.95.
func StartLevel(objective float64) float64 {
	return min(0.95, max(0.5, 1-8*objective))
}

// NewCalibrator returns a calibrator for objective (a share, e.g. 0.02)
// starting at StartLevel.
func NewCalibrator(objective float64) *Calibrator {
	return &Calibrator{objective: objective, level: StartLevel(objective)}
}

// Objective is the share of time short the calibrator holds.
func (c *Calibrator) Objective() float64 { return c.objective }

// Level is the calibrated quantile to plan for.
func (c *Calibrator) Level() float64 { return c.level }

// Observe takes the outcome of an interval of length elapsed.
func (c *Calibrator) Observe(elapsed time.Duration, short bool) {
	if elapsed <= 0 {
		return
	}
	elapsed = min(elapsed, MaxCalibrationInterval)
	miss := 0.0
	if short {
		miss = 1
	}
	c.level += CalibrationGain * elapsed.Hours() * (miss - c.objective)
	c.level = min(MaxLevel, max(MinLevel, c.level))
	c.day.add(miss, elapsed, ShareDay)
	c.week.add(miss, elapsed, ShareWeek)
}

// Achieved is the share of time short over about the last day and week;
// NaN before any feedback.
func (c *Calibrator) Achieved() (day, week float64) { return c.day.value(), c.week.value() }

// Restore sets the state from what a previous run wrote (NaN for what it
// did not): the level, and the day's and week's shares, each counted as a
// full window of history.
func (c *Calibrator) Restore(level, day, week float64) {
	if !math.IsNaN(level) {
		c.level = min(MaxLevel, max(MinLevel, level))
	}
	c.day.restore(day)
	c.week.restore(week)
}

// ewma is an exponentially weighted average over time with its weight, so
// that it is unbiased before a window has passed.
type ewma struct{ sum, weight float64 }

func (e *ewma) add(v float64, dt, tau time.Duration) {
	a := 1 - math.Exp(-float64(dt)/float64(tau))
	e.sum += a * (v - e.sum)
	e.weight += a * (1 - e.weight)
}

func (e *ewma) value() float64 {
	if e.weight == 0 {
		return math.NaN()
	}
	return e.sum / e.weight
}

func (e *ewma) restore(v float64) {
	if !math.IsNaN(v) && v >= 0 && v <= 1 {
		e.sum, e.weight = v, 1
	}
}
