//go:build livewip

package live

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/kedastral/kedastral/engine/trace"
	"github.com/kedastral/kedastral/promapi"
	"github.com/kedastral/kedastral/promapi/promtest"
	"github.com/kedastral/kedastral/test/testutil"
)

const (
	// traceFile is the MongoDB query rate (MIT): every weekday at 07:00 UTC
	// it jumps from about 7,000 to 10,000 queries/s within two minutes.
	traceFile = "ms_mongodb_app_query_rate_1min.csv"
	// riseRow is the trace's row of such a rise (Thursday 2018-05-03 07:00
	// UTC, 9,314 after 7,045 a minute before), after eight days of history.
	riseRow = 1525330800
	// riseAfter places the rise this long after the history's end (T0).
	riseAfter = 7 * time.Minute
	// feedEvery is how often the live feed remote-writes the signal.
	feedEvery = 5 * time.Second
	// signalQuery is the signal, in queries/s.
	signalQuery = `sum(app_rps{job="api"})`
	// targetPerPod is the load one replica serves.
	targetPerPod = 1000
)

// feedSignal is a Prometheus holding the trace as app_rps{job="api"} up to T0
// and a live feed that continues it in real time.
type feedSignal struct {
	prom *promtest.Server
	t0   time.Time
	rise time.Time
	pts  []trace.Point // the trace, its times moved so that riseRow is at rise

	mu  sync.Mutex
	fed []trace.Point // what the feed wrote, in order
}

func startSignal(t *testing.T, e *env) *feedSignal {
	path, ok := trace.Locate(traceFile)
	if !ok {
		t.Fatalf("trace %s not found under testdata/traces", traceFile)
	}
	raw, err := trace.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := &feedSignal{t0: time.Now().Truncate(time.Minute)}
	s.rise = s.t0.Add(riseAfter)
	shift := s.rise.Sub(time.Unix(riseRow, 0))
	hist := promtest.Series{Name: "app_rps", Labels: labels.FromStrings("job", "api")}
	for _, p := range raw {
		p.T = p.T.Add(shift)
		s.pts = append(s.pts, p)
		if !p.T.After(s.t0) {
			hist.Points = append(hist.Points, promtest.Point{T: p.T.UnixMilli(), V: p.V})
		}
	}
	if len(hist.Points) < 8*24*60 {
		t.Fatalf("only %d points of history before the rise in %s", len(hist.Points), traceFile)
	}
	dir := filepath.Join(e.dir, "prometheus")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := promtest.CreateBlocks(ctx, dir, []promtest.Series{hist}); err != nil {
		t.Fatal(err)
	}
	s.prom = promtest.StartInT(t, dir, promtest.Options{})
	w, err := promapi.NewWriter(promapi.WriterConfig{URL: s.prom.RemoteWriteURL()})
	if err != nil {
		t.Fatal(err)
	}
	fctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.feed(fctx, w) }()
	t.Cleanup(func() { stop(); <-done; w.Close() })
	return s
}

// at is the trace's value in force at time now.
func (s *feedSignal) at(now time.Time) float64 {
	v := s.pts[0].V
	for _, p := range s.pts {
		if p.T.After(now) {
			break
		}
		v = p.V
	}
	return v
}

func (s *feedSignal) feed(ctx context.Context, w *promapi.Writer) {
	lbls := labels.FromStrings(labels.MetricName, "app_rps", "job", "api")
	tick := time.NewTicker(feedEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			v := s.at(now)
			wctx, cancel := context.WithTimeout(ctx, 4*time.Second)
			_, err := w.Write(wctx, []promapi.Sample{{Labels: lbls, T: now.UnixMilli(), V: v}})
			cancel()
			if err == nil {
				s.mu.Lock()
				s.fed = append(s.fed, trace.Point{T: now, V: v})
				s.mu.Unlock()
			}
		}
	}
}

// observed is what the feed had written by time at (NaN before it began).
func (s *feedSignal) observed(at time.Time) (float64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := 0.0, false
	for _, p := range s.fed {
		if p.T.After(at) {
			break
		}
		v, ok = p.V, true
	}
	return v, ok
}

// kedastral is the forecaster (policy file mode) and the scaler.
type kedastral struct {
	bin        string
	policyFile string
	promURL    string
	forecaster *proc
	scaler     *proc
	grpcAddr   string
	webAddr    string
}

// policyYAML is the policy of the live loop: the next 5 minutes' load at
// the 0.85 quantile of the baseline model, 1000 queries/s a replica.
const policyYAML = `apiVersion: kedastral.io/v1alpha1
kind: ForecastPolicy
metadata:
  name: api
spec:
  targetRef:
    name: api
  metric: app_rps
  horizon: 15m
  leadTime: 5m
  interval: 10s
  step: 1m
  capacity:
    targetPerPod: 1000
    headroom: 1.0
    min: 1
    max: 30
  model:
    type: baseline
    quantile: 0.85
  sources:
    - name: rps
      type: prometheus
      query: 'sum(app_rps{job="api"})'
`

const (
	forecasterWeb = "127.0.0.1:8080"
	scalerGRPC    = "127.0.0.1:50051"
	scalerWeb     = "127.0.0.1:8081"
)

func startKedastral(t *testing.T, e *env, s *feedSignal) *kedastral {
	k := &kedastral{bin: testutil.Kedastral(t), promURL: s.prom.URL(), grpcAddr: scalerGRPC, webAddr: forecasterWeb}
	k.policyFile = filepath.Join(e.dir, "policies.yaml")
	if err := os.WriteFile(k.policyFile, []byte(policyYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	k.startForecaster(t, e)
	k.startScaler(t, e)
	return k
}

func (k *kedastral) startForecaster(t testing.TB, e *env) {
	k.forecaster = e.start(t, "kedastral-forecaster", nil, k.bin, "forecaster",
		"--config.file="+k.policyFile, "--prometheus.url="+k.promURL, "--web.listen-address="+forecasterWeb)
	e.waitHTTP(t, "http://"+forecasterWeb+"/-/ready", nil, "", time.Minute, k.forecaster)
}

func (k *kedastral) startScaler(t testing.TB, e *env) {
	k.scaler = e.start(t, "kedastral-scaler", nil, k.bin, "scaler",
		"--prometheus.url="+k.promURL, "--grpc.listen-address="+scalerGRPC, "--web.listen-address="+scalerWeb)
	e.waitHTTP(t, "http://"+scalerWeb+"/-/ready", nil, "", time.Minute, k.scaler)
}

// desired is kedastral_desired_replicas of the policy now, from Prometheus.
func desired(ctx context.Context, q *promapi.Client) (float64, error) {
	res, err := q.Query(ctx, `kedastral_desired_replicas{policy="api"}`, time.Now())
	if err != nil {
		return 0, err
	}
	if len(res) != 1 {
		return 0, fmt.Errorf("%d series of kedastral_desired_replicas", len(res))
	}
	return res[0].V, nil
}
