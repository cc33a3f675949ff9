package backtest_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	prommodel "github.com/prometheus/common/model"

	"github.com/kedastral/kedastral/engine/backtest"
	"github.com/kedastral/kedastral/engine/model"
	"github.com/kedastral/kedastral/engine/policy"
	"github.com/kedastral/kedastral/engine/trace"
)

// traceFiles are the real traces: the first two ship in testdata/traces,
// the others are read from ../shared/traces when present.
var traceFiles = []string{
	"ms_mongodb_app_query_rate_1min.csv",
	"nab_nyc_taxi_passengers_30min.csv",
	"nab_aws_elb_request_count_5min.csv",
	"nab_twitter_volume_aapl_5min.csv",
	"wikipedia_all_projects_pagecounts_hourly.csv",
	"nasa_http_requests_5min.csv",
	"isp_eu_transatlantic_bits_5min.csv",
}

// loadTrace returns the trace as a regular history, skipping the test when
// a shared trace is absent outside CI.
func loadTrace(tb testing.TB, name string) model.History {
	tb.Helper()
	path, ok := trace.Locate(name)
	if !ok {
		if os.Getenv("CI") == "" {
			tb.Skipf("trace %s not found in testdata/traces or ../shared/traces; the shared traces are not part of the repository", name)
		}
		tb.Fatalf("trace %s not found", name)
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

// TestExperiment prints the per-trace tables of docs/backtest.md. It is a
// measurement, not a check: run it with KEDASTRAL_EXPERIMENT=models,... and
// KEDASTRAL_QUANTILES=0.5,0.85.
func TestExperiment(t *testing.T) {
	models := os.Getenv("KEDASTRAL_EXPERIMENT")
	if models == "" {
		t.Skip("set KEDASTRAL_EXPERIMENT to a comma-separated list of models")
	}
	qs := os.Getenv("KEDASTRAL_QUANTILES")
	if qs == "" {
		qs = "0.5"
	}
	extra := os.Getenv("KEDASTRAL_CAPACITY")
	var b strings.Builder
	b.WriteString("| trace | model | q | MASE | naive | seasonal naive | predict_linear | coverage | unserved vs reactive | replica-h vs oracle | oracle unserved vs reactive | reactive replica-h vs oracle | reactive unserved | naive unserved vs reactive | naive replica-h vs oracle | reactive+10% unserved vs reactive | reactive+10% replica-h vs oracle | perfect forecast unserved vs reactive | perfect forecast replica-h vs oracle | time |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, name := range traceFiles {
		h := loadTrace(t, name)
		for _, m := range strings.Split(models, ",") {
			for _, qstr := range strings.Split(qs, ",") {
				var q float64
				fmt.Sscan(qstr, &q)
				began := time.Now()
				r0 := tracePolicy(t, h, m, q, extra)
				r := run(t, h, r0)
				k := scaling(r, backtest.Kedastral)
				rh := backtest.ReactiveHeadroom(r, h, r0.Spec.Capacity, 1.1)
				pf := scaling(r, backtest.PerfectForecast)
				fmt.Fprintf(&b, "| %s | %s | %v | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %.4f | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %s |\n",
					strings.TrimSuffix(filepath.Base(name), ".csv"), m, q, mase(r, backtest.Kedastral), mase(r, backtest.Naive), mase(r, backtest.SeasonalNaive), mase(r, backtest.PredictLinear),
					r.Forecast[0].Coverage, k.UnservedVsReactive, k.VsOracle,
					scaling(r, backtest.Oracle).UnservedVsReactive, scaling(r, backtest.Reactive).VsOracle, scaling(r, backtest.Reactive).Unserved,
					scaling(r, backtest.Naive).UnservedVsReactive, scaling(r, backtest.Naive).VsOracle, rh.UnservedVsReactive, rh.VsOracle, pf.UnservedVsReactive, pf.VsOracle, time.Since(began).Round(time.Millisecond))
			}
		}
	}
	t.Log("\n" + b.String())
}
