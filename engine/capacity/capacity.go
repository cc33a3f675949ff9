// Package capacity turns a demand forecast into a replica count: the peak over
// the lead time, the headroom, the per-pod target, the min/max clamps, and the
// scale-up/scale-down limits and stabilization windows of the
// HorizontalPodAutoscaler v2 behavior API, applied against the previous count.
package capacity

import (
	"math"
	"time"

	"github.com/kedastral/kedastral/engine/policy"
)

// Need is the replica count that serves load at targetPerPod with headroom,
// rounded up, clamped to [min, max]. A NaN or negative load needs min.
func Need(load float64, c policy.Capacity) int32 {
	if math.IsNaN(load) || load <= 0 {
		return c.Min
	}
	headroom := c.Headroom
	if headroom == 0 {
		headroom = 1
	}
	// Guard float noise: 2.0000000001 pods of need is 2 pods, not 3.
	r := load * headroom / c.TargetPerPod
	n := math.Ceil(r - 1e-9)
	switch {
	case n < float64(c.Min):
		return c.Min
	case n > float64(c.Max):
		return c.Max
	}
	return int32(n)
}

// Peak is the highest finite value of forecast[:leadSteps], the load the
// replicas requested now must carry until the ones requested next are ready.
// It returns NaN when there is no finite value.
func Peak(forecast []float64, leadSteps int) float64 {
	peak := math.NaN()
	for i, v := range forecast {
		if i >= leadSteps {
			break
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		if math.IsNaN(peak) || v > peak {
			peak = v
		}
	}
	return peak
}

// Reactive is the count that reactive scaling (KEDA feeding the observed
// value to the HPA) asks for: ceil(observed / targetPerPod), without headroom,
// clamped to [min, max].
func Reactive(observed float64, c policy.Capacity) int32 {
	c.Headroom = 1
	return Need(observed, c)
}

// Recommend is the replica count a forecast asks for before behavior
// limits: the Need of its Peak over leadSteps and, when the policy keeps
// NeverBelowReactive, at least Reactive(observed), so that a forecast that
// misses a rise cannot scale below reactive scaling. A NaN observed value
// sets no floor.
func Recommend(forecast []float64, leadSteps int, observed float64, c policy.Capacity) int32 {
	n := Need(Peak(forecast, leadSteps), c)
	if c.FloorsAtReactive() && !math.IsNaN(observed) && !math.IsInf(observed, 0) {
		n = max(n, Reactive(observed, c))
	}
	return n
}

// WithinTolerance reports whether the HPA, at current replicas, ignores a
// change to desired: |1 - desired/current| <= tolerance, the test of the HPA
// controller. From zero replicas every change counts. A ratio at the
// tolerance up to float noise counts as within it (10 → 11 is skipped at
// 0.1), the safe side for a caller lifting changes past it.
func WithinTolerance(desired, current int32, tolerance float64) bool {
	return UsageWithinTolerance(float64(desired), current, tolerance)
}

// UsageWithinTolerance is the same test on a metric that asks for want
// replicas, not necessarily a whole number (the usage ratio times current):
// |want/current − 1| <= tolerance, and from zero replicas any positive want
// counts.
func UsageWithinTolerance(want float64, current int32, tolerance float64) bool {
	if current == 0 {
		return want <= 0
	}
	return math.Abs(want/float64(current)-1) <= tolerance+1e-9
}

// ClearTolerance returns the smallest count of at least desired that the
// HPA at current replicas does not ignore, capped at max; desired itself when
// it is not an increase.
func ClearTolerance(desired, current int32, tolerance float64, maxReplicas int32) int32 {
	if desired <= current {
		return desired
	}
	n := desired
	for n < maxReplicas && WithinTolerance(n, current, tolerance) {
		n++
	}
	return n
}

type recommendation struct {
	t        time.Time
	replicas int32
}

type change struct {
	t     time.Time
	delta int32 // positive: scale up
}

// Planner applies behavior limits to successive recommendations of one
// series, like the HPA controller does for one HPA. It remembers the
// recommendations of the longest stabilization window and the changes of the
// longest policy period. The zero value is not usable; use NewPlanner.
type Planner struct {
	c       policy.Capacity
	up      rules
	down    rules
	current int32
	started bool
	recs    []recommendation
	changes []change
	keep    time.Duration
	now     time.Time // time of the Next call in progress
	// hpa is the HPA as the planner assumes it acts on the published counts
	// (see replayHPA); its count is the one an increase is lifted from.
	hpa       *HPA
	hpaAnswer int32     // the last answer, in force since hpaAt
	hpaAt     time.Time // when it was published: the last sync replayed
	// hpaBefore is the count the HPA held just before the last answer,
	// after the syncs since the previous one (HPABeforeAnswer).
	hpaBefore int32
}

// replayHPA replays the HPA's syncs since the last answer (every
// HPASyncPeriod after it, before t), with that answer in force: the HPA may
// have scaled down since, as older recommendations left its scale-down
// stabilization window (Capacity.HPAScaleDownStabilization, 5 minutes by
// default). Without the window the assumed count would drop at once on a
// decrease the HPA delays, and the next increase, measured from too low a
// count, would not be lifted past the tolerance of the count the HPA really
// holds. After 2·window/sync syncs with one answer in force the window holds
// nothing else and the count has settled, so it replays at most that many.
func (p *Planner) replayHPA(t time.Time) {
	if p.hpaAt.IsZero() {
		return
	}
	window := p.c.HPAScaleDownWindow()
	skip := (t.Sub(p.hpaAt)-1)/HPASyncPeriod - 2*(window/HPASyncPeriod) - 2
	at := p.hpaAt.Add(HPASyncPeriod)
	if skip > 0 {
		at = at.Add(skip * HPASyncPeriod)
	}
	for ; at.Before(t); at = at.Add(HPASyncPeriod) {
		p.hpa.Sync(at, float64(p.hpaAnswer))
	}
}

// answerHPA is the HPA's sync at t with the new answer.
func (p *Planner) answerHPA(t time.Time, answer int32) {
	p.hpa.Sync(t, float64(answer))
	p.hpaAnswer, p.hpaAt = answer, t
}

// AssumedHPA returns the count the HPA is assumed to hold after the last
// answer: the count an increase is lifted from (Capacity.ClearTolerance).
func (p *Planner) AssumedHPA() int32 { return p.hpa.Count() }

// HPABeforeAnswer returns the count the HPA is assumed to have held just
// before the last answer: the lowest since the previous answer, as between
// answers it only scales down (the window releasing older recommendations).
func (p *Planner) HPABeforeAnswer() int32 { return p.hpaBefore }

type rules struct {
	window   time.Duration
	selector policy.SelectPolicy
	policies []policy.ScalingPolicy
}

func newRules(r *policy.ScalingRules) rules {
	out := rules{selector: policy.SelectMax}
	if r == nil {
		return out
	}
	if r.StabilizationWindowSeconds != nil {
		out.window = time.Duration(*r.StabilizationWindowSeconds) * time.Second
	}
	if r.SelectPolicy != nil {
		out.selector = *r.SelectPolicy
	}
	out.policies = r.Policies
	return out
}

// NewPlanner returns a planner for the capacity settings of a validated
// policy. Without a behavior, only the clamps apply: the HPA that KEDA feeds
// applies its own behavior, and stabilizing twice would double the delay.
func NewPlanner(c policy.Capacity) *Planner {
	p := &Planner{c: c, hpa: NewHPA(c, c.ToleranceValue(), c.HPAScaleDownWindow(), 0)}
	if c.Behavior != nil {
		p.up = newRules(c.Behavior.ScaleUp)
		p.down = newRules(c.Behavior.ScaleDown)
	} else {
		p.up.selector, p.down.selector = policy.SelectMax, policy.SelectMax
	}
	p.keep = max(p.up.window, p.down.window)
	for _, r := range [][]policy.ScalingPolicy{p.up.policies, p.down.policies} {
		for _, sp := range r {
			p.keep = max(p.keep, time.Duration(sp.PeriodSeconds)*time.Second)
		}
	}
	return p
}

// Current returns the last count Next returned and whether there was one.
func (p *Planner) Current() (int32, bool) { return p.current, p.started }

// Seed sets the previous count, e.g. the last one written before a restart.
func (p *Planner) Seed(replicas int32) {
	p.current, p.started = replicas, true
	p.hpa.Seed(replicas)
	p.hpaAt = time.Time{}
}

// Next takes the recommendation for time t (already clamped by Need) and
// returns the count to publish after stabilization and rate limits. Calls
// must come with non-decreasing t.
func (p *Planner) Next(t time.Time, recommended int32) int32 {
	p.now = t
	p.prune(t)
	if !p.started {
		// Nothing to limit against yet: the first answer is the recommendation.
		recommended = p.clamp(recommended)
		p.started = true
		p.current = recommended
		p.hpa.Seed(recommended)
		p.hpaBefore = recommended
		p.answerHPA(t, recommended)
		p.recs = append(p.recs, recommendation{t, recommended})
		return recommended
	}
	p.replayHPA(t)
	p.hpaBefore = p.hpa.Count()
	if c := p.clamp(p.current); c != p.current {
		// Like the HPA controller, a count outside [min, max] (seeded from
		// before the bounds changed) goes straight to the nearest bound,
		// without stabilization or rate limits.
		p.changes = append(p.changes, change{t, c - p.current})
		p.current = c
		p.answerHPA(t, c)
		return c
	}
	stabilized := p.stabilize(t, recommended)
	next := p.limit(stabilized)
	if held := p.hpa.Count(); p.c.ClearsTolerance() && next > held {
		// An increase the HPA would skip is lifted to the smallest one it
		// takes, within the rate limits and max.
		next = ClearTolerance(next, held, p.c.ToleranceValue(), p.limit(math.MaxInt32))
	}
	p.answerHPA(t, next)
	if next != p.current {
		p.changes = append(p.changes, change{t, next - p.current})
	}
	p.current = next
	return next
}

func (p *Planner) clamp(n int32) int32 {
	return max(p.c.Min, min(n, p.c.Max))
}

// stabilize is the HPA's stabilizeRecommendationWithBehaviors: the lowest
// recommendation of the scale-up window bounds a scale-up, the highest of the
// scale-down window bounds a scale-down.
func (p *Planner) stabilize(t time.Time, recommended int32) int32 {
	upRec, downRec := recommended, recommended
	for _, r := range p.recs {
		if p.up.window > 0 && r.t.After(t.Add(-p.up.window)) {
			upRec = min(upRec, r.replicas)
		}
		if p.down.window > 0 && r.t.After(t.Add(-p.down.window)) {
			downRec = max(downRec, r.replicas)
		}
	}
	p.recs = append(p.recs, recommendation{t, recommended})
	out := p.current
	if out < upRec {
		out = upRec
	}
	if out > downRec {
		out = downRec
	}
	return out
}

// limit is the HPA's convertDesiredReplicasWithBehaviorRate.
func (p *Planner) limit(desired int32) int32 {
	cur := p.current
	switch {
	case desired > cur:
		limit := p.scaleUpLimit()
		if limit < cur {
			limit = cur
		}
		return min(desired, limit, p.c.Max)
	case desired < cur:
		limit := p.scaleDownLimit()
		if limit > cur {
			limit = cur
		}
		return max(desired, limit, p.c.Min)
	}
	return desired
}

// changeIn sums the scale-ups and the scale-downs of the period before now.
func (p *Planner) changeIn(period time.Duration) (added, removed int32) {
	for _, c := range p.changes {
		if c.t.After(p.now.Add(-period)) {
			if c.delta > 0 {
				added += c.delta
			} else {
				removed -= c.delta
			}
		}
	}
	return added, removed
}

func (p *Planner) scaleUpLimit() int32 {
	r := p.up
	if r.selector == policy.SelectDisabled {
		return p.current
	}
	if len(r.policies) == 0 {
		return math.MaxInt32
	}
	result := int32(math.MinInt32)
	if r.selector == policy.SelectMin {
		result = math.MaxInt32
	}
	for _, sp := range r.policies {
		added, removed := p.changeIn(time.Duration(sp.PeriodSeconds) * time.Second)
		start := p.current - added + removed
		var proposed int32
		if sp.Type == policy.PodsScalingPolicy {
			proposed = saturate(float64(start) + float64(sp.Value))
		} else {
			proposed = saturate(math.Ceil(float64(start) * (1 + float64(sp.Value)/100)))
			// A percentage of zero pods is zero: allow one so that a
			// series at zero replicas can scale up at all.
			proposed = max(proposed, start+1)
		}
		if r.selector == policy.SelectMin {
			result = min(result, proposed)
		} else {
			result = max(result, proposed)
		}
	}
	return result
}

func (p *Planner) scaleDownLimit() int32 {
	r := p.down
	if r.selector == policy.SelectDisabled {
		return p.current
	}
	if len(r.policies) == 0 {
		return math.MinInt32
	}
	result := int32(math.MaxInt32)
	if r.selector == policy.SelectMin {
		result = math.MinInt32
	}
	for _, sp := range r.policies {
		added, removed := p.changeIn(time.Duration(sp.PeriodSeconds) * time.Second)
		start := p.current + removed - added
		var proposed int32
		if sp.Type == policy.PodsScalingPolicy {
			proposed = start - sp.Value
		} else {
			proposed = int32(float64(start) * (1 - float64(sp.Value)/100))
		}
		if r.selector == policy.SelectMin {
			result = max(result, proposed)
		} else {
			result = min(result, proposed)
		}
	}
	return result
}

// saturate converts a replica count to int32, clamping instead of wrapping
// around, so that a huge policy value means "unlimited" rather than a
// negative limit that blocks scaling.
func saturate(f float64) int32 {
	return int32(max(math.MinInt32, min(math.MaxInt32, f)))
}

// prune forgets what no window or period can reach any more.
func (p *Planner) prune(t time.Time) {
	cut := t.Add(-p.keep)
	i := 0
	for i < len(p.recs) && !p.recs[i].t.After(cut) {
		i++
	}
	p.recs = p.recs[i:]
	j := 0
	for j < len(p.changes) && !p.changes[j].t.After(cut) {
		j++
	}
	p.changes = p.changes[j:]
}
