package promapi_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/kedastral/kedastral/promapi"
	"github.com/kedastral/kedastral/promapi/promtest"
)

// cycleBatch is what one forecaster cycle writes: two series at one
// timestamp, values derived from the cycle number so that a missing or
// misplaced sample shows.
func cycleBatch(t0 time.Time, i int) []promapi.Sample {
	ts := t0.Add(time.Duration(i) * 10 * time.Second).UnixMilli()
	return []promapi.Sample{
		{Labels: labels.FromStrings("__name__", "queue_test_desired", "policy", "p"), T: ts, V: float64(i)},
		{Labels: labels.FromStrings("__name__", "queue_test_observed", "policy", "p"), T: ts, V: float64(100 + i)},
	}
}

func startQueue(t *testing.T, w promapi.BatchWriter, maxSamples int, reg prometheus.Registerer) *promapi.Queue {
	t.Helper()
	q, err := promapi.NewQueue(promapi.QueueConfig{
		Writer: w, MaxSamples: maxSamples, Registerer: reg,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- q.Run(context.Background()) }()
	t.Cleanup(func() {
		q.Stop()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return q
}

// cycleWrite writes one batch the way the forecaster's cycle does: bounded
// by a short timeout. It fails the test if Write blocks evaluation.
func cycleWrite(t *testing.T, q *promapi.Queue, samples []promapi.Sample) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	begin := time.Now()
	_, err := q.Write(ctx, samples)
	if d := time.Since(begin); d > time.Second {
		t.Errorf("Write blocked for %s", d)
	}
	return err
}

func waitDrained(t *testing.T, q *promapi.Queue, p *promtest.FaultProxy) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		b, _ := q.Pending()
		if b == 0 && p.PendingFaults() == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue not drained: %d batches, %d faults left", b, p.PendingFaults())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestQueueFaults puts a fault-injecting proxy in front of a real Prometheus
// and checks, by querying Prometheus, that every sample of a retried batch
// arrived, in order, and that only refused (400) batches are missing.
func TestQueueFaults(t *testing.T) {
	t.Parallel()
	srv := promtest.StartT(t, promtest.Options{})
	proxy := promtest.NewFaultProxy(t, srv.RemoteWriteURL())
	url := proxy.URL()
	w := newWriter(t, promapi.WriterConfig{
		URL: url, MaxRetries: 1, Timeout: 250 * time.Millisecond,
		MinBackoff: 5 * time.Millisecond, MaxBackoff: 10 * time.Millisecond,
	})
	reg := prometheus.NewRegistry()
	q := startQueue(t, w, 1000, reg)
	t0 := time.Now().Add(-10 * time.Minute).Truncate(10 * time.Second)

	cycle := 0
	var lost []int // cycles whose samples must not be in Prometheus
	write := func() error {
		err := cycleWrite(t, q, cycleBatch(t0, cycle))
		cycle++
		return err
	}
	mustWrite := func() {
		t.Helper()
		if err := write(); err != nil {
			t.Fatalf("cycle %d: %v", cycle-1, err)
		}
	}

	mustWrite() // healthy

	t.Run("5xx retried until the store recovers", func(t *testing.T) {
		proxy.Down(500) // 500, 501 (not implemented is 5xx too), 502
		for range 4 {
			err := write()
			if !errors.Is(err, promapi.ErrQueued) || !promapi.IsRetryable(err) {
				t.Fatalf("got %v, want a retryable ErrQueued", err)
			}
		}
		if b, s := q.Pending(); b != 4 || s != 8 {
			t.Errorf("pending %d batches, %d samples; want 4, 8", b, s)
		}
		proxy.Down(0)
		waitDrained(t, q, proxy)
		mustWrite()
	})
	t.Run("429 with Retry-After retried", func(t *testing.T) {
		proxy.Inject(promtest.Fault{Status: 429, RetryAfter: "1"}, promtest.Fault{Status: 429, RetryAfter: "1"})
		begin := time.Now()
		for range 2 {
			if err := write(); err != nil && !errors.Is(err, promapi.ErrQueued) {
				t.Fatal(err)
			}
		}
		waitDrained(t, q, proxy)
		if d := time.Since(begin); d < time.Second {
			t.Errorf("recovered after %s, before Retry-After", d)
		}
	})
	t.Run("400 dropped and counted, later batches not held up", func(t *testing.T) {
		proxy.Inject(promtest.Fault{Status: 400})
		before := metricValue(t, reg, "kedastral_remote_write_samples_dropped_total", "rejected")
		err := write()
		lost = append(lost, cycle-1)
		if err == nil || promapi.IsRetryable(err) || errors.Is(err, promapi.ErrQueued) {
			t.Fatalf("got %v, want a non-retryable error", err)
		}
		if got := metricValue(t, reg, "kedastral_remote_write_samples_dropped_total", "rejected") - before; got != 2 {
			t.Errorf("dropped %g samples, want 2", got)
		}
		mustWrite()
	})
	t.Run("slow answers: timed out, resent, stored once", func(t *testing.T) {
		proxy.Inject(promtest.Fault{Delay: time.Second}, promtest.Fault{Delay: time.Second})
		for range 2 {
			if err := write(); err != nil && !errors.Is(err, promapi.ErrQueued) {
				t.Fatal(err)
			}
		}
		waitDrained(t, q, proxy)
		mustWrite()
	})
	t.Run("connection refused, then back", func(t *testing.T) {
		// The proxy answers 502 while Prometheus is down; here Prometheus
		// itself is killed and restarted.
		if err := srv.Kill(); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if err := write(); !errors.Is(err, promapi.ErrQueued) {
				t.Fatalf("got %v, want ErrQueued", err)
			}
		}
		ctx, cancel := context.WithTimeout(t.Context(), promtest.StartTimeout)
		defer cancel()
		if err := srv.Restart(ctx); err != nil {
			t.Fatal(err)
		}
		waitDrained(t, q, proxy)
		mustWrite()
	})
	if t.Failed() {
		return
	}

	if got := metricValue(t, reg, "kedastral_remote_write_queue_samples", ""); got != 0 {
		t.Errorf("queue_samples %g, want 0", got)
	}
	if got := metricValue(t, reg, "kedastral_remote_write_samples_dropped_total", "overflow"); got != 0 {
		t.Errorf("overflow drops %g, want 0", got)
	}
	if got := metricValue(t, reg, "kedastral_remote_write_samples_retried_total", ""); got == 0 {
		t.Errorf("no retried samples counted")
	}
	checkStored(t, srv, t0, cycle, lost)
}

// checkStored queries Prometheus for the raw samples of cycles [0, n) and
// fails for every one that is missing, has the wrong value, or is in lost
// and present anyway.
func checkStored(t *testing.T, srv *promtest.Server, t0 time.Time, n int, lost []int) {
	t.Helper()
	c := newClient(t, promapi.ClientConfig{URL: srv.URL()})
	isLost := map[int]bool{}
	for _, i := range lost {
		isLost[i] = true
	}
	end := t0.Add(time.Duration(n-1) * 10 * time.Second)
	for _, name := range []string{"queue_test_desired", "queue_test_observed"} {
		got, err := c.Query(t.Context(), fmt.Sprintf("count_over_time(%s[%ds])", name, n*10), end)
		if err != nil {
			t.Fatal(err)
		}
		want := n - len(lost)
		if len(got) != 1 || got[0].V != float64(want) {
			t.Errorf("%s: %+v samples stored, want %d", name, got, want)
		}
		// Each sample at its own timestamp: timestamp(x) at the sample's
		// time is that time only if the sample is there.
		for i := range n {
			ts := t0.Add(time.Duration(i) * 10 * time.Second)
			got, err := c.Query(t.Context(), fmt.Sprintf("%s and timestamp(%s) == %d", name, name, ts.Unix()), ts)
			if err != nil {
				t.Fatal(err)
			}
			wantV := float64(i)
			if name == "queue_test_observed" {
				wantV += 100
			}
			switch {
			case isLost[i] && len(got) != 0:
				t.Errorf("%s cycle %d: stored although refused", name, i)
			case !isLost[i] && (len(got) != 1 || got[0].V != wantV):
				t.Errorf("%s cycle %d: got %+v, want %g", name, i, got, wantV)
			}
		}
	}
}

// TestQueueOverflow fills a small queue while the store fails: the oldest
// batches are dropped and counted, the newest are kept and sent, and
// Prometheus holds exactly those.
func TestQueueOverflow(t *testing.T) {
	t.Parallel()
	srv := promtest.StartT(t, promtest.Options{})
	proxy := promtest.NewFaultProxy(t, srv.RemoteWriteURL())
	url := proxy.URL()
	w := newWriter(t, promapi.WriterConfig{URL: url, MaxRetries: -1, Timeout: 250 * time.Millisecond})
	reg := prometheus.NewRegistry()
	q := startQueue(t, w, 6, reg) // three batches of two samples
	t0 := time.Now().Add(-10 * time.Minute).Truncate(10 * time.Second)

	proxy.Down(503)
	const n = 6
	for i := range n {
		err := cycleWrite(t, q, cycleBatch(t0, i))
		if err == nil {
			t.Fatalf("cycle %d written through a failing store", i)
		}
		if b, s := q.Pending(); s > 6 || b > 3 {
			t.Fatalf("queue holds %d batches, %d samples: not bounded by 6 samples", b, s)
		}
	}
	proxy.Down(0)
	waitDrained(t, q, proxy)
	dropped := metricValue(t, reg, "kedastral_remote_write_samples_dropped_total", "overflow")
	if dropped == 0 || int(dropped)%2 != 0 {
		t.Fatalf("overflow drops %g, want whole batches", dropped)
	}
	// Which batches went depends on whether the head was in flight at each
	// overflow; the store must hold exactly the others, the newest among
	// them, with their values.
	c := newClient(t, promapi.ClientConfig{URL: srv.URL()})
	var lost []int
	for i := range n {
		ts := t0.Add(time.Duration(i) * 10 * time.Second)
		got, err := c.Query(t.Context(), fmt.Sprintf("queue_test_desired and timestamp(queue_test_desired) == %d", ts.Unix()), ts)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 {
			lost = append(lost, i)
		}
	}
	if len(lost) != int(dropped)/2 || slices.Contains(lost, n-1) {
		t.Fatalf("cycles %v missing from the store, %g samples dropped for overflow", lost, dropped)
	}
	checkStored(t, srv, t0, n, lost)
}

func TestQueueStop(t *testing.T) {
	t.Parallel()
	url, requests := countingServer(t, http.StatusServiceUnavailable, nil)
	w := newWriter(t, promapi.WriterConfig{URL: url, MaxRetries: -1, Timeout: 100 * time.Millisecond})
	reg := prometheus.NewRegistry()
	q, err := promapi.NewQueue(promapi.QueueConfig{Writer: w, Registerer: reg, MinBackoff: 10 * time.Millisecond, MaxBackoff: 10 * time.Millisecond, FlushTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- q.Run(context.Background()) }()
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if _, err := q.Write(ctx, cycleBatch(time.Now(), 0)); !errors.Is(err, promapi.ErrQueued) {
		t.Fatalf("got %v, want ErrQueued", err)
	}
	begin := time.Now()
	q.Stop()
	q.Stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if d := time.Since(begin); d > 2*time.Second {
		t.Errorf("Stop took %s", d)
	}
	if requests.Load() == 0 {
		t.Errorf("no attempt made")
	}
	if got := metricValue(t, reg, "kedastral_remote_write_samples_dropped_total", "shutdown"); got != 2 {
		t.Errorf("shutdown drops %g, want 2", got)
	}
	if _, err := q.Write(t.Context(), cycleBatch(time.Now(), 1)); err == nil || errors.Is(err, promapi.ErrQueued) {
		t.Errorf("Write after Stop: %v", err)
	}
}

func TestNewQueueErrors(t *testing.T) {
	t.Parallel()
	w := newWriter(t, promapi.WriterConfig{URL: "http://127.0.0.1:1/api/v1/write"})
	for _, cfg := range []promapi.QueueConfig{
		{},
		{Writer: w, MaxSamples: -1},
		{Writer: w, MinBackoff: time.Second, MaxBackoff: time.Millisecond},
	} {
		if _, err := promapi.NewQueue(cfg); err == nil {
			t.Errorf("NewQueue(%+v) succeeded", cfg)
		}
	}
}

// metricValue returns the value of the metric name in reg, of its series
// with reason="<reason>" when reason is set; 0 when absent.
func metricValue(t *testing.T, reg *prometheus.Registry, name, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			ok := reason == ""
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "reason" && lp.GetValue() == reason {
					ok = true
				}
			}
			if ok {
				return m.GetGauge().GetValue() + m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func TestWriteErrorRetryAfter(t *testing.T) {
	t.Parallel()
	// The writer measures an HTTP-date Retry-After against its clock, fixed
	// here, so the wait it computes does not depend on how long the test
	// takes to run.
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name, header string
		want         time.Duration
	}{
		{"seconds", "7", 7 * time.Second},
		{"HTTP-date", now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second},
		{"HTTP-date in the past", now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"negative", "-5", 0},
		{"invalid", "soon", 0},
		{"none", "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var h http.Header
			if tc.header != "" {
				h = http.Header{"Retry-After": {tc.header}}
			}
			url, _ := countingServer(t, http.StatusTooManyRequests, h)
			w := newWriter(t, promapi.WriterConfig{URL: url, MaxRetries: -1, Now: func() time.Time { return now }})
			_, err := w.Write(t.Context(), cycleBatch(time.Now(), 0))
			we, ok := errors.AsType[*promapi.WriteError](err)
			if !ok || !we.Retryable || we.RetryAfter != tc.want {
				t.Fatalf("Retry-After %q: got %#v, want a retryable error asking to wait %s", tc.header, err, tc.want)
			}
		})
	}
}
