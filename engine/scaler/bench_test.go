package scaler

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/kedastral/kedastral/engine/scaler/loadtest"
	"github.com/kedastral/kedastral/promapi"
	pb "github.com/kedastral/kedastral/proto"
)

// cpuTime is the process' user and system CPU time so far: per request, it
// is what client and server cost together, which the machine's other load
// does not inflate as it does latency and throughput.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

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
	b.ResetTimer()
	res := loadtest.Parallel(b, func() error {
		_, err := ts.client.GetMetrics(ctx, req)
		return err
	})
	b.StopTimer()
	if len(res.Latencies) == 0 {
		return
	}
	b.ReportMetric(float64(res.Quantile(0.99).Microseconds()), "p99-µs")
	b.ReportMetric(float64(len(res.Latencies))/res.Elapsed.Seconds(), "req/s")
	if n := q.calls.Load(); n != 1 {
		b.Errorf("%d Prometheus queries, want 1", n)
	}
}

// BenchmarkGetMetricsDistinct is thousands of ScaledObjects: 10 000 series
// of one fan-out policy, every request for another of them (as KEDA polls
// each ScaledObject), from concurrent clients on loopback, on the cached
// path, with 2, 3 and 4 clients per core (GOMAXPROCS) in flight at once.
// It reports the throughput and the 99th percentile latency (client and
// server share the cores); the targets are 20 000 requests/s and 2 ms on 2
// cores.
func BenchmarkGetMetricsDistinct(b *testing.B) {
	const n = 10000
	q, reqs := fleet(n)
	ts := startServer(b, Options{Querier: q, CacheTTL: time.Hour})
	ctx := ctxT(b)
	if r, err := ts.client.GetMetrics(ctx, reqs[4242]); err != nil || r.MetricValues[0].MetricValueFloat != float64(1+4242%20) {
		b.Fatal(r, err)
	}
	for _, perCore := range []int{2, 3, 4} {
		b.Run(fmt.Sprintf("clients=%d", perCore*runtime.GOMAXPROCS(0)), func(b *testing.B) {
			ctx := ctxT(b)
			var next atomic.Int64
			b.SetParallelism(perCore)
			cpu0 := cpuTime(b)
			res := loadtest.Parallel(b, func() error {
				_, err := ts.client.GetMetrics(ctx, reqs[int(next.Add(1))%n])
				return err
			})
			b.StopTimer()
			if len(res.Latencies) == 0 {
				return
			}
			b.ReportMetric(float64(res.Quantile(0.99).Microseconds()), "p99-µs")
			b.ReportMetric(float64(len(res.Latencies))/res.Elapsed.Seconds(), "req/s")
			b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/float64(len(res.Latencies)), "cpu-µs/req")
		})
	}
	if c := q.calls.Load(); c != 1 {
		b.Errorf("%d Prometheus queries, want 1", c)
	}
}

// BenchmarkForecastRefresh is the scaler's work to refresh one policy's
// cached read of 10 000 desired-replicas series (without the query itself; promapi drops __name__):
// pairing values with time stamps and indexing the series by label. It runs
// once per policy per --cache.ttl while triggers poll.
func BenchmarkForecastRefresh(b *testing.B) {
	const n = 10000
	q := forecastQuery("fleet")
	var samples []promapi.Sample
	now := time.Now()
	for i := range n {
		l := labels.FromStrings("policy", "fleet", "namespace", fmt.Sprintf("ns-%03d", i/100), "deployment", fmt.Sprintf("svc-%05d", i))
		samples = append(samples,
			promapi.Sample{Labels: l, T: now.UnixMilli(), V: 3},
			promapi.Sample{Labels: labels.NewBuilder(l).Set(tsLabel, "1").Labels(), T: now.UnixMilli(), V: float64(now.Unix())})
	}
	b.ReportAllocs()
	for b.Loop() {
		series, err := parseForecast(q, samples)
		if err != nil {
			b.Fatal(err)
		}
		if fs := newForecastSet(series); len(fs.series) != n {
			b.Fatalf("%d series", len(fs.series))
		}
	}
}

// BenchmarkGetMetricsOpenLoop offers GetMetrics at a fixed rate
// (KEDASTRAL_BENCH_RATE, 20 000 requests/s by default) whatever the answers'
// latency, as many ScaledObjects polled by many KEDA replicas are: the
// 10 000 series of BenchmarkGetMetricsDistinct, b.N requests, each sent at
// its scheduled time by one of openLoopClients goroutines over
// openLoopConns connections. A request's latency counts from its scheduled
// send time, so a server that falls behind shows the queueing (a closed loop
// would slow its clients down and hide it). It reports the latency's p50,
// p99 and max and the rate achieved; run it with -benchtime 60000x for 3 s.
func BenchmarkGetMetricsOpenLoop(b *testing.B) {
	const (
		n               = 10000
		openLoopClients = 64
		openLoopConns   = 4
	)
	rate := loadtest.Rate(b, 20000)
	q, reqs := fleet(n)
	ts := startServer(b, Options{Querier: q, CacheTTL: time.Hour})
	ctx := ctxT(b)
	clients := []pb.ExternalScalerClient{ts.client}
	for range openLoopConns - 1 {
		conn, err := grpc.NewClient(ts.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { conn.Close() })
		clients = append(clients, pb.NewExternalScalerClient(conn))
	}
	// Every trigger polled once, as after the first minutes of a scaler.
	for i, r := range reqs {
		if _, err := clients[i%len(clients)].GetMetrics(ctx, r); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	cpu0 := cpuTime(b)
	res, err := loadtest.Run(b.N, openLoopClients, rate, func(w, i int) error {
		_, err := clients[w%len(clients)].GetMetrics(ctx, reqs[i%n])
		return err
	})
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	res.Report(b)
	b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/req")
	if c := q.calls.Load(); c != 1 {
		b.Errorf("%d Prometheus queries, want 1", c)
	}
}

// fleet is one fan-out policy of n series (100 deployments per namespace)
// on a fake Prometheus, with a GetMetrics request selecting each.
func fleet(n int) (*fakeQuerier, []*pb.GetMetricsRequest) {
	q := &fakeQuerier{}
	series := make([]fakeSeries, n)
	reqs := make([]*pb.GetMetricsRequest, n)
	for i := range series {
		ns, d := fmt.Sprintf("ns-%03d", i/100), fmt.Sprintf("svc-%05d", i)
		series[i] = fakeSeries{labels.FromStrings("policy", "fleet", "namespace", ns, "deployment", d), float64(1 + i%20), time.Now().Add(time.Hour)}
		reqs[i] = &pb.GetMetricsRequest{ScaledObjectRef: ref(map[string]string{"policy": "fleet", "matchLabels": "namespace=" + ns + ",deployment=" + d})}
	}
	q.set(series...)
	return q, reqs
}
