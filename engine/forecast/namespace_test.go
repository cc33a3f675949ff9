package forecast

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/kedastral/kedastral/engine/policy"
	"github.com/kedastral/kedastral/promapi"
)

// TestPolicyNamespaceLabel: a policy from the Kubernetes API writes every
// series with policy_namespace (overriding one its query returns); a policy
// from a file writes exactly the labels it wrote before, without it.
func TestPolicyNamespaceLabel(t *testing.T) {
	now := time.Date(2026, 3, 2, 12, 0, 30, 0, time.UTC)
	for _, tc := range []struct {
		name, ns string
		in       labels.Labels
	}{
		{"file", "", labels.FromStrings("svc", "a")},
		// The query's own policy_namespace is replaced, like its policy label.
		{"kubernetes", "shop", labels.FromStrings("svc", "a", PolicyNamespaceLabel, "from-query")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := &recorded{series: []promapi.Series{flat(tc.in, now.Add(-48*time.Hour), now.Add(time.Hour), 55)}}
			p := mustPolicy(t, "api", "")
			p.Metadata.Namespace = "shop" // set in both: only SetPolicyNamespace adds the label
			e := NewEvaluator(p, q)
			if tc.ns != "" {
				e.SetPolicyNamespace(tc.ns)
			}
			ctx := context.Background()
			if _, err := e.Fetch(ctx, now); err != nil {
				t.Fatal(err)
			}
			c := e.Evaluate(ctx, now)
			if len(c.Samples) == 0 {
				t.Fatal("no samples")
			}
			names := map[string]bool{}
			for _, s := range c.Samples {
				names[s.Labels.Get(labels.MetricName)] = true
				got := s.Labels.Get(PolicyNamespaceLabel)
				if got != tc.ns {
					t.Errorf("%s: policy_namespace %q, want %q", s.Labels, got, tc.ns)
				}
				if s.Labels.Get(PolicyLabel) != "api" {
					t.Errorf("%s: policy label %q", s.Labels, s.Labels.Get(PolicyLabel))
				}
			}
			for _, m := range []string{DesiredMetric, CapacityMetric, ObservedMetric} {
				if !names[m] {
					t.Errorf("no %s sample", m)
				}
			}
		})
	}
}

// TestManagerKeys: with PolicyNamespaces, two policies of one name in two
// namespaces both run, under namespace/name.
func TestManagerKeys(t *testing.T) {
	q := &recorded{}
	m, err := NewManager(Options{Writer: &nopWriter{}, Queriers: func(*policy.DataSource) (Querier, error) { return q, nil }, PolicyNamespaces: true})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop()
	a, b := mustPolicy(t, "api", ""), mustPolicy(t, "api", "")
	a.Metadata.Namespace, b.Metadata.Namespace = "shop", "blog"
	if err := m.Apply(&policy.Set{Policies: []*policy.ForecastPolicy{a, b}}, nil); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, st := range m.Status() {
		names = append(names, st.Name)
	}
	if len(names) != 2 || names[0] != "blog/api" || names[1] != "shop/api" {
		t.Errorf("running %v, want blog/api and shop/api", names)
	}
}

type nopWriter struct{}

func (nopWriter) Write(context.Context, []promapi.Sample) (promapi.WriteStats, error) {
	return promapi.WriteStats{}, nil
}
