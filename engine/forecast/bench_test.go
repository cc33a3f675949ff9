package forecast

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/kedastral/kedastral/engine/policy"
	"github.com/kedastral/kedastral/engine/trace"
	"github.com/kedastral/kedastral/promapi"
)

// synthetic is a Querier over n synthetic series computed on demand (two
// weeks of 10 000 series would not fit in memory as points): series i is the
// MongoDB trace (1-minute steps) shifted by a per-series phase and scaled,
// labelled namespace and deployment as a fan-out policy's query returns them.
type synthetic struct {
	trace  []float64
	labels []labels.Labels
}

func newSynthetic(tb testing.TB, n int) *synthetic {
	tb.Helper()
	path, ok := trace.Locate("ms_mongodb_app_query_rate_1min.csv")
	if !ok {
		tb.Fatal("trace ms_mongodb_app_query_rate_1min.csv not found in testdata/traces")
	}
	pts, err := trace.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	h, err := trace.Regular(pts, time.Minute)
	if err != nil {
		tb.Fatal(err)
	}
	s := &synthetic{trace: h.Values}
	for i := range n {
		s.labels = append(s.labels, labels.FromStrings("namespace", fmt.Sprintf("ns-%03d", i/100), "deployment", fmt.Sprintf("svc-%05d", i)))
	}
	return s
}

func (s *synthetic) value(i int, t time.Time) float64 {
	k := (int(t.Unix()/60) + i*7919) % len(s.trace)
	return s.trace[k] * (1 + float64(i%17)/10)
}

func (s *synthetic) QueryRange(_ context.Context, _ string, start, end time.Time, step time.Duration) ([]promapi.Series, error) {
	steps := int(end.Sub(start)/step) + 1
	out := make([]promapi.Series, len(s.labels))
	for i, l := range s.labels {
		pts := make([]promapi.Point, 0, steps)
		for t := start; !t.After(end); t = t.Add(step) {
			pts = append(pts, promapi.Point{T: t.UnixMilli(), V: s.value(i, t)})
		}
		out[i] = promapi.Series{Labels: l, Points: pts}
	}
	return out, nil
}

// benchSeries is the number of series of the forecaster benchmark:
// KEDASTRAL_BENCH_SERIES, 10 000 by default.
func benchSeries(tb testing.TB) int {
	if v := os.Getenv("KEDASTRAL_BENCH_SERIES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			tb.Fatalf("KEDASTRAL_BENCH_SERIES=%q: want a positive number", v)
		}
		return n
	}
	return 10000
}

func benchPolicy(tb testing.TB) *policy.ForecastPolicy {
	tb.Helper()
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
  sources: [{name: rps, query: 'sum by (namespace, deployment) (rate(http_requests_total[1m]))'}]
`), "bench.yaml")
	if len(errs) > 0 {
		tb.Fatal(errs)
	}
	return set.Policies[0]
}

// loaded is the forecaster benchmark's state after the first full load,
// shared by the runs of the benchmark with growing b.N.
var loaded struct {
	once sync.Once
	e    *Evaluator
	q    *synthetic
	now  time.Time
	load time.Duration // first fetch + the cycles until every model started
	// firstWrite is the time to the end of the first cycle, firstWritten
	// the series it forecast; warmCycles the cycles until all were.
	firstWrite   time.Duration
	firstWritten int
	warmCycles   int
	fetch        time.Duration // of the first fetch
	perSeries    float64       // heap bytes per series after the load
	before       uint64        // heap before the evaluator
	histBytes    int
	n            int
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkForecaster is one forecaster evaluating a fan-out policy of
// KEDASTRAL_BENCH_SERIES series (10 000 by default) with two weeks of
// 1-minute history each and the auto model, on GOMAXPROCS cores, the newest
// KEDASTRAL_BENCH_FULL_RESOLUTION of it (DefaultFullResolution by default,
// 0 for all) at the full step. Its first run loads the history (the first
// fetch of every series' two weeks and the evaluations that fit every
// model): reported as first-load-s and first-fetch-s, and the heap the
// evaluator then holds per series as bytes/series (history-bytes/series of
// it the history arrays). bytes/series-now is the heap per series after the
// run's cycles: the models' error windows fill over the first 720 cycles
// (12h at 1m), so run e.g. KEDASTRAL_BENCH_SERIES=50 with -benchtime 800x
// for the steady state. Each
// iteration is then one steady-state cycle: the fetch of the new minute
// (not timed; fetch-ms reports it) and the evaluation of every series (ns/op).
// A day after the load every holtwinters model refits once, each at its
// series' own time of day: cycle-p99-s and cycle-max-s show the spread (run
// more than 1440 cycles, e.g. KEDASTRAL_BENCH_SERIES=2000 -benchtime 2200x).
//
// The load runs as the forecaster does after a start, with a warm-up budget
// of half the 1-minute interval a cycle (SetWarmupBudget): first-write-s is
// the time to the end of the first cycle, first-written the series it
// forecast, and warm-cycles the cycles until every series was (a minute
// each in a forecaster; here they run back to back).
//
// Run it with make bench, or: go test -run '^$' -bench Forecaster -benchtime 5x ./engine/forecast
func BenchmarkForecaster(b *testing.B) {
	ctx := context.Background()
	loaded.once.Do(func() {
		n := benchSeries(b)
		q := newSynthetic(b, n)
		before := heapInUse()
		e := NewEvaluator(benchPolicy(b), q)
		if v := os.Getenv("KEDASTRAL_BENCH_FULL_RESOLUTION"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				b.Fatalf("KEDASTRAL_BENCH_FULL_RESOLUTION=%q: %v", v, err)
			}
			e.SetFullResolution(d)
		}
		now := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
		// As the forecaster runs it: at most half the 1m interval a cycle
		// for starting models.
		e.SetWarmupBudget(30 * time.Second)
		t0 := time.Now()
		if _, err := e.Fetch(ctx, now); err != nil {
			b.Fatal(err)
		}
		fetched := time.Since(t0)
		for cycle := 1; ; cycle++ {
			c := e.Evaluate(ctx, now)
			if len(c.Series) != n {
				b.Fatalf("%d series forecast, want %d", len(c.Series), n)
			}
			ok := 0
			for _, r := range c.Series {
				switch {
				case r.Err == nil:
					ok++
				case !errors.Is(r.Err, errWarmingUp):
					b.Fatalf("series %s: %v", r.Labels, r.Err)
				}
			}
			if cycle == 1 {
				loaded.firstWrite = time.Since(t0)
				loaded.firstWritten = ok
			}
			if ok == n {
				loaded.warmCycles = cycle
				break
			}
			// The next cycles, back to back (a minute apart in the store's time).
			now = now.Add(time.Minute)
			if _, err := e.Fetch(ctx, now); err != nil {
				b.Fatal(err)
			}
		}
		loaded.load = time.Since(t0)
		loaded.fetch = fetched
		loaded.before = before
		loaded.perSeries = float64(heapInUse()-before) / float64(n)
		loaded.histBytes = e.HistoryBytes()
		loaded.e, loaded.q, loaded.now, loaded.n = e, q, now, n
	})
	if loaded.e == nil {
		b.Fatal("the first load failed")
	}
	e := loaded.e
	var fetch time.Duration
	cycles := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		loaded.now = loaded.now.Add(time.Minute)
		t0 := time.Now()
		if _, err := e.Fetch(ctx, loaded.now); err != nil {
			b.Fatal(err)
		}
		fetch += time.Since(t0)
		b.StartTimer()
		t0 = time.Now()
		c := e.Evaluate(ctx, loaded.now)
		cycles = append(cycles, time.Since(t0))
		if len(c.Series) != loaded.n {
			b.Fatalf("%d series forecast, want %d", len(c.Series), loaded.n)
		}
	}
	b.StopTimer()
	// The cycles' spread: a day after the load every holtwinters model
	// refits once, at its series' own time of day (model.Stagger).
	slices.Sort(cycles)
	b.ReportMetric(cycles[len(cycles)*99/100].Seconds(), "cycle-p99-s")
	b.ReportMetric(cycles[len(cycles)-1].Seconds(), "cycle-max-s")
	// The models' recent-error windows fill over the first hours: the heap
	// per series after this run's cycles too.
	b.ReportMetric(float64(heapInUse()-loaded.before)/float64(loaded.n), "bytes/series-now")
	b.ReportMetric(loaded.load.Seconds(), "first-load-s")
	b.ReportMetric(loaded.firstWrite.Seconds(), "first-write-s")
	b.ReportMetric(float64(loaded.firstWritten), "first-written")
	b.ReportMetric(float64(loaded.warmCycles), "warm-cycles")
	b.ReportMetric(loaded.fetch.Seconds(), "first-fetch-s")
	b.ReportMetric(loaded.perSeries, "bytes/series")
	b.ReportMetric(float64(loaded.histBytes)/float64(loaded.n), "history-bytes/series")
	b.ReportMetric(float64(e.ModelBytes())/float64(loaded.n), "model-bytes/series-now")
	b.ReportMetric(float64(fetch.Milliseconds())/float64(b.N), "fetch-ms")
	b.ReportMetric(float64(loaded.n), "series")
}
