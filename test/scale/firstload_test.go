package scale

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/kedastral/kedastral/engine/forecast"
	"github.com/kedastral/kedastral/engine/model"
	"github.com/kedastral/kedastral/engine/policy"
	"github.com/kedastral/kedastral/engine/trace"
	"github.com/kedastral/kedastral/promapi"
	"github.com/kedastral/kedastral/promapi/promtest"
)

// BenchmarkFirstLoadPrometheus is a forecaster's start against a real
// Prometheus holding two weeks of 1-minute history of
// KEDASTRAL_BENCH_LOAD_SERIES series (skipped when unset; the MongoDB trace,
// shifted and scaled per series, loaded as TSDB blocks with promtool): the
// first full fetch of a fan-out policy's lookback through promapi.Client
// (6-hour chunks, --query.max-concurrency's default bound), then cycles with
// the forecaster's warm-up budget (half the 1-minute interval) until every
// series is forecast, each cycle's samples remote-written to the same
// Prometheus. It reports first-fetch-s, first-write-s (from the start to the
// end of the first cycle's write: a restart's time to its first forecasts),
// first-written (series in that write) and all-written-s (until every series
// was written; the cycles run back to back, a minute apart in a real
// forecaster, which also fetches the new minute in between). One iteration
// is one start; run it with -benchtime 1x.
func BenchmarkFirstLoadPrometheus(b *testing.B) {
	v := os.Getenv("KEDASTRAL_BENCH_LOAD_SERIES")
	if v == "" {
		b.Skip("set KEDASTRAL_BENCH_LOAD_SERIES: loading the blocks takes minutes (200 series: 4)")
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("KEDASTRAL_BENCH_LOAD_SERIES=%q: want a positive number", v)
	}
	promtest.RequireBinaries(b)
	path, ok := trace.Locate("ms_mongodb_app_query_rate_1min.csv")
	if !ok {
		b.Fatal("trace ms_mongodb_app_query_rate_1min.csv not found in testdata/traces")
	}
	pts, err := trace.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	tr, err := trace.Regular(pts, time.Minute)
	if err != nil {
		b.Fatal(err)
	}
	end := time.Now().Truncate(time.Minute).Add(-time.Minute)
	const steps = 14*1440 + 60
	start := end.Add(-(steps - 1) * time.Minute)
	series := make([]promtest.Series, n)
	for i := range series {
		p := make([]promtest.Point, steps)
		for k := range p {
			t := start.Add(time.Duration(k) * time.Minute)
			v := tr.Values[(int(t.Unix()/60)+i*7919)%len(tr.Values)]
			p[k] = promtest.Point{T: t.UnixMilli(), V: v * (1 + float64(i%17)/10)}
		}
		series[i] = promtest.Series{Name: "demand", Labels: labels.FromStrings("namespace", fmt.Sprintf("ns-%02d", i/100), "deployment", fmt.Sprintf("svc-%04d", i)), Points: p}
	}
	dir := b.TempDir()
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	if err := promtest.CreateBlocks(ctx, dir, series); err != nil {
		b.Fatal(err)
	}
	series = nil
	b.Logf("%d series x %d points loaded into blocks in %v", n, steps, time.Since(t0).Round(time.Second))
	prom := promtest.StartInT(b, dir, promtest.Options{})

	set, errs := policy.Parse([]byte(`
apiVersion: kedastral.io/v1alpha1
kind: ForecastPolicy
metadata: {name: fleet}
spec:
  targetRef: {name: fleet}
  step: 1m
  horizon: 30m
  leadTime: 5m
  interval: 1m
  lookback: 14d
  model: {type: auto}
  capacity: {targetPerPod: 100, min: 1, max: 200}
  sources: [{name: rps, query: 'demand'}]
`), "bench.yaml")
	if len(errs) > 0 {
		b.Fatal(errs)
	}
	var fetch, first, all time.Duration
	var firstWritten int
	b.ResetTimer()
	for range b.N {
		q, err := promapi.NewClient(promapi.ClientConfig{URL: prom.URL(), Timeout: 2 * time.Minute, Limiter: promapi.NewLimiter(8)})
		if err != nil {
			b.Fatal(err)
		}
		w, err := promapi.NewWriter(promapi.WriterConfig{URL: prom.RemoteWriteURL()})
		if err != nil {
			b.Fatal(err)
		}
		now := end.Add(30 * time.Second)
		t0 := time.Now()
		e := forecast.NewEvaluator(set.Policies[0], q)
		e.SetWarmupBudget(30 * time.Second)
		if _, err := e.Fetch(ctx, now); err != nil {
			b.Fatal(err)
		}
		fetch += time.Since(t0)
		written := map[string]bool{}
		for cycle := 1; len(written) < n; cycle++ {
			if cycle > 100 {
				b.Fatalf("%d of %d series written after 100 cycles", len(written), n)
			}
			c := e.Evaluate(ctx, now)
			for _, r := range c.Series {
				switch {
				case r.Err == nil:
					written[r.Labels.String()] = true
				case !errors.Is(r.Err, model.ErrInsufficientData):
					b.Fatalf("series %s: %v", r.Labels, r.Err)
				}
			}
			// The store's history ends at end: the cycles evaluate at one
			// time (a later one would find the series stale), and write a
			// second apart, as Prometheus takes one value per time stamp.
			for i := range c.Samples {
				c.Samples[i].T += int64(cycle-1) * 1000
			}
			if _, err := w.Write(ctx, c.Samples); err != nil {
				b.Fatal(err)
			}
			if cycle == 1 {
				first += time.Since(t0)
				firstWritten = len(written)
			}
		}
		all += time.Since(t0)
		w.Close()
		q.Close()
	}
	b.ReportMetric(fetch.Seconds()/float64(b.N), "first-fetch-s")
	b.ReportMetric(first.Seconds()/float64(b.N), "first-write-s")
	b.ReportMetric(float64(firstWritten), "first-written")
	b.ReportMetric(all.Seconds()/float64(b.N), "all-written-s")
	b.ReportMetric(float64(n), "series")
}
