package model

import "unsafe"

// Sizer is a model that can say how much memory its state holds, for the
// forecaster's kedastral_forecaster_model_bytes.
type Sizer interface {
	// StateBytes is the heap the model's state and scratch hold, its own
	// struct included; an estimate from the arrays' capacities.
	StateBytes() int
}

// StateBytes is m's state size when m is a Sizer, else 0 (unknown).
func StateBytes(m Model) int {
	if s, ok := m.(Sizer); ok {
		return s.StateBytes()
	}
	return 0
}

const (
	f64 = int(unsafe.Sizeof(float64(0)))
	f32 = int(unsafe.Sizeof(float32(0)))
)

// StateBytes implements Sizer.
func (a *auto) StateBytes() int {
	n := int(unsafe.Sizeof(*a)) + cap(a.chosen)*int(unsafe.Sizeof(0)) +
		cap(a.outs)*int(unsafe.Sizeof([]float64(nil))) + cap(a.models)*int(unsafe.Sizeof(a))
	for _, m := range a.models {
		n += m.StateBytes()
	}
	return n
}

// StateBytes implements Sizer. The anchors and ring offsets are shared by
// every bound with the same horizon and not counted.
func (c *conformal) StateBytes() int {
	return int(unsafe.Sizeof(*c)) + cap(c.errs)*int(unsafe.Sizeof(sketch{})) +
		cap(c.pending)*int(unsafe.Sizeof(slot{})) +
		(cap(c.level)+cap(c.loss))*f64 +
		(cap(c.hits)+cap(c.scored))*int(unsafe.Sizeof(int32(0))) +
		StateBytes(c.inner)
}

// StateBytes implements Sizer.
func (hw *holtWinters) StateBytes() int {
	return int(unsafe.Sizeof(*hw)) + cap(hw.st.season)*f32 + cap(hw.recent)*f64
}

// StateBytes implements Sizer.
func (b *baseline) StateBytes() int {
	return int(unsafe.Sizeof(*b)) + cap(b.samples)*f64 + cap(b.lags)*int(unsafe.Sizeof(0))
}

// StateBytes implements Sizer.
func (d *seasonalDrift) StateBytes() int { return int(unsafe.Sizeof(*d)) + d.b.StateBytes() }

// StateBytes implements Sizer.
func (l *linear) StateBytes() int { return int(unsafe.Sizeof(*l)) }
