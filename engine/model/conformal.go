package model

import (
	"context"
	"math"
	"slices"
	"sort"
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
//   - Errors are kept at anchor horizons 1, 2, 3, 4, 6, 8, 12, 16, 24, ... steps,
//     the last conformalWindow of each; horizons between anchors interpolate
//     the quantile linearly.
//   - The quantile level adapts (adaptive conformal inference, Gibbs and
//     Candès 2021): after each scored forecast it moves by
//     γ·(miss − (1−q)), so a series that drifts and keeps exceeding the bound
//     raises the level until coverage is back at q.
//   - Until an anchor has conformalMinErrors errors its bound is the point.
type conformal struct {
	inner   Model
	q       float64
	step    time.Duration
	anchors []int // horizons in steps, increasing
	errs    []*window
	level   []float64 // adaptive quantile level per anchor
	loss    []float64 // moving average of the relative pinball loss per anchor
	hits    []int     // bound met, per anchor
	scored  []int
	origins []origin // recent forecasts, oldest first
	end     time.Time
	started bool
	mean    float64 // slow moving average of the series
	// negative is set once the series had a negative value; until then
	// forecasts are floored at 0, as demand cannot be negative.
	negative bool
	n        int
	adj      []float64 // scratch: quantile of errors per anchor
	out      []float64
}

type origin struct {
	end   time.Time
	point []float64 // at the anchors
	bound []float64
	scale []float64
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

func (c *conformal) reset(n int) {
	c.anchors = anchorsUpTo(n)
	k := len(c.anchors)
	c.errs = make([]*window, k)
	for i := range c.errs {
		c.errs[i] = newWindow(conformalWindow)
	}
	c.level = make([]float64, k)
	for i := range c.level {
		c.level[i] = c.q
	}
	c.loss = make([]float64, k)
	c.hits = make([]int, k)
	c.scored = make([]int, k)
	c.adj = make([]float64, k)
	c.origins = c.origins[:0]
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

	for i, e := range c.errs {
		c.adj[i] = 0
		if e.len() >= conformalMinErrors {
			c.adj[i] = e.quantile(c.level[i])
		}
	}
	if cap(c.out) < n {
		c.out = make([]float64, n)
	}
	out := c.out[:n]
	o := origin{end: end, point: make([]float64, len(c.anchors)), bound: make([]float64, len(c.anchors)), scale: make([]float64, len(c.anchors))}
	a := 0
	for j := range out {
		hz := j + 1
		for c.anchors[a] < hz {
			a++
		}
		adj := c.adj[a]
		if a > 0 && c.anchors[a] != hz {
			lo, hi := c.anchors[a-1], c.anchors[a]
			f := float64(hz-lo) / float64(hi-lo)
			adj = c.adj[a-1]*(1-f) + c.adj[a]*f
		}
		p := pts[j]
		b := p + adj*c.scaleOf(p)
		if b < 0 && !c.negative {
			b = 0
		}
		out[j] = b
		if c.anchors[a] == hz {
			o.point[a], o.bound[a], o.scale[a] = p, b, c.scaleOf(p)
		}
	}
	if n := len(c.origins); n > 0 && c.origins[n-1].end.Equal(end) {
		// Evaluated again before a new point (the forecaster's interval is
		// shorter than the step): the newest forecast from this end counts once.
		c.origins[n-1] = o
	} else {
		c.origins = append(c.origins, o)
	}
	return out, nil
}

// score compares the forecasts whose targets arrived with h.
func (c *conformal) score(h History) {
	end := h.End()
	maxA := c.anchors[len(c.anchors)-1]
	keep := c.origins[:0]
	for _, o := range c.origins {
		for i, k := range c.anchors {
			t := o.end.Add(time.Duration(k) * c.step)
			if !t.After(c.end) || t.After(end) {
				continue
			}
			y := h.At(t)
			if !finite(y) || !finite(o.point[i]) {
				continue
			}
			c.errs[i].push((y - o.point[i]) / o.scale[i])
			miss := 0.0
			if y > o.bound[i] {
				miss = 1
			} else {
				c.hits[i]++
			}
			c.scored[i]++
			c.level[i] = min(0.999, max(0.001, c.level[i]+conformalGamma*(miss-(1-c.q))))
			d := y - o.bound[i]
			// Absolute, not relative, so that a busy hour weighs more
			// than a quiet night, as in MAE and unserved demand.
			l := max(c.q*d, (c.q-1)*d) / max(math.Abs(c.mean), 1e-9)
			c.loss[i] += conformalLossDecay * (l - c.loss[i])
		}
		if o.end.Add(time.Duration(maxA) * c.step).After(end) {
			keep = append(keep, o)
		}
	}
	c.origins = keep
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

// window keeps the last size values in insertion order and sorted.
type window struct {
	size   int
	fifo   []float64
	head   int
	sorted []float64
}

func newWindow(size int) *window { return &window{size: size} }

func (w *window) len() int { return len(w.sorted) }

func (w *window) push(x float64) {
	if len(w.fifo) == w.size {
		old := w.fifo[w.head]
		w.fifo[w.head] = x
		w.head = (w.head + 1) % w.size
		i := sort.SearchFloat64s(w.sorted, old)
		w.sorted = slices.Delete(w.sorted, i, i+1)
	} else {
		w.fifo = append(w.fifo, x)
	}
	i := sort.SearchFloat64s(w.sorted, x)
	w.sorted = slices.Insert(w.sorted, i, x)
}

func (w *window) quantile(q float64) float64 {
	s := w.sorted
	pos := q * float64(len(s)-1)
	lo := int(pos)
	if lo >= len(s)-1 {
		return s[len(s)-1]
	}
	f := pos - float64(lo)
	return s[lo]*(1-f) + s[lo+1]*f
}
