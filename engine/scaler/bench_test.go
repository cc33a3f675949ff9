package scaler

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	pb "github.com/kedastral/kedastral/proto"
)

// BenchmarkGetMetrics measures GetMetrics over gRPC on loopback on the cached
// path (the TTL outlives the run), with parallel clients, for a policy with
// one series and one that fans out to 1000; it reports the throughput and
// the 99th percentile latency.
func BenchmarkGetMetrics(b *testing.B) {
	for _, n := range []int{1, 1000} {
		b.Run(fmt.Sprintf("series=%d", n), func(b *testing.B) { benchmarkGetMetrics(b, n) })
	}
}

func benchmarkGetMetrics(b *testing.B, n int) {
	q := &fakeQuerier{}
	series := []fakeSeries{{labels.FromStrings("policy", "api", "deployment", "api"), 7, time.Now().Add(time.Hour)}}
	for i := 1; i < n; i++ {
		series = append(series, fakeSeries{labels.FromStrings("policy", "api", "deployment", fmt.Sprint("d", i)), 1, time.Now()})
	}
	q.set(series...)
	ts := startServer(b, Options{Querier: q, CacheTTL: time.Hour})
	req := &pb.GetMetricsRequest{ScaledObjectRef: ref(map[string]string{"policy": "api", "matchLabels": "deployment=api"})}
	ctx := ctxT(b)
	if _, err := ts.client.GetMetrics(ctx, req); err != nil {
		b.Fatal(err)
	}
	var (
		mu  sync.Mutex
		all []time.Duration
	)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		var local []time.Duration
		for pb.Next() {
			t0 := time.Now()
			if _, err := ts.client.GetMetrics(ctx, req); err != nil {
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
	b.StopTimer()
	if len(all) == 0 {
		return
	}
	slices.Sort(all)
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "req/s")
	if n := q.calls.Load(); n != 1 {
		b.Errorf("%d Prometheus queries, want 1", n)
	}
}
