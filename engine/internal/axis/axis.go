// Package axis holds what the SVG charts of the backtest report and of the
// forecaster's status page share: round ticks and short numbers.
package axis

import (
	"fmt"
	"math"
)

// Nice returns the top of an axis that starts at 0 and shows max, and its
// ticks: round numbers, 1, 2 or 5 times a power of ten apart, about parts
// of them, the last one at the top.
func Nice(max float64, parts int) (top float64, ticks []float64) {
	if !(max > 0) || math.IsInf(max, 0) {
		max = 1
	}
	step := Step(max / float64(parts))
	n := int(math.Ceil(max/step - 1e-9))
	for k := 0; k <= n; k++ {
		ticks = append(ticks, float64(k)*step)
	}
	return float64(n) * step, ticks
}

// Step is the smallest of 1, 2, 5 × 10^k that is at least x.
func Step(x float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(x)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= x*(1-1e-9) {
			return m * p
		}
	}
	return 10 * p
}

// Short prints v in at most three significant digits, with k, M or G.
func Short(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1e9:
		return fmt.Sprintf("%.3gG", v/1e9)
	case a >= 1e6:
		return fmt.Sprintf("%.3gM", v/1e6)
	case a >= 1e3:
		return fmt.Sprintf("%.3gk", v/1e3)
	}
	return fmt.Sprintf("%.3g", v)
}
