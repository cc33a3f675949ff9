package scale

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/kedastral/kedastral/promapi"
	"github.com/kedastral/kedastral/promapi/promtest"
)

// BenchmarkRemoteWritePrometheus writes one forecaster cycle of a 10 000
// series fan-out policy (observed, two predicted and desired per series:
// 40 000 samples) per iteration to a real Prometheus on loopback through
// promapi.Writer, and reports the samples per second it accepted; then the
// time a scaler's read of those 10 000 desired-replicas series takes.
func BenchmarkRemoteWritePrometheus(b *testing.B) {
	promtest.RequireBinaries(b)
	prom := promtest.StartT(b, promtest.Options{})
	w, err := promapi.NewWriter(promapi.WriterConfig{URL: prom.RemoteWriteURL()})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	const n = 10000
	var base []labels.Labels
	for i := range n {
		ns, d := fmt.Sprintf("ns-%03d", i/100), fmt.Sprintf("svc-%05d", i)
		base = append(base,
			labels.FromStrings("__name__", "kedastral_observed_value", "policy", "fleet", "namespace", ns, "deployment", d),
			labels.FromStrings("__name__", "kedastral_predicted_value", "ahead", "5m", "quantile", "0.85", "policy", "fleet", "namespace", ns, "deployment", d),
			labels.FromStrings("__name__", "kedastral_predicted_value", "ahead", "30m", "quantile", "0.85", "policy", "fleet", "namespace", ns, "deployment", d),
			labels.FromStrings("__name__", "kedastral_desired_replicas", "policy", "fleet", "namespace", ns, "deployment", d),
		)
	}
	samples := make([]promapi.Sample, len(base))
	ctx := context.Background()
	t0 := time.Now().Add(-time.Minute).UnixMilli()
	sent := 0
	b.ResetTimer()
	for i := range b.N {
		for j, l := range base {
			samples[j] = promapi.Sample{Labels: l, T: t0 + int64(i)*1000, V: float64(j % 50)}
		}
		st, err := w.Write(ctx, samples)
		if err != nil {
			b.Fatal(err)
		}
		sent += st.Sent
	}
	b.ReportMetric(float64(sent)/b.Elapsed().Seconds(), "samples/s")
	b.ReportMetric(float64(len(samples)), "samples/op")

	// What a scaler then pays per policy and --cache.ttl: the instant query
	// of the newest desired replicas and their time stamps of all 10 000
	// series (the scaler's forecastQuery).
	b.StopTimer()
	c, err := promapi.NewClient(promapi.ClientConfig{URL: prom.URL()})
	if err != nil {
		b.Fatal(err)
	}
	const sel = `kedastral_desired_replicas{policy="fleet"}`
	q := sel + ` or label_replace(timestamp(` + sel + `), "__kedastral_sample_time", "1", "", "")`
	var took time.Duration
	const reads = 5
	for range reads {
		start := time.Now()
		res, err := c.Query(ctx, q, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		took += time.Since(start)
		if len(res) != 2*n {
			b.Fatalf("%d samples, want %d", len(res), 2*n)
		}
	}
	b.ReportMetric(float64(took.Milliseconds())/reads, "scaler-read-ms")
}
