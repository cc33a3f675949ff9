package model_test

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/kedastral/kedastral/engine/model"
)

// FuzzModels feeds every built-in model (byom aside: it calls out) a two-day
// history made of arbitrary float64s, NaN, ±Inf, huge and negative values
// included, in two successive calls as the forecaster does. No model may
// panic; an answer has the asked length; and from a history of moderate
// finite values (|v| ≤ 1e9, gaps allowed) every forecast is finite.
func FuzzModels(f *testing.F) {
	enc := func(vs ...float64) []byte {
		b := make([]byte, 0, 8*len(vs))
		for _, v := range vs {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
		}
		return b
	}
	f.Add(enc(1, 2, 3, 4), 0.85, uint8(6))
	f.Add(enc(0), 0.5, uint8(1))
	f.Add(enc(math.NaN(), 5), 0.9, uint8(12))
	f.Add(enc(math.Inf(1), -1), 0.99, uint8(3))
	f.Add(enc(1e308, -1e308, 0), 0.01, uint8(30))
	f.Add(enc(-5, -10, 3e-320), 0.5, uint8(7))
	names := model.Names()
	const step = 5 * time.Minute
	f.Fuzz(func(t *testing.T, data []byte, q float64, steps uint8) {
		if len(data) < 8 {
			return
		}
		vals := make([]float64, len(data)/8)
		moderate := true
		for i := range vals {
			vals[i] = math.Float64frombits(binary.LittleEndian.Uint64(data[8*i:]))
			if v := vals[i]; math.IsInf(v, 0) || math.Abs(v) > 1e9 {
				moderate = false
			}
		}
		if !(q > 0 && q < 1) {
			q = 0.85
		}
		n := 1 + int(steps)%36
		start := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
		h := model.History{Start: start, Step: step, Values: make([]float64, 2*24*12)}
		for i := range h.Values {
			h.Values[i] = vals[i%len(vals)]
		}
		for _, name := range names {
			if name == model.BYOM {
				continue
			}
			m, err := model.New(name, model.Config{Step: step, Quantile: q})
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			for _, hh := range []model.History{{Start: start, Step: step, Values: h.Values[:len(h.Values)-7]}, h} {
				out, err := m.Forecast(context.Background(), hh, n)
				if err != nil {
					if !errors.Is(err, model.ErrInsufficientData) && moderate {
						t.Logf("%s: %v", name, err)
					}
					continue
				}
				if len(out) != n {
					t.Fatalf("%s: %d values for %d steps", name, len(out), n)
				}
				if moderate {
					for i, v := range out {
						if math.IsNaN(v) || math.IsInf(v, 0) {
							t.Fatalf("%s: forecast[%d] = %v from moderate finite input %v", name, i, v, vals)
						}
					}
				}
			}
		}
	})
}
