package scaler

import (
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
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
