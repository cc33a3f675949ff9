package forecast

import (
	"encoding/binary"
	"math"
	"time"
	"unsafe"

	"github.com/kedastral/kedastral/engine/model"
)

// history is one series' regularly spaced past, NaN where a step has no
// value, kept compact: values are float32 (7 significant digits, a relative
// error of at most 6e-8, far below any forecast's; magnitudes beyond
// ±3.4e38 saturate), older ones packed at 2 bytes a point where that keeps
// them as precise (see packed), and once compaction is on (compactTo) the
// part older than a recent window is kept at a coarser step, each coarse
// point the mean of the finite values it replaces. Models see it through
// view at the full step, a coarse point repeated over the steps it covers.
//
// The newest finite value is also kept exactly (lastV), so the observed value
// the forecaster writes is the one it read.
type history struct {
	start  time.Time // time of the first point (coarse[0] if any, else fine[0]), aligned to step
	step   time.Duration
	coarse packed // coarse point i covers factor steps from start + i*factor*step
	fine   packed // fine point i is at start + (coarse.len()*factor + i)*step

	// factor is the number of steps a coarse point covers (compaction off
	// when < 2); keepFine the number of steps kept at the full step, and
	// keepWide the newest of those kept at 16 bits or more (older ones
	// narrowed to 8 bits where precise enough, see packed).
	factor   int
	keepFine int
	keepWide int

	lastT  time.Time // time of the newest finite value set; zero when unknown
	lastV  float64
	lastOK bool
}

// compactTo turns compaction on: the history keeps the newest keepFine
// steps at the full step, the newest keepWide of them at 16 bits or more,
// and older ones factor steps to a point.
func (h *history) compactTo(keepFine, keepWide, factor int) {
	if factor < 2 || keepFine < 1 {
		return
	}
	h.keepFine, h.keepWide, h.factor = keepFine, min(keepWide, keepFine), factor
}

// coarseSteps is the number of steps the coarse points cover.
func (h *history) coarseSteps() int { return h.coarse.len() * h.factor }

// length is the number of steps, missing ones included.
func (h *history) length() int { return h.coarseSteps() + h.fine.len() }

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

var nan32 = float32(math.NaN())

// set stores v at t (aligned to step), growing the history with NaN as
// needed. Points before the start, or in the coarse part, are ignored.
func (h *history) set(t time.Time, v float64) {
	if h.length() == 0 {
		h.start = t
		h.fine.append(toF32(v))
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
	for h.fine.len() < i {
		h.fine.append(nan32)
	}
	if i == h.fine.len() {
		h.fine.append(toF32(v))
	} else {
		h.fine.set(i, toF32(v))
	}
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
	if n := h.coarse.len(); n > 0 {
		span := time.Duration(h.factor) * h.step
		k := int(from.Sub(h.start) / span) // coarse points that end by from
		if k < n {
			h.coarse.dropFront(k)
			h.start = h.start.Add(time.Duration(k) * span)
			return
		}
		h.start = h.start.Add(time.Duration(n) * span)
		h.coarse.reset()
		if !h.start.Before(from) {
			return
		}
	}
	k := int((from.Sub(h.start) + h.step - 1) / h.step)
	if k >= h.fine.len() {
		h.fine.reset()
		h.lastOK = false
		return
	}
	h.fine.dropFront(k)
	h.start = h.start.Add(time.Duration(k) * h.step)
	if h.lastOK && h.lastT.Before(h.start) {
		h.lastOK = false
	}
}

// compact moves the fine points older than the newest keepFine steps into
// coarse points, whole coarse points at a time, and narrows those older than
// the newest keepWide, and the coarse points.
func (h *history) compact() {
	if h.factor < 2 {
		return
	}
	if h.keepWide > 0 {
		h.fine.narrow(h.fine.len() - h.keepWide)
		h.coarse.narrow(h.coarse.len())
	}
	if h.fine.len() < h.keepFine+h.factor {
		return
	}
	n := (h.fine.len() - h.keepFine) / h.factor
	for b := range n {
		sum, cnt := 0.0, 0
		for i := b * h.factor; i < (b+1)*h.factor; i++ {
			if f := h.fine.at(i); finite(f) {
				sum += f
				cnt++
			}
		}
		m := nan32
		if cnt > 0 {
			m = float32(sum / float64(cnt))
		}
		h.coarse.append(m)
	}
	h.fine.dropFront(n * h.factor)
}

// extendTo pads the history with NaN up to end, so a series that stopped
// reporting ages instead of freezing.
func (h *history) extendTo(end time.Time) {
	if h.length() == 0 {
		return
	}
	for h.start.Add(time.Duration(h.length()-1) * h.step).Before(end) {
		h.fine.append(nan32)
	}
}

// last returns the newest finite value and its time.
func (h *history) last() (time.Time, float64, bool) {
	if h.lastOK {
		return h.lastT, h.lastV, true
	}
	off := h.coarseSteps()
	for i := h.fine.len() - 1; i >= 0; i-- {
		if v := h.fine.at(i); finite(v) {
			h.lastT, h.lastV, h.lastOK = h.start.Add(time.Duration(off+i)*h.step), v, true
			return h.lastT, v, true
		}
	}
	for i := h.coarse.len() - 1; i >= 0; i-- {
		if v := h.coarse.at(i); finite(v) {
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
	nc := h.coarse.len()
	h.coarse.decode(v[:nc])
	// Spread the coarse points, from the last so none is overwritten
	// before it is read.
	for i := nc - 1; i >= 0; i-- {
		f := v[i]
		seg := v[i*h.factor : (i+1)*h.factor]
		for j := range seg {
			seg[j] = f
		}
	}
	h.fine.decode(v[h.coarseSteps():])
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
func (h *history) bytes() int { return h.coarse.bytes() + h.fine.bytes() }

// packed is a sliding array of values at 1 or 2 bytes a point where
// precision allows: appended at the end, dropped from the front. The newest
// points (tail, at least packKeep of them) are float32, so that a refetch of
// the newest steps rewrites them cheaply; older ones are sealed in blocks of
// packLen, each stored as 16-bit steps between its smallest and largest
// finite value (value = lo + code·scale, the largest code for NaN and ±Inf,
// which every model skips alike) when that rounds by at most packTol16 of
// the block's mean absolute value (about 1e-5 on a daily cycle, below any
// forecast's error by four orders of magnitude); a block with a spike far
// above its mean keeps its float32 values instead. narrow stores the blocks
// older than a point at 8 bits where that rounds by at most packTol8 (0.5%
// of the mean, far below the noise of any demand series): seasonal lags of
// two days and more read those. Two weeks at 1m then take about 23 KB
// instead of 56 KB as float32.
type packed struct {
	blocks   []packBlock
	skip     int // points of blocks[0] already dropped
	narrowed int // blocks[:narrowed] are sealed at 8 bits where they can be
	tail     []float32
}

type packBlock struct {
	lo, scale float64
	width     int    // bytes a point: 1 or 2 (codes), 4 (float32 bits)
	data      []byte // packLen points of width bytes, little endian
}

const (
	packLen   = 256
	packKeep  = 32 // newest points never sealed; more than refetchSteps
	packTol16 = 5e-5
	packTol8  = 5e-3
)

func (p *packed) sealed() int { return len(p.blocks)*packLen - p.skip }

// len is the number of points.
func (p *packed) len() int { return p.sealed() + len(p.tail) }

// at returns point i.
func (p *packed) at(i int) float64 {
	if s := p.sealed(); i >= s {
		return float64(p.tail[i-s])
	}
	i += p.skip
	return p.blocks[i/packLen].value(i % packLen)
}

func (b *packBlock) value(j int) float64 {
	var c, missing uint32
	switch b.width {
	case 1:
		c, missing = uint32(b.data[j]), math.MaxUint8
	case 2:
		c, missing = uint32(binary.LittleEndian.Uint16(b.data[2*j:])), math.MaxUint16
	default:
		return float64(math.Float32frombits(binary.LittleEndian.Uint32(b.data[4*j:])))
	}
	if c == missing {
		return math.NaN()
	}
	return b.lo + float64(c)*b.scale
}

// set overwrites point i (< len) with a float32 value; in a sealed block it
// seals the block again.
func (p *packed) set(i int, v float32) {
	if s := p.sealed(); i >= s {
		p.tail[i-s] = v
		return
	}
	i += p.skip
	bi := i / packLen
	b := &p.blocks[bi]
	var vals [packLen]float32
	for j := range vals {
		vals[j] = float32(b.value(j))
	}
	vals[i%packLen] = v
	b.seal(vals[:], bi < p.narrowed)
}

// append adds a point at the end, sealing the oldest tail points into a
// block once the tail holds packLen more than packKeep.
func (p *packed) append(v float32) {
	p.tail = append(p.tail, v)
	if len(p.tail) < packLen+packKeep {
		return
	}
	if len(p.blocks) == cap(p.blocks) {
		// Grow by a few blocks at a time: thousands of series each hold
		// one of these.
		p.blocks = append(make([]packBlock, 0, len(p.blocks)+len(p.blocks)/8+2), p.blocks...)
	}
	p.blocks = p.blocks[:len(p.blocks)+1]
	p.blocks[len(p.blocks)-1].seal(p.tail[:packLen], false)
	n := copy(p.tail, p.tail[packLen:])
	p.tail = p.tail[:n]
}

// narrow seals the blocks whose points are all before point n again, at 8
// bits where that is precise enough.
func (p *packed) narrow(n int) {
	last := (n + p.skip) / packLen // blocks before it end by point n
	for ; p.narrowed < min(last, len(p.blocks)); p.narrowed++ {
		b := &p.blocks[p.narrowed]
		if b.width != 2 {
			continue // float32 for a spike, or already 8 bits
		}
		var vals [packLen]float32
		for j := range vals {
			vals[j] = float32(b.value(j))
		}
		b.seal(vals[:], true)
	}
}

// seal stores vals (packLen of them) in b: at 8 bits if narrow and that is
// precise enough, else at 16 bits if that is, else as float32.
func (b *packBlock) seal(vals []float32, narrow bool) {
	lo, hi, sumAbs, n := math.Inf(1), math.Inf(-1), 0.0, 0
	for _, f := range vals {
		if v := float64(f); finite(v) {
			lo, hi = min(lo, v), max(hi, v)
			sumAbs += math.Abs(v)
			n++
		}
	}
	width := 4
	if n == 0 {
		lo, hi = 0, 0
	}
	mean := sumAbs / float64(max(n, 1))
	for _, w := range []struct {
		width int
		tol   float64
	}{{1, packTol8}, {2, packTol16}} {
		if w.width == 1 && !narrow {
			continue
		}
		steps := float64(uint32(1)<<(8*w.width) - 2)
		if sc := (hi - lo) / steps; finite(sc) && sc/2 <= w.tol*mean {
			width, b.lo, b.scale = w.width, lo, sc
			break
		}
	}
	b.width = width
	if need := packLen * width; cap(b.data) != need {
		b.data = make([]byte, need)
	}
	b.data = b.data[:packLen*width]
	if width == 4 {
		for j, f := range vals {
			binary.LittleEndian.PutUint32(b.data[4*j:], math.Float32bits(f))
		}
		return
	}
	missing := uint32(1)<<(8*width) - 1
	for j, f := range vals {
		c := missing
		switch v := float64(f); {
		case !finite(v):
		case b.scale == 0:
			c = 0
		default:
			c = uint32(min(float64(missing-1), math.Round((v-lo)/b.scale)))
		}
		if width == 1 {
			b.data[j] = byte(c)
		} else {
			binary.LittleEndian.PutUint16(b.data[2*j:], uint16(c))
		}
	}
}

// dropFront drops the oldest k points (k <= len).
func (p *packed) dropFront(k int) {
	if s := p.sealed(); k >= s {
		clear(p.blocks)
		p.blocks, p.skip, p.narrowed = p.blocks[:0], 0, 0
		n := copy(p.tail, p.tail[k-s:])
		p.tail = p.tail[:n]
		return
	}
	p.skip += k
	if d := p.skip / packLen; d > 0 {
		n := copy(p.blocks, p.blocks[d:])
		clear(p.blocks[n:])
		p.blocks, p.skip = p.blocks[:n], p.skip-d*packLen
		p.narrowed = max(0, p.narrowed-d)
	}
}

func (p *packed) reset() {
	p.blocks, p.skip, p.narrowed, p.tail = nil, 0, 0, nil
}

// decode writes the points into dst (len(dst) == p.len()).
func (p *packed) decode(dst []float64) {
	k := 0
	for bi := range p.blocks {
		b := &p.blocks[bi]
		from := 0
		if bi == 0 {
			from = p.skip
		}
		switch b.width {
		case 1:
			for _, c := range b.data[from:] {
				if c == math.MaxUint8 {
					dst[k] = math.NaN()
				} else {
					dst[k] = b.lo + float64(c)*b.scale
				}
				k++
			}
		case 2:
			for j := from; j < packLen; j++ {
				if c := binary.LittleEndian.Uint16(b.data[2*j:]); c == math.MaxUint16 {
					dst[k] = math.NaN()
				} else {
					dst[k] = b.lo + float64(c)*b.scale
				}
				k++
			}
		default:
			for j := from; j < packLen; j++ {
				dst[k] = float64(math.Float32frombits(binary.LittleEndian.Uint32(b.data[4*j:])))
				k++
			}
		}
	}
	for _, f := range p.tail {
		dst[k] = float64(f)
		k++
	}
}

// bytes is the memory the arrays hold.
func (p *packed) bytes() int {
	n := cap(p.blocks)*int(unsafe.Sizeof(packBlock{})) + cap(p.tail)*4
	for i := range p.blocks {
		n += cap(p.blocks[i].data)
	}
	return n
}
