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

// sizeClasses are the Go allocator's small size classes (runtime's
// sizeclasses.go, unchanged since Go 1.21): an allocation takes the smallest
// class that holds it, so a 2,720-byte array uses 3,072 bytes of heap.
var sizeClasses = [...]int{8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256,
	288, 320, 352, 384, 416, 448, 480, 512, 576, 640, 704, 768, 896, 1024, 1152, 1280, 1408, 1536, 1792, 2048,
	2304, 2688, 3072, 3200, 3456, 4096, 4864, 5376, 6144, 6528, 6784, 6912, 8192, 9472, 9728, 10240, 10880,
	12288, 13568, 14336, 16384, 18432, 19072, 20480, 21760, 24576, 27264, 28672, 32768}

// alloc is the heap an allocation of n bytes takes: its size class, or whole
// 8 KiB pages beyond the largest; 0 for none.
func alloc(n int) int {
	if n <= 0 {
		return 0
	}
	for _, c := range sizeClasses {
		if n <= c {
			return c
		}
	}
	return (n + 8191) &^ 8191
}

// StateBytes implements Sizer.
func (a *auto) StateBytes() int {
	n := alloc(int(unsafe.Sizeof(*a))) + alloc(cap(a.chosen)*int(unsafe.Sizeof(0))) +
		alloc(cap(a.second)*int(unsafe.Sizeof(0))) +
		alloc(cap(a.outs)*int(unsafe.Sizeof([]float64(nil)))) + alloc(cap(a.models)*int(unsafe.Sizeof(a)))
	for _, m := range a.models {
		n += m.StateBytes()
	}
	return n
}

// StateBytes implements Sizer. The anchors and ring offsets are shared by
// every bound with the same horizon and not counted.
func (c *conformal) StateBytes() int {
	return alloc(int(unsafe.Sizeof(*c))) + alloc(cap(c.errs)*int(unsafe.Sizeof(sketch{}))) +
		alloc(cap(c.pending)*int(unsafe.Sizeof(slot{}))) +
		alloc(cap(c.level)*f64) + alloc(cap(c.loss)*f64) +
		alloc(cap(c.hits)*int(unsafe.Sizeof(int32(0)))) + alloc(cap(c.scored)*int(unsafe.Sizeof(int32(0)))) +
		StateBytes(c.inner)
}

// StateBytes implements Sizer.
func (hw *holtWinters) StateBytes() int {
	return alloc(int(unsafe.Sizeof(*hw))) + alloc(cap(hw.st.season)*f32) + alloc(cap(hw.recent)*f64)
}

// StateBytes implements Sizer.
func (b *baseline) StateBytes() int {
	return alloc(int(unsafe.Sizeof(*b))) + alloc(cap(b.samples)*f64) + alloc(cap(b.lags)*int(unsafe.Sizeof(0)))
}

// StateBytes implements Sizer.
func (d *seasonalDrift) StateBytes() int { return alloc(int(unsafe.Sizeof(*d))) + d.b.StateBytes() }

// StateBytes implements Sizer.
func (l *linear) StateBytes() int { return alloc(int(unsafe.Sizeof(*l))) }
