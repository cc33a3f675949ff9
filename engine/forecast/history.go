package forecast

import (
	"math"
	"time"
	"unsafe"

	"github.com/kedastral/kedastral/engine/model"
)

// history is one series' regularly spaced past, NaN where a step has no
// value, kept compact: values are float32 (7 significant digits, a relative
// error of at most 6e-8, far below any forecast's; magnitudes beyond
// ±3.4e38 saturate), and once compaction is on (compactTo) the part older
// than a recent window is kept at a coarser step, each coarse point the mean
// of the finite values it replaces. Models see it through view at the full
// step, a coarse point repeated over the steps it covers.
//
// The newest finite value is also kept exactly (lastV), so the observed value
// the forecaster writes is the one it read.
type history struct {
	start  time.Time // time of the first point (coarse[0] if any, else fine[0]), aligned to step
	step   time.Duration
	coarse []float32 // coarse[i] covers factor steps from start + i*factor*step
	fine   []float32 // fine[i] is at start + (len(coarse)*factor + i)*step

	// factor is the number of steps a coarse point covers (compaction off
	// when < 2); keepFine the number of steps kept at the full step.
	factor   int
	keepFine int

	lastT  time.Time // time of the newest finite value set; zero when unknown
	lastV  float64
	lastOK bool
}

// compactTo turns compaction on: the history keeps the newest keepFine
// steps at the full step and older ones factor steps to a point.
func (h *history) compactTo(keepFine, factor int) {
	if factor < 2 || keepFine < 1 {
		return
	}
	h.keepFine, h.factor = keepFine, factor
}

// coarseSteps is the number of steps the coarse points cover.
func (h *history) coarseSteps() int { return len(h.coarse) * h.factor }

// length is the number of steps, missing ones included.
func (h *history) length() int { return h.coarseSteps() + len(h.fine) }

func toF32(v float64) float32 {
	switch {
	case v > math.MaxFloat32:
		if math.IsInf(v, 1) {
			return float32(v)
		}
		return math.MaxFloat32
	case v < -math.MaxFloat32:
		if math.IsInf(v, -1) {
			return float32(v)
		}
		return -math.MaxFloat32
	}
	return float32(v)
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// set stores v at t (aligned to step), growing the history with NaN as
// needed. Points before the start, or in the coarse part, are ignored.
func (h *history) set(t time.Time, v float64) {
	if h.length() == 0 {
		h.start = t
		h.fine = append(h.fine, toF32(v))
		h.noteLast(t, v)
		return
	}
	d := t.Sub(h.start)
	if d < 0 {
		return
	}
	i := int(d/h.step) - h.coarseSteps()
	if i < 0 {
		return
	}
	for len(h.fine) <= i {
		h.fine = append(h.fine, float32(math.NaN()))
	}
	h.fine[i] = toF32(v)
	h.noteLast(t, v)
}

func (h *history) noteLast(t time.Time, v float64) {
	switch {
	case finite(v) && (!h.lastOK || !t.Before(h.lastT)):
		h.lastT, h.lastV, h.lastOK = t, v, true
	case !finite(v) && h.lastOK && t.Equal(h.lastT):
		h.lastOK = false // recomputed by last
	}
}

// trimBefore drops the points older than from (whole coarse points only).
func (h *history) trimBefore(from time.Time) {
	if h.length() == 0 || !h.start.Before(from) {
		return
	}
	if len(h.coarse) > 0 {
		span := time.Duration(h.factor) * h.step
		k := int(from.Sub(h.start) / span) // coarse points that end by from
		if k < len(h.coarse) {
			h.coarse = h.coarse[k:]
			h.start = h.start.Add(time.Duration(k) * span)
			h.coarse = shrink(h.coarse)
			return
		}
		h.start = h.start.Add(time.Duration(len(h.coarse)) * span)
		h.coarse = h.coarse[:0]
		if !h.start.Before(from) {
			return
		}
	}
	k := int((from.Sub(h.start) + h.step - 1) / h.step)
	if k >= len(h.fine) {
		h.fine = h.fine[:0]
		h.lastOK = false
		return
	}
	h.fine = h.fine[k:]
	h.start = h.start.Add(time.Duration(k) * h.step)
	h.fine = shrink(h.fine)
	if h.lastOK && h.lastT.Before(h.start) {
		h.lastOK = false
	}
}

// compact moves the fine points older than the newest keepFine steps into
// coarse points, whole coarse points at a time, and right-sizes the arrays.
func (h *history) compact() {
	if h.factor < 2 || len(h.fine) < h.keepFine+h.factor {
		h.fine = shrink(h.fine)
		return
	}
	n := (len(h.fine) - h.keepFine) / h.factor
	for b := range n {
		sum, cnt := 0.0, 0
		for _, v := range h.fine[b*h.factor : (b+1)*h.factor] {
			if f := float64(v); finite(f) {
				sum += f
				cnt++
			}
		}
		m := float32(math.NaN())
		if cnt > 0 {
			m = float32(sum / float64(cnt))
		}
		h.coarse = append(h.coarse, m)
	}
	h.fine = shrink(h.fine[n*h.factor:])
	h.coarse = shrink(h.coarse)
}

// shrink copies s into a right-sized array once its array holds much more
// than it: reslicing from the front keeps the old array alive, and append
// grows it by a quarter, for thousands of series.
func shrink(s []float32) []float32 {
	if cap(s) <= len(s)+len(s)/8+16 {
		return s
	}
	return append(make([]float32, 0, len(s)+len(s)/16+8), s...)
}

// extendTo pads the history with NaN up to end, so a series that stopped
// reporting ages instead of freezing.
func (h *history) extendTo(end time.Time) {
	if h.length() == 0 {
		return
	}
	for h.start.Add(time.Duration(h.length()-1) * h.step).Before(end) {
		h.fine = append(h.fine, float32(math.NaN()))
	}
}

// last returns the newest finite value and its time.
func (h *history) last() (time.Time, float64, bool) {
	if h.lastOK {
		return h.lastT, h.lastV, true
	}
	off := h.coarseSteps()
	for i := len(h.fine) - 1; i >= 0; i-- {
		if v := float64(h.fine[i]); finite(v) {
			h.lastT, h.lastV, h.lastOK = h.start.Add(time.Duration(off+i)*h.step), v, true
			return h.lastT, v, true
		}
	}
	for i := len(h.coarse) - 1; i >= 0; i-- {
		if v := float64(h.coarse[i]); finite(v) {
			// The newest step the coarse point covers.
			h.lastT, h.lastV, h.lastOK = h.start.Add(time.Duration((i+1)*h.factor-1)*h.step), v, true
			return h.lastT, v, true
		}
	}
	return time.Time{}, 0, false
}

// view returns the history at the full step as the models take it, written
// into buf (grown when too small): the caller owns buf and must not share it
// between concurrent views.
func (h *history) view(buf *[]float64) model.History {
	n := h.length()
	if cap(*buf) < n {
		*buf = make([]float64, n, n+n/8)
	}
	v := (*buf)[:n]
	for i, c := range h.coarse {
		f := float64(c)
		seg := v[i*h.factor : (i+1)*h.factor]
		for j := range seg {
			seg[j] = f
		}
	}
	fv := v[h.coarseSteps():]
	for i, f := range h.fine {
		fv[i] = float64(f)
	}
	return model.History{Start: h.start, Step: h.step, Values: v}
}

// end returns the time of the newest step, NaN or not; the zero time when
// the history is empty.
func (h *history) end() time.Time {
	if h.length() == 0 {
		return time.Time{}
	}
	return h.start.Add(time.Duration(h.length()-1) * h.step)
}

// bytes is the memory the history's arrays hold.
func (h *history) bytes() int {
	return (cap(h.coarse) + cap(h.fine)) * int(unsafe.Sizeof(float32(0)))
}
