package model

import (
	"context"
	"errors"
	"fmt"
)

// Auto is the name of the automatic model: it keeps every built-in model
// warm on the series (holtwinters, baseline, seasonal, linear, the last
// value, and the last value moved by the seasonal median's change, each as
// a point forecast with a conformal bound at the policy's quantile) and
// ranks them, per horizon, by the recent pinball loss of their bounds at
// that horizon: the absolute loss (in units of the series' mean, so that a
// busy hour weighs more than a quiet night), as a moving average over about
// the last 300 scored forecasts. The leader changes only when another
// model's loss is below autoSwitch times the current one's, so that it does
// not flap. It answers with the mean of the leader's bound and the bound of
// the best of the others (a forecast combination: their errors are not the
// same, and on every real trace the mean beat the leader alone). Until the
// losses are known it answers with holtwinters alone.
const Auto = "auto"

// autoSwitch is the hysteresis: a challenger must be this much better.
const autoSwitch = 0.97

// autoNaive is auto's last-value component, not a model of its own.
const autoNaive = "naive"

// autoDrift is auto's naive-plus-season component.
const autoDrift = "seasonal_drift"

var autoModels = []string{HoltWinters, Baseline, Seasonal, Linear, autoNaive, autoDrift}

func init() {
	Register(Auto, func(cfg Config) (Model, error) {
		if err := cfg.check(Auto); err != nil {
			return nil, err
		}
		a := &auto{}
		point := cfg
		point.Quantile = 0.5
		for _, name := range autoModels {
			var inner Model
			switch name {
			case HoltWinters:
				inner = newHoltWinters(cfg.Step)
			case Linear:
				inner = &linear{window: LinearWindow(cfg.Step)}
			case autoNaive:
				inner = &linear{window: 0}
			case autoDrift:
				p := defaultBaselineParams
				p.noLevel = true
				b, err := newBaseline(point, p)
				if err != nil {
					return nil, err
				}
				inner = &seasonalDrift{b: b}
			case Baseline:
				b, err := newBaseline(point, defaultBaselineParams)
				if err != nil {
					return nil, err
				}
				inner = b
			case Seasonal:
				p := defaultBaselineParams
				p.noLevel = true
				b, err := newBaseline(point, p)
				if err != nil {
					return nil, err
				}
				inner = b
			}
			a.models = append(a.models, NewConformal(cfg, inner).(*conformal))
		}
		return a, nil
	})
}

type auto struct {
	models []*conformal
	chosen []int // per horizon (index h-1): index into models
	second []int // per horizon: the runner-up averaged in, -1 for none
	outs   [][]float64
	// keepOuts keeps the parts' last forecasts in outs, for tests.
	keepOuts bool
}

// Chosen returns the model leading at horizon h steps (1-based), for the
// status page and metrics. The answer there is the mean of its bound and
// the runner-up's (see Combined).
func (a *auto) Chosen(h int) string {
	if h < 1 || h > len(a.chosen) {
		return autoModels[0]
	}
	return autoModels[a.chosen[h-1]]
}

// Combined returns the leader and the runner-up whose bounds were averaged
// at horizon h steps (1-based); runner is "" when the leader answered alone.
func (a *auto) Combined(h int) (leader, runner string) {
	leader = a.Chosen(h)
	if h >= 1 && h <= len(a.second) && a.second[h-1] >= 0 {
		runner = autoModels[a.second[h-1]]
	}
	return leader, runner
}

// Forecast implements Model.
func (a *auto) Forecast(ctx context.Context, h History, n int) ([]float64, error) {
	if len(a.chosen) != n {
		a.chosen = make([]int, n)
		a.second = make([]int, n)
	}
	a.outs = a.outs[:0]
	// The parts' forecasts are this call's: holding them until the next
	// one would keep six forecasts per series alive for nothing.
	defer func() {
		if !a.keepOuts {
			clear(a.outs)
		}
	}()
	var firstErr error
	for _, m := range a.models {
		f, err := m.Forecast(ctx, h, n)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if firstErr == nil {
				firstErr = err
			}
			f = nil
		}
		a.outs = append(a.outs, f)
	}
	out := make([]float64, n)
	for j := range out {
		cur := a.chosen[j]
		curLoss, curOK := a.models[cur].lossAt(j + 1)
		curOK = curOK && a.outs[cur] != nil
		best, bestLoss := -1, 0.0
		for i, m := range a.models {
			if a.outs[i] == nil {
				continue
			}
			if l, ok := m.lossAt(j + 1); ok && (best < 0 || l < bestLoss) {
				best, bestLoss = i, l
			}
		}
		switch {
		case best >= 0 && (!curOK || bestLoss < autoSwitch*curLoss):
			cur = best
		case a.outs[cur] == nil:
			for i := range a.outs {
				if a.outs[i] != nil {
					cur = i
					break
				}
			}
		}
		if a.outs[cur] == nil {
			if firstErr == nil {
				firstErr = errors.New("no model forecast")
			}
			return nil, fmt.Errorf("auto model: %w", firstErr)
		}
		a.chosen[j] = cur
		out[j] = a.outs[cur][j]
		// The runner-up: the lowest loss among the others, no hysteresis
		// (it only shares the answer).
		sec, secLoss := -1, 0.0
		if _, ok := a.models[cur].lossAt(j + 1); ok {
			for i, m := range a.models {
				if i == cur || a.outs[i] == nil {
					continue
				}
				if l, ok := m.lossAt(j + 1); ok && (sec < 0 || l < secLoss) {
					sec, secLoss = i, l
				}
			}
		}
		if sec >= 0 && finite(a.outs[sec][j]) && finite(out[j]) {
			out[j] = (out[j] + a.outs[sec][j]) / 2
		} else {
			// A part's bad value must not spoil the leader's answer.
			sec = -1
		}
		a.second[j] = sec
	}
	return out, nil
}

// SetQuantile implements Leveled: every part's bound moves to q.
func (a *auto) SetQuantile(q float64) {
	for _, m := range a.models {
		m.SetQuantile(q)
	}
}
