package capacity

import (
	"math"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/kedastral/kedastral/engine/policy"
)

func TestNeed(t *testing.T) {
	c := policy.Capacity{TargetPerPod: 200, Headroom: 1, Min: 2, Max: 50}
	with := func(f func(*policy.Capacity)) policy.Capacity {
		cc := c
		f(&cc)
		return cc
	}
	for _, tc := range []struct {
		name string
		load float64
		c    policy.Capacity
		want int32
	}{
		{name: "exact multiple is not rounded up", load: 400, c: c, want: 2},
		{name: "just above a multiple rounds up", load: 400.001, c: c, want: 3},
		{name: "just below a multiple rounds up", load: 399.9, c: c, want: 2},
		{name: "fraction rounds up", load: 1010, c: c, want: 6},
		// 400*1.2/200 = 2.4 → 3; without headroom it would be 2.
		{name: "headroom", load: 400, c: with(func(c *policy.Capacity) { c.Headroom = 1.2 }), want: 3},
		// The seed example: 1000 rps * 1.2 / 200 = 6 exactly.
		{name: "headroom exact multiple", load: 1000, c: with(func(c *policy.Capacity) { c.Headroom = 1.2 }), want: 6},
		// 100*1.1/10 is 11.000000000000002 in float64: 11 pods, not 12.
		{name: "float noise at a multiple", load: 100, c: policy.Capacity{TargetPerPod: 10, Headroom: 1.1, Max: 100}, want: 11},
		{name: "headroom 0 means 1", load: 400, c: with(func(c *policy.Capacity) { c.Headroom = 0 }), want: 2},
		{name: "clamped to min", load: 10, c: c, want: 2},
		{name: "clamped to max", load: 1e9, c: c, want: 50},
		{name: "max exactly", load: 10000, c: c, want: 50},
		{name: "one above max", load: 10000.5, c: c, want: 50},
		{name: "zero load needs min", load: 0, c: c, want: 2},
		{name: "negative load needs min", load: -500, c: c, want: 2},
		{name: "NaN load needs min", load: math.NaN(), c: c, want: 2},
		{name: "infinite load needs max", load: math.Inf(1), c: c, want: 50},
		{name: "min 0 scales to zero", load: 0, c: with(func(c *policy.Capacity) { c.Min = 0 }), want: 0},
		{name: "min 0 small load needs one pod", load: 1, c: with(func(c *policy.Capacity) { c.Min = 0 }), want: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Need(tc.load, tc.c); got != tc.want {
				t.Errorf("Need(%v) = %d, want %d", tc.load, got, tc.want)
			}
		})
	}
}

func TestPeak(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	for _, tc := range []struct {
		name      string
		forecast  []float64
		leadSteps int
		want      float64 // NaN: want NaN
	}{
		{name: "peak within lead steps", forecast: []float64{1, 5, 3, 9, 2, 100}, leadSteps: 5, want: 9},
		{name: "value right after the lead is ignored", forecast: []float64{1, 5, 3, 9, 2, 100}, leadSteps: 4, want: 9},
		{name: "peak at the last lead step", forecast: []float64{1, 5, 3, 9, 2, 100}, leadSteps: 6, want: 100},
		{name: "one step", forecast: []float64{7, 50}, leadSteps: 1, want: 7},
		{name: "lead longer than forecast", forecast: []float64{4, 8}, leadSteps: 10, want: 8},
		{name: "NaN skipped", forecast: []float64{nan, 3, nan, 2}, leadSteps: 4, want: 3},
		{name: "infinities skipped", forecast: []float64{inf, 3, math.Inf(-1)}, leadSteps: 3, want: 3},
		{name: "negative values", forecast: []float64{-5, -2, -9}, leadSteps: 3, want: -2},
		{name: "all NaN", forecast: []float64{nan, nan}, leadSteps: 2, want: nan},
		{name: "NaN inside lead, value after it", forecast: []float64{nan, 10}, leadSteps: 1, want: nan},
		{name: "zero lead steps", forecast: []float64{1, 2}, leadSteps: 0, want: nan},
		{name: "empty forecast", forecast: nil, leadSteps: 3, want: nan},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Peak(tc.forecast, tc.leadSteps)
			if math.IsNaN(tc.want) {
				if !math.IsNaN(got) {
					t.Errorf("Peak = %v, want NaN", got)
				}
				return
			}
			if got != tc.want {
				t.Errorf("Peak = %v, want %v", got, tc.want)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func pods(v, period int32) policy.ScalingPolicy {
	return policy.ScalingPolicy{Type: policy.PodsScalingPolicy, Value: v, PeriodSeconds: period}
}

func percent(v, period int32) policy.ScalingPolicy {
	return policy.ScalingPolicy{Type: policy.PercentScalingPolicy, Value: v, PeriodSeconds: period}
}

// step is one call of Planner.Next: at base+at seconds, recommendation rec,
// expected answer want.
type step struct {
	at   int
	rec  int32
	want int32
}

func TestPlanner(t *testing.T) {
	base := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	capacity := func(min, max int32, b *policy.Behavior) policy.Capacity {
		// These cases mirror the HPA's behavior; TestPlannerTolerance covers
		// the tolerance clearing on top.
		return policy.Capacity{TargetPerPod: 100, Headroom: 1, Min: min, Max: max, Behavior: b, ClearTolerance: new(false)}
	}
	for _, tc := range []struct {
		name  string
		c     policy.Capacity
		seed  *int32
		steps []step
	}{
		{
			name: "no behavior passes recommendations through",
			c:    capacity(2, 50, nil),
			steps: []step{
				{0, 10, 10},
				{15, 2, 2}, // no default 300s scale-down window: the HPA after KEDA has its own
				{30, 50, 50},
				{45, 3, 3},
			},
		},
		{
			name: "no behavior clamps recommendations outside the bounds",
			c:    capacity(2, 50, nil),
			steps: []step{
				{0, 0, 2}, // first answer too
				{15, 80, 50},
				{30, 1, 2},
			},
		},
		{
			name: "scale-down stabilization keeps the max of the window then drops",
			c:    capacity(1, 50, &policy.Behavior{ScaleDown: &policy.ScalingRules{StabilizationWindowSeconds: ptr[int32](300)}}),
			steps: []step{
				{0, 10, 10},
				{60, 4, 10},  // window (−240, 60]: {10, 4} → 10
				{120, 6, 10}, // {10, 4, 6}
				{299, 5, 10}, // the 10 of t=0 is still inside (−1, 299]
				{300, 5, 6},  // (0, 300]: the 10 at exactly t=0 is out; max{4, 6, 5, 5} = 6
				{420, 3, 5},  // (120, 420]: {5, 5, 3}
				{600, 3, 3},  // (300, 600]: {3, 3}
				{610, 8, 8},  // scaling up is not delayed by the scale-down window
				{620, 2, 8},  // and a new high holds again
			},
		},
		{
			name: "scale-up stabilization keeps the min of the window",
			c:    capacity(1, 50, &policy.Behavior{ScaleUp: &policy.ScalingRules{StabilizationWindowSeconds: ptr[int32](120)}}),
			steps: []step{
				{0, 2, 2},
				{30, 10, 2},   // window (−90, 30]: min{2, 10} = 2
				{60, 12, 2},   // min{2, 10, 12}
				{120, 12, 10}, // (0, 120]: the 2 at t=0 is out; min{10, 12, 12}
				{150, 12, 12}, // (30, 150]: min{12, 12, 12}
				{160, 1, 1},   // scaling down is not delayed by the scale-up window
			},
		},
		{
			name: "stabilization then rate limit",
			c: capacity(1, 50, &policy.Behavior{ScaleDown: &policy.ScalingRules{
				StabilizationWindowSeconds: ptr[int32](60),
				Policies:                   []policy.ScalingPolicy{pods(2, 60)},
			}}),
			seed: ptr[int32](10),
			steps: []step{
				{0, 4, 8},   // no earlier recommendation: stabilized 4; limit 10−2 = 8
				{30, 7, 8},  // window max{4, 7} = 7; limit: period start 8+2 = 10 → 8
				{60, 4, 7},  // (0, 60]: max{7, 4} = 7; limit start 8 → 6 → the window holds at 7
				{90, 4, 6},  // (30, 90]: max{4, 4} = 4; limit: −1@60 → start 8 → 6
				{120, 4, 5}, // (60, 120]: −1@90 → start 7 → 5
			},
		},
		{
			// A policy period longer than the window keeps older
			// recommendations in memory; the window must still end there.
			name: "scale-down window ends exactly window seconds back",
			c: capacity(1, 50, &policy.Behavior{
				ScaleUp:   &policy.ScalingRules{Policies: []policy.ScalingPolicy{pods(100, 300)}},
				ScaleDown: &policy.ScalingRules{StabilizationWindowSeconds: ptr[int32](60)},
			}),
			steps: []step{
				{0, 10, 10},
				{59, 4, 10},
				{60, 4, 4}, // (0, 60]: the 10 at exactly t=0 is out
			},
		},
		{
			name: "scale-up window ends exactly window seconds back",
			c: capacity(1, 50, &policy.Behavior{
				ScaleUp:   &policy.ScalingRules{StabilizationWindowSeconds: ptr[int32](60)},
				ScaleDown: &policy.ScalingRules{Policies: []policy.ScalingPolicy{pods(100, 300)}},
			}),
			steps: []step{
				{0, 2, 2},
				{59, 10, 2},
				{60, 10, 10}, // (0, 60]: the 2 at exactly t=0 is out
			},
		},
		{
			name: "scale-up Pods limit per period",
			c:    capacity(1, 100, &policy.Behavior{ScaleUp: &policy.ScalingRules{Policies: []policy.ScalingPolicy{pods(4, 60)}}}),
			seed: ptr[int32](10),
			steps: []step{
				{0, 30, 14},  // period start 10, +4
				{15, 30, 14}, // +4 at t=0 is in (−45, 15]: start 14−4 = 10 → 14
				{59, 30, 14},
				{60, 30, 18}, // (0, 60]: the +4 at t=0 is out: start 14 → 18
				{61, 15, 15}, // scale-down is not limited
				{62, 30, 18}, // (2, 62]: +4, −3 → start 15−4+3 = 14 → 18
				{63, 30, 18},
			},
		},
		{
			name: "scale-up several changes inside one period",
			c:    capacity(1, 100, &policy.Behavior{ScaleUp: &policy.ScalingRules{Policies: []policy.ScalingPolicy{pods(5, 60)}}}),
			seed: ptr[int32](10),
			steps: []step{
				{0, 12, 12},  // within the limit 15
				{10, 14, 14}, // start 12−2 = 10 → limit 15
				{20, 20, 15}, // start 14−4 = 10 → 15
				{30, 20, 15}, // start 15−5 = 10
				{61, 20, 17}, // (1, 61]: +2@10, +1@20 → start 15−3 = 12 → 17
				{70, 20, 19}, // (10, 70]: +1@20, +2@61 → start 17−3 = 14 → 19
				{80, 25, 20}, // (20, 80]: +2@61, +2@70 → start 19−4 = 15 → 20
			},
		},
		{
			name: "scale-up Percent limit per period rounds up",
			c:    capacity(1, 100, &policy.Behavior{ScaleUp: &policy.ScalingRules{Policies: []policy.ScalingPolicy{percent(50, 60)}}}),
			seed: ptr[int32](10),
			steps: []step{
				{0, 100, 15},   // ceil(10*1.5)
				{30, 100, 15},  // start 15−5 = 10
				{60, 100, 23},  // start 15: ceil(22.5)
				{120, 100, 35}, // ceil(34.5)
			},
		},
		{
			name: "scale-up selectPolicy Max takes the larger change",
			c: capacity(1, 50, &policy.Behavior{ScaleUp: &policy.ScalingRules{
				SelectPolicy: ptr(policy.SelectMax),
				Policies:     []policy.ScalingPolicy{pods(4, 60), percent(100, 60)},
			}}),
			seed: ptr[int32](2),
			steps: []step{
				{0, 50, 6},   // max(2+4, 2*2)
				{30, 50, 6},  // start 2
				{60, 50, 12}, // max(6+4, 6*2)
				{120, 50, 24},
				{180, 50, 48},
				{240, 50, 50}, // max(52, 96) is above max 50; the recommendation is 50
			},
		},
		{
			name: "scale-up selectPolicy Min takes the smaller change",
			c: capacity(1, 50, &policy.Behavior{ScaleUp: &policy.ScalingRules{
				SelectPolicy: ptr(policy.SelectMin),
				Policies:     []policy.ScalingPolicy{pods(4, 60), percent(100, 60)},
			}}),
			seed: ptr[int32](2),
			steps: []step{
				{0, 50, 4},    // min(2+4, 2*2)
				{30, 50, 4},   // start 2
				{60, 50, 8},   // min(8, 8)
				{120, 50, 12}, // min(12, 16)
				{180, 50, 16}, // min(16, 24)
				{240, 50, 20},
			},
		},
		{
			name: "scale-up selectPolicy Disabled",
			c: capacity(1, 50, &policy.Behavior{ScaleUp: &policy.ScalingRules{
				SelectPolicy: ptr(policy.SelectDisabled),
				Policies:     []policy.ScalingPolicy{pods(4, 60)},
			}}),
			seed: ptr[int32](5),
			steps: []step{
				{0, 20, 5},
				{600, 20, 5},
				{615, 3, 3}, // scale-down is still allowed
				{630, 20, 3},
			},
		},
		{
			name: "scale-down Pods limit per period",
			c:    capacity(1, 100, &policy.Behavior{ScaleDown: &policy.ScalingRules{Policies: []policy.ScalingPolicy{pods(2, 60)}}}),
			seed: ptr[int32](20),
			steps: []step{
				{0, 5, 18},   // 20−2
				{30, 5, 18},  // −2 at t=0 in the period: start 20
				{60, 5, 16},  // start 18
				{90, 17, 17}, // scale-up is not limited
				{100, 5, 16}, // (40, 100]: −2@60, +1@90 → start 17+2−1 = 18 → 16
				{119, 5, 16},
				{120, 5, 14}, // (60, 120]: −2@60 is out; +1@90, −1@100 → start 16−1+1 = 16 → 14
			},
		},
		{
			name: "scale-down Percent limit per period rounds down",
			c:    capacity(1, 100, &policy.Behavior{ScaleDown: &policy.ScalingRules{Policies: []policy.ScalingPolicy{percent(50, 60)}}}),
			seed: ptr[int32](15),
			steps: []step{
				{0, 1, 7},  // int(15*0.5) = int(7.5)
				{59, 1, 7}, // start 15
				{60, 1, 3}, // int(3.5)
				{120, 1, 1},
			},
		},
		{
			name: "scale-down selectPolicy Max takes the larger change",
			c: capacity(1, 100, &policy.Behavior{ScaleDown: &policy.ScalingRules{
				Policies: []policy.ScalingPolicy{pods(3, 60), percent(10, 60)}, // selectPolicy defaults to Max
			}}),
			seed: ptr[int32](50),
			steps: []step{
				{0, 1, 45},  // min(50−3, int(50*0.9)) = min(47, 45)
				{30, 1, 45}, // start 50
				{60, 1, 40}, // min(42, int(40.5))
			},
		},
		{
			name: "scale-down selectPolicy Min takes the smaller change",
			c: capacity(1, 100, &policy.Behavior{ScaleDown: &policy.ScalingRules{
				SelectPolicy: ptr(policy.SelectMin),
				Policies:     []policy.ScalingPolicy{pods(3, 60), percent(10, 60)},
			}}),
			seed: ptr[int32](50),
			steps: []step{
				{0, 1, 47},  // max(47, 45)
				{30, 1, 47}, // start 50
				{60, 1, 44}, // max(44, int(42.3))
			},
		},
		{
			name: "scale-down selectPolicy Disabled",
			c: capacity(1, 100, &policy.Behavior{ScaleDown: &policy.ScalingRules{
				SelectPolicy: ptr(policy.SelectDisabled),
			}}),
			seed: ptr[int32](50),
			steps: []step{
				{0, 1, 50},
				{3600, 1, 50},
				{3615, 60, 60}, // scale-up is still allowed
				{3630, 10, 60},
			},
		},
		{
			name: "policies with different periods",
			c: capacity(1, 100, &policy.Behavior{ScaleUp: &policy.ScalingRules{
				SelectPolicy: ptr(policy.SelectMin),
				Policies:     []policy.ScalingPolicy{pods(4, 15), pods(10, 120)},
			}}),
			seed: ptr[int32](10),
			steps: []step{
				{0, 100, 14},   // min(10+4, 10+10)
				{15, 100, 18},  // 15s: start 14 → 18; 120s: start 10 → 20
				{30, 100, 20},  // min(22, 20)
				{45, 100, 20},  // 120s period still starts at 10
				{120, 100, 24}, // (0, 120]: +4@15, +2@30 → 120s start 14 → 24; 15s: 24
			},
		},
		{
			name: "scale-up limit stops at max",
			c:    capacity(1, 20, &policy.Behavior{ScaleUp: &policy.ScalingRules{Policies: []policy.ScalingPolicy{pods(100, 60)}}}),
			seed: ptr[int32](10),
			steps: []step{
				{0, 1000, 20}, // a recommendation the caller did not clamp
			},
		},
		{
			name: "scale-down limit stops at min",
			c:    capacity(5, 50, &policy.Behavior{ScaleDown: &policy.ScalingRules{Policies: []policy.ScalingPolicy{pods(10, 60)}}}),
			seed: ptr[int32](12),
			steps: []step{
				{0, 0, 5}, // limit 2, min 5
			},
		},
		{
			name: "seed above max goes straight to max then limits apply",
			c:    capacity(1, 50, &policy.Behavior{ScaleDown: &policy.ScalingRules{Policies: []policy.ScalingPolicy{pods(1, 60)}}}),
			seed: ptr[int32](60),
			steps: []step{
				{0, 40, 50},  // as the HPA does for current > maxReplicas (not 59)
				{15, 40, 50}, // the −10 counts: start 60 → limit 59 > 50 → hold
				{60, 40, 49}, // start 50 → 49
			},
		},
		{
			name: "seed below min goes straight to min",
			c:    capacity(2, 50, &policy.Behavior{ScaleUp: &policy.ScalingRules{Policies: []policy.ScalingPolicy{pods(1, 60)}}}),
			seed: ptr[int32](0),
			steps: []step{
				{0, 10, 2},  // not 1
				{30, 10, 2}, // start 0 → limit 1 < 2 → hold
				{60, 10, 3},
			},
		},
		{
			name: "Percent scale-up from zero",
			c:    capacity(0, 50, &policy.Behavior{ScaleUp: &policy.ScalingRules{Policies: []policy.ScalingPolicy{percent(100, 60)}}}),
			seed: ptr[int32](0),
			steps: []step{
				{0, 10, 1}, // 100% of 0 is 0; one pod is always allowed
				{60, 10, 2},
				{120, 10, 4},
			},
		},
		{
			name: "huge Pods value does not overflow",
			c:    capacity(1, 100, &policy.Behavior{ScaleUp: &policy.ScalingRules{Policies: []policy.ScalingPolicy{pods(math.MaxInt32, 60)}}}),
			seed: ptr[int32](10),
			steps: []step{
				{0, 50, 50},
			},
		},
		{
			name: "huge Percent value does not overflow",
			c:    capacity(1, 100000, &policy.Behavior{ScaleUp: &policy.ScalingRules{Policies: []policy.ScalingPolicy{percent(math.MaxInt32, 60)}}}),
			seed: ptr[int32](1000),
			steps: []step{
				{0, 5000, 5000},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := NewPlanner(tc.c)
			if _, ok := p.Current(); ok {
				t.Fatal("Current reports a count before any")
			}
			if tc.seed != nil {
				p.Seed(*tc.seed)
			}
			for _, s := range tc.steps {
				got := p.Next(base.Add(time.Duration(s.at)*time.Second), s.rec)
				if got != s.want {
					t.Errorf("t=%ds rec=%d: got %d, want %d", s.at, s.rec, got, s.want)
				}
				if cur, ok := p.Current(); !ok || cur != got {
					t.Errorf("t=%ds: Current() = %d, %v, want %d, true", s.at, cur, ok, got)
				}
			}
		})
	}
}

// TestPlannerTolerance: an increase the HPA would skip (within 10% of the
// count it holds) is lifted just past the tolerance; decreases within the
// tolerance are published but the HPA is assumed to stay, so a later
// increase is measured from what the HPA holds.
func TestPlannerTolerance(t *testing.T) {
	base := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		c     policy.Capacity
		steps []step
	}{
		{
			name: "default tolerance 0.1",
			c:    policy.Capacity{TargetPerPod: 1, Min: 1, Max: 100},
			steps: []step{
				{0, 10, 10},
				{15, 11, 12}, // 11/10 is skipped by the HPA; 12/10 is not
				{30, 12, 12},
				{45, 11, 11}, // within tolerance of 12: HPA stays at 12
				{60, 13, 14}, // measured from 12, not 11: 13/12 skipped
				{75, 40, 40}, // clear increases pass unchanged
				{90, 41, 45}, // 41/40, ..., 44/40 are within 0.1
				{105, 200, 100},
				{120, 99, 99},   // HPA stays at 100
				{135, 100, 100}, // no increase over what the HPA holds
			},
		},
		{
			// The HPA takes the decrease to 26 only when the 30 it
			// recorded until 45s leaves its 5-minute window, at 5m45s.
			name: "a decrease the HPA holds back",
			c:    policy.Capacity{TargetPerPod: 1, Min: 1, Max: 100},
			steps: []step{
				{0, 30, 30},
				{60, 26, 26},
				{120, 32, 34}, // measured from the 30 the HPA still holds, not 26
				{180, 26, 26},
				{480, 28, 29}, // the HPA has scaled down to 26 since
			},
		},
		{
			name: "without a scale-down window",
			c:    policy.Capacity{TargetPerPod: 1, Min: 1, Max: 100, HPAScaleDownStabilization: new(model.Duration(0))},
			steps: []step{
				{0, 30, 30},
				{60, 26, 26},
				{120, 28, 29}, // the HPA took 26 at once
			},
		},
		{
			name: "off",
			c:    policy.Capacity{TargetPerPod: 1, Min: 1, Max: 100, ClearTolerance: new(false)},
			steps: []step{
				{0, 10, 10},
				{15, 11, 11},
			},
		},
		{
			name: "tolerance 0.25, capped at max",
			c:    policy.Capacity{TargetPerPod: 1, Min: 1, Max: 12, Tolerance: new(0.25)},
			steps: []step{
				{0, 8, 8},
				{15, 9, 11},  // 9/8, 10/8 within 0.25; 11/8 = 1.375
				{30, 12, 12}, // 12/11 within, but max is 12
			},
		},
		{
			name: "tolerance 0 passes through",
			c:    policy.Capacity{TargetPerPod: 1, Min: 1, Max: 100, Tolerance: new(0.0)},
			steps: []step{
				{0, 10, 10},
				{15, 11, 11},
				{30, 10, 10},
			},
		},
		{
			name: "within a scale-up rate limit",
			c: policy.Capacity{TargetPerPod: 1, Min: 1, Max: 100, Behavior: &policy.Behavior{
				ScaleUp: &policy.ScalingRules{Policies: []policy.ScalingPolicy{pods(1, 60)}}}},
			steps: []step{
				{0, 10, 10},
				{15, 11, 11}, // the lift to 12 would break the limit of one pod a minute
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := NewPlanner(tc.c)
			for _, s := range tc.steps {
				if got := p.Next(base.Add(time.Duration(s.at)*time.Second), s.rec); got != s.want {
					t.Errorf("t=%ds rec=%d: got %d, want %d", s.at, s.rec, got, s.want)
				}
			}
		})
	}
}

func TestWithinTolerance(t *testing.T) {
	for _, tc := range []struct {
		desired, current int32
		tol              float64
		want             bool
	}{
		{11, 10, 0.1, true},
		{12, 10, 0.1, false},
		{9, 10, 0.1, true},
		{8, 10, 0.1, false},
		{1, 0, 0.1, false},
		{0, 0, 0.1, true},
		{10, 10, 0, true},
		{11, 10, 0, false},
	} {
		if got := WithinTolerance(tc.desired, tc.current, tc.tol); got != tc.want {
			t.Errorf("WithinTolerance(%d, %d, %v) = %v, want %v", tc.desired, tc.current, tc.tol, got, tc.want)
		}
	}
}

func TestRecommend(t *testing.T) {
	c := policy.Capacity{TargetPerPod: 10, Headroom: 1.5, Min: 1, Max: 100}
	off := c
	off.NeverBelowReactive = new(false)
	fc := []float64{20, 30, 10, 500}
	for _, tc := range []struct {
		name     string
		c        policy.Capacity
		observed float64
		want     int32
	}{
		{"forecast above reactive", c, 20, 5},      // peak 30 · 1.5 / 10 = 4.5
		{"observed above the forecast", c, 95, 10}, // ceil(95/10), no headroom
		{"floor off", off, 95, 5},
		{"NaN observed sets no floor", c, math.NaN(), 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Recommend(fc, 3, tc.observed, tc.c); got != tc.want {
				t.Errorf("Recommend = %d, want %d", got, tc.want)
			}
		})
	}
	if got := Reactive(95, c); got != 10 {
		t.Errorf("Reactive(95) = %d, want 10", got)
	}
}
