package scale

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/kedastral/kedastral/promapi"
	"github.com/kedastral/kedastral/promapi/promtest"
	"github.com/kedastral/kedastral/test/prereq"
	"github.com/kedastral/kedastral/test/testutil"
)

// backend is a Prometheus-compatible store: a query API and a remote-write
// receiver, started with some history already in it.
type backend struct {
	name           string
	url            string
	remoteWriteURL string
}

// startPrometheus starts a real Prometheus (promtest) holding series.
func startPrometheus(t *testing.T, series []promtest.Series) backend {
	t.Helper()
	promtest.RequireBinaries(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := promtest.CreateBlocks(ctx, dir, series); err != nil {
		t.Fatal(err)
	}
	p := promtest.StartInT(t, dir, promtest.Options{})
	return backend{name: "prometheus", url: p.URL(), remoteWriteURL: p.RemoteWriteURL()}
}

// victoriaMetricsBinary finds the victoria-metrics binary:
// $VICTORIA_METRICS_BINARY, then $PATH, then $(go env GOPATH)/bin, and fails
// the test without it.
func victoriaMetricsBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("VICTORIA_METRICS_BINARY"); p != "" {
		return p
	}
	return prereq.Program(t, "victoria-metrics")
}

// startVictoriaMetrics starts VictoriaMetrics single-node on loopback and
// loads series into it through its Prometheus remote-write endpoint.
func startVictoriaMetrics(t *testing.T, series []promtest.Series) backend {
	t.Helper()
	bin := victoriaMetricsBinary(t)
	addr := testutil.FreeAddr(t)
	testutil.Start(t, testutil.ProcOptions{Name: "victoria-metrics"}, bin,
		"-storageDataPath="+t.TempDir(),
		"-httpListenAddr="+addr,
		"-retentionPeriod=100y",
		// Serve what was just written: no 30s latency offset, no result cache.
		"-search.latencyOffset=0s",
		"-search.disableCache",
		"-loggerLevel=WARN",
	)
	b := backend{name: "victoriametrics", url: "http://" + addr, remoteWriteURL: "http://" + addr + "/api/v1/write"}
	testutil.Eventually(t, 30*time.Second, "healthy victoria-metrics", func() (string, bool) {
		code, body := testutil.Get(t, b.url+"/health")
		return body, code == 200
	})
	w, err := promapi.NewWriter(promapi.WriterConfig{URL: b.remoteWriteURL})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var samples []promapi.Sample
	for _, s := range series {
		l := labels.NewBuilder(s.Labels).Set(labels.MetricName, s.Name).Labels()
		for _, p := range s.Points {
			samples = append(samples, promapi.Sample{Labels: l, T: p.T, V: p.V})
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := w.Write(ctx, samples); err != nil {
		t.Fatal(err)
	}
	if code, body := testutil.Get(t, b.url+"/internal/force_flush"); code != 200 {
		t.Fatalf("force_flush: %d %s", code, body)
	}
	return b
}

// flatSeries is app_load{deployment=d} at v every minute for the last 3h.
func flatSeries(values map[string]float64) []promtest.Series {
	now := time.Now().Truncate(time.Minute)
	var out []promtest.Series
	for d, v := range values {
		s := promtest.Series{Name: "app_load", Labels: labels.FromStrings("deployment", d)}
		for i := 180; i >= 0; i-- {
			s.Points = append(s.Points, promtest.Point{T: now.Add(-time.Duration(i) * time.Minute).UnixMilli(), V: v})
		}
		out = append(out, s)
	}
	return out
}
