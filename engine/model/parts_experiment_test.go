//go:build experiment

package model_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"testing"
	"time"

	"github.com/kedastral/kedastral/engine/model"
	"github.com/kedastral/kedastral/engine/trace"
)

// TestAutoPartsExperiment prints the 15-minute MAE of each of auto's parts
// on a trace; a measurement, not a check, built only with the tag experiment:
//
//	KEDASTRAL_PARTS=ms_mongodb_app_query_rate_1min.csv go test -tags experiment -run TestAutoPartsExperiment -v ./engine/model
//
// The trace is found in testdata/traces or in the directories of
// KEDASTRAL_TRACES (trace.Locate).
func TestAutoPartsExperiment(t *testing.T) {
	name := os.Getenv("KEDASTRAL_PARTS")
	if name == "" {
		t.Fatal("set KEDASTRAL_PARTS to a trace file name")
	}
	path, ok := trace.Locate(name)
	if !ok {
		t.Fatalf("trace %s is in neither testdata/traces nor $%s", name, trace.TracesEnv)
	}
	pts, _ := trace.ReadFile(path)
	step := trace.Step(pts)
	pts, _ = trace.Align(pts, step)
	h, _ := trace.Regular(pts, step)
	parts, err := model.AutoParts(model.Config{Step: step, Quantile: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	k := max(1, int(15*time.Minute/step))
	from := len(h.Values) / 2
	for name, m := range parts {
		var sum float64
		var n int
		for i := from - 2000; i+k < len(h.Values); i++ {
			lo := max(0, i+1-int(7*24*time.Hour/step))
			f, err := m.Forecast(context.Background(), model.History{Start: h.Start.Add(time.Duration(lo) * step), Step: step, Values: h.Values[lo : i+1]}, 6)
			if err != nil || i < from {
				continue
			}
			if y := h.Values[i+k]; !math.IsNaN(y) {
				sum += math.Abs(y - f[k-1])
				n++
			}
		}
		fmt.Printf("%-16s MAE %.4g\n", name, sum/float64(n))
	}
}
