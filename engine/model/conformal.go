package model

import (
	"context"
	"math"
	"sync"
	"time"
)

// Conformal bounds. A model that forecasts a point (the expected demand)
// meets the policy's quantile q through NewConformal: for every horizon it
// adds the q-quantile of its own recent errors at that horizon, measured
// walking forward as the truth arrives, so the bound holds whatever the
// point model's bias or noise. Details:
//
//   - Errors are relative, (actual − point) / scale(point) with
//     scale(p) = max(|p|, 0.1·m) and m a slow moving average of the series, so
//     that a bound is wider at the daily peak than at night and a series near
//     zero does not divide by zero.
//   - Errors are kept at anchor horizons 1, 2, 3, 4, 6, 8, 12, 16, 24, ... steps;
//     horizons between anchors interpolate the quantile linearly. At each
//     anchor the last 630 to 720 (conformalWindow) errors are counted in a
//     fixed-size histogram (see sketch), about 0.2 KB where the errors
//     themselves took 11.5 KB.
//   - The quantile level adapts (adaptive conformal inference, Gibbs and
//     Candès 2021): after each scored forecast it moves by
//     γ·(miss − (1−q)), so a series that drifts and keeps exceeding the bound
//     raises the level until coverage is back at q.
//   - Until an anchor has conformalMinErrors errors its bound is the point.
type conformal struct {
	inner   Model
	q       float64
	step    time.Duration
	anchors []int // horizons in steps, increasing; shared, read-only
	errs    []sketch
	level   []float64 // adaptive quantile level per anchor
	loss    []float64 // moving average of the relative pinball loss per anchor
	hits    []int32   // bound met, per anchor
	scored  []int32
	// pending holds the forecasts waiting for their target, per anchor a
	// ring of anchor-many slots indexed by the origin's step number: a
	// forecast k steps ahead is scored k steps later, when the next one
	// takes its slot.
	pending []slot
	ring    []int // offset of each anchor's ring in pending; shared, read-only
	end     time.Time
	started bool
	mean    float64 // slow moving average of the series
	// negative is set once the series had a negative value; until then
	// forecasts are floored at 0, as demand cannot be negative.
	negative bool
	n        int
}

// slot is a forecast at one anchor waiting for its target; at float32
// precision, the bound rounded up.
type slot struct {
	origin              uint32 // 1 + the step number of the forecast's end, mod 2^32; 0 when empty
	point, bound, scale float32
}

const (
	conformalWindow    = 720
	conformalMinErrors = 30
	conformalGamma     = 0.005
	conformalLossDecay = 0.003
)

// NewConformal wraps a point forecaster so that it forecasts the quantile
// cfg.Quantile with a conformal bound.
func NewConformal(cfg Config, point Model) Model {
	return &conformal{inner: point, q: cfg.Quantile, step: cfg.Step}
}

func anchorsUpTo(n int) []int {
	var a []int
	for k := 1; k <= n; {
		a = append(a, k)
		switch {
		case k < 4:
			k++
		default:
			// 4, 6, 8, 12, 16, 24, ...: powers of two and the midpoints.
			if k&(k-1) == 0 {
				k += k / 2
			} else {
				k = k / 3 * 4
			}
		}
	}
	if len(a) == 0 || a[len(a)-1] != n {
		a = append(a, n)
	}
	return a
}

// anchorSet is the anchors up to a horizon and the offsets of their rings,
// shared by every conformal bound with that horizon: thousands of series
// need only one copy.
type anchorSet struct {
	anchors, ring []int
	total         int
}

var anchorSets sync.Map // horizon → *anchorSet

func anchorsFor(n int) *anchorSet {
	if a, ok := anchorSets.Load(n); ok {
		return a.(*anchorSet)
	}
	a := &anchorSet{anchors: anchorsUpTo(n)}
	a.ring = make([]int, len(a.anchors))
	for i, k := range a.anchors {
		a.ring[i] = a.total
		a.total += k
	}
	v, _ := anchorSets.LoadOrStore(n, a)
	return v.(*anchorSet)
}

func (c *conformal) reset(n int) {
	set := anchorsFor(n)
	c.anchors, c.ring = set.anchors, set.ring
	k := len(c.anchors)
	c.errs = make([]sketch, k)
	c.pending = make([]slot, set.total)
	c.level = make([]float64, k)
	for i := range c.level {
		c.level[i] = c.q
	}
	c.loss = make([]float64, k)
	c.hits = make([]int32, k)
	c.scored = make([]int32, k)
}

// stepOf numbers the steps of the series' grid.
func (c *conformal) stepOf(t time.Time) uint32 {
	return uint32(t.UnixNano() / int64(c.step))
}

func (c *conformal) scaleOf(p float64) float64 {
	return max(math.Abs(p), 0.1*math.Abs(c.mean), 1e-9)
}

// Forecast implements Model.
func (c *conformal) Forecast(ctx context.Context, h History, n int) ([]float64, error) {
	pts, err := c.inner.Forecast(ctx, h, n)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return pts, nil
	}
	if len(c.anchors) == 0 || c.anchors[len(c.anchors)-1] != n || (c.started && h.End().Before(c.end)) {
		c.reset(n)
		c.started = false
	}
	end := h.End()
	if c.started {
		c.score(h)
	}
	// The moving average of the series over the new points.
	from := 0
	if c.started {
		from = max(0, int(c.end.Sub(h.Start)/h.Step)+1)
	}
	for _, v := range h.Values[min(from, len(h.Values)):] {
		if finite(v) {
			c.negative = c.negative || v < 0
			c.n++
			c.mean += max(1/float64(c.n), 0.001) * (v - c.mean)
		}
	}
	c.end, c.started = end, true

	// The quantile of the errors per anchor, on the stack for the usual
	// horizons: thousands of series' models keep no scratch between calls.
	var adjBuf [24]float64
	adjs := adjBuf[:0]
	if len(c.errs) > len(adjBuf) {
		adjs = make([]float64, 0, len(c.errs))
	}
	for i := range c.errs {
		e := &c.errs[i]
		v := 0.0
		if e.n >= conformalMinErrors {
			v = e.quantile(c.level[i])
		}
		adjs = append(adjs, v)
	}
	out := make([]float64, n)
	s := c.stepOf(end)
	a := 0
	for j := range out {
		hz := j + 1
		for c.anchors[a] < hz {
			a++
		}
		adj := adjs[a]
		if a > 0 && c.anchors[a] != hz {
			lo, hi := c.anchors[a-1], c.anchors[a]
			f := float64(hz-lo) / float64(hi-lo)
			adj = adjs[a-1]*(1-f) + adjs[a]*f
		}
		p := pts[j]
		b := p + adj*c.scaleOf(p)
		if b < 0 && !c.negative {
			b = 0
		}
		out[j] = b
		if c.anchors[a] == hz {
			// Evaluated again before a new point (the forecaster's interval
			// is shorter than the step), the newest forecast from this end
			// takes the same slot, so it counts once.
			c.pending[c.ring[a]+int(s%uint32(hz))] = slot{origin: s + 1, point: float32(p), bound: up32(b), scale: float32(c.scaleOf(p))}
		}
	}
	return out, nil
}

// score compares the forecasts whose targets arrived with h.
func (c *conformal) score(h History) {
	// No forecast made up to c.end targets a time beyond the last anchor.
	end := h.End()
	if last := c.end.Add(time.Duration(c.anchors[len(c.anchors)-1]) * c.step); end.After(last) {
		end = last
	}
	for t := c.end.Add(c.step); !t.After(end); t = t.Add(c.step) {
		y := h.At(t)
		if !finite(y) {
			continue
		}
		st := c.stepOf(t)
		for i, k := range c.anchors {
			s := st - uint32(k)
			o := &c.pending[c.ring[i]+int(s%uint32(k))]
			if o.origin != s+1 {
				continue
			}
			o.origin = 0
			point, bound := float64(o.point), float64(o.bound)
			if !finite(point) {
				continue
			}
			c.errs[i].push((y - point) / float64(o.scale))
			miss := 0.0
			if y > bound {
				miss = 1
			} else {
				c.hits[i]++
			}
			c.scored[i]++
			c.level[i] = min(0.999, max(0.001, c.level[i]+conformalGamma*(miss-(1-c.q))))
			d := y - bound
			// Absolute, not relative, so that a busy hour weighs more
			// than a quiet night, as in MAE and unserved demand.
			l := max(c.q*d, (c.q-1)*d) / max(math.Abs(c.mean), 1e-9)
			c.loss[i] += conformalLossDecay * (l - c.loss[i])
		}
	}
}

// up32 rounds x to a float32 no smaller than x.
func up32(x float64) float32 {
	f := float32(x)
	if float64(f) < x {
		f = math.Nextafter32(f, float32(math.Inf(1)))
	}
	return f
}

// lossAt is the recent relative pinball loss of the bound at the anchor
// covering horizon hz (1-based), and false until it has been scored enough.
func (c *conformal) lossAt(hz int) (float64, bool) {
	for i, k := range c.anchors {
		if k >= hz {
			return c.loss[i], c.scored[i] >= conformalMinErrors
		}
	}
	return 0, false
}

// sketch summarizes a stream of relative errors by a histogram over
// asinh(e/sketchScale): linear near zero (bins 0.0067 wide), logarithmic
// beyond (a bin spans a factor 1.95 of |e|, interpolated within), up to
// |e| ≈ 15, larger errors counted in the last bin. It counts the errors in
// sketchBlocks blocks of conformalWindow/sketchBlocks and drops the oldest
// block when a new one starts, so it holds the last 630 to 720 errors: almost
// a sliding window, in 208 bytes. More blocks matter more than more bins: on
// the real traces the block count moved the backtest figures, the bin count
// (24 to 256 over this range) did not; a range of ±6 instead of ±8 (|e| up
// to 2) cut the AWS trace's coverage at q0.9 from 0.908 to 0.896.
type sketch struct {
	counts [sketchBlocks][sketchBins]uint8 // per bin the lower half negative, the upper positive
	zeros  [sketchBlocks]uint8             // exact zeros: an exact model, a constant series
	cur    uint8                           // the block being filled
	fill   uint8                           // errors in it
	n      int32                           // errors pushed, saturating
}

const (
	sketchBins   = 32
	sketchBlocks = 8
	sketchBlock  = conformalWindow / sketchBlocks // at most 255, the counts are bytes
	sketchScale  = 0.01
	sketchWidth  = 2 * 8.0 / sketchBins // in asinh units
)

// A block's counts must fit in a byte.
var _ [255 - sketchBlock]struct{}

func (s *sketch) push(x float64) {
	if s.fill == sketchBlock {
		s.cur = (s.cur + 1) % sketchBlocks
		s.counts[s.cur], s.zeros[s.cur], s.fill = [sketchBins]uint8{}, 0, 0
	}
	s.fill++
	if s.n < math.MaxInt32 {
		s.n++
	}
	if x == 0 {
		s.zeros[s.cur]++
		return
	}
	b := sketchBins/2 + int(math.Floor(math.Asinh(x/sketchScale)/sketchWidth))
	b = max(0, min(sketchBins-1, b))
	if x > 0 {
		b = max(b, sketchBins/2)
	} else {
		b = min(b, sketchBins/2-1)
	}
	s.counts[s.cur][b]++
}

// quantile interpolates linearly in asinh space within the bin where the
// cumulative count reaches q.
func (s *sketch) quantile(q float64) float64 {
	var bins [sketchBins]int
	zero := 0
	for k := range s.counts {
		zero += int(s.zeros[k])
		for i, c := range s.counts[k] {
			bins[i] += int(c)
		}
	}
	total := zero
	for _, c := range bins {
		total += c
	}
	target := q * float64(total)
	var cum float64
	last := 0
	for i, c := range bins {
		if i == sketchBins/2 {
			if zero > 0 && cum+float64(zero) >= target {
				return 0
			}
			cum += float64(zero)
		}
		if c == 0 {
			continue
		}
		last = i
		v := float64(c)
		if cum+v >= target {
			f := (target - cum) / v
			return sketchScale * math.Sinh((float64(i-sketchBins/2)+f)*sketchWidth)
		}
		cum += v
	}
	if zero > 0 && last < sketchBins/2 {
		return 0
	}
	return sketchScale * math.Sinh(float64(last+1-sketchBins/2)*sketchWidth)
}

// SetQuantile implements Leveled: the adaptive level of every anchor moves
// by the change, so what it learnt of the series' drift is kept.
func (c *conformal) SetQuantile(q float64) {
	d := q - c.q
	c.q = q
	if d == 0 {
		return
	}
	for i := range c.level {
		c.level[i] = min(0.999, max(0.001, c.level[i]+d))
	}
}
