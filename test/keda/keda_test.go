package keda

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/kedacore/keda/v2/pkg/scalers"
	"github.com/kedacore/keda/v2/pkg/scalers/scalersconfig"
	"github.com/prometheus/prometheus/model/labels"
	v2 "k8s.io/api/autoscaling/v2"
	"k8s.io/metrics/pkg/apis/external_metrics"

	"github.com/kedastral/kedastral/promapi/promtest"
)

// hpaTolerance is the HPA controller's default --horizontal-pod-autoscaler-tolerance.
const hpaTolerance = 0.1

// hpaReplicas is what the HPA controller computes for one External metric
// with an AverageValue target (k8s.io/kubernetes pkg/controller/podautoscaler
// replica_calculator.go, GetExternalPerPodMetricReplicas): the metric values
// summed, divided by the target per pod, rounded up, unless the change is
// within the tolerance of the current count; before the min/max clamp
// (scaling to and from zero is KEDA's, through the activity).
func hpaReplicas(current int32, values []external_metrics.ExternalMetricValue, target v2.MetricTarget) int32 {
	usage := int64(0)
	for _, v := range values {
		usage += v.Value.MilliValue()
	}
	perPod := target.AverageValue.MilliValue()
	replicas := int32(math.Ceil(float64(usage) / float64(perPod)))
	if current != 0 {
		ratio := float64(usage) / (float64(perPod) * float64(current))
		if math.Abs(1-ratio) <= hpaTolerance {
			return current
		}
	}
	return replicas
}

type env struct {
	addr  string // the scaler's gRPC address
	rwURL string // Prometheus' remote-write URL
}

func (e *env) write(t *testing.T, ls labels.Labels, v float64, at time.Time) {
	t.Helper()
	remoteWrite(t, e.rwURL, ls, v, at)
}

// start runs a real Prometheus and `kedastral scaler` (with extra flags) on
// loopback.
func start(t *testing.T, scalerArgs ...string) *env {
	t.Helper()
	prom := promtest.StartT(t, promtest.Options{})
	return &env{addr: startScaler(t, prom.URL(), scalerArgs...), rwURL: prom.RemoteWriteURL()}
}

func desired(policy string, kv ...string) labels.Labels {
	return labels.FromStrings(append([]string{"__name__", "kedastral_desired_replicas", "policy", policy}, kv...)...)
}

// config is the ScalerConfig the KEDA operator builds for a ScaledObject trigger.
func config(triggerType string, index int, meta map[string]string) *scalersconfig.ScalerConfig {
	return &scalersconfig.ScalerConfig{
		ScalableObjectName:      "api",
		ScalableObjectNamespace: "shop",
		ScalableObjectType:      "ScaledObject",
		GlobalHTTPTimeout:       3 * time.Second,
		TriggerType:             triggerType,
		TriggerIndex:            index,
		TriggerMetadata:         meta,
		ResolvedEnv:             map[string]string{},
		AuthParams:              map[string]string{},
		MetricType:              v2.AverageValueMetricType,
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestExternalScaler(t *testing.T) {
	e := start(t)
	now := time.Now()
	e.write(t, desired("api", "namespace", "shop", "deployment", "api"), 7, now.Add(-10*time.Second))
	e.write(t, desired("api", "namespace", "shop", "deployment", "web"), 0, now.Add(-10*time.Second))
	e.write(t, desired("old", "deployment", "api"), 9, now.Add(-3*time.Minute))
	e.write(t, labels.FromStrings("__name__", "app_requests", "deployment", "api"), 95, now.Add(-5*time.Second))

	names := map[string]string{} // metric name → selection
	for _, tc := range []struct {
		name     string
		index    int
		meta     map[string]string
		current  int32 // the workload's replicas now
		want     float64
		active   bool
		replicas int32 // the HPA's answer
		errPart  string
	}{
		{name: "forecast", index: 0, meta: map[string]string{"policy": "api", "matchLabels": "namespace=shop,deployment=api"}, current: 2, want: 7, active: true, replicas: 7},
		{name: "forecast zero", index: 1, meta: map[string]string{"policy": "api", "matchLabels": "deployment=web"}, current: 1, want: 0, active: false, replicas: 0},
		{name: "hybrid", index: 2, meta: map[string]string{"policy": "api", "matchLabels": "deployment=web", "reactiveQuery": "sum(app_requests)", "reactiveTargetPerPod": "10"}, current: 3, want: 10, active: true, replicas: 10},
		{name: "stale, reactive fallback", index: 0, meta: map[string]string{"policy": "old", "reactiveQuery": "sum(app_requests)", "reactiveTargetPerPod": "20"}, current: 9, want: 5, active: true, replicas: 5},
		{name: "stale without reactive", index: 0, meta: map[string]string{"policy": "old"}, errPart: "Unavailable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			meta := map[string]string{"scalerAddress": e.addr}
			for k, v := range tc.meta {
				meta[k] = v
			}
			s, err := scalers.NewExternalScaler(config("external", tc.index, meta))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(context.Background())
			ctx := ctxT(t)

			specs := s.GetMetricSpecForScaling(ctx)
			if len(specs) != 1 || specs[0].External == nil {
				t.Fatalf("metric specs %+v", specs)
			}
			ext := specs[0].External
			if prefix := fmt.Sprintf("s%d-kedastral-%s-", tc.index, tc.meta["policy"]); !strings.HasPrefix(ext.Metric.Name, prefix) {
				t.Errorf("metric name %q, want prefix %q", ext.Metric.Name, prefix)
			}
			selection := tc.meta["policy"] + "{" + tc.meta["matchLabels"] + "}"
			if other, ok := names[ext.Metric.Name]; ok && other != selection {
				t.Errorf("selections %s and %s share the metric name %q", other, selection, ext.Metric.Name)
			}
			names[ext.Metric.Name] = selection
			if ext.Target.Type != v2.AverageValueMetricType || ext.Target.AverageValue == nil || ext.Target.AverageValue.MilliValue() != 1000 {
				t.Fatalf("target %+v, want AverageValue 1", ext.Target)
			}

			values, active, err := s.GetMetricsAndActivity(ctx, ext.Metric.Name)
			if tc.errPart != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errPart) {
					t.Fatalf("GetMetricsAndActivity: %v, %v, want an error with %q", values, err, tc.errPart)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(values) != 1 || values[0].MetricName != ext.Metric.Name || values[0].Value.MilliValue() != int64(tc.want*1000) {
				t.Fatalf("metric values %+v, want %v", values, tc.want)
			}
			if active != tc.active {
				t.Errorf("active %v, want %v", active, tc.active)
			}
			if got := hpaReplicas(tc.current, values, ext.Target); got != tc.replicas {
				t.Errorf("HPA replicas %d, want %d", got, tc.replicas)
			}
		})
	}
}

func TestExternalPushScaler(t *testing.T) {
	e := start(t)
	series := desired("api", "deployment", "api")
	e.write(t, series, 0, time.Now())

	meta := map[string]string{"scalerAddress": e.addr, "policy": "api"}
	s, err := scalers.NewExternalPushScaler(config("external-push", 0, meta))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	ctx := ctxT(t)
	runCtx, stop := context.WithCancel(ctx)
	active := make(chan bool)
	go s.Run(runCtx, active)
	defer func() {
		stop()
		for range active { // Run closes it
		}
	}()

	recv := func(what string) bool {
		t.Helper()
		select {
		case v, ok := <-active:
			if !ok {
				t.Fatalf("%s: active channel closed", what)
			}
			return v
		case <-ctx.Done():
			t.Fatalf("%s: no push", what)
		}
		return false
	}
	if recv("first push") {
		t.Fatal("active with 0 replicas")
	}
	e.write(t, series, 4, time.Now())
	if !recv("after a forecast of 4") {
		t.Fatal("not active with 4 replicas")
	}

	polled := s.GetMetricSpecForScaling(ctx)
	if len(polled) != 1 || polled[0].External == nil {
		t.Fatalf("metric specs %+v", polled)
	}
	streamer, ok := s.(scalers.MetricSpecStreamer)
	if !ok {
		t.Fatal("KEDA's push scaler does not stream metric specs")
	}
	select {
	case specs := <-streamer.MetricSpecChan():
		if len(specs) != 1 || specs[0].External.Metric.Name != polled[0].External.Metric.Name || specs[0].External.Target.AverageValue.MilliValue() != 1000 {
			t.Fatalf("streamed metric specs %+v, want those of GetMetricSpec %+v", specs, polled)
		}
	case <-ctx.Done():
		t.Fatal("no streamed metric spec")
	}

	values, act, err := s.GetMetricsAndActivity(ctx, polled[0].External.Metric.Name)
	if err != nil || !act || values[0].Value.MilliValue() != 4000 {
		t.Fatalf("GetMetricsAndActivity: %v, %v, %v", values, act, err)
	}
}

// TestExternalScalerFromEnv: KEDA resolves <key>FromEnv from the workload's
// environment and passes the key on unchanged.
func TestExternalScalerFromEnv(t *testing.T) {
	e := start(t)
	e.write(t, desired("api", "deployment", "api"), 3, time.Now())
	cfg := config("external", 0, map[string]string{"scalerAddress": e.addr, "policyFromEnv": "POLICY", "matchLabels": "deployment=api"})
	cfg.ResolvedEnv = map[string]string{"POLICY": "api"}
	s, err := scalers.NewExternalScaler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	ctx := ctxT(t)
	specs := s.GetMetricSpecForScaling(ctx)
	if len(specs) != 1 || !strings.HasPrefix(specs[0].External.Metric.Name, "s0-kedastral-api-api-") {
		t.Fatalf("metric specs %+v", specs)
	}
	values, active, err := s.GetMetricsAndActivity(ctx, specs[0].External.Metric.Name)
	if err != nil || !active || values[0].Value.MilliValue() != 3000 {
		t.Fatalf("GetMetricsAndActivity: %v, %v, %v", values, active, err)
	}
}
