package promapi_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/kedastral/kedastral/promapi"
	"github.com/kedastral/kedastral/promapi/promtest"
)

// splitBatch returns one sample at ts for each of n series split_test{i=...}.
func splitBatch(n int, ts int64, v float64) []promapi.Sample {
	out := make([]promapi.Sample, n)
	for i := range out {
		out[i] = promapi.Sample{Labels: labels.FromStrings("__name__", "split_test", "i", fmt.Sprintf("%05d", i)), T: ts, V: v}
	}
	return out
}

// queryCount returns the value of the single-series result of q at t.
func queryCount(t *testing.T, c *promapi.Client, q string, at time.Time) float64 {
	t.Helper()
	got, err := c.Query(t.Context(), q, at)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("%s: got %+v, want one result", q, got)
	}
	return got[0].V
}

// checkDeliveries fails unless the proxy passed on every (series, time) of
// batches exactly once with a 2xx answer, and each series' timestamps in
// increasing order.
func checkDeliveries(t *testing.T, p *promtest.FaultProxy, batches ...[]promapi.Sample) {
	t.Helper()
	type key struct {
		series string
		t      int64
	}
	stored := map[key]int{}
	last := map[string]int64{}
	for _, s := range p.Samples() {
		if s.Status/100 != 2 {
			continue
		}
		k := key{s.Labels.String(), s.T}
		stored[k]++
		if prev, ok := last[k.series]; ok && s.T <= prev {
			t.Errorf("series %s: sample at %d delivered after one at %d", k.series, s.T, prev)
		}
		last[k.series] = s.T
	}
	want := 0
	for _, b := range batches {
		for _, s := range b {
			want++
			if n := stored[key{s.Labels.String(), s.T}]; n != 1 {
				t.Errorf("series %s at %d delivered %d times, want once", s.Labels, s.T, n)
			}
		}
	}
	if len(stored) != want {
		t.Errorf("%d samples delivered, want %d", len(stored), want)
	}
}

// TestWriteSplit writes 40 000 series, more than fit in one request, to a
// real Prometheus: they go in requests of at most MaxSeriesPerRequest series
// from several shards, and all are stored.
func TestWriteSplit(t *testing.T) {
	t.Parallel()
	srv := promtest.StartT(t, promtest.Options{})
	proxy := promtest.NewFaultProxy(t, srv.RemoteWriteURL())
	w := newWriter(t, promapi.WriterConfig{URL: proxy.URL(), MaxSeriesPerRequest: 2000, Shards: 4})
	c := newClient(t, promapi.ClientConfig{URL: srv.URL()})

	const n = 40000
	at := time.Now().Add(-time.Minute).Truncate(time.Second)
	samples := splitBatch(n, at.UnixMilli(), 1)
	stats, err := w.Write(t.Context(), samples)
	if err != nil {
		t.Fatal(err)
	}
	reqs := proxy.Requests()
	// 4 shards of about 10 000 series: 5 or 6 requests each.
	if reqs < n/2000 || reqs > n/2000+4 {
		t.Errorf("%d requests, want %d to %d", reqs, n/2000, n/2000+4)
	}
	if want := (promapi.WriteStats{Series: n, Sent: n, Attempts: reqs}); stats != want {
		t.Errorf("stats %+v, want %+v", stats, want)
	}
	if got := queryCount(t, c, "count(split_test)", at); got != n {
		t.Errorf("Prometheus holds %g series, want %d", got, n)
	}
	checkDeliveries(t, proxy, samples)
}

// TestWriteSplitFaults fails one request of a split Write: the Writer's own
// retry resends only that request, or, without retries, the error names the
// samples to resend, and resending just those completes the Write.
func TestWriteSplitFaults(t *testing.T) {
	t.Parallel()
	const n, perRequest = 8000, 1000
	tests := []struct {
		name       string
		maxRetries int
	}{
		{name: "500 retried by the Writer", maxRetries: 3},
		{name: "500 left to the caller", maxRetries: -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := promtest.StartT(t, promtest.Options{})
			proxy := promtest.NewFaultProxy(t, srv.RemoteWriteURL())
			w := newWriter(t, promapi.WriterConfig{
				URL: proxy.URL(), MaxSeriesPerRequest: perRequest, Shards: 4, MaxRetries: tc.maxRetries,
				MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
			})
			c := newClient(t, promapi.ClientConfig{URL: srv.URL()})
			at := time.Now().Add(-time.Minute).Truncate(time.Second)
			samples := splitBatch(n, at.UnixMilli(), 2)

			proxy.Inject(promtest.Fault{Status: http.StatusInternalServerError})
			stats, err := w.Write(t.Context(), samples)
			reqs := proxy.Requests()
			if tc.maxRetries > 0 {
				if err != nil {
					t.Fatal(err)
				}
				if stats.Sent != n || stats.Attempts != reqs {
					t.Errorf("stats %+v after %d requests", stats, reqs)
				}
			} else {
				we, ok := errors.AsType[*promapi.WriteError](err)
				if !ok || !we.Retryable || we.StatusCode != http.StatusInternalServerError {
					t.Fatalf("got %v, want a retryable 500", err)
				}
				// The failed request, and the later ones of its shard.
				if len(we.Retry) == 0 || len(we.Retry) >= n || stats.Sent != n-len(we.Retry) || stats.Failed != len(we.Retry) {
					t.Fatalf("%d samples to retry, stats %+v", len(we.Retry), stats)
				}
				if _, err := w.Write(t.Context(), we.Retry); err != nil {
					t.Fatal(err)
				}
			}
			if got := queryCount(t, c, "count(split_test)", at); got != n {
				t.Errorf("Prometheus holds %g series, want %d", got, n)
			}
			checkDeliveries(t, proxy, samples)
		})
	}
}

// TestQueueSplitOrder sends two cycles of a split Write through the Queue.
// One request of the first fails with 503 and Retry-After while the second
// cycle is queued: only the failed request is sent again, before anything of
// the second cycle, so that Prometheus (which refuses out-of-order samples)
// stores both cycles of every series, each sample once.
func TestQueueSplitOrder(t *testing.T) {
	t.Parallel()
	const n, perRequest = 8000, 1000
	srv := promtest.StartT(t, promtest.Options{})
	proxy := promtest.NewFaultProxy(t, srv.RemoteWriteURL())
	w := newWriter(t, promapi.WriterConfig{URL: proxy.URL(), MaxSeriesPerRequest: perRequest, Shards: 4, MaxRetries: -1})
	reg := prometheus.NewRegistry()
	q := startQueue(t, w, 4*n, reg)
	c := newClient(t, promapi.ClientConfig{URL: srv.URL()})
	t0 := time.Now().Add(-2 * time.Minute).Truncate(time.Second)
	first := splitBatch(n, t0.UnixMilli(), 1)
	second := splitBatch(n, t0.Add(10*time.Second).UnixMilli(), 2)

	// The queue waits at least a second (its MaxBackoff) before it retries.
	proxy.Inject(promtest.Fault{Status: http.StatusServiceUnavailable, RetryAfter: "1"})
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if _, err := q.Write(ctx, first); !errors.Is(err, promapi.ErrQueued) {
		t.Fatalf("first cycle: got %v, want ErrQueued", err)
	}
	var pending int
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if _, pending = q.Pending(); pending < n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("first attempt not done: %d samples pending", pending)
		}
	}
	if pending == 0 {
		t.Fatal("first cycle sent before the retry backoff")
	}
	reqs := proxy.Requests()
	if _, err := q.Write(t.Context(), second); !errors.Is(err, promapi.ErrQueued) {
		t.Fatalf("second cycle: got %v, want ErrQueued while failing", err)
	}
	waitDrained(t, q, proxy)

	if got := queryCount(t, c, "count(count_over_time(split_test[1m]) == 2)", t0.Add(10*time.Second)); got != n {
		t.Errorf("%g series with both cycles stored, want %d", got, n)
	}
	checkDeliveries(t, proxy, first, second)
	// The retry was only the kept requests, then the second cycle.
	if got, want := proxy.Requests()-reqs, (pending+perRequest-1)/perRequest+n/perRequest; got < want || got > want+4 {
		t.Errorf("%d requests after the failure, want about %d", got, want)
	}
	if got := metricValue(t, reg, "kedastral_remote_write_samples_retried_total", ""); got != float64(pending) {
		t.Errorf("retried %g samples, want %d", got, pending)
	}
	if got := metricValue(t, reg, "kedastral_remote_write_queue_samples_sent_total", ""); got != 2*n {
		t.Errorf("sent %g samples, want %d", got, 2*n)
	}
	if got := metricValue(t, reg, "kedastral_remote_write_samples_dropped_total", "rejected"); got != 0 {
		t.Errorf("rejected %g samples", got)
	}
}

func TestNewWriterSplitConfig(t *testing.T) {
	t.Parallel()
	if _, err := promapi.NewWriter(promapi.WriterConfig{URL: "http://127.0.0.1:1/api/v1/write", Shards: -1}); err == nil {
		t.Error("negative Shards accepted")
	}
}
