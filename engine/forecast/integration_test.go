package forecast_test

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/config"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/kedastral/kedastral/engine/forecast"
	"github.com/kedastral/kedastral/engine/policy"
	"github.com/kedastral/kedastral/engine/trace"
	"github.com/kedastral/kedastral/promapi"
	"github.com/kedastral/kedastral/promapi/promtest"
	"github.com/kedastral/kedastral/test/testutil"
)

const testMetric = "demo_queries_per_second"

// loadTrace starts a real Prometheus whose history is the last `days` of the
// MongoDB trace, shifted to end at the current minute, as two series:
// service="a" (the trace) and service="b" (half of it).
func loadTrace(t *testing.T, days int) (*promtest.Server, []trace.Point, time.Time) {
	t.Helper()
	return loadTraceWith(t, days, promtest.Options{})
}

// loadTraceWith is loadTrace with a Prometheus started with opts.
func loadTraceWith(t *testing.T, days int, opts promtest.Options) (*promtest.Server, []trace.Point, time.Time) {
	t.Helper()
	promtest.RequireBinaries(t)
	path, ok := trace.Locate("ms_mongodb_app_query_rate_1min.csv")
	if !ok {
		t.Fatal("trace ms_mongodb_app_query_rate_1min.csv not found in testdata/traces")
	}
	pts, err := trace.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := days * 24 * 60
	pts = pts[len(pts)-n:]
	end := time.Now().Truncate(time.Minute)
	shift := end.Sub(pts[len(pts)-1].T)
	a := promtest.Series{Name: testMetric, Labels: labels.FromStrings("service", "a")}
	b := promtest.Series{Name: testMetric, Labels: labels.FromStrings("service", "b")}
	for i := range pts {
		pts[i].T = pts[i].T.Add(shift)
		ms := pts[i].T.UnixMilli()
		a.Points = append(a.Points, promtest.Point{T: ms, V: pts[i].V})
		b.Points = append(b.Points, promtest.Point{T: ms, V: pts[i].V / 2})
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := promtest.CreateBlocks(ctx, dir, []promtest.Series{a, b}); err != nil {
		t.Fatal(err)
	}
	return promtest.StartInT(t, dir, opts), pts, end
}

func testPolicy(t *testing.T, interval string) *policy.ForecastPolicy {
	t.Helper()
	set, errs := policy.Parse([]byte(fmt.Sprintf(`
apiVersion: kedastral.io/v1alpha1
kind: ForecastPolicy
metadata: {name: demo}
spec:
  targetRef: {name: demo-api}
  horizon: 30m
  leadTime: 5m
  interval: %s
  ahead: [5m, 15m, 30m]
  capacity: {targetPerPod: 500, headroom: 1.2, min: 1, max: 100}
  model: {type: baseline, quantile: 0.85}
  sources: [{name: qps, query: 'sum by (service) (%s)'}]
`, interval, testMetric)), "test.yaml")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return set.Policies[0]
}

func newClients(t *testing.T, s *promtest.Server) (*promapi.Client, *promapi.Writer) {
	t.Helper()
	q, err := promapi.NewClient(promapi.ClientConfig{URL: s.URL(), HTTPClientConfig: config.DefaultHTTPClientConfig, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	w, err := promapi.NewWriter(promapi.WriterConfig{URL: s.RemoteWriteURL(), HTTPClientConfig: config.DefaultHTTPClientConfig,
		Timeout: 5 * time.Second, MaxRetries: 2})
	if err != nil {
		t.Fatal(err)
	}
	return q, w
}

// queryAt returns the samples of an instant query at ts, keyed by series.
func queryAt(t *testing.T, q *promapi.Client, query string, ts time.Time) map[string]promapi.Sample {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := q.Query(ctx, query, ts)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]promapi.Sample{}
	for _, s := range res {
		out[s.Labels.String()] = s
	}
	return out
}

// TestForecasterEndToEnd runs the forecaster's loop against a real Prometheus
// holding two days of a real trace, then reads the kedastral_* series back with
// PromQL and checks them against what the engine computed for the same cycle.
func TestForecasterEndToEnd(t *testing.T) {
	srv, pts, end := loadTrace(t, 2)
	q, w := newClients(t, srv)
	p := testPolicy(t, "1s")

	reg := prometheus.NewRegistry()
	mgr, err := forecast.NewManager(forecast.Options{
		Registerer: reg, Writer: w,
		Queriers: func(*policy.DataSource) (forecast.Querier, error) { return q, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer mgr.Stop()
	if err := mgr.Apply(&policy.Set{Policies: []*policy.ForecastPolicy{p}}, nil); err != nil {
		t.Fatal(err)
	}
	st := testutil.Eventually(t, 30*time.Second, "a successful cycle", func() (forecast.PolicyStatus, bool) {
		s := mgr.Status()[0]
		return s, !s.LastSuccess.IsZero()
	})
	if ok, why := mgr.Ready(); !ok {
		t.Errorf("not ready after a cycle: %s", why)
	}
	if st.SeriesCount != 2 {
		t.Fatalf("series count %d, want 2 (status %+v)", st.SeriesCount, st)
	}
	ts := st.LastSuccess

	// The same cycle, recomputed by a fresh evaluator on the same history.
	e := forecast.NewEvaluator(p, q)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := e.Fetch(ctx, ts); err != nil {
		t.Fatal(err)
	}
	want := e.Evaluate(ctx, ts)
	if len(want.Series) != 2 {
		t.Fatalf("evaluator saw %d series", len(want.Series))
	}

	desired := queryAt(t, q, forecast.DesiredMetric, ts)
	observed := queryAt(t, q, forecast.ObservedMetric, ts)
	predicted := queryAt(t, q, forecast.PredictedMetric, ts)
	stamps := queryAt(t, q, "timestamp("+forecast.DesiredMetric+")", ts)
	if len(desired) != 2 || len(observed) != 2 || len(predicted) != 6 {
		t.Fatalf("got %d desired, %d observed, %d predicted series; want 2, 2, 6", len(desired), len(observed), len(predicted))
	}
	last := pts[len(pts)-1]
	if !last.T.Equal(end) {
		t.Fatalf("trace ends at %v, want %v", last.T, end)
	}
	for _, r := range want.Series {
		if r.Err != nil {
			t.Fatalf("series %s: %v", r.Labels, r.Err)
		}
		svc := r.Labels.Get("service")
		if got := r.Labels.Get(forecast.PolicyLabel); got != "demo" {
			t.Errorf("policy label %q", got)
		}
		// promapi drops __name__: the maps are per metric already.
		key := func(_ string, extra ...string) string {
			b := labels.NewBuilder(r.Labels)
			for i := 0; i < len(extra); i += 2 {
				b.Set(extra[i], extra[i+1])
			}
			return b.Labels().String()
		}
		d, ok := desired[key(forecast.DesiredMetric)]
		if !ok {
			t.Fatalf("no %s for %s in %v", forecast.DesiredMetric, svc, desired)
		}
		if st := stamps[key(forecast.DesiredMetric)]; int64(math.Round(st.V*1000)) != ts.UnixMilli() {
			t.Errorf("desired stamped %v, want the evaluation time %d ms", st.V, ts.UnixMilli())
		}
		if int32(d.V) != r.Desired {
			t.Errorf("service %s: Prometheus has desired %v, engine computed %d", svc, d.V, r.Desired)
		}
		// The capacity model, by hand: the peak of the forecast over the lead
		// time plus one step (6 steps of 1m), with 20% headroom at 500 per pod,
		// and never below what the observed value needs without headroom.
		peak := 0.0
		for _, v := range r.Forecast[:6] {
			peak = math.Max(peak, v)
		}
		need := max(int32(math.Ceil(peak*1.2/500)), int32(math.Ceil(r.Observed/500)))
		if max(1, min(100, need)) != r.Desired {
			t.Errorf("service %s: desired %d, capacity model says %d (peak %v, observed %v)", svc, r.Desired, need, peak, r.Observed)
		}
		wantObs := last.V
		if svc == "b" {
			wantObs /= 2
		}
		if o := observed[key(forecast.ObservedMetric)]; math.Abs(o.V-wantObs) > 1e-9 {
			t.Errorf("service %s: observed %v, want the trace's last value %v", svc, o.V, wantObs)
		}
		for _, a := range []string{"5m", "15m", "30m"} {
			pv, ok := predicted[key(forecast.PredictedMetric, "ahead", a, "quantile", "0.85")]
			if !ok {
				t.Fatalf("no prediction ahead=%s for %s: %v", a, svc, keys(predicted))
			}
			ad, _ := time.ParseDuration(a)
			if wantV := r.Predicted[ad]; math.Abs(pv.V-wantV) > 1e-9*math.Max(1, wantV) {
				t.Errorf("service %s ahead %s: Prometheus has %v, engine computed %v", svc, a, pv.V, wantV)
			}
		}
	}
	// Half the load needs no more replicas than the whole.
	ra, rb := desired[`{policy="demo", service="a"}`], desired[`{policy="demo", service="b"}`]
	if rb.V > ra.V {
		t.Errorf("service b (half of a) wants %v replicas, a wants %v", rb.V, ra.V)
	}

	if v := gatherValue(t, reg, "kedastral_remote_write_samples_total", nil); v < 10 {
		t.Errorf("kedastral_remote_write_samples_total = %v, want at least one cycle's 10 samples", v)
	}
	if v := gatherValue(t, reg, "kedastral_forecaster_series", map[string]string{"policy": "demo"}); v != 2 {
		t.Errorf("kedastral_forecaster_series = %v, want 2", v)
	}
	// Two models' state: some, and not near a MB.
	if v := gatherValue(t, reg, "kedastral_forecaster_model_bytes", map[string]string{"policy": "demo"}); v <= 0 || v > 2<<20 {
		t.Errorf("kedastral_forecaster_model_bytes = %v", v)
	}
	if v := gatherValue(t, reg, "kedastral_forecast_age_seconds", map[string]string{"policy": "demo"}); v < 0 || v > 30 {
		t.Errorf("kedastral_forecast_age_seconds = %v", v)
	}
}

// TestForecasterSurvivesPrometheusOutage stops Prometheus under a running
// forecaster: it must keep running, count the failures in /metrics, keep its
// last good state, and write again once Prometheus is back.
func TestForecasterSurvivesPrometheusOutage(t *testing.T) {
	srv, _, _ := loadTrace(t, 1)
	q, w := newClients(t, srv)
	p := testPolicy(t, "1s")
	reg := prometheus.NewRegistry()
	mgr, err := forecast.NewManager(forecast.Options{
		Registerer: reg, Writer: w, WriteTimeout: 2 * time.Second,
		Queriers: func(*policy.DataSource) (forecast.Querier, error) { return q, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer mgr.Stop()
	if err := mgr.Apply(&policy.Set{Policies: []*policy.ForecastPolicy{p}}, nil); err != nil {
		t.Fatal(err)
	}
	before := testutil.Eventually(t, 30*time.Second, "a first successful cycle", func() (forecast.PolicyStatus, bool) {
		s := mgr.Status()[0]
		return s, !s.LastSuccess.IsZero()
	})

	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	down := testutil.Eventually(t, 30*time.Second, "a failed cycle", func() (forecast.PolicyStatus, bool) {
		s := mgr.Status()[0]
		return s, s.LastError != "" && s.LastCycle.After(before.LastSuccess)
	})
	if !strings.Contains(down.LastError, "query") {
		t.Errorf("last error %q does not say the query failed", down.LastError)
	}
	if down.SeriesCount != 2 || len(down.Series) != 2 {
		t.Errorf("the last good state was dropped: %+v", down)
	}
	if v := gatherValue(t, reg, "kedastral_forecaster_cycle_failures_total", map[string]string{"policy": "demo", "stage": "query"}); v < 1 {
		t.Errorf("cycle_failures_total{stage=query} = %v during the outage", v)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	after := testutil.Eventually(t, 30*time.Second, "a successful cycle after the restart", func() (forecast.PolicyStatus, bool) {
		s := mgr.Status()[0]
		return s, s.LastSuccess.After(restarted)
	})
	got := queryAt(t, q, "timestamp("+forecast.DesiredMetric+")", after.LastSuccess)
	if len(got) != 2 {
		t.Fatalf("after recovery Prometheus has %d desired-replicas series at %v, want 2", len(got), after.LastSuccess)
	}
	for _, s := range got {
		if int64(math.Round(s.V*1000)) != after.LastSuccess.UnixMilli() {
			t.Errorf("newest sample at %v s, want the cycle after the restart, %d ms", s.V, after.LastSuccess.UnixMilli())
		}
	}
}

// TestForecasterReceiverDisabled runs the forecaster against a real
// Prometheus started without its remote-write receiver: every write fails,
// the status page says how to turn the receiver on, and still shows the
// forecasts the cycles computed.
func TestForecasterReceiverDisabled(t *testing.T) {
	srv, _, _ := loadTraceWith(t, 1, promtest.Options{NoRemoteWriteReceiver: true})
	q, w := newClients(t, srv)
	p := testPolicy(t, "1s")
	mgr, err := forecast.NewManager(forecast.Options{
		Registerer: prometheus.NewRegistry(), Writer: w, WriteTimeout: 2 * time.Second,
		Queriers: func(*policy.DataSource) (forecast.Querier, error) { return q, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer mgr.Stop()
	if err := mgr.Apply(&policy.Set{Policies: []*policy.ForecastPolicy{p}}, nil); err != nil {
		t.Fatal(err)
	}
	st := testutil.Eventually(t, 30*time.Second, "a cycle whose write failed", func() (forecast.PolicyStatus, bool) {
		s := mgr.Status()[0]
		return s, s.LastError != "" && len(s.Series) > 0
	})
	if !st.LastSuccess.IsZero() {
		t.Errorf("last success %v, want none: no write can succeed", st.LastSuccess)
	}
	for _, want := range []string{"remote write", "--web.enable-remote-write-receiver", "enableRemoteWriteReceiver: true"} {
		if !strings.Contains(st.LastError, want) {
			t.Errorf("last error %q does not say %q", st.LastError, want)
		}
	}
	if len(st.Series) != 2 {
		t.Fatalf("status shows %d series, want the 2 forecast", len(st.Series))
	}
	for _, s := range st.Series {
		if s.Error != "" || len(s.Predicted) != 3 || s.Desired < 1 {
			t.Errorf("series %v: error %q, predicted %v, desired %d; want a forecast", s.Labels, s.Error, s.Predicted, s.Desired)
		}
	}
	rec := httptest.NewRecorder()
	mgr.StatusHandler("test").ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	page := rec.Body.String()
	for _, want := range []string{"--web.enable-remote-write-receiver", `service=&#34;a&#34;`, "5m: "} {
		if !strings.Contains(page, want) {
			t.Errorf("status page does not show %q:\n%s", want, page)
		}
	}
}

// gatherValue sums the samples of a metric family whose labels include match.
func gatherValue(t *testing.T, g prometheus.Gatherer, name string, match map[string]string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range match {
				if have[k] != v {
					continue metrics
				}
			}
			switch {
			case m.Counter != nil:
				sum += m.GetCounter().GetValue()
			case m.Gauge != nil:
				sum += m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// BenchmarkCycle7d measures one policy's cycle with 7 days of 1-minute
// history against a real Prometheus: the first full fetch once, then per
// iteration an incremental fetch, the forecast and the remote write.
func BenchmarkCycle7d(b *testing.B) {
	promtest.RequireBinaries(b)
	path, ok := trace.Locate("ms_mongodb_app_query_rate_1min.csv")
	if !ok {
		b.Fatal("trace not found")
	}
	pts, err := trace.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	pts = pts[len(pts)-7*24*60:]
	end := time.Now().Truncate(time.Minute)
	shift := end.Sub(pts[len(pts)-1].T)
	s := promtest.Series{Name: testMetric, Labels: labels.FromStrings("service", "a")}
	for _, p := range pts {
		s.Points = append(s.Points, promtest.Point{T: p.T.Add(shift).UnixMilli(), V: p.V})
	}
	dir := b.TempDir()
	ctx := context.Background()
	if err := promtest.CreateBlocks(ctx, dir, []promtest.Series{s}); err != nil {
		b.Fatal(err)
	}
	srv := promtest.StartInT(b, dir, promtest.Options{})
	q, err := promapi.NewClient(promapi.ClientConfig{URL: srv.URL()})
	if err != nil {
		b.Fatal(err)
	}
	w, err := promapi.NewWriter(promapi.WriterConfig{URL: srv.RemoteWriteURL()})
	if err != nil {
		b.Fatal(err)
	}
	set, errs := policy.Parse([]byte(fmt.Sprintf(`
apiVersion: kedastral.io/v1alpha1
kind: ForecastPolicy
metadata: {name: bench}
spec:
  targetRef: {name: api}
  horizon: 30m
  leadTime: 5m
  capacity: {targetPerPod: 200, max: 100}
  model: {type: baseline, quantile: 0.85}
  sources: [{name: qps, query: 'sum(%s)'}]
`, testMetric)), "bench.yaml")
	if len(errs) > 0 {
		b.Fatal(errs)
	}
	e := forecast.NewEvaluator(set.Policies[0], q)
	start := time.Now()
	n, err := e.Fetch(ctx, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	firstFetch := time.Since(start)
	b.ResetTimer()
	ts := time.Now()
	for i := 0; i < b.N; i++ {
		ts = ts.Add(time.Millisecond)
		if _, err := e.Fetch(ctx, ts); err != nil {
			b.Fatal(err)
		}
		c := e.Evaluate(ctx, ts)
		if len(c.Samples) != 5 { // observed, predicted 5m and 30m, desired, capacity per replica
			b.Fatalf("%d samples", len(c.Samples))
		}
		if _, err := w.Write(ctx, c.Samples); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(firstFetch.Microseconds())/1000, "first-fetch-ms")
	b.ReportMetric(float64(n), "first-fetch-points")
}

// TestStatusPageChartsInBrowser runs the forecaster against a real
// Prometheus, then renders its status page in headless Chromium: each
// series has a chart of its observed value, its forecast and its desired
// replicas over the last cycles, drawn from the forecaster's memory, and
// the page shows the version.
func TestStatusPageChartsInBrowser(t *testing.T) {
	srv, _, _ := loadTrace(t, 1)
	q, w := newClients(t, srv)
	p := testPolicy(t, "1s")
	mgr, err := forecast.NewManager(forecast.Options{
		Registerer: prometheus.NewRegistry(), Writer: w, RecentSpacing: time.Second,
		Queriers: func(*policy.DataSource) (forecast.Querier, error) { return q, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer mgr.Stop()
	if err := mgr.Apply(&policy.Set{Policies: []*policy.ForecastPolicy{p}}, nil); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 60*time.Second, "six points of each series", func() (string, bool) {
		pts, _ := mgr.RecentPoints("demo")
		return fmt.Sprint(len(pts)), len(pts) == 2 && len(pts[`{service="a"}`]) >= 6 && len(pts[`{service="b"}`]) >= 6
	})
	mgr.Stop()
	pts, ahead := mgr.RecentPoints("demo")
	if ahead != 5*time.Minute {
		t.Errorf("forecasts drawn for %s ahead, want the policy's first ahead, 5m", ahead)
	}
	for k, s := range pts {
		for i, pt := range s {
			if i > 0 && pt.T-s[i-1].T < 1000 || math.IsNaN(pt.Predicted) || pt.Desired < 1 {
				t.Errorf("series %s point %d: %+v", k, i, pt)
			}
		}
	}

	rec := httptest.NewRecorder()
	mgr.StatusHandler("1.2.3, revision abc").ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	dom, shot := testutil.Headless(t, rec.Body.Bytes(), 1000, 1400)
	if !strings.Contains(string(dom), "Version 1.2.3, revision abc") {
		t.Error("the page does not show the version")
	}
	if n := strings.Count(string(dom), `<svg class="series-chart"`); n != 2 {
		t.Errorf("%d series charts, want 2", n)
	}
	for _, class := range []string{"observed", "predicted", "desired"} {
		lines := regexp.MustCompile(`<polyline class="`+class+`"[^>]* points="([^"]*)"`).FindAllStringSubmatch(string(dom), -1)
		if len(lines) != 2 {
			t.Errorf("%d %s lines, want one a series", len(lines), class)
		}
		for _, l := range lines {
			if n := len(strings.Fields(l[1])); n < 6 {
				t.Errorf("%s line of %d points, want one a cycle (≥ 6)", class, n)
			}
		}
	}
	// The lines were drawn. The cycles of this test span seconds and the
	// forecast is for 5 minutes later, so they are short: the forecast's
	// orange and the desired replicas' blue, a few pixels each.
	for name, rgb := range map[string]uint32{"forecast": 0xff7f0e, "desired replicas": 0x1f77b4} {
		if n := testutil.CountColor(shot, rgb); n < 20 {
			t.Errorf("%d pixels of the %s color #%06x on the screenshot, want a drawn line (≥ 20)", n, name, rgb)
		}
	}
}
