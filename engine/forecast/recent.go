package forecast

import (
	"math"
	"time"
)

// The status page draws the last hours of each series it lists from the
// forecaster's own memory: a ring of recent points per series, at most one
// a minute, for the first maxChartSeries series of each policy.
const (
	recentPoints   = 360 // six hours at one point a minute
	recentSpacing  = time.Minute
	maxChartSeries = 12
)

// RecentPoint is what one cycle computed for a series: the observed value,
// the forecast for Ahead later, and the desired replicas.
type RecentPoint struct {
	T         int64 // milliseconds since the epoch
	Observed  float64
	Predicted float64 // for T + Ahead; NaN when none
	Desired   int32
}

// recent is a ring of the last recentPoints points of one series.
type recent struct {
	pts  [recentPoints]RecentPoint
	n    int // points held
	next int // where the next point goes
}

// add appends p. The newest point is always the last cycle's; it is
// replaced rather than kept while it is less than spacing after the point
// before it, so points stay spacing apart and cycles faster than that
// keep the span of the ring (six hours a minute apart), not less.
func (r *recent) add(p RecentPoint, spacing time.Duration) {
	if r.n > 1 {
		last := (r.next - 1 + recentPoints) % recentPoints
		prev := (r.next - 2 + recentPoints) % recentPoints
		if r.pts[last].T-r.pts[prev].T < spacing.Milliseconds() {
			r.pts[last] = p
			return
		}
	}
	r.pts[r.next] = p
	r.next = (r.next + 1) % recentPoints
	r.n = min(r.n+1, recentPoints)
}

// last returns the newest point's time, 0 when empty.
func (r *recent) last() int64 {
	if r.n == 0 {
		return 0
	}
	return r.pts[(r.next-1+recentPoints)%recentPoints].T
}

// points returns the points, oldest first.
func (r *recent) points() []RecentPoint {
	out := make([]RecentPoint, 0, r.n)
	for i := range r.n {
		out = append(out, r.pts[(r.next-r.n+i+2*recentPoints)%recentPoints])
	}
	return out
}

// recordRecent adds the cycle at ts to the rings of the series the status
// page draws, and forgets series not seen for longer than the rings span.
// The caller holds r.mu.
func (r *runner) recordRecent(ts time.Time, c *Cycle) {
	if r.recent == nil {
		r.recent = map[string]*recent{}
	}
	var ahead time.Duration
	if a := r.policy.Spec.Ahead; len(a) > 0 {
		ahead = time.Duration(a[0])
	}
	r.recentAhead = ahead
	spacing := r.m.opts.RecentSpacing
	if spacing <= 0 {
		spacing = recentSpacing
	}
	shown := 0
	for _, s := range c.Series {
		if shown >= maxChartSeries {
			break
		}
		shown++
		if s.Err != nil {
			continue
		}
		key := statusKey(s.Labels.Map())
		rr := r.recent[key]
		if rr == nil {
			rr = &recent{}
			r.recent[key] = rr
		}
		pred, ok := s.Predicted[ahead]
		if !ok {
			pred = math.NaN()
		}
		rr.add(RecentPoint{T: ts.UnixMilli(), Observed: s.Observed, Predicted: pred, Desired: s.Desired}, spacing)
	}
	horizon := ts.Add(-recentPoints * spacing).UnixMilli()
	for k, rr := range r.recent {
		if rr.last() < horizon {
			delete(r.recent, k)
		}
	}
}

// recentOf returns the recent points of every series of the policy, by
// statusKey of its labels, and the offset its forecasts are for.
func (r *runner) recentOf() (map[string][]RecentPoint, time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string][]RecentPoint, len(r.recent))
	for k, rr := range r.recent {
		out[k] = rr.points()
	}
	return out, r.recentAhead
}

// RecentPoints returns the recent points of every series of the policy
// named name (its Key), by the series' labels without the policy's, and
// the offset its forecasts are for; nil when no such policy runs.
func (m *Manager) RecentPoints(name string) (map[string][]RecentPoint, time.Duration) {
	m.mu.Lock()
	r := m.runners[name]
	m.mu.Unlock()
	if r == nil {
		return nil, 0
	}
	return r.recentOf()
}
