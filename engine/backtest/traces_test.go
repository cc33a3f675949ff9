package backtest_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"testing"
	"time"

	prommodel "github.com/prometheus/common/model"

	"github.com/kedastral/kedastral/engine/backtest"
	"github.com/kedastral/kedastral/engine/model"
	"github.com/kedastral/kedastral/engine/policy"
	"github.com/kedastral/kedastral/engine/trace"
)

// traceFiles are the real traces the tests use, all in testdata/traces.
var traceFiles = []string{
	"ms_mongodb_app_query_rate_1min.csv",
	"nab_nyc_taxi_passengers_30min.csv",
	"nab_aws_elb_request_count_5min.csv",
	"nab_twitter_volume_aapl_5min.csv",
}

// loadTrace returns the trace as a regular history.
func loadTrace(tb testing.TB, name string) model.History {
	tb.Helper()
	path, ok := trace.Locate(name)
	if !ok {
		tb.Fatalf("trace %s is in neither testdata/traces nor $%s", name, trace.TracesEnv)
	}
	points, err := trace.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	step := trace.Step(points)
	points, _ = trace.Align(points, step)
	h, err := trace.Regular(points, step)
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

// tracePolicy is the policy the measurements use for a trace: its step, pod
// start-up (lead time) 3m, a forecast 15 minutes ahead (one step on coarser
// traces), and targetPerPod such that the mean demand needs 20 pods.
func tracePolicy(tb testing.TB, h model.History, modelType string, q float64, extra string) *policy.ForecastPolicy {
	tb.Helper()
	var sum float64
	var n int
	for _, v := range h.Values {
		if !math.IsNaN(v) {
			sum += v
			n++
		}
	}
	target := sum / float64(n) / 20
	ahead := max(15*time.Minute, h.Step)
	horizon := max(30*time.Minute, h.Step)
	src := fmt.Sprintf(`apiVersion: kedastral.io/v1alpha1
kind: ForecastPolicy
metadata: {name: trace}
spec:
  targetRef: {name: app}
  step: %s
  horizon: %s
  leadTime: 3m
  ahead: [%s]
  capacity:
    targetPerPod: %v
    max: 100000
%s
  model: {type: %s, quantile: %v}
  sources: [{name: q, query: 'sum(up)'}]
`, prommodel.Duration(h.Step), prommodel.Duration(horizon), prommodel.Duration(ahead), target, extra, modelType, q)
	set, errs := policy.Parse([]byte(src), "trace.yaml")
	if len(errs) > 0 {
		tb.Fatal(errs)
	}
	return set.Policies[0]
}

// run backtests p on h with the simulated HPA of the policy, or with the
// scale-down window in KEDASTRAL_SIM_WINDOW (a measurement of a planner
// that assumes another window than the HPA's).
func run(tb testing.TB, h model.History, p *policy.ForecastPolicy) *backtest.Result {
	tb.Helper()
	window := time.Duration(-1)
	if w := os.Getenv("KEDASTRAL_SIM_WINDOW"); w != "" {
		d, err := time.ParseDuration(w)
		if err != nil {
			tb.Fatal(err)
		}
		window = d
	}
	r, err := backtest.Run(context.Background(), backtest.Options{Policy: p, Trace: h, Tolerance: -1, ScaleDownStabilization: window})
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

func scaling(r *backtest.Result, method string) backtest.ScalingScore {
	for _, s := range r.Scaling {
		if s.Method == method {
			return s
		}
	}
	panic(method)
}

func mase(r *backtest.Result, method string) float64 {
	for _, f := range r.Forecast {
		if f.Method == method {
			return f.MASE
		}
	}
	panic(method)
}
