package loadtest

import (
	"errors"
	"testing"
	"time"
)

// TestRunPacesAndTimesFromDue: calls start no earlier than due, so n calls
// at rate take about n/rate; a call that stalls shows in the latency of the
// calls due while it stalled, not only its own; an error stops the run.
func TestRunPacesAndTimesFromDue(t *testing.T) {
	const n, rate = 200, 2000.0
	r, err := Run(n, 1, rate, func(_, i int) error {
		if i == 100 {
			time.Sleep(20 * time.Millisecond)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if min := time.Duration(float64(n-1) / rate * float64(time.Second)); r.Elapsed < min {
		t.Errorf("%d calls at %v/s took %s, want at least %s", n, rate, r.Elapsed, min)
	}
	// One worker: the calls due during the 20 ms stall (about 40 of them)
	// wait for it, so more than 1% of the calls are late by over 5 ms.
	if p99 := r.Quantile(0.99); p99 < 5*time.Millisecond {
		t.Errorf("p99 %s after a 20 ms stall, want the queued calls' wait counted", p99)
	}
	// The queued calls were late to start; only the stalled one was slow.
	if late := quantile(r.Late, 0.99); late < 5*time.Millisecond {
		t.Errorf("late p99 %s after a 20 ms stall with one worker, want over 5 ms", late)
	}
	if svc := quantile(r.Service, 1); svc < 20*time.Millisecond {
		t.Errorf("slowest call took %s, want the 20 ms stall", svc)
	}
	if svc := quantile(r.Service, 0.5); svc > 5*time.Millisecond {
		t.Errorf("median call took %s to answer, want the stall alone slow", svc)
	}
	if r.Quantile(0.5) > r.Quantile(0.99) || r.Quantile(0.99) > r.Quantile(1) {
		t.Errorf("quantiles not ordered: %s %s %s", r.Quantile(0.5), r.Quantile(0.99), r.Quantile(1))
	}
	boom := errors.New("boom")
	calls := 0
	if _, err := Run(100, 1, 10000, func(_, i int) error {
		calls++
		if i == 10 {
			return boom
		}
		return nil
	}); !errors.Is(err, boom) || calls != 11 {
		t.Errorf("error at call 10: err %v after %d calls, want boom after 11", err, calls)
	}
}
