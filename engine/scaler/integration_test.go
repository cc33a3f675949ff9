package scaler

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kedastral/kedastral/promapi"
	"github.com/kedastral/kedastral/promapi/promtest"
	pb "github.com/kedastral/kedastral/proto"
)

// promEnv is a real Prometheus with a remote-write client and a query client.
type promEnv struct {
	prom   *promtest.Server
	writer *promapi.Writer
	client *promapi.Client
}

func startProm(t *testing.T) *promEnv {
	t.Helper()
	prom := promtest.StartT(t, promtest.Options{})
	w, err := promapi.NewWriter(promapi.WriterConfig{URL: prom.RemoteWriteURL()})
	if err != nil {
		t.Fatal(err)
	}
	c, err := promapi.NewClient(promapi.ClientConfig{URL: prom.URL(), Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close(); c.Close() })
	return &promEnv{prom: prom, writer: w, client: c}
}

// write remote-writes one sample per series, as the forecaster does.
func (e *promEnv) write(t *testing.T, name string, ls labels.Labels, v float64, at time.Time) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ls = labels.NewBuilder(ls).Set(labels.MetricName, name).Labels()
	if _, err := e.writer.Write(ctx, []promapi.Sample{{Labels: ls, T: at.UnixMilli(), V: v}}); err != nil {
		t.Fatalf("remote write %s: %v", ls, err)
	}
}

func TestIntegrationPrometheus(t *testing.T) {
	env := startProm(t)
	now := time.Now()
	fresh, stale := now.Add(-15*time.Second), now.Add(-3*time.Minute)
	apiLabels := labels.FromStrings("policy", "api", "namespace", "shop", "deployment", "api")
	webLabels := labels.FromStrings("policy", "api", "namespace", "shop", "deployment", "web")
	env.write(t, DesiredReplicasMetric, labels.FromStrings("policy", "old", "deployment", "api"), 9, stale)
	env.write(t, DesiredReplicasMetric, apiLabels, 7, fresh)
	env.write(t, DesiredReplicasMetric, webLabels, 0, fresh)
	// Other kedastral series of the same policy must not confuse the scaler.
	env.write(t, "kedastral_observed_value", apiLabels, 120, fresh)
	env.write(t, "kedastral_predicted_value", labels.NewBuilder(apiLabels).Set("ahead", "5m").Set("quantile", "0.85").Labels(), 140, fresh)
	env.write(t, "kedastral_test_requests", labels.FromStrings("deployment", "api"), 95, now.Add(-5*time.Second))

	ts := startServer(t, Options{Querier: env.client, CacheTTL: 50 * time.Millisecond, StreamCheckInterval: 20 * time.Millisecond})
	ctx := ctxT(t)

	reactive := map[string]string{"reactiveQuery": `sum(kedastral_test_requests)`, "reactiveTargetPerPod": "10"}
	with := func(m map[string]string, extra ...map[string]string) map[string]string {
		out := map[string]string{"scalerAddress": "kedastral-scaler.kedastral:50051"}
		for _, e := range append([]map[string]string{m}, extra...) {
			for k, v := range e {
				out[k] = v
			}
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		meta   map[string]string
		want   float64
		active bool
		code   codes.Code
		msg    string
	}{
		{name: "fresh", meta: with(map[string]string{"policy": "api", "matchLabels": "namespace=shop,deployment=api"}), want: 7, active: true},
		{name: "fresh zero", meta: with(map[string]string{"policy": "api", "matchLabels": "deployment=web"}), want: 0},
		{name: "hybrid, reactive wins", meta: with(map[string]string{"policy": "api", "matchLabels": "deployment=web"}, reactive), want: 10, active: true},
		{name: "hybrid, forecast wins", meta: with(map[string]string{"policy": "api", "matchLabels": "deployment=api", "reactiveTargetPerPod": "50"}, map[string]string{"reactiveQuery": reactive["reactiveQuery"]}), want: 7, active: true},
		{name: "stale, reactive fallback", meta: with(map[string]string{"policy": "old"}, reactive), want: 10, active: true},
		{name: "stale within a longer maxForecastAge", meta: with(map[string]string{"policy": "old", "maxForecastAge": "4m"}), want: 9, active: true},
		{name: "stale without reactive", meta: with(map[string]string{"policy": "old"}), code: codes.Unavailable, msg: "is stale: newest sample is 3m0"},
		{name: "missing without reactive", meta: with(map[string]string{"policy": "nope"}), code: codes.Unavailable, msg: `no kedastral_desired_replicas sample for kedastral_desired_replicas{policy="nope"}`},
		{name: "missing, reactive fallback", meta: with(map[string]string{"policy": "nope"}, reactive), want: 10, active: true},
		{name: "ambiguous", meta: with(map[string]string{"policy": "api", "matchLabels": "namespace=shop"}), code: codes.InvalidArgument,
			msg: `matches 2 series; add labels to tell them apart: {deployment="api", namespace="shop", policy="api"}, {deployment="web", namespace="shop", policy="api"}`},
		{name: "bad PromQL", meta: with(map[string]string{"policy": "api", "reactiveQuery": "sum(", "reactiveTargetPerPod": "1"}), code: codes.InvalidArgument, msg: `"reactiveQuery"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec, err := ts.client.GetMetricSpec(ctx, ref(tc.meta))
			if tc.code == codes.InvalidArgument && strings.Contains(tc.msg, "reactiveQuery") {
				if status.Code(err) != codes.InvalidArgument {
					t.Fatalf("GetMetricSpec: %v, want InvalidArgument", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("GetMetricSpec: %v", err)
			}
			name := spec.MetricSpecs[0].MetricName
			resp, err := ts.client.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: ref(tc.meta), MetricName: name})
			act, aerr := ts.client.IsActive(ctx, ref(tc.meta))
			if tc.code != codes.OK {
				if st := status.Convert(err); st.Code() != tc.code || !strings.Contains(st.Message(), tc.msg) {
					t.Fatalf("GetMetrics: %v, want %v containing %q", err, tc.code, tc.msg)
				}
				if status.Code(aerr) != tc.code {
					t.Fatalf("IsActive: %v, want %v", aerr, tc.code)
				}
				return
			}
			if err != nil || aerr != nil {
				t.Fatalf("GetMetrics: %v; IsActive: %v", err, aerr)
			}
			v := resp.MetricValues[0]
			if v.MetricName != name || v.MetricValue != int64(tc.want) || v.MetricValueFloat != tc.want {
				t.Errorf("GetMetrics: %v, want %v in both fields", v, tc.want)
			}
			if act.Result != tc.active {
				t.Errorf("IsActive: %v, want %v", act.Result, tc.active)
			}
		})
	}

	// The age seen is the sample's, not the evaluation time.
	oldName := mustParse(t, map[string]string{"policy": "old"}).MetricName()
	if age := testutil.ToFloat64(ts.metrics.forecastAge.WithLabelValues("shop", "old", oldName)); age < 180 || age > 240 {
		t.Errorf("forecast age seen %vs, want about 180s", age)
	}

	t.Run("stream follows new forecasts", func(t *testing.T) {
		meta := with(map[string]string{"policy": "api", "matchLabels": "deployment=web"})
		stream, err := ts.client.StreamIsActive(ctx, ref(meta))
		if err != nil {
			t.Fatal(err)
		}
		if resp, err := stream.Recv(); err != nil || resp.Result {
			t.Fatalf("first push %v, %v; want inactive", resp, err)
		}
		env.write(t, DesiredReplicasMetric, webLabels, 3, time.Now())
		if resp, err := stream.Recv(); err != nil || !resp.Result { // bounded by ctx
			t.Fatalf("after a forecast of 3: %v, %v; want active", resp, err)
		}
		resp, err := ts.client.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: ref(meta)})
		if err != nil || resp.MetricValues[0].MetricValueFloat != 3 || resp.MetricValues[0].MetricValue != 3 {
			t.Fatalf("GetMetrics after the new forecast: %v, %v", resp, err)
		}
	})

	t.Run("prometheus down", func(t *testing.T) {
		if err := env.prom.Stop(); err != nil {
			t.Fatal(err)
		}
		meta := with(map[string]string{"policy": "api", "matchLabels": "deployment=api"})
		if _, err := ts.client.GetMetricSpec(ctx, ref(meta)); err != nil {
			t.Fatalf("GetMetricSpec must not need Prometheus: %v", err)
		}
		deadline := time.Now().Add(5 * time.Second) // past the cache TTL
		for {
			_, err := ts.client.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: ref(meta)})
			if status.Code(err) == codes.Unavailable {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("GetMetrics with Prometheus down: %v, want Unavailable", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if testutil.ToFloat64(ts.metrics.queryErrors.WithLabelValues("forecast")) == 0 {
			t.Error("query error not counted")
		}
	})
}
