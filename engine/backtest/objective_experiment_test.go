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

// TestObjectiveTables prints the tables of docs/backtest.md for #19: per
// trace, each objective's achieved share and replica-hours against the
// cheapest fixed quantile that reaches the same share (interpolated on the
// fixed-quantile curve), the defaults' point, and the defaults' curve at
// the cost of reactive scaling with 10/20/30% headroom. A measurement, not
// a check: run it with KEDASTRAL_OBJECTIVE_TABLES=1 (optionally
// KEDASTRAL_TRACES).
func TestObjectiveTables(t *testing.T) {
	if os.Getenv("KEDASTRAL_OBJECTIVE_TABLES") == "" {
		t.Skip("set KEDASTRAL_OBJECTIVE_TABLES=1")
	}
	qs := []float64{0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995}
	objectives := []float64{0.01, 0.02, 0.05}
	var track, defaults, headroom strings.Builder
	track.WriteString("| trace | objective | achieved | × objective | mean quantile | replica-h vs oracle | fixed-quantile curve at that share | vs best fixed quantile |\n|---|---|---|---|---|---|---|---|\n")
	defaults.WriteString("| trace | unserved vs reactive | replica-h vs oracle | time short | perfect forecast replica-h vs oracle | reactive replica-h vs oracle |\n|---|---|---|---|---|---|\n")
	headroom.WriteString("| trace | reactive +10% | Kedastral at that cost | ratio | reactive +20% | Kedastral | ratio | reactive +30% | Kedastral | ratio |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, name := range traceFiles {
		if f := os.Getenv("KEDASTRAL_TRACES"); f != "" && !containsAny(name, strings.Split(f, ",")) {
			continue
		}
		h := loadTrace(t, name)
		short := strings.TrimSuffix(filepath.Base(name), ".csv")
		base := tracePolicy(t, h, "auto", 0.5, "")
		var curve []backtest.ScalingScore
		var def *backtest.Result
		for _, q := range qs {
			p := tracePolicy(t, h, "auto", q, "")
			r := run(t, h, p)
			curve = append(curve, scaling(r, backtest.Kedastral))
			if q == 0.5 {
				def = r
			}
		}
		k := scaling(def, backtest.Kedastral)
		fmt.Fprintf(&defaults, "| %s | %.3f | %.3f | %.4f | %.3f | %.3f |\n", short, k.UnservedVsReactive, k.VsOracle, k.UnderTime,
			scaling(def, backtest.PerfectForecast).VsOracle, scaling(def, backtest.Reactive).VsOracle)
		fmt.Fprintf(&headroom, "| %s", short)
		for _, hr := range []float64{1.1, 1.2, 1.3} {
			rh := backtest.ReactiveHeadroom(def, h, base.Spec.Capacity, hr)
			// Kedastral's curve at the reactive+headroom cost.
			u, ok := interp(curve, rh.ReplicaHours, func(s backtest.ScalingScore) float64 { return s.ReplicaHours }, func(s backtest.ScalingScore) float64 { return s.UnservedVsReactive })
			if ok {
				fmt.Fprintf(&headroom, " | %.3f / %.3f | %.3f | %.2f", rh.UnservedVsReactive, rh.VsOracle, u, u/rh.UnservedVsReactive)
			} else {
				fmt.Fprintf(&headroom, " | %.3f / %.3f | out of the curve | ", rh.UnservedVsReactive, rh.VsOracle)
			}
		}
		headroom.WriteString(" |\n")
		for _, o := range objectives {
			p := tracePolicy(t, h, "auto", 0.5, "")
			p.Spec.Objective = &policy.Objective{UnderprovisionedTime: policy.Percent(o)}
			r := run(t, h, p)
			ks := scaling(r, backtest.Kedastral)
			// The cheapest fixed quantile reaching the achieved share: the
			// curve's replica-hours at that share (time short falls as q
			// rises), interpolated.
			rh, ok := interp(curve, ks.UnderTime, func(s backtest.ScalingScore) float64 { return s.UnderTime }, func(s backtest.ScalingScore) float64 { return s.ReplicaHours })
			fixed, vs := "not reached", ""
			if ok {
				fixed = fmt.Sprintf("%.3f", rh/scaling(r, backtest.Oracle).ReplicaHours)
				vs = fmt.Sprintf("%.3f", ks.ReplicaHours/rh)
			} else {
				lo, hi := curve[len(curve)-1].UnderTime, curve[0].UnderTime
				fixed = fmt.Sprintf("not reached (curve %.4f–%.4f)", lo, hi)
			}
			fmt.Fprintf(&track, "| %s | %v | %.4f | %.2f | %.3f | %.3f | %s | %s |\n", short, policy.Percent(o), ks.UnderTime, ks.UnderTime/o, r.LevelMean, ks.VsOracle, fixed, vs)
		}
	}
	t.Log("\n" + track.String() + "\n" + defaults.String() + "\n" + headroom.String())
}

// interp returns y at x on the curve, linearly between the two points
// whose x bracket it; false when x is outside the curve.
func interp(curve []backtest.ScalingScore, x float64, fx, fy func(backtest.ScalingScore) float64) (float64, bool) {
	for i := 0; i+1 < len(curve); i++ {
		x0, x1 := fx(curve[i]), fx(curve[i+1])
		if (x0-x)*(x1-x) <= 0 && x0 != x1 {
			f := (x - x0) / (x1 - x0)
			return fy(curve[i])*(1-f) + fy(curve[i+1])*f, true
		}
		if x0 == x && x1 == x {
			return min(fy(curve[i]), fy(curve[i+1])), true
		}
	}
	return 0, false
}
