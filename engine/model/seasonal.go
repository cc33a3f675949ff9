package model

import (
	"context"
	"fmt"
)

// Seasonal is the name of the seasonal naive model: for each future step,
// the configured quantile of the values at the same time of day on the
// previous 7 days and at the same time of week in the previous 4 weeks (each
// week lag counted twice), without the baseline's level correction. It is
// the long-horizon component of auto and the fallback of byom, and it falls
// back itself, like Baseline, to the recent level when no seasonal sample
// exists.
const Seasonal = "seasonal"

func init() {
	Register(Seasonal, func(cfg Config) (Model, error) {
		p := defaultBaselineParams
		p.noLevel = true
		b, err := newBaseline(cfg, p)
		if err != nil {
			return nil, err
		}
		return b, nil
	})
}

// seasonalDrift is auto's "naive plus season" component: the last value
// moved by the change of the seasonal median (the seasonal model's samples
// at quantile 0.5) between its time and the forecast time, which follows
// both the current level and the daily shape.
type seasonalDrift struct{ b *baseline }

func (d *seasonalDrift) Forecast(ctx context.Context, h History, n int) ([]float64, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	v := h.Values
	last := len(v) - 1
	for last >= 0 && !finite(v[last]) {
		last--
	}
	if last < 0 {
		return nil, fmt.Errorf("seasonal drift: no finite value in %d points: %w", len(v), ErrInsufficientData)
	}
	out := make([]float64, n)
	lags := d.b.seasonalLags(len(v))
	base, ok := 0.0, false
	if len(lags) > 0 {
		base, ok = d.b.seasonal(v, last, lags, 0.5)
	}
	for j := range out {
		out[j] = v[last]
		if !ok {
			continue
		}
		if s, ok := d.b.seasonal(v, len(v)+j, lags, 0.5); ok {
			out[j] = max(0, v[last]+s-base)
		}
	}
	return out, nil
}
