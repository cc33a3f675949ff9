package forecast

import (
	"math"
	"time"

	"github.com/kedastral/kedastral/engine/model"
)

// history is one series' regularly spaced past, NaN where a step has no value.
type history struct {
	start  time.Time // time of values[0], aligned to step
	step   time.Duration
	values []float64
}

// set stores v at t (aligned to step), growing the history with NaN as
// needed. Points before the start are ignored.
func (h *history) set(t time.Time, v float64) {
	if len(h.values) == 0 {
		h.start = t
		h.values = append(h.values, v)
		return
	}
	d := t.Sub(h.start)
	if d < 0 {
		return
	}
	i := int(d / h.step)
	for len(h.values) <= i {
		h.values = append(h.values, math.NaN())
	}
	h.values[i] = v
}

// trimBefore drops the points older than from.
func (h *history) trimBefore(from time.Time) {
	if len(h.values) == 0 || !h.start.Before(from) {
		return
	}
	k := int((from.Sub(h.start) + h.step - 1) / h.step)
	if k >= len(h.values) {
		h.values = h.values[:0]
		return
	}
	h.values = h.values[k:]
	h.start = h.start.Add(time.Duration(k) * h.step)
	// Reslicing from the front keeps the old array alive; copy once the
	// dead part outweighs the live one so memory stays bounded.
	if cap(h.values) > 2*len(h.values)+64 {
		h.values = append([]float64(nil), h.values...)
	}
}

// extendTo pads the history with NaN up to end, so a series that stopped
// reporting ages instead of freezing.
func (h *history) extendTo(end time.Time) {
	if len(h.values) == 0 {
		return
	}
	for h.start.Add(time.Duration(len(h.values)-1) * h.step).Before(end) {
		h.values = append(h.values, math.NaN())
	}
}

// last returns the newest finite value and its time.
func (h *history) last() (time.Time, float64, bool) {
	for i := len(h.values) - 1; i >= 0; i-- {
		if v := h.values[i]; !math.IsNaN(v) && !math.IsInf(v, 0) {
			return h.start.Add(time.Duration(i) * h.step), v, true
		}
	}
	return time.Time{}, 0, false
}

func (h *history) view() model.History {
	return model.History{Start: h.start, Step: h.step, Values: h.values}
}
