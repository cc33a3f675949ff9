package scaler

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"

	pb "github.com/kedastral/kedastral/proto"
)

// TestPolicyNamespace: a policy read from the Kubernetes API writes series
// with policy_namespace; a trigger selects its ScaledObject's namespace by
// default, another one with the policyNamespace key, and series without the
// label (policy files) match as before unless the key asks for a namespace.
func TestPolicyNamespace(t *testing.T) {
	fs := newForecastSet([]seriesSample{
		{labels: labels.FromStrings("policy", "api", "policy_namespace", "shop"), value: 1},
		{labels: labels.FromStrings("policy", "api", "policy_namespace", "blog"), value: 2},
		{labels: labels.FromStrings("policy", "web"), value: 3},
	})
	for _, tc := range []struct {
		name     string
		meta     map[string]string
		objectNS string
		want     []float64
	}{
		{"the ScaledObject's namespace", map[string]string{"policy": "api"}, "shop", []float64{1}},
		{"another namespace", map[string]string{"policy": "api"}, "blog", []float64{2}},
		{"policyNamespace wins over the ScaledObject's", map[string]string{"policy": "api", "policyNamespace": "blog"}, "shop", []float64{2}},
		{"no policy in the namespace", map[string]string{"policy": "api"}, "other", nil},
		{"file policy, any namespace", map[string]string{"policy": "web"}, "shop", []float64{3}},
		{"file policy, policyNamespace asked", map[string]string{"policy": "web", "policyNamespace": "shop"}, "shop", nil},
		{"no namespace sent", map[string]string{"policy": "api"}, "", []float64{1, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ParseMetadata(tc.meta)
			if err != nil {
				t.Fatal(err)
			}
			m.SetDefaultNamespace(tc.objectNS)
			var got []float64
			for _, s := range fs.match(m) {
				if s.labels.Get("policy") == m.Policy {
					got = append(got, s.value)
				}
			}
			if len(got) != len(tc.want) || (len(got) > 0 && got[0] != tc.want[0]) {
				t.Errorf("matched %v, want %v", got, tc.want)
			}
		})
	}
	_, err := ParseMetadata(map[string]string{"policy": "api", "matchLabels": "policy_namespace=shop"})
	if err == nil || !strings.Contains(err.Error(), "policyNamespace") {
		t.Errorf("policy_namespace in matchLabels: %v, want an error pointing at policyNamespace", err)
	}
}

// TestPolicyNamespaceMetrics: ScaledObjects of two namespaces with the same
// trigger metadata read their own namespace's policy, and the scaler's own
// metrics keep them apart by policy_namespace.
func TestPolicyNamespaceMetrics(t *testing.T) {
	q := &fakeQuerier{}
	q.set(
		fakeSeries{labels.FromStrings("policy", "api", "policy_namespace", "shop"), 4, time.Now()},
		fakeSeries{labels.FromStrings("policy", "api", "policy_namespace", "blog"), 9, time.Now()},
	)
	ts := startServer(t, Options{Querier: q})
	meta := map[string]string{"policy": "api"}
	name := mustParse(t, meta).MetricName()
	for ns, want := range map[string]float64{"shop": 4, "blog": 9} {
		ref := &pb.ScaledObjectRef{Name: "api", Namespace: ns, ScalerMetadata: meta}
		r, err := ts.client.GetMetrics(ctxT(t), &pb.GetMetricsRequest{ScaledObjectRef: ref, MetricName: name})
		if err != nil || r.MetricValues[0].MetricValueFloat != want {
			t.Fatalf("%s: %v %v, want %v", ns, r, err, want)
		}
	}
	for ns, want := range map[string]float64{"shop": 4, "blog": 9} {
		if got := testutil.ToFloat64(ts.metrics.desiredReplicas.WithLabelValues(ns, "api", name)); got != want {
			t.Errorf("kedastral_scaler_desired_replicas{policy_namespace=%q}: %v, want %v", ns, got, want)
		}
		if got := testutil.ToFloat64(ts.metrics.answers.WithLabelValues(ns, "api", "forecast")); got != 1 {
			t.Errorf("kedastral_scaler_answers_total{policy_namespace=%q}: %v, want 1", ns, got)
		}
	}
}
