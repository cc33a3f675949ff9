// Package loadtest offers calls at a fixed rate and measures each one's
// latency from the moment it was due (an open-loop load, as a fleet of KEDA
// operators polling a scaler is): queueing in the server shows in the
// latency instead of slowing the load down. The scaler's benchmarks use it.
package loadtest

import (
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Rate is the offered rate in calls per second: KEDASTRAL_BENCH_RATE, or
// def when it is unset.
func Rate(tb testing.TB, def float64) float64 {
	v := os.Getenv("KEDASTRAL_BENCH_RATE")
	if v == "" {
		return def
	}
	r, err := strconv.ParseFloat(v, 64)
	if err != nil || r <= 0 {
		tb.Fatalf("KEDASTRAL_BENCH_RATE=%q: want a positive number", v)
	}
	return r
}

// Result is what a run measured.
type Result struct {
	Rate      float64         // offered, calls per second
	Latencies []time.Duration // from each call's due time to its answer, sorted
	Late      []time.Duration // from each call's due time to its start, sorted
	Service   []time.Duration // from each call's start to its answer, sorted
	Elapsed   time.Duration
}

// Run makes n calls, the i-th due at start + i/rate, from workers
// goroutines; call(w, i) is call i from worker w. It stops at the first
// error and returns it.
func Run(n, workers int, rate float64, call func(w, i int) error) (Result, error) {
	interval := time.Duration(float64(time.Second) / rate)
	lat := make([]time.Duration, n)
	late := make([]time.Duration, n)
	svc := make([]time.Duration, n)
	var (
		next    atomic.Int64
		wg      sync.WaitGroup
		errOnce sync.Once
		first   error
		failed  atomic.Bool
	)
	start := time.Now().Add(time.Millisecond)
	for w := range workers {
		wg.Go(func() {
			for !failed.Load() {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				due := start.Add(time.Duration(i) * interval)
				if d := time.Until(due); d > 0 {
					time.Sleep(d)
				}
				sent := time.Now()
				late[i] = sent.Sub(due)
				if err := call(w, i); err != nil {
					errOnce.Do(func() { first = err })
					failed.Store(true)
					return
				}
				lat[i] = time.Since(due)
				svc[i] = time.Since(sent)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lat)
	slices.Sort(late)
	slices.Sort(svc)
	return Result{Rate: rate, Latencies: lat, Late: late, Service: svc, Elapsed: elapsed}, first
}

// Quantile is the q-quantile of the latencies.
func (r Result) Quantile(q float64) time.Duration { return quantile(r.Latencies, q) }

func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}

// Report adds p50-µs, p99-µs, max-µs, req/s and offered-req/s to b's
// result, and for a Run late-p99-µs and svc-p99-µs: the 99th percentiles of
// how late the load generator sent a call (its own scheduling delay on a
// busy machine, which the latency includes) and of the time from sending to
// the answer.
func (r Result) Report(b *testing.B) {
	b.ReportMetric(float64(r.Quantile(0.5).Microseconds()), "p50-µs")
	b.ReportMetric(float64(r.Quantile(0.99).Microseconds()), "p99-µs")
	b.ReportMetric(float64(r.Quantile(1).Microseconds()), "max-µs")
	b.ReportMetric(float64(len(r.Latencies))/r.Elapsed.Seconds(), "req/s")
	b.ReportMetric(r.Rate, "offered-req/s")
	if len(r.Late) > 0 {
		b.ReportMetric(float64(quantile(r.Late, 0.99).Microseconds()), "late-p99-µs")
		b.ReportMetric(float64(quantile(r.Service, 0.99).Microseconds()), "svc-p99-µs")
	}
}

// Parallel runs call in b.RunParallel (a closed loop: each goroutine sends
// its next call when the last one answered) and returns every call's
// latency, sorted, with the time the loop took. It stops a goroutine at its
// first error, reported with b.Error.
func Parallel(b *testing.B, call func() error) Result {
	var (
		mu  sync.Mutex
		all []time.Duration
	)
	start := time.Now()
	b.RunParallel(func(p *testing.PB) {
		var local []time.Duration
		for p.Next() {
			t0 := time.Now()
			if err := call(); err != nil {
				b.Error(err)
				return
			}
			local = append(local, time.Since(t0))
		}
		mu.Lock()
		all = append(all, local...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	slices.Sort(all)
	return Result{Latencies: all, Elapsed: elapsed}
}
