package backtest_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kedastral/kedastral/engine/backtest"
	"github.com/kedastral/kedastral/engine/policy"
)

// TestObjectiveExperiment prints, per trace, the share of time short that
// an objective achieves and its replica-hours. A measurement, not a check:
// run it with KEDASTRAL_OBJECTIVES=1,2,5 (percent) and optionally
// KEDASTRAL_TRACES=mongodb,nasa (substrings of the file names).
func TestObjectiveExperiment(t *testing.T) {
	objs := os.Getenv("KEDASTRAL_OBJECTIVES")
	if objs == "" {
		t.Skip("set KEDASTRAL_OBJECTIVES to a comma-separated list of percentages")
	}
	var b strings.Builder
	b.WriteString("| trace | objective | achieved | ratio | unserved vs reactive | replica-h vs oracle |\n|---|---|---|---|---|---|\n")
	for _, name := range traceFiles {
		if f := os.Getenv("KEDASTRAL_TRACES"); f != "" && !containsAny(name, strings.Split(f, ",")) {
			continue
		}
		h := loadTrace(t, name)
		for _, o := range strings.Split(objs, ",") {
			var pct float64
			fmt.Sscan(o, &pct)
			p := tracePolicy(t, h, "auto", 0.5, "")
			p.Spec.Objective = &policy.Objective{UnderprovisionedTime: policy.Percent(pct / 100)}
			r := run(t, h, p)
			k := scaling(r, backtest.Kedastral)
			var short, n int
			var lsum, lmin, lmax float64 = 0, 1, 0
			for _, row := range r.Rows[r.ScoredFrom:] {
				if row.Desired < 0 {
					continue
				}
				n++
				if row.Short {
					short++
				}
				lsum += row.Level
				lmin, lmax = min(lmin, row.Level), max(lmax, row.Level)
			}
			fmt.Fprintf(&b, "| %s | %v%% | %.4f | %.2f | %.3f | %.3f | model short %.4f, level mean %.3f [%.3f, %.3f] |\n", strings.TrimSuffix(filepath.Base(name), ".csv"), pct, k.UnderTime, k.UnderTime/(pct/100), k.UnservedVsReactive, k.VsOracle,
				float64(short)/float64(n), lsum/float64(n), lmin, lmax)
		}
	}
	t.Log("\n" + b.String())
}

func containsAny(s string, subs []string) bool {
	for _, x := range subs {
		if strings.Contains(s, x) {
			return true
		}
	}
	return false
}
