package backtest_test

import (
	"context"
	"testing"

	"github.com/kedastral/kedastral/engine/backtest"
)

// BenchmarkBacktest14dAuto replays 14 days of 1-minute history (the MongoDB
// trace, its first three days repeated at the end) with the auto model.
// Run with -benchtime 1x; GOMAXPROCS=1 measures one core.
func BenchmarkBacktest14dAuto(b *testing.B) {
	h := loadTrace(b, "ms_mongodb_app_query_rate_1min.csv")
	h.Values = append(h.Values, h.Values[:14*1440-len(h.Values)]...)
	p := tracePolicy(b, h, "auto", 0.85, "")
	b.ResetTimer()
	for range b.N {
		if _, err := backtest.Run(context.Background(), backtest.Options{Policy: p, Trace: h, Tolerance: -1, ScaleDownStabilization: -1}); err != nil {
			b.Fatal(err)
		}
	}
}
