package axis

import (
	"slices"
	"testing"
)

func TestNice(t *testing.T) {
	for _, c := range []struct {
		max   float64
		parts int
		top   float64
		ticks []float64
	}{
		{9.3, 5, 10, []float64{0, 2, 4, 6, 8, 10}},
		{9.3, 4, 10, []float64{0, 5, 10}},
		{0, 5, 1, []float64{0, 0.2, 0.4, 0.6000000000000001, 0.8, 1}},
		{1234, 5, 1500, []float64{0, 500, 1000, 1500}},
		{100, 5, 100, []float64{0, 20, 40, 60, 80, 100}},
	} {
		top, ticks := Nice(c.max, c.parts)
		if top != c.top || !slices.Equal(ticks, c.ticks) {
			t.Errorf("Nice(%v, %d) = %v, %v; want %v, %v", c.max, c.parts, top, ticks, c.top, c.ticks)
		}
	}
}

func TestShort(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 12.5: "12.5", 1500: "1.5k", 2.5e6: "2.5M", 3e9: "3G", -1500: "-1.5k"} {
		if got := Short(v); got != want {
			t.Errorf("Short(%v) = %q, want %q", v, got, want)
		}
	}
}
