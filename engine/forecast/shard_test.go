package forecast

import (
	"fmt"
	"math"
	"testing"
	"time"

	promodel "github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
)

func TestShard(t *testing.T) {
	const n = 6000
	series := make([]labels.Labels, n)
	for i := range series {
		series[i] = labels.FromStrings("deployment", fmt.Sprint("d", i), PolicyLabel, "fleet")
	}
	owners := func(count int) []int {
		out := make([]int, n)
		for i, l := range series {
			out[i] = Shard{Count: count}.Owner(l)
			owned := 0
			for idx := range count {
				if (Shard{Index: idx, Count: count}).Owns(l) {
					owned++
				}
			}
			if owned != 1 {
				t.Fatalf("count %d: series %s owned by %d shards, want exactly 1", count, l, owned)
			}
		}
		return out
	}
	prev := owners(1)
	for count := 2; count <= 5; count++ {
		cur := owners(count)
		per := make([]int, count)
		moved := 0
		for i := range cur {
			per[cur[i]]++
			if cur[i] != prev[i] {
				moved++
				if cur[i] != count-1 {
					t.Errorf("count %d: series %d moved from shard %d to %d, want only moves to the new shard", count, i, prev[i], cur[i])
				}
			}
		}
		// Balanced within 10%, and adding a replica moves about 1/count.
		for idx, k := range per {
			if math.Abs(float64(k)-n/float64(count)) > 0.1*n/float64(count) {
				t.Errorf("count %d: shard %d has %d series, want about %d", count, idx, k, n/count)
			}
		}
		if want := n / count; math.Abs(float64(moved-want)) > 0.1*float64(want) {
			t.Errorf("count %d: %d series moved, want about %d", count, moved, want)
		}
		prev = cur
	}
	// Stable across processes and versions: pinned owners.
	for i, want := range pinnedOwners {
		if got := (Shard{Count: 3}).Owner(series[i]); got != want {
			t.Errorf("owner of %s among 3 = %d, want %d (the hash must not change: replicas of different versions must agree)", series[i], got, want)
		}
	}
	if !(Shard{}).Owns(series[0]) || !(Shard{Index: 0, Count: 1}).Owns(series[0]) {
		t.Error("an unsharded forecaster must own every series")
	}
}

// pinnedOwners are the owners among 3 shards of the first series of TestShard.
var pinnedOwners = []int{0, 0, 0, 1, 2, 2, 2, 1, 2, 0, 1, 1}

func TestHistoryCompaction(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	h := history{step: time.Minute}
	h.compactTo(10, 0, 5)
	for i := range 27 {
		v := float64(i)
		if i == 7 {
			v = math.NaN()
		}
		h.set(t0.Add(time.Duration(i)*time.Minute), v)
	}
	h.compact()
	// 27 points: the oldest 15 in 3 coarse points, the newest 12 (>= 10) at the step.
	if h.coarse.len() != 3 || h.fine.len() != 12 {
		t.Fatalf("coarse %d fine %d, want 3 and 12", h.coarse.len(), h.fine.len())
	}
	var buf []float64
	v := h.view(&buf)
	if v.Len() != 27 || !v.Start.Equal(t0) {
		t.Fatalf("view %d points from %v", v.Len(), v.Start)
	}
	// Coarse points: mean of 0..4 = 2, of 5,6,8,9 = 7, of 10..14 = 12.
	for i, want := range []float64{2, 2, 2, 2, 2, 7, 7, 7, 7, 7, 12, 12, 12, 12, 12, 15, 16} {
		if v.Values[i] != want {
			t.Errorf("view[%d] = %v, want %v", i, v.Values[i], want)
		}
	}
	if ts, last, ok := h.last(); !ok || last != 26 || !ts.Equal(t0.Add(26*time.Minute)) {
		t.Errorf("last = %v %v %v", ts, last, ok)
	}
	// A refetch of the newest points lands; one in the coarse part is ignored.
	h.set(t0.Add(25*time.Minute), 250.5)
	h.set(t0.Add(2*time.Minute), 99)
	if v := h.view(&buf); v.Values[25] != 250.5 || v.Values[2] != 2 {
		t.Errorf("after refetch: %v", v.Values)
	}
	// Trimming drops whole coarse points.
	h.trimBefore(t0.Add(7 * time.Minute))
	if v := h.view(&buf); !v.Start.Equal(t0.Add(5*time.Minute)) || v.Len() != 22 || v.Values[0] != 7 {
		t.Errorf("after trim: start %v len %d first %v", v.Start, v.Len(), v.Values[0])
	}
	h.trimBefore(t0.Add(20 * time.Minute))
	if v := h.view(&buf); !v.Start.Equal(t0.Add(20*time.Minute)) || v.Len() != 7 || v.Values[0] != 20 {
		t.Errorf("after trim into the fine part: start %v len %d %v", v.Start, v.Len(), v.Values)
	}
	// float32 storage, exact newest value.
	h.set(t0.Add(27*time.Minute), 0.1)
	if _, last, _ := h.last(); last != 0.1 {
		t.Errorf("last = %v, want exactly 0.1", last)
	}
	if v := h.view(&buf); math.Abs(v.Values[v.Len()-1]-0.1) > 1e-8 {
		t.Errorf("stored 0.1 as %v", v.Values[v.Len()-1])
	}
	if h.bytes() == 0 {
		t.Error("bytes = 0")
	}
}

// TestEvaluatorShards: three evaluators with Shard{i, 3} on the same series
// forecast disjoint parts whose union is every series, and only one writes
// the policy's capacity series.
func TestEvaluatorShards(t *testing.T) {
	now := time.Date(2026, 3, 2, 12, 0, 30, 0, time.UTC)
	q := &recorded{}
	for i := range 30 {
		q.series = append(q.series, flat(labels.FromStrings("svc", fmt.Sprint("s", i)), now.Add(-3*time.Hour), now, 10))
	}
	p := mustPolicy(t, "sharded", "")
	seen := map[string]int{}
	capacity := 0
	for i := range 3 {
		e := NewEvaluator(p, q)
		e.SetShard(Shard{Index: i, Count: 3})
		if _, err := e.Fetch(t.Context(), now); err != nil {
			t.Fatal(err)
		}
		c := e.Evaluate(t.Context(), now)
		if len(c.Series) == 0 {
			t.Errorf("shard %d forecasts nothing", i)
		}
		for _, r := range c.Series {
			if r.Err != nil {
				t.Fatal(r.Err)
			}
			seen[r.Labels.Get("svc")]++
		}
		for _, s := range c.Samples {
			if s.Labels.Get(labels.MetricName) == CapacityMetric {
				capacity++
			}
		}
	}
	if len(seen) != 30 {
		t.Errorf("%d series forecast, want 30", len(seen))
	}
	for s, n := range seen {
		if n != 1 {
			t.Errorf("series %s forecast by %d shards", s, n)
		}
	}
	if capacity != 1 {
		t.Errorf("%d capacity samples, want 1", capacity)
	}
}

func TestCompactionSettings(t *testing.T) {
	for _, tc := range []struct {
		lookback, step, full time.Duration
		keep, factor         int
	}{
		{24 * time.Hour, time.Minute, DefaultFullResolution, 0, 0}, // all at the step
		{7 * 24 * time.Hour, time.Minute, DefaultFullResolution, 0, 0},
		{14 * 24 * time.Hour, time.Minute, DefaultFullResolution, 8*1440 + 30, 5},
		{14 * 24 * time.Hour, time.Minute, 49 * time.Hour, 49*60 + 30, 5},
		{14 * 24 * time.Hour, time.Minute, 0, 0, 0},                         // off
		{14 * 24 * time.Hour, 5 * time.Minute, DefaultFullResolution, 0, 0}, // already at the coarse step
	} {
		p := mustPolicy(t, "c", "")
		p.Spec.Lookback = promodel.Duration(tc.lookback)
		p.Spec.Step = promodel.Duration(tc.step)
		e := NewEvaluator(p, &recorded{})
		e.SetFullResolution(tc.full)
		keep, wide, factor := e.compaction()
		if factor != tc.factor || (factor > 1 && keep != tc.keep) {
			t.Errorf("lookback %v step %v full %v: compaction %d, %d; want %d, %d", tc.lookback, tc.step, tc.full, keep, factor, tc.keep, tc.factor)
		}
		// Two days and the horizon at 16 bits or more.
		if factor > 1 && wide != int(narrowAfter/tc.step)+30 {
			t.Errorf("lookback %v step %v full %v: %d steps at 16 bits, want two days and the horizon", tc.lookback, tc.step, tc.full, wide)
		}
	}
}

// TestEvaluatorWarmupBudget: with a budget too small for any fit, each cycle
// still starts a model per worker and reports the other new series as
// warming up; every series is forecast once all have started.
func TestEvaluatorWarmupBudget(t *testing.T) {
	now := time.Date(2026, 3, 2, 12, 0, 30, 0, time.UTC)
	q := &recorded{}
	for i := range 6 {
		q.series = append(q.series, flat(labels.FromStrings("svc", fmt.Sprint("s", i)), now.Add(-3*time.Hour), now.Add(time.Hour), 10))
	}
	e := NewEvaluator(mustPolicy(t, "warm", ""), q)
	e.parallelism = 1
	e.SetWarmupBudget(time.Nanosecond)
	for cycle := 1; cycle <= 6; cycle++ {
		at := now.Add(time.Duration(cycle) * time.Minute)
		if _, err := e.Fetch(t.Context(), at); err != nil {
			t.Fatal(err)
		}
		c := e.Evaluate(t.Context(), at)
		ok, warming := 0, 0
		for _, r := range c.Series {
			switch {
			case r.Err == nil:
				ok++
			case IsInsufficientData(r.Err):
				warming++
			default:
				t.Fatal(r.Err)
			}
		}
		if ok != cycle || warming != 6-cycle {
			t.Errorf("cycle %d: %d forecast, %d warming up; want %d and %d", cycle, ok, warming, cycle, 6-cycle)
		}
	}
}
