package backtest_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kedastral/kedastral/engine/backtest"
	"github.com/kedastral/kedastral/engine/model"
)

// TestBacktestAppliesEvents replays a flat trace through a policy with an
// event: Kedastral's count is the event's floor from the lead time (3m)
// before the window opens until it closes, as the forecaster would write it.
func TestBacktestAppliesEvents(t *testing.T) {
	h := model.History{Start: t0, Step: time.Minute, Values: make([]float64, 2*1440)}
	for i := range h.Values {
		h.Values[i] = 100
	}
	open := t0.Add(36 * time.Hour)
	p := tracePolicy(t, h, "seasonal", 0.5, "  events:\n    - {name: launch, start: '"+open.Format(time.RFC3339)+"', end: '"+
		open.Add(time.Hour).Format(time.RFC3339)+"', minReplicas: 40}")
	r := run(t, h, p)
	for i, row := range r.Rows {
		now := row.Time.Add(time.Minute) // a row is evaluated at the end of its step
		if i < r.ScoredFrom || now.Before(open.Add(-10*time.Minute)) || now.After(open.Add(70*time.Minute)) {
			continue
		}
		want := int32(20) // 100 at 5 per replica
		if !now.Before(open.Add(-3*time.Minute)) && now.Before(open.Add(time.Hour)) {
			want = 40
		}
		if row.Desired != want {
			t.Errorf("evaluated at %s: desired %d, want %d", now.Format(time.RFC3339), row.Desired, want)
		}
	}
}

func TestBacktestRefusesSeveralSources(t *testing.T) {
	h := model.History{Start: t0, Step: time.Minute, Values: make([]float64, 100)}
	for i := range h.Values {
		h.Values[i] = 1
	}
	p := tracePolicy(t, h, "seasonal", 0.5, "")
	p.Spec.Sources = append(p.Spec.Sources, p.Spec.Sources[0])
	p.Spec.Sources[1].Name = "other"
	_, err := backtest.Run(context.Background(), backtest.Options{Policy: p, Trace: h})
	if err == nil || !strings.Contains(err.Error(), "the policy has 2 sources") {
		t.Fatalf("got %v", err)
	}
}
