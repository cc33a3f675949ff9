package model

import (
	"context"
	"fmt"
	"math"
	"time"
)

// Linear is the name of the linear model: the least-squares line through the
// finite points of a recent window, extrapolated, with the semantics of
// Prometheus' predict_linear(v[window], t) evaluated at the last point: the
// line's value at the last point's time plus slope times the offset. The
// window is LinearWindow(step). The policy's quantile is met with a conformal
// bound (see Conformal). With fewer than two finite points in the window it
// forecasts the last finite value, flat.
const Linear = "linear"

func init() {
	Register(Linear, func(cfg Config) (Model, error) {
		if err := cfg.check(Linear); err != nil {
			return nil, err
		}
		return NewConformal(cfg, &linear{window: LinearWindow(cfg.Step)}), nil
	})
}

// LinearWindow is the linear model's window at a step: 30 minutes, and at
// least 5 steps.
func LinearWindow(step time.Duration) time.Duration {
	return max(30*time.Minute, 5*step)
}

// PredictLinear fits a least-squares line to the finite points of h within
// window of its last point and returns its values at the n steps after the
// last point; false when h has no finite point in the window. With one finite
// point the line is flat.
func PredictLinear(h History, window time.Duration, n int) ([]float64, bool) {
	w := int(window / h.Step)
	w = max(1, min(w, len(h.Values)))
	v := h.Values[len(h.Values)-w:]
	// x in steps relative to the last point (0), so the intercept is the
	// value at the last point as in predict_linear.
	var cnt, sx, sy, sxx, sxy float64
	for i, y := range v {
		if !finite(y) {
			continue
		}
		x := float64(i - (len(v) - 1))
		cnt++
		sx += x
		sy += y
		sxx += x * x
		sxy += x * y
	}
	if cnt == 0 {
		return nil, false
	}
	slope := 0.0
	if d := cnt*sxx - sx*sx; cnt > 1 && d != 0 {
		slope = (cnt*sxy - sx*sy) / d
	}
	icpt := sy/cnt - slope*sx/cnt
	out := make([]float64, n)
	for j := range out {
		out[j] = icpt + slope*float64(j+1)
	}
	return out, true
}

type linear struct{ window time.Duration }

func (l *linear) Forecast(ctx context.Context, h History, n int) ([]float64, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out, ok := PredictLinear(h, l.window, n)
	if !ok {
		// Nothing in the window: the last finite value, flat.
		for i := len(h.Values) - 1; i >= 0; i-- {
			if finite(h.Values[i]) {
				out = make([]float64, n)
				for j := range out {
					out[j] = h.Values[i]
				}
				return out, nil
			}
		}
		return nil, fmt.Errorf("linear model: no finite value in %d points: %w", len(h.Values), ErrInsufficientData)
	}
	for j, x := range out {
		if !finite(x) {
			out[j] = 0
		}
	}
	return out, nil
}

// check validates the step and quantile of a model's configuration.
func (cfg Config) check(name string) error {
	if cfg.Step <= 0 {
		return fmt.Errorf("%s model: step %v must be positive", name, cfg.Step)
	}
	if !(cfg.Quantile > 0 && cfg.Quantile < 1) {
		return fmt.Errorf("%s model: quantile %v must be in (0,1)", name, cfg.Quantile)
	}
	return nil
}

var _ = math.NaN
