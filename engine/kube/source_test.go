package kube

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/kedastral/kedastral/engine/forecast"
	"github.com/kedastral/kedastral/engine/policy"
)

func obj(t *testing.T, y string) *unstructured.Unstructured {
	t.Helper()
	var m map[string]any
	if err := yaml.Unmarshal([]byte(y), &m); err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{Object: m}
	// What the API server adds, which a policy file has not.
	u.SetUID("0d2a")
	u.SetResourceVersion("12")
	u.SetGeneration(3)
	u.SetAnnotations(map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "{}"})
	return u
}

const fp = `apiVersion: kedastral.io/v1alpha1
kind: ForecastPolicy
metadata: {name: api, namespace: %NS%}
spec:
  targetRef: {name: api}
  horizon: 30m
  leadTime: 5m
  capacity: {targetPerPod: 10, max: 50}
  sources: [{name: rps, query: '%Q%'}]
  %REF%
status: {seriesCount: 3}
`

func policyObj(t *testing.T, ns, query, ref string) *unstructured.Unstructured {
	return obj(t, strings.NewReplacer("%NS%", ns, "%Q%", query, "%REF%", ref).Replace(fp))
}

func dsObj(t *testing.T, ns, name, url string) *unstructured.Unstructured {
	return obj(t, "apiVersion: kedastral.io/v1alpha1\nkind: DataSource\nmetadata: {name: "+name+", namespace: "+ns+"}\nspec: {url: '"+url+"'}\n")
}

// TestBuild checks that objects from the API server decode as policy files
// do, that data sources resolve within a namespace only, and that errors
// name namespace/name and the field.
func TestBuild(t *testing.T) {
	policies := []*unstructured.Unstructured{
		policyObj(t, "a", "sum(x)", "dataSourceRef: {name: prom}"),
		policyObj(t, "b", "sum(x)", "dataSourceRef: {name: prom}"), // b has no DataSource prom
		policyObj(t, "c", "sum(x", ""),
		policyObj(t, "d", "sum(x)", ""),
	}
	sources := []*unstructured.Unstructured{dsObj(t, "a", "prom", "http://prom-a:9090"), dsObj(t, "e", "prom", "not a url")}
	set, errs := Build(policies, sources)

	var names []string
	for _, p := range set.Policies {
		names = append(names, p.Metadata.Namespace+"/"+p.Metadata.Name)
	}
	if strings.Join(names, ",") != "a/api,d/api" {
		t.Errorf("valid policies %v, want a/api and d/api", names)
	}
	if ds := set.DataSources["a/prom"]; ds == nil || ds.Spec.URL != "http://prom-a:9090" {
		t.Errorf("data sources %v, want a/prom", set.DataSources)
	}
	for _, p := range set.Policies {
		if p.Metadata.Namespace == "a" && (p.Spec.DataSourceRef == nil || p.Spec.DataSourceRef.Name != "a/prom") {
			t.Errorf("a/api's dataSourceRef %v, want a/prom", p.Spec.DataSourceRef)
		}
		if _, ok := p.Metadata.Annotations["kubectl.kubernetes.io/last-applied-configuration"]; ok {
			t.Error("last-applied-configuration kept: every apply would restart the policy")
		}
	}
	want := map[string]string{
		"ForecastPolicy/b/api": "spec.dataSourceRef.name",
		"ForecastPolicy/c/api": "spec.sources[0].query",
		"DataSource/e/prom":    "spec.url",
	}
	for _, err := range errs {
		var pe *policy.Error
		if !errors.As(err, &pe) {
			t.Errorf("error %v is not a *policy.Error", err)
			continue
		}
		key := pe.Kind + "/" + pe.Name
		if f, ok := want[key]; !ok || pe.Field != f {
			t.Errorf("error %v: object %s field %q, want one of %v", err, key, pe.Field, want)
		}
		delete(want, key)
	}
	if len(want) > 0 {
		t.Errorf("no error for %v", want)
	}

	// The same objects build the same set: an unchanged policy keeps running.
	again, _ := Build(policies, sources)
	if len(again.Policies) != 2 || again.Policies[0].Spec.DataSourceRef.Name != set.Policies[0].Spec.DataSourceRef.Name {
		t.Error("a second build differs")
	}
}

func TestPolicyStatus(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	invalid := &policy.Error{Kind: policy.KindForecastPolicy, Name: "a/api", Field: "spec.sources[0].query", Err: errors.New(`invalid PromQL "sum(x": unclosed`)}
	for _, tc := range []struct {
		name            string
		loadErr         *policy.Error
		st              forecast.PolicyStatus
		running         bool
		ready, degraded string
		reason          string
		desired         string
	}{
		{"invalid", invalid, forecast.PolicyStatus{}, false, "False", "False", ReasonInvalidQuery, ""},
		{"invalid edit of a running policy", invalid, forecast.PolicyStatus{LastSuccess: now, LastCycle: now, SeriesCount: 1, DesiredRange: [2]int32{4, 4}, Models: map[string]int{"seasonal": 1}}, true, "False", "True", ReasonInvalidQuery, "4"},
		{"not started", nil, forecast.PolicyStatus{}, false, "Unknown", "False", ReasonPending, ""},
		{"first cycle pending", nil, forecast.PolicyStatus{Model: "auto"}, true, "Unknown", "False", ReasonPending, ""},
		{"fan-out", nil, forecast.PolicyStatus{LastSuccess: now, LastCycle: now, SeriesCount: 3, DesiredRange: [2]int32{2, 7}, Models: map[string]int{"seasonal": 2, "holtwinters": 1}}, true, "True", "False", ReasonForecasting, "2-7"},
		{"unreachable", nil, forecast.PolicyStatus{LastCycle: now, LastError: "query: Post \"http://x:9090/api/v1/query_range\": dial tcp 10.0.0.1:9090: connect: connection refused"}, true, "False", "True", ReasonDataSourceUnreachable, ""},
		{"query error", nil, forecast.PolicyStatus{LastCycle: now, LastError: "query: execution: many-to-many matching not allowed"}, true, "False", "True", ReasonQueryFailed, ""},
		{"no data", nil, forecast.PolicyStatus{LastCycle: now, LastError: "the query returned no series with recent data"}, true, "False", "True", ReasonNoData, ""},
		{"write", nil, forecast.PolicyStatus{LastCycle: now, LastError: "remote write: 500"}, true, "False", "True", ReasonRemoteWriteFailed, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := PolicyStatus(5, tc.loadErr, tc.st, tc.running)
			if s.ObservedGeneration != 5 || len(s.Conditions) != 2 {
				t.Fatalf("status %+v", s)
			}
			r, d := s.Conditions[0], s.Conditions[1]
			if r.Type != ConditionReady || r.Status != tc.ready || r.Reason != tc.reason || d.Type != ConditionDegraded || d.Status != tc.degraded {
				t.Errorf("conditions %+v, want Ready=%s (%s), Degraded=%s", s.Conditions, tc.ready, tc.reason, tc.degraded)
			}
			if tc.loadErr != nil && !strings.Contains(r.Message, "spec.sources[0].query") {
				t.Errorf("message %q does not name the field", r.Message)
			}
			if s.DesiredReplicas != tc.desired {
				t.Errorf("desiredReplicas %q, want %q", s.DesiredReplicas, tc.desired)
			}
			if tc.name == "fan-out" && s.Model != "holtwinters: 1, seasonal: 2" {
				t.Errorf("model %q", s.Model)
			}
		})
	}
}

func TestTransitionTimes(t *testing.T) {
	t0, t1 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 1, 1, 0, 5, 0, 0, time.UTC)
	prev := map[string]any{"conditions": []any{
		map[string]any{"type": "Ready", "status": "True", "lastTransitionTime": t0.Format(time.RFC3339)},
		map[string]any{"type": "Degraded", "status": "False", "lastTransitionTime": t0.Format(time.RFC3339)},
	}}
	want := map[string]any{"conditions": []any{
		map[string]any{"type": "Ready", "status": "True"},
		map[string]any{"type": "Degraded", "status": "True"},
	}}
	keepTransitionTimes(want, prev, t1)
	c := want["conditions"].([]any)
	if got := c[0].(map[string]any)["lastTransitionTime"]; got != t0.Format(time.RFC3339) {
		t.Errorf("unchanged Ready moved to %v", got)
	}
	if got := c[1].(map[string]any)["lastTransitionTime"]; got != t1.Format(time.RFC3339) {
		t.Errorf("changed Degraded at %v, want %v", got, t1)
	}
}

// BenchmarkBuild measures an apply's decoding and validation of 1,000
// policies (with a DataSource each) spread over 10 namespaces.
func BenchmarkBuild(b *testing.B) {
	t := &testing.T{}
	var policies, sources []*unstructured.Unstructured
	for i := range 1000 {
		ns := fmt.Sprintf("ns-%d", i%10)
		p := policyObj(t, ns, `sum by (deployment) (rate(http_requests_total{service="checkout"}[2m]))`, "dataSourceRef: {name: prom}")
		p.SetName(fmt.Sprintf("api-%d", i))
		policies = append(policies, p)
		if i < 10 {
			sources = append(sources, dsObj(t, ns, "prom", "http://prometheus:9090"))
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		set, errs := Build(policies, sources)
		if len(errs) > 0 || len(set.Policies) != 1000 {
			b.Fatalf("%d policies, errors %v", len(set.Policies), errs)
		}
	}
}
