package backtest_test

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"github.com/kedastral/kedastral/engine/backtest"
	"github.com/kedastral/kedastral/engine/policy"
)

// TestObjectiveBacktest: a policy with an objective calibrates its quantile
// in the backtest from the forecaster's model of the HPA, whose verdict on
// every row must be the simulated HPA's (what the backtest scores), and the
// share of time short must land near the objective. The report says it.
func TestObjectiveBacktest(t *testing.T) {
	h := loadTrace(t, "ms_mongodb_app_query_rate_1min.csv")
	p := tracePolicy(t, h, "auto", 0.5, "")
	p.Spec.Objective = &policy.Objective{UnderprovisionedTime: 0.01}
	r := run(t, h, p)
	if r.Objective != 0.01 || !(r.LevelMean > 0 && r.LevelMean < 1) {
		t.Fatalf("objective %v, mean level %v", r.Objective, r.LevelMean)
	}
	var sim backtest.Sim
	for _, s := range r.Sims {
		if s.Method == backtest.Kedastral {
			sim = s
		}
	}
	differ, rows := 0, 0
	for j := r.ScoredFrom; j < len(r.Rows); j++ {
		d := h.Values[j]
		if r.Rows[j].Desired < 0 || math.IsNaN(d) {
			continue
		}
		rows++
		if simShort := sim.Unserved[j] > 1e-9*max(d, 1); simShort != r.Rows[j].Short {
			differ++
		}
	}
	if differ > 0 {
		t.Errorf("the forecaster's model of the HPA and the simulation disagree on %d of %d rows", differ, rows)
	}
	k := scaling(r, backtest.Kedastral)
	if ratio := k.UnderTime / 0.01; ratio < 0.7 || ratio > 1.3 {
		t.Errorf("short %.4f of the time, %.2f× the objective 1%%", k.UnderTime, ratio)
	}
	var b bytes.Buffer
	if err := backtest.WriteText(&b, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"model auto at objective 1% of time short (quantile calibrated online, mean", "objective 1% of time short: achieved"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
}
