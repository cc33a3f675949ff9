package model

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// TestAutoCombination: once the losses are known, auto answers at every
// horizon with the mean of the leader's bound and the bound of the other
// model with the lowest loss there, and names both.
func TestAutoCombination(t *testing.T) {
	const step = 5 * time.Minute
	t0 := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(4, 4))
	v := make([]float64, 4*288)
	for i := range v {
		v[i] = 100 + 50*math.Sin(2*math.Pi*float64(i)/288) + 8*rng.NormFloat64()
	}
	m, err := New(Auto, Config{Step: step, Quantile: 0.8})
	if err != nil {
		t.Fatal(err)
	}
	a := m.(*auto)
	a.keepOuts = true
	const n = 8
	var out []float64
	for i := 3 * 288; i <= len(v); i++ {
		out, err = a.Forecast(context.Background(), History{Start: t0, Step: step, Values: v[:i]}, n)
		if err != nil {
			t.Fatal(err)
		}
	}
	for j := range n {
		lead, runner := a.Combined(j + 1)
		if runner == "" || runner == lead {
			t.Fatalf("horizon %d: leader %s, runner-up %q: want two models", j+1, lead, runner)
		}
		c, s := a.chosen[j], a.second[j]
		want := (a.outs[c][j] + a.outs[s][j]) / 2
		if math.Abs(out[j]-want) > 1e-9*math.Abs(want) {
			t.Errorf("horizon %d: answer %v, want the mean %v of %s and %s", j+1, out[j], want, lead, runner)
		}
		secLoss, _ := a.models[s].lossAt(j + 1)
		for i, cm := range a.models {
			if l, ok := cm.lossAt(j + 1); ok && i != c && l < secLoss {
				t.Errorf("horizon %d: runner-up %s (loss %v) but %s has %v", j+1, runner, secLoss, autoModels[i], l)
			}
		}
	}
	// A part that starts answering NaN (a fault no built-in part shows on
	// demand, hence the wrapper) must not spoil the answer: the leader
	// answers alone where the runner-up has no finite value.
	s0 := a.second[0]
	a.models[s0].inner = nanModel{a.models[s0].inner}
	v = append(v, v[len(v)-288])
	out, err = a.Forecast(context.Background(), History{Start: t0, Step: step, Values: v}, n)
	if err != nil {
		t.Fatal(err)
	}
	for j := range n {
		if !finite(out[j]) {
			t.Fatalf("horizon %d: %v after the runner-up %s answered NaN", j+1, out[j], autoModels[s0])
		}
		if a.chosen[j] != s0 && a.second[j] == s0 {
			t.Errorf("horizon %d: the NaN part %s still averaged in", j+1, autoModels[s0])
		}
	}
	// Before any loss is known the leader answers alone.
	fresh, _ := New(Auto, Config{Step: step, Quantile: 0.8})
	if _, err := fresh.Forecast(context.Background(), History{Start: t0, Step: step, Values: v[:3*288]}, n); err != nil {
		t.Fatal(err)
	}
	if _, runner := fresh.(*auto).Combined(1); runner != "" {
		t.Errorf("no loss known yet, runner-up %s", runner)
	}
}

// nanModel answers NaN wherever its model answers.
type nanModel struct{ Model }

func (m nanModel) Forecast(ctx context.Context, h History, n int) ([]float64, error) {
	f, err := m.Model.Forecast(ctx, h, n)
	out := make([]float64, len(f))
	for i := range out {
		out[i] = math.NaN()
	}
	return out, err
}
