//go:build experiment

package backtest_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kedastral/kedastral/engine/backtest"
)

// TestExperiment prints the per-trace tables of docs/backtest.md. It is a
// measurement, not a check, built only with the tag experiment:
//
//	KEDASTRAL_EXPERIMENT=auto,linear KEDASTRAL_QUANTILES=0.5,0.85 \
//	  go test -tags experiment -run TestExperiment -v ./engine/backtest
//
// It runs on traceFiles, or on the comma-separated trace names in
// KEDASTRAL_EXPERIMENT_TRACES, found in testdata/traces or in the directories
// of KEDASTRAL_TRACES (trace.Locate).
func TestExperiment(t *testing.T) {
	models := os.Getenv("KEDASTRAL_EXPERIMENT")
	if models == "" {
		t.Fatal("set KEDASTRAL_EXPERIMENT to a comma-separated list of models")
	}
	traces := traceFiles
	if v := os.Getenv("KEDASTRAL_EXPERIMENT_TRACES"); v != "" {
		traces = strings.Split(v, ",")
	}
	qs := os.Getenv("KEDASTRAL_QUANTILES")
	if qs == "" {
		qs = "0.5"
	}
	extra := os.Getenv("KEDASTRAL_CAPACITY")
	var b strings.Builder
	b.WriteString("| trace | model | q | MASE | naive | seasonal naive | predict_linear | coverage | unserved vs reactive | replica-h vs oracle | oracle unserved vs reactive | reactive replica-h vs oracle | reactive unserved | naive unserved vs reactive | naive replica-h vs oracle | reactive+10% unserved vs reactive | reactive+10% replica-h vs oracle | perfect forecast unserved vs reactive | perfect forecast replica-h vs oracle | time |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, name := range traces {
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
