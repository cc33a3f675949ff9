// Package scale holds Kedastral's scale-out tests, run against the built
// kedastral binary: forecaster replicas sharing the series of a policy with
// --shard.count on one Prometheus, and the forecaster and the scaler end to
// end on each Prometheus-compatible backend (Prometheus, VictoriaMetrics).
package scale

import (
	"os"
	"testing"

	"github.com/kedastral/kedastral/test/testutil"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testutil.RemoveKedastral()
	os.Exit(code)
}
