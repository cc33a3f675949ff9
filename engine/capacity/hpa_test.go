package capacity

import (
	"math"
	"testing"
	"time"

	"github.com/kedastral/kedastral/engine/policy"
)

// TestHPA pins the model of the HPA controller: the tolerance on the
// metric's ratio, ceil and clamps, scale-up at once, scale-down held by the
// highest recommendation of the window, and a run of equal recommendations
// leaving the window with its last sync.
func TestHPA(t *testing.T) {
	t0 := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	h := NewHPA(policy.Capacity{Min: 2, Max: 30}, 0.1, 5*time.Minute, 10)
	for i, s := range []struct {
		at     time.Duration
		metric float64
		want   int32
	}{
		{0, 10.9, 10},                             // 1.09: within the tolerance
		{15 * time.Second, 11.2, 12},              // 1.12: ceil(11.2)
		{30 * time.Second, 8.95, 12},              // recommends 9; the window holds 12
		{45 * time.Second, 8.95, 12},              // 9 again: one run
		{5 * time.Minute, 8.95, 12},               // 12 was recorded at 15s, not before 0s
		{5*time.Minute + 15*time.Second, 8.95, 9}, // 12 has left the window
		{5*time.Minute + 30*time.Second, math.NaN(), 9},
		{5*time.Minute + 45*time.Second, 0.5, 9},   // recommends 2; the 9s until 5m30s hold it
		{10*time.Minute + 30*time.Second, 0.5, 2},  // they have left the window: clamped to min
		{10*time.Minute + 45*time.Second, 100, 30}, // up at once, clamped to max
	} {
		got := h.Sync(t0.Add(s.at), s.metric)
		if got != s.want || h.Count() != got {
			t.Fatalf("sync %d at %s with %v: %d (count %d), want %d", i, s.at, s.metric, got, h.Count(), s.want)
		}
		// Settled once the window holds only the count it holds: at 0s
		// and once 9 and later 2 are all that is left; not while a higher
		// count holds a fall back, nor while an older, lower one is still
		// in the window (after a rise: conservative, never wrong).
		if want := i == 0 || i == 5 || i == 6 || i == 8; h.Settled() != want {
			t.Errorf("sync %d at %s: settled %v, want %v", i, s.at, h.Settled(), want)
		}
	}
}
