package policy

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v2"
)

// seedExample is the ForecastPolicy of Kedastral's original README, as written.
const seedExample = `apiVersion: kedastral.io/v1alpha1
kind: ForecastPolicy
metadata:
  name: api-forecast-policy
spec:
  targetRef:
    name: my-api
  metric: http_rps
  horizon: 30m
  leadTime: 5m
  capacity:
    targetPerPod: 200
    headroom: 1.2
    min: 2
    max: 50
  model:
    type: baseline
    quantile: 0.85
  sources:
    - name: rps
      type: prometheus
      query: sum(rate(http_requests_total[1m]))
`

func minutes(n int) model.Duration { return model.Duration(time.Duration(n) * time.Minute) }

func TestParseSeedExample(t *testing.T) {
	set, errs := Parse([]byte(seedExample), "seed.yaml")
	if len(errs) > 0 {
		t.Fatalf("unexpected errors: %v", errs)
	}
	if len(set.Policies) != 1 || len(set.DataSources) != 0 {
		t.Fatalf("got %d policies and %d data sources, want 1 and 0", len(set.Policies), len(set.DataSources))
	}
	want := &ForecastPolicy{
		TypeMeta: TypeMeta{APIVersion: "kedastral.io/v1alpha1", Kind: "ForecastPolicy"},
		Metadata: ObjectMeta{Name: "api-forecast-policy"},
		Spec: ForecastPolicySpec{
			TargetRef: TargetRef{Name: "my-api"},
			Metric:    "http_rps",
			Horizon:   minutes(30),
			LeadTime:  minutes(5),
			// Defaults.
			Interval: model.Duration(30 * time.Second),
			Lookback: model.Duration(7 * 24 * time.Hour),
			Step:     minutes(1),
			Ahead:    []model.Duration{minutes(5), minutes(30)},
			Capacity: Capacity{TargetPerPod: 200, Headroom: 1.2, Min: 2, Max: 50,
				Tolerance: new(0.1), HPAScaleDownStabilization: new(minutes(5)), ClearTolerance: new(true), NeverBelowReactive: new(true)},
			Model:   ModelSpec{Type: "baseline", Quantile: 0.85},
			Sources: []Source{{Name: "rps", Type: "prometheus", Query: "sum(rate(http_requests_total[1m]))"}},
			// kube-state-metrics' available replicas of the target.
			ReadyReplicasQuery: `kube_deployment_status_replicas_available{deployment="my-api"}`,
		},
	}
	if got := set.Policies[0]; !reflect.DeepEqual(got, want) {
		t.Errorf("policy:\n got %+v\nwant %+v", *got, *want)
	}
	if got := set.Policies[0].Spec.HorizonSteps(); got != 30 {
		t.Errorf("HorizonSteps = %d, want 30", got)
	}
	if got := set.Policies[0].Spec.LeadSteps(); got != 5 {
		t.Errorf("LeadSteps = %d, want 5", got)
	}
}

func TestParseDefaults(t *testing.T) {
	const in = `apiVersion: kedastral.io/v1alpha1
kind: ForecastPolicy
metadata:
  name: minimal
spec:
  targetRef: {name: my-api}
  horizon: 15m
  capacity: {targetPerPod: 10, max: 5}
  sources: [{name: q, query: 'sum(up)'}]
`
	set, errs := Parse([]byte(in), "p.yaml")
	if len(errs) > 0 {
		t.Fatalf("unexpected errors: %v", errs)
	}
	s := set.Policies[0].Spec
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"leadTime", s.LeadTime, model.Duration(0)},
		// No lead time: only the horizon is published.
		{"ahead", s.Ahead, []model.Duration{minutes(15)}},
		{"headroom", s.Capacity.Headroom, 1.0},
		{"min", s.Capacity.Min, int32(0)},
		{"model", s.Model, ModelSpec{Type: "auto", Quantile: 0.5}},
		{"source type", s.Sources[0].Type, "prometheus"},
		{"leadSteps", s.LeadSteps(), 1},
		{"behavior", s.Capacity.Behavior, (*Behavior)(nil)},
		{"tolerance", *s.Capacity.Tolerance, 0.1},
		{"clearTolerance", *s.Capacity.ClearTolerance, true},
		{"hpaScaleDownStabilization", s.Capacity.HPAScaleDownWindow(), 5 * time.Minute},
		{"neverBelowReactive", *s.Capacity.NeverBelowReactive, true},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestParseValidEdges(t *testing.T) {
	for _, tc := range []struct {
		name  string
		in    string
		check func(t *testing.T, s ForecastPolicySpec)
	}{
		{
			name: "leadTime equal to horizon is published once",
			in:   edit(t, validPolicy, "leadTime: 5m", "leadTime: 30m"),
			check: func(t *testing.T, s ForecastPolicySpec) {
				if want := []model.Duration{minutes(30)}; !reflect.DeepEqual(s.Ahead, want) {
					t.Errorf("ahead = %v, want %v", s.Ahead, want)
				}
			},
		},
		{
			name: "explicit ahead is kept as written",
			in:   edit(t, validPolicy, "  leadTime: 5m\n", "  leadTime: 5m\n  ahead: [15m, 1m, 30m]\n"),
			check: func(t *testing.T, s ForecastPolicySpec) {
				if want := []model.Duration{minutes(15), minutes(1), minutes(30)}; !reflect.DeepEqual(s.Ahead, want) {
					t.Errorf("ahead = %v, want %v", s.Ahead, want)
				}
			},
		},
		{
			// With an explicit ahead the lead time need not be a multiple of the step.
			name: "leadTime off the step with explicit ahead",
			in:   edit(t, validPolicy, "leadTime: 5m", "leadTime: 90s\n  ahead: [30m]"),
			check: func(t *testing.T, s ForecastPolicySpec) {
				if got := s.LeadSteps(); got != 2 {
					t.Errorf("LeadSteps = %d, want 2", got)
				}
			},
		},
		{
			name: "limits reached exactly",
			in: edit(t, validPolicy,
				"horizon: 30m", "horizon: 10000m",
				"  leadTime: 5m\n", "  leadTime: 5m\n  lookback: 200000m\n  interval: 1s\n",
				"max: 50", "max: 100000"),
			check: func(t *testing.T, s ForecastPolicySpec) {
				if s.HorizonSteps() != MaxHorizonSteps || s.Capacity.Max != MaxReplicas {
					t.Errorf("horizon steps %d, max %d", s.HorizonSteps(), s.Capacity.Max)
				}
			},
		},
		{
			name:  "lookback of one step",
			in:    edit(t, validPolicy, "  leadTime: 5m\n", "  leadTime: 5m\n  lookback: 1m\n"),
			check: func(t *testing.T, s ForecastPolicySpec) {},
		},
		{
			name: "min equal to max, headroom 100",
			in:   edit(t, validPolicy, "    max: 50\n", "    max: 3\n    min: 3\n    headroom: 100\n"),
			check: func(t *testing.T, s ForecastPolicySpec) {
				if s.Capacity.Headroom != 100 {
					t.Errorf("headroom = %v", s.Capacity.Headroom)
				}
			},
		},
		{
			name: "byom",
			in:   edit(t, validPolicy, "  sources:\n", "  model:\n    type: byom\n    byom: {url: 'http://m:8080/forecast', timeout: 2s}\n  sources:\n"),
			check: func(t *testing.T, s ForecastPolicySpec) {
				c := s.ModelConfig()
				if c.BYOM.URL != "http://m:8080/forecast" || c.BYOM.Timeout != 2*time.Second || c.Quantile != s.Model.Quantile {
					t.Errorf("model config %+v", c)
				}
			},
		},
		{
			name: "tolerance options",
			in:   edit(t, validPolicy, "    max: 50\n", "    max: 50\n    tolerance: 0\n    clearTolerance: false\n    neverBelowReactive: false\n    hpaScaleDownStabilization: 90s\n"),
			check: func(t *testing.T, s ForecastPolicySpec) {
				c := s.Capacity
				if c.ToleranceValue() != 0 || c.ClearsTolerance() || c.FloorsAtReactive() {
					t.Errorf("tolerance %v, clear %v, floor %v", c.ToleranceValue(), c.ClearsTolerance(), c.FloorsAtReactive())
				}
				if w := c.HPAScaleDownWindow(); w != 90*time.Second {
					t.Errorf("hpaScaleDownStabilization %v, want 1m30s", w)
				}
			},
		},
		{
			name: "full behavior",
			in: edit(t, validPolicy, "    max: 50\n", `    max: 50
    behavior:
      scaleUp:
        stabilizationWindowSeconds: 0
        selectPolicy: Min
        policies:
          - {type: Pods, value: 4, periodSeconds: 15}
          - {type: Percent, value: 100, periodSeconds: 1800}
      scaleDown:
        stabilizationWindowSeconds: 3600
        selectPolicy: Disabled
`),
			check: func(t *testing.T, s ForecastPolicySpec) {
				want := &Behavior{
					ScaleUp: &ScalingRules{
						StabilizationWindowSeconds: new(int32),
						SelectPolicy:               ptr(SelectMin),
						Policies: []ScalingPolicy{
							{Type: PodsScalingPolicy, Value: 4, PeriodSeconds: 15},
							{Type: PercentScalingPolicy, Value: 100, PeriodSeconds: 1800},
						},
					},
					ScaleDown: &ScalingRules{StabilizationWindowSeconds: ptr[int32](3600), SelectPolicy: ptr(SelectDisabled)},
				}
				if !reflect.DeepEqual(s.Capacity.Behavior, want) {
					t.Errorf("behavior = %+v, want %+v", s.Capacity.Behavior, want)
				}
			},
		},
		{
			name:  "scalar query",
			in:    edit(t, validPolicy, "query: sum(rate(http_requests_total[1m]))", "query: scalar(sum(up))"),
			check: func(t *testing.T, s ForecastPolicySpec) {},
		},
		{
			name:  "query fanning out by label",
			in:    edit(t, validPolicy, "query: sum(rate(http_requests_total[1m]))", `query: 'sum by (namespace, deployment) (rate(http_requests_total{job=~"api.*"}[5m]))'`),
			check: func(t *testing.T, s ForecastPolicySpec) {},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set, errs := Parse([]byte(tc.in), "p.yaml")
			if len(errs) > 0 {
				t.Fatalf("unexpected errors: %v", errs)
			}
			tc.check(t, set.Policies[0].Spec)
		})
	}
}

func ptr[T any](v T) *T { return &v }

// validPolicy is a valid ForecastPolicy. Its lines, counted from 1 at
// "apiVersion", are referred to by the cases of TestParseErrors.
const validPolicy = `apiVersion: kedastral.io/v1alpha1
kind: ForecastPolicy
metadata:
  name: p
spec:
  targetRef:
    name: my-api
  horizon: 30m
  leadTime: 5m
  capacity:
    targetPerPod: 200
    max: 50
  sources:
    - name: rps
      query: sum(rate(http_requests_total[1m]))
`

const validDataSource = `apiVersion: kedastral.io/v1alpha1
kind: DataSource
metadata:
  name: prom
spec:
  url: http://prometheus:9090
`

// edit applies old/new replacements to doc; each old must occur.
func edit(t *testing.T, doc string, oldNew ...string) string {
	t.Helper()
	for i := 0; i < len(oldNew); i += 2 {
		if !strings.Contains(doc, oldNew[i]) {
			t.Fatalf("edit: %q not in document", oldNew[i])
		}
		doc = strings.Replace(doc, oldNew[i], oldNew[i+1], 1)
	}
	return doc
}

// header shifts the first document down by two lines so that line numbers
// counted from the document and from the file differ.
const header = "# a policy file\n\n"

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string // a stream; errors are reported for file "p.yaml"
		// want is the expected error; its Err is not compared, reason must be
		// a substring of its message.
		want   Error
		reason string
		// valid lists the names of the policies that are still returned.
		valid []string
		// errs is the number of errors if not 1; the first one is checked.
		errs int
		// at is the text the first error points at: the line want.Line
		// from the column want.Column on; with at, those two are not given.
		at string
	}{
		{
			name:   "unknown field",
			in:     header + edit(t, validPolicy, "  horizon: 30m\n", "  horizon: 30m\n  replicas: 3\n"),
			want:   Error{Kind: "ForecastPolicy", Name: "p", Field: "spec.replicas"},
			at:     "replicas: 3", // line 9 of the document, 11 of the file
			reason: "unknown field (no such field in a ForecastPolicy)",
		},
		{
			name:   "unknown field in capacity",
			in:     header + edit(t, validPolicy, "    max: 50\n", "    max: 50\n    maxReplicas: 50\n"),
			want:   Error{Kind: "ForecastPolicy", Name: "p", Field: "spec.capacity.maxReplicas"},
			at:     "maxReplicas: 50",
			reason: "unknown field",
		},
		{
			name:   "wrong type",
			in:     header + edit(t, validPolicy, "max: 50", "max: fifty"),
			want:   Error{Kind: "ForecastPolicy", Name: "p", Field: "spec.capacity.max"},
			at:     "max: fifty",
			reason: "cannot unmarshal !!str `fifty` into int32",
		},
		{
			name:   "bad duration",
			in:     header + edit(t, validPolicy, "horizon: 30m", "horizon: 30 minutes"),
			want:   Error{Kind: "ForecastPolicy", Name: "p", Field: "spec.horizon"},
			at:     "horizon: 30 minutes",
			reason: `unknown unit " minutes" in duration "30 minutes"`,
		},
		{
			name:   "wrong apiVersion",
			in:     header + edit(t, validPolicy, "kedastral.io/v1alpha1", "kedastral.io/v1"),
			want:   Error{Kind: "ForecastPolicy", Name: "p", Field: "apiVersion"},
			at:     "apiVersion: kedastral.io/v1",
			reason: `must be "kedastral.io/v1alpha1", got "kedastral.io/v1"`,
		},
		{
			name:   "missing apiVersion",
			in:     header + edit(t, validPolicy, "apiVersion: kedastral.io/v1alpha1\n", ""),
			want:   Error{Line: 3, Kind: "ForecastPolicy", Name: "p", Field: "apiVersion"},
			reason: `must be "kedastral.io/v1alpha1", got ""`,
		},
		{
			name:   "unknown kind",
			in:     header + edit(t, validPolicy, "kind: ForecastPolicy", "kind: ScaledObject"),
			want:   Error{Kind: "ScaledObject", Name: "p", Field: "kind"},
			at:     "kind: ScaledObject",
			reason: `must be ForecastPolicy or DataSource, got "ScaledObject"`,
		},
		{
			name:   "missing name",
			in:     header + edit(t, validPolicy, "  name: p\n", "  namespace: default\n"),
			want:   Error{Kind: "ForecastPolicy", Field: "metadata.name"},
			at:     "metadata:",
			reason: "is required",
		},
		{
			name:   "bad name",
			in:     header + edit(t, validPolicy, "name: p", "name: API_policy"),
			want:   Error{Kind: "ForecastPolicy", Name: "API_policy", Field: "metadata.name"},
			at:     "name: API_policy",
			reason: `"API_policy" is not a valid name`,
		},
		{
			name:   "name too long",
			in:     header + edit(t, validPolicy, "name: p", "name: "+strings.Repeat("a", 254)),
			want:   Error{Kind: "ForecastPolicy", Name: strings.Repeat("a", 254), Field: "metadata.name"},
			at:     "name: aaaaaaaaaaaaaaaaaaaaaaaa",
			reason: "is not a valid name",
		},
		{
			name:   "missing targetRef",
			in:     header + edit(t, validPolicy, "  targetRef:\n    name: my-api\n", ""),
			want:   Error{Kind: "ForecastPolicy", Name: "p", Field: "spec.targetRef.name"},
			at:     "spec:",
			reason: "is required",
		},
		{
			name: "invalid PromQL",
			in:   header + edit(t, validPolicy, "query: sum(rate(http_requests_total[1m]))", "query: sum(rate(http_requests_total[1m])"),
			want: Error{Kind: "ForecastPolicy", Name: "p", Field: "spec.sources[0].query"},
			at:   "query: sum(rate(http_requests_",
			// The parser's own message, with its position in the expression.
			reason: `invalid PromQL "sum(rate(http_requests_total[1m])": 1:34: parse error: unclosed left parenthesis`,
		},
		{
			name:   "unknown PromQL function",
			in:     header + edit(t, validPolicy, "sum(rate(", "summ(rate("),
			want:   Error{Kind: "ForecastPolicy", Name: "p", Field: "spec.sources[0].query"},
			at:     "query: summ(rate(http_requests",
			reason: `unknown function with name "summ"`,
		},
		{
			name:   "PromQL returning a range vector",
			in:     header + edit(t, validPolicy, "query: sum(rate(http_requests_total[1m]))", "query: http_requests_total[5m]"),
			want:   Error{Kind: "ForecastPolicy", Name: "p", Field: "spec.sources[0].query"},
			at:     "query: http_requests_total[5m]",
			reason: `PromQL "http_requests_total[5m]" returns a matrix; it must return an instant vector`,
		},
		{
			name:   "PromQL returning a string",
			in:     header + edit(t, validPolicy, "query: sum(rate(http_requests_total[1m]))", `query: '"up"'`),
			want:   Error{Kind: "ForecastPolicy", Name: "p", Field: "spec.sources[0].query"},
			at:     "query: '\"up\"'",
			reason: `returns a string; it must return an instant vector`,
		},
		{
			name:   "empty query",
			in:     header + edit(t, validPolicy, "query: sum(rate(http_requests_total[1m]))", "query: ''"),
			want:   Error{Kind: "ForecastPolicy", Name: "p", Field: "spec.sources[0].query"},
			at:     "query: ''",
			reason: "is required",
		},
		{
			name:   "no sources",
			in:     header + edit(t, validPolicy, "  sources:\n    - name: rps\n      query: sum(rate(http_requests_total[1m]))\n", ""),
			want:   Error{Kind: "ForecastPolicy", Name: "p", Field: "spec.sources"},
			at:     "spec:",
			reason: "at least one source is required",
		},
		{
			name:   "unknown source type",
			in:     header + edit(t, validPolicy, "    - name: rps\n", "    - name: rps\n      type: kafka\n"),
			want:   Error{Kind: "ForecastPolicy", Name: "p", Field: "spec.sources[0].type"},
			at:     "type: kafka",
			reason: `must be "prometheus", got "kafka"`,
		},
		{
			name:   "zero targetPerPod",
			in:     header + edit(t, validPolicy, "targetPerPod: 200", "targetPerPod: 0"),
			want:   Error{Kind: "ForecastPolicy", Name: "p", Field: "spec.capacity.targetPerPod"},
			at:     "targetPerPod: 0",
			reason: "must be a positive number, got 0",
		},
		{
			name:   "negative targetPerPod",
			in:     header + edit(t, validPolicy, "targetPerPod: 200", "targetPerPod: -5"),
			want:   Error{Kind: "ForecastPolicy", Name: "p", Field: "spec.capacity.targetPerPod"},
			at:     "targetPerPod: -5",
			reason: "must be a positive number, got -5",
		},
		{
			name:   "NaN targetPerPod",
			in:     header + edit(t, validPolicy, "targetPerPod: 200", "targetPerPod: .nan"),
			want:   Error{Kind: "ForecastPolicy", Name: "p", Field: "spec.capacity.targetPerPod"},
			at:     "targetPerPod: .nan",
			reason: "must be a positive number, got NaN",
		},
		{
			name:   "byom without byom",
			in:     header + edit(t, validPolicy, "  sources:\n", "  model: {type: byom}\n  sources:\n"),
			want:   Error{Kind: "ForecastPolicy", Name: "p", Field: "spec.model.byom"},
			at:     "model: {type: byom}",
			reason: "is required with type byom",
		},
		{
			name:   "byom settings with another model",
			in:     header + edit(t, validPolicy, "  sources:\n", "  model:\n    type: baseline\n    byom: {url: 'http://m:8080/forecast'}\n  sources:\n"),
			want:   Error{Kind: "ForecastPolicy", Name: "p", Field: "spec.model.byom"},
			at:     "byom: {url: 'http://m:8080/for",
			reason: "is only allowed with type byom, got type baseline",
		},
		{
			name:   "byom with a bad URL",
			in:     header + edit(t, validPolicy, "  sources:\n", "  model:\n    type: byom\n    byom: {url: 'm:8080'}\n  sources:\n"),
			want:   Error{Kind: "ForecastPolicy", Name: "p", Field: "spec.model.byom.url"},
			at:     "url: 'm:8080'}",
			reason: `"m:8080" must be an absolute http or https URL`,
		},
		{
			name:   "tolerance of 1",
			in:     header + edit(t, validPolicy, "    max: 50\n", "    max: 50\n    tolerance: 1\n"),
			want:   Error{Kind: "ForecastPolicy", Name: "p", Field: "spec.capacity.tolerance"},
			at:     "tolerance: 1",
			reason: "must be in [0, 1), got 1",
		},
		{
			name:   "negative tolerance",
			in:     header + edit(t, validPolicy, "    max: 50\n", "    max: 50\n    tolerance: -0.1\n"),
			want:   Error{Kind: "ForecastPolicy", Name: "p", Field: "spec.capacity.tolerance"},
			at:     "tolerance: -0.1",
			reason: "must be in [0, 1), got -0.1",
		},
		{
			name:   "scaledObject without scalerAddress",
			in:     header + edit(t, validPolicy, "  sources:\n", "  scaledObject: {name: web}\n  sources:\n"),
			want:   Error{Kind: "ForecastPolicy", Name: "p", Field: "spec.scaledObject.scalerAddress"},
			at:     "scaledObject: {name: web}",
			reason: "is required: the Kedastral scaler's host:port, e.g. kedastral-scaler.kedastral.svc:50051",
		},
		{
			name:   "scaledObject scalerAddress without port",
			in:     header + edit(t, validPolicy, "  sources:\n", "  scaledObject: {scalerAddress: kedastral-scaler}\n  sources:\n"),
			want:   Error{Kind: "ForecastPolicy", Name: "p", Field: "spec.scaledObject.scalerAddress"},
			at:     "scalerAddress: kedastral-scale",
			reason: `"kedastral-scaler" is not host:port`,
		},
		{
			name:   "scaledObject bad name",
			in:     header + edit(t, validPolicy, "  sources:\n", "  scaledObject: {name: Web_1, scalerAddress: 's:1'}\n  sources:\n"),
			want:   Error{Kind: "ForecastPolicy", Name: "p", Field: "spec.scaledObject.name"},
			at:     "name: Web_1, scalerAddress: 's",
			reason: `"Web_1" is not a valid object name (lowercase letters, digits, '-' and '.')`,
		},
		{
			name:   "scaledObject trigger metadata the forecaster sets",
			in:     header + edit(t, validPolicy, "  sources:\n", "  scaledObject: {scalerAddress: 's:1', triggerMetadata: {policy: other}}\n  sources:\n"),
			want:   Error{Kind: "ForecastPolicy", Name: "p", Field: "spec.scaledObject.triggerMetadata.policy"},
			at:     "policy: other}}",
			reason: "is set by the forecaster (scalerAddress, policy, policyNamespace)",
		},
		{
			name:   "HPA scale-down stabilization over an hour",
			in:     header + edit(t, validPolicy, "    max: 50\n", "    max: 50\n    hpaScaleDownStabilization: 2h\n"),
			want:   Error{Kind: "ForecastPolicy", Name: "p", Field: "spec.capacity.hpaScaleDownStabilization"},
			at:     "hpaScaleDownStabilization: 2h",
			reason: "must be in [0s, 1h] (the HPA's limit of 3600 seconds), got 2h",
		},
		{
			name:   "negative headroom",
			in:     header + edit(t, validPolicy, "    max: 50\n", "    max: 50\n    headroom: -1\n"),
			want:   Error{Kind: "ForecastPolicy", Name: "p", Field: "spec.capacity.headroom"},
			at:     "headroom: -1",
			reason: "must be in (0, 100], got -1",
		},
		{
			name:   "min greater than max",
			in:     header + edit(t, validPolicy, "    max: 50\n", "    max: 5\n    min: 10\n"),
			want:   Error{Kind: "ForecastPolicy", Name: "p", Field: "spec.capacity.min"},
			at:     "min: 10",
			reason: "min (10) is greater than max (5)",
		},
		{
			name:   "negative min",
			in:     header + edit(t, validPolicy, "    max: 50\n", "    max: 50\n    min: -1\n"),
			want:   Error{Kind: "ForecastPolicy", Name: "p", Field: "spec.capacity.min"},
			at:     "min: -1",
			reason: "must not be negative, got -1",
		},
		{
			name:   "max 0",
			in:     header + edit(t, validPolicy, "max: 50", "max: 0"),
			want:   Error{Kind: "ForecastPolicy", Name: "p", Field: "spec.capacity.max"},
			at:     "max: 0",
			reason: "must be in [1, 100000], got 0",
		},
		{
			name:   "missing max",
			in:     header + edit(t, validPolicy, "    max: 50\n", ""),
			want:   Error{Kind: "ForecastPolicy", Name: "p", Field: "spec.capacity.max"},
			at:     "capacity:",
			reason: "must be in [1, 100000], got 0",
		},
		{
			name:   "max over the limit",
			in:     header + edit(t, validPolicy, "max: 50", "max: 100001"),
			want:   Error{Kind: "ForecastPolicy", Name: "p", Field: "spec.capacity.max"},
			at:     "max: 100001",
			reason: "must be in [1, 100000], got 100001",
		},
		{
			name:   "quantile above 1",
			in:     header + edit(t, validPolicy, "  sources:\n", "  model:\n    quantile: 1.5\n  sources:\n"),
			want:   Error{Kind: "ForecastPolicy", Name: "p", Field: "spec.model.quantile"},
			at:     "quantile: 1.5",
			reason: "must be in (0, 1), got 1.5",
		},
		{
			name:   "quantile 1",
			in:     header + edit(t, validPolicy, "  sources:\n", "  model:\n    quantile: 1\n  sources:\n"),
			want:   Error{Kind: "ForecastPolicy", Name: "p", Field: "spec.model.quantile"},
			at:     "quantile: 1",
			reason: "must be in (0, 1), got 1",
		},
		{
			name:   "negative quantile",
			in:     header + edit(t, validPolicy, "  sources:\n", "  model:\n    quantile: -0.1\n  sources:\n"),
			want:   Error{Kind: "ForecastPolicy", Name: "p", Field: "spec.model.quantile"},
			at:     "quantile: -0.1",
			reason: "must be in (0, 1), got -0.1",
		},
		{
			name:   "unknown model type",
			in:     header + edit(t, validPolicy, "  sources:\n", "  model:\n    type: prophet\n  sources:\n"),
			want:   Error{Kind: "ForecastPolicy", Name: "p", Field: "spec.model.type"},
			at:     "type: prophet",
			reason: `unknown model "prophet" (known: [`,
		},
		{
			name:   "leadTime beyond horizon",
			in:     header + edit(t, validPolicy, "leadTime: 5m", "leadTime: 45m"),
			want:   Error{Kind: "ForecastPolicy", Name: "p", Field: "spec.leadTime"},
			at:     "leadTime: 45m",
			reason: "45m is beyond the horizon 30m",
		},
		{
			name:   "missing horizon",
			in:     header + edit(t, validPolicy, "  horizon: 30m\n", ""),
			want:   Error{Kind: "ForecastPolicy", Name: "p", Field: "spec.horizon"},
			at:     "spec:",
			reason: "must be positive, got 0s",
		},
		{
			name:   "ahead not a multiple of step",
			in:     header + edit(t, validPolicy, "  leadTime: 5m\n", "  leadTime: 5m\n  ahead: [5m, 90s]\n"),
			want:   Error{Kind: "ForecastPolicy", Name: "p", Field: "spec.ahead[1]"},
			at:     "90s]",
			reason: "1m30s is not a multiple of the step 1m",
		},
		{
			name:   "duplicate ahead",
			in:     header + edit(t, validPolicy, "  leadTime: 5m\n", "  leadTime: 5m\n  ahead: [5m, 15m, 300s]\n"),
			want:   Error{Kind: "ForecastPolicy", Name: "p", Field: "spec.ahead[2]"},
			at:     "300s]",
			reason: "duplicate offset 5m",
		},
		{
			name:   "ahead beyond horizon",
			in:     header + edit(t, validPolicy, "  leadTime: 5m\n", "  leadTime: 5m\n  ahead: [1h]\n"),
			want:   Error{Kind: "ForecastPolicy", Name: "p", Field: "spec.ahead[0]"},
			at:     "1h]",
			reason: "must be in (0, horizon=30m], got 1h",
		},
		{
			// The user wrote no ahead; the error names the field the
			// default offset comes from.
			name:   "leadTime not a multiple of step",
			in:     header + edit(t, validPolicy, "leadTime: 5m", "leadTime: 90s"),
			want:   Error{Kind: "ForecastPolicy", Name: "p", Field: "spec.leadTime"},
			at:     "leadTime: 90s",
			reason: "1m30s is not a multiple of the step 1m",
		},
		{
			name:   "horizon not a multiple of step",
			in:     header + edit(t, validPolicy, "horizon: 30m", "horizon: 30m30s"),
			want:   Error{Kind: "ForecastPolicy", Name: "p", Field: "spec.horizon"},
			at:     "horizon: 30m30s",
			reason: "30m30s is not a multiple of the step 1m",
		},
		{
			name:   "step too small",
			in:     header + edit(t, validPolicy, "  leadTime: 5m\n", "  leadTime: 5m\n  step: 500ms\n"),
			want:   Error{Kind: "ForecastPolicy", Name: "p", Field: "spec.step"},
			at:     "step: 500ms",
			reason: "must be at least 1s, got 500ms",
		},
		{
			name:   "interval too small",
			in:     header + edit(t, validPolicy, "  leadTime: 5m\n", "  leadTime: 5m\n  interval: 100ms\n"),
			want:   Error{Kind: "ForecastPolicy", Name: "p", Field: "spec.interval"},
			at:     "interval: 100ms",
			reason: "must be at least 1s, got 100ms",
		},
		{
			// 1y at 1m is 525600 points.
			name:   "huge lookback",
			in:     header + edit(t, validPolicy, "  leadTime: 5m\n", "  leadTime: 5m\n  lookback: 1y\n"),
			want:   Error{Kind: "ForecastPolicy", Name: "p", Field: "spec.lookback"},
			at:     "lookback: 1y",
			reason: "1y at step 1m is 525600 points, more than the limit of 200000",
		},
		{
			name:   "lookback shorter than a step",
			in:     header + edit(t, validPolicy, "  leadTime: 5m\n", "  leadTime: 5m\n  lookback: 30s\n"),
			want:   Error{Kind: "ForecastPolicy", Name: "p", Field: "spec.lookback"},
			at:     "lookback: 30s",
			reason: "must be at least one step (1m), got 30s",
		},
		{
			// 7d at 1m is 10080 points.
			name:   "huge horizon",
			in:     header + edit(t, validPolicy, "horizon: 30m", "horizon: 7d"),
			want:   Error{Kind: "ForecastPolicy", Name: "p", Field: "spec.horizon"},
			at:     "horizon: 7d",
			reason: "1w at step 1m is 10080 points, more than the limit of 10000",
		},
		{
			name: "behavior: unknown policy type",
			in: header + edit(t, validPolicy, "    max: 50\n", `    max: 50
    behavior:
      scaleUp:
        policies: [{type: Pods, value: 4, periodSeconds: 60}, {type: Replicas, value: 4, periodSeconds: 60}]
`),
			want:   Error{Kind: "ForecastPolicy", Name: "p", Field: "spec.capacity.behavior.scaleUp.policies[1].type"},
			at:     "type: Replicas, value: 4, peri",
			reason: `must be Pods or Percent, got "Replicas"`,
		},
		{
			name: "behavior: zero value",
			in: header + edit(t, validPolicy, "    max: 50\n", `    max: 50
    behavior:
      scaleDown:
        policies: [{type: Percent, value: 0, periodSeconds: 60}]
`),
			want:   Error{Kind: "ForecastPolicy", Name: "p", Field: "spec.capacity.behavior.scaleDown.policies[0].value"},
			at:     "value: 0, periodSeconds: 60}]",
			reason: "must be positive, got 0",
		},
		{
			name: "behavior: missing period",
			in: header + edit(t, validPolicy, "    max: 50\n", `    max: 50
    behavior:
      scaleDown:
        policies: [{type: Pods, value: 1}]
`),
			want:   Error{Kind: "ForecastPolicy", Name: "p", Field: "spec.capacity.behavior.scaleDown.policies[0].periodSeconds"},
			at:     "{type: Pods, value: 1}]",
			reason: "must be in (0, 1800], got 0",
		},
		{
			name: "behavior: period too long",
			in: header + edit(t, validPolicy, "    max: 50\n", `    max: 50
    behavior:
      scaleUp:
        policies: [{type: Pods, value: 1, periodSeconds: 1801}]
`),
			want:   Error{Kind: "ForecastPolicy", Name: "p", Field: "spec.capacity.behavior.scaleUp.policies[0].periodSeconds"},
			at:     "periodSeconds: 1801}]",
			reason: "must be in (0, 1800], got 1801",
		},
		{
			name: "behavior: unknown selectPolicy",
			in: header + edit(t, validPolicy, "    max: 50\n", `    max: 50
    behavior:
      scaleUp:
        selectPolicy: Biggest
`),
			want:   Error{Kind: "ForecastPolicy", Name: "p", Field: "spec.capacity.behavior.scaleUp.selectPolicy"},
			at:     "selectPolicy: Biggest",
			reason: `must be Max, Min or Disabled, got "Biggest"`,
		},
		{
			name: "behavior: window too long",
			in: header + edit(t, validPolicy, "    max: 50\n", `    max: 50
    behavior:
      scaleDown:
        stabilizationWindowSeconds: 3601
`),
			want:   Error{Kind: "ForecastPolicy", Name: "p", Field: "spec.capacity.behavior.scaleDown.stabilizationWindowSeconds"},
			at:     "stabilizationWindowSeconds: 36",
			reason: "must be in [0, 3600], got 3601",
		},
		{
			name: "behavior: negative window",
			in: header + edit(t, validPolicy, "    max: 50\n", `    max: 50
    behavior:
      scaleUp:
        stabilizationWindowSeconds: -1
`),
			want:   Error{Kind: "ForecastPolicy", Name: "p", Field: "spec.capacity.behavior.scaleUp.stabilizationWindowSeconds"},
			at:     "stabilizationWindowSeconds: -1",
			reason: "must be in [0, 3600], got -1",
		},
		{
			name: "behavior: unknown field",
			in: header + edit(t, validPolicy, "    max: 50\n", `    max: 50
    behavior:
      scaleUp:
        stabilizationWindow: 60
`),
			want:   Error{Kind: "ForecastPolicy", Name: "p", Field: "spec.capacity.behavior.scaleUp.stabilizationWindow"},
			at:     "stabilizationWindow: 60",
			reason: "unknown field",
		},
		{
			name:   "dataSourceRef to a missing DataSource",
			in:     header + validDataSource + "---\n" + edit(t, validPolicy, "  sources:\n", "  dataSourceRef: {name: thanos}\n  sources:\n"),
			want:   Error{Kind: "ForecastPolicy", Name: "p", Field: "spec.dataSourceRef.name"},
			at:     "name: thanos}",
			reason: `no valid DataSource named "thanos" (valid: [prom])`,
		},
		{
			name:   "dataSourceRef without a name",
			in:     header + edit(t, validPolicy, "  sources:\n", "  dataSourceRef: {}\n  sources:\n"),
			want:   Error{Kind: "ForecastPolicy", Name: "p", Field: "spec.dataSourceRef.name"},
			at:     "dataSourceRef: {}",
			reason: "is required when dataSourceRef is set",
		},
		{
			name:   "DataSource without a URL",
			in:     header + edit(t, validDataSource, "  url: http://prometheus:9090\n", "  proxy_url: http://proxy:3128\n"),
			want:   Error{Kind: "DataSource", Name: "prom", Field: "spec.url"},
			at:     "spec:",
			reason: "is required",
		},
		{
			name:   "DataSource URL without a scheme",
			in:     header + edit(t, validDataSource, "http://prometheus:9090", "prometheus:9090"),
			want:   Error{Kind: "DataSource", Name: "prom", Field: "spec.url"},
			at:     "url: prometheus:9090",
			reason: `"prometheus:9090" must be an absolute http or https URL`,
		},
		{
			name:   "DataSource URL with another scheme",
			in:     header + edit(t, validDataSource, "http://prometheus:9090", "grpc://prometheus:9090"),
			want:   Error{Kind: "DataSource", Name: "prom", Field: "spec.url"},
			at:     "url: grpc://prometheus:9090",
			reason: "must be an absolute http or https URL",
		},
		{
			name:   "DataSource URL without a host, password redacted",
			in:     header + edit(t, validDataSource, "http://prometheus:9090", "http://user:s3cret@/api"),
			want:   Error{Kind: "DataSource", Name: "prom", Field: "spec.url"},
			at:     "url: http://user:s3cret@/api",
			reason: `"http://user:xxxxx@/api" must be an absolute http or https URL`,
		},
		{
			// url.Parse quotes the whole URL in its error, password included.
			name:   "unparsable DataSource URL, password not shown",
			in:     header + edit(t, validDataSource, "http://prometheus:9090", `"http://user:s3cret@prom etheus:9090"`),
			want:   Error{Kind: "DataSource", Name: "prom", Field: "spec.url"},
			at:     "url: \"http://user:s3cret@prom",
			reason: `invalid URL: invalid character " " in host name`,
		},
		{
			name:   "DataSource of another type",
			in:     header + edit(t, validDataSource, "  url:", "  type: influxdb\n  url:"),
			want:   Error{Kind: "DataSource", Name: "prom", Field: "spec.type"},
			at:     "type: influxdb",
			reason: `must be "prometheus", got "influxdb"`,
		},
		{
			name: "DataSource with basic_auth and authorization",
			in: header + validDataSource + `  basic_auth: {username: u, password: p}
  authorization: {credentials: token}
`,
			want:   Error{Kind: "DataSource", Name: "prom", Field: "spec"},
			at:     "spec:",
			reason: "at most one of basic_auth, oauth2 & authorization must be configured",
		},
		{
			name: "DataSource with password and password_file",
			in: header + validDataSource + `  basic_auth: {username: u, password: p, password_file: /etc/p}
`,
			want:   Error{Kind: "DataSource", Name: "prom", Field: "spec"},
			at:     "spec:",
			reason: "at most one of basic_auth password, password_file & password_ref must be configured",
		},
		{
			name: "DataSource with a reserved header",
			in: header + validDataSource + `  http_headers:
    Authorization:
      values: [Bearer x]
`,
			want:   Error{Kind: "DataSource", Name: "prom", Field: "spec"},
			at:     "spec:",
			reason: `setting header "Authorization" is not allowed`,
		},
		{
			name: "DataSource with an unknown HTTP client field",
			in: header + validDataSource + `  basic_auth:
    user: u
`,
			want:   Error{Kind: "DataSource", Name: "prom", Field: "spec.basic_auth.user"},
			at:     "user: u",
			reason: "unknown field (no such field in a DataSource)",
		},
		{
			name:   "policy referring to an invalid DataSource is left out too",
			in:     header + edit(t, validDataSource, "http://", "ftp://") + "---\n" + edit(t, validPolicy, "  sources:\n", "  dataSourceRef: {name: prom}\n  sources:\n"),
			want:   Error{Kind: "DataSource", Name: "prom", Field: "spec.url"},
			at:     "url: ftp://prometheus:9090",
			reason: "must be an absolute http or https URL",
			errs:   2, // and the policy's dataSourceRef
		},
		{
			name:   "duplicate policy names",
			in:     header + validPolicy + "---\n" + validPolicy,
			want:   Error{Kind: "ForecastPolicy", Name: "p", Field: "metadata.name"},
			at:     "name: p",
			reason: "duplicate name, first defined at p.yaml:3",
			valid:  []string{"p"},
		},
		{
			name:   "YAML syntax error",
			in:     header + edit(t, validPolicy, "  targetRef:\n    name: my-api\n", "  targetRef: {name: my-api\n"),
			want:   Error{Line: 8},
			reason: "invalid YAML: did not find expected ',' or '}'",
		},
		{
			name:   "YAML syntax error in the second document",
			in:     header + edit(t, validPolicy, "name: p", "name: a") + "---\n" + edit(t, validPolicy, "name: p", "name: b", "    max: 50\n", "    max: 50\n   min: 1\n"),
			want:   Error{Line: 30},
			reason: "invalid YAML: did not find expected key", // at the mapping that "   min" breaks
			valid:  []string{"a"},
		},
		{
			name: "bad policy between two good ones",
			in: header + edit(t, validPolicy, "name: p", "name: a") +
				"---\n# the bad one\n\n" + edit(t, validPolicy, "name: p", "name: b", "max: 50", "max: 0") +
				"--- # a comment after the separator\n" + edit(t, validPolicy, "name: p", "name: c"),
			want:   Error{Kind: "ForecastPolicy", Name: "b", Field: "spec.capacity.max"},
			at:     "max: 0",
			reason: "must be in [1, 100000], got 0",
			valid:  []string{"a", "c"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set, errs := Parse([]byte(tc.in), "p.yaml")
			if set == nil {
				t.Fatal("Parse returned a nil Set")
			}
			if len(errs) == 0 {
				t.Fatal("no error")
			}
			var e *Error
			if !errors.As(errs[0], &e) {
				t.Fatalf("error %v (%T) is not an *Error", errs[0], errs[0])
			}
			got := *e
			got.Err = nil
			want := tc.want
			want.File = "p.yaml"
			if tc.at != "" || os.Getenv("PRINT_AT") != "" {
				lines := strings.Split(tc.in, "\n")
				text := ""
				if got.Line >= 1 && got.Line <= len(lines) && got.Column >= 1 && got.Column <= len(lines[got.Line-1]) {
					text = lines[got.Line-1][got.Column-1:]
				}
				if os.Getenv("PRINT_AT") != "" {
					fmt.Printf("AT\t%s\t%q\n", tc.name, text)
				}
				if !strings.HasPrefix(text, tc.at) {
					t.Errorf("error %q points at line %d column %d, %q; want %q", e, got.Line, got.Column, text, tc.at)
				}
				want.Line, want.Column = got.Line, got.Column
			}
			if got != want {
				t.Errorf("error %q:\n got %+v\nwant %+v", e, got, want)
			}
			if !strings.Contains(e.Err.Error(), tc.reason) {
				t.Errorf("error %q does not contain %q", e, tc.reason)
			}
			for _, err := range errs {
				if strings.Contains(err.Error(), "s3cret") {
					t.Errorf("error %q shows a password", err)
				}
			}
			var names []string
			for _, p := range set.Policies {
				names = append(names, p.Metadata.Name)
			}
			if !reflect.DeepEqual(names, tc.valid) {
				t.Errorf("valid policies: got %q, want %q", names, tc.valid)
			}
			if n := max(tc.errs, 1); len(errs) != n {
				t.Errorf("got %d errors, want %d: %q", len(errs), n, errs)
			}
		})
	}
}

func TestErrorString(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want []string
	}{
		{
			name: "field error",
			in:   header + edit(t, validPolicy, "max: 50", "max: 0"),
			want: []string{`p.yaml:14:5: ForecastPolicy "p": spec.capacity.max: must be in [1, 100000], got 0`},
		},
		{
			name: "every error of an object, each at its field",
			in: header + edit(t, validPolicy, "    max: 50\n", "    max: 50\n  model: {quantile: 1.5}\n",
				"query: sum(rate(http_requests_total[1m]))", "query: sum(rate(http_requests_total[1m])"),
			want: []string{
				`p.yaml:15:11: ForecastPolicy "p": spec.model.quantile: must be in (0, 1), got 1.5`,
				`p.yaml:18:7: ForecastPolicy "p": spec.sources[0].query: invalid PromQL "sum(rate(http_requests_total[1m])": 1:34: parse error: unclosed left parenthesis`,
			},
		},
		{
			name: "unknown fields and invalid values together",
			in:   header + edit(t, validPolicy, "  horizon: 30m\n", "  horizn: 30m\n", "max: 50", "max: 0"),
			want: []string{
				`p.yaml:7:1: ForecastPolicy "p": spec.horizon: must be positive, got 0s`,
				`p.yaml:10:3: ForecastPolicy "p": spec.horizn: unknown field (no such field in a ForecastPolicy)`,
				`p.yaml:14:5: ForecastPolicy "p": spec.capacity.max: must be in [1, 100000], got 0`,
			},
		},
		{
			name: "strict decoding, line of the field in the file",
			in:   validDataSource + "---\n" + header + edit(t, validPolicy, "  horizon: 30m\n", "  horizon: 30m\n  replicas: 3\n"),
			want: []string{`p.yaml:18:3: ForecastPolicy "p": spec.replicas: unknown field (no such field in a ForecastPolicy)`},
		},
		{
			name: "several unknown fields",
			in:   header + edit(t, validPolicy, "  horizon: 30m\n", "  horizon: 30m\n  replicas: 3\n", "    max: 50\n", "    max: 50\n    maxReplicas: 50\n"),
			want: []string{
				`p.yaml:11:3: ForecastPolicy "p": spec.replicas: unknown field (no such field in a ForecastPolicy)`,
				`p.yaml:16:5: ForecastPolicy "p": spec.capacity.maxReplicas: unknown field (no such field in a ForecastPolicy)`,
			},
		},
		{
			name: "no name",
			in:   edit(t, validPolicy, "  name: p\n", "  labels: {app: x}\n"),
			want: []string{`p.yaml:3:1: ForecastPolicy: metadata.name: is required`},
		},
		{
			name: "syntax error",
			in:   "apiVersion: kedastral.io/v1alpha1\nkind: [ForecastPolicy\n",
			want: []string{`p.yaml:2: invalid YAML: did not find expected ',' or ']'`},
		},
		{
			name: "dangling reference after an invalid DataSource",
			in:   edit(t, validDataSource, "http://prometheus:9090", "prometheus:9090") + "---\n" + edit(t, validPolicy, "  sources:\n", "  dataSourceRef: {name: prom}\n  sources:\n"),
			want: []string{
				`p.yaml:6:3: DataSource "prom": spec.url: "prometheus:9090" must be an absolute http or https URL`,
				`p.yaml:20:19: ForecastPolicy "p": spec.dataSourceRef.name: no valid DataSource named "prom" (valid: [])`,
			},
		},
		{
			name: "duplicate DataSource",
			in:   validDataSource + "---\n" + validDataSource,
			want: []string{`p.yaml:11:3: DataSource "prom": metadata.name: duplicate name, first defined at p.yaml:1`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errs := Parse([]byte(tc.in), "p.yaml")
			var got []string
			for _, e := range errs {
				got = append(got, e.Error())
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("errors:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestParseReferencesInAnyOrder(t *testing.T) {
	in := edit(t, validPolicy, "  sources:\n", "  dataSourceRef: {name: prom}\n  sources:\n") + "---\n" + validDataSource
	set, errs := Parse([]byte(in), "p.yaml")
	if len(errs) > 0 {
		t.Fatalf("unexpected errors: %v", errs)
	}
	if len(set.Policies) != 1 || set.DataSources["prom"] == nil {
		t.Fatalf("got %d policies and data sources %v", len(set.Policies), set.DataSources)
	}
}

func TestParseEmpty(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
	}{
		{"empty", ""},
		{"comments only", "# nothing here\n\n# yet\n"},
		{"separators only", "---\n---\n# c\n---\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set, errs := Parse([]byte(tc.in), "p.yaml")
			if len(errs) > 0 || set == nil || len(set.Policies) != 0 || len(set.DataSources) != 0 {
				t.Errorf("got %+v, %v; want an empty set", set, errs)
			}
		})
	}
}

func TestParseDataSource(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec string
		want DataSourceSpec
	}{
		{
			name: "URL only: Prometheus' defaults",
			spec: "  url: http://kube-prometheus-stack-prometheus.monitoring:9090\n",
			want: DataSourceSpec{
				Type: "prometheus",
				URL:  "http://kube-prometheus-stack-prometheus.monitoring:9090",
				HTTPClientConfig: config.HTTPClientConfig{
					FollowRedirects: true,
					EnableHTTP2:     true,
				},
			},
		},
		{
			// Pasted from a remote_write entry of prometheus.yml.
			name: "remote_write shape",
			spec: `  url: https://mimir.example.com/prometheus
  basic_auth:
    username: kedastral
    password_file: /etc/kedastral/password
  tls_config:
    ca_file: /etc/kedastral/ca.crt
    server_name: mimir.example.com
    min_version: TLS12
  http_headers:
    X-Scope-OrgID:
      values: [tenant-1]
  proxy_url: http://proxy.example.com:3128
`,
			want: DataSourceSpec{
				Type: "prometheus",
				URL:  "https://mimir.example.com/prometheus",
				HTTPClientConfig: config.HTTPClientConfig{
					BasicAuth: &config.BasicAuth{Username: "kedastral", PasswordFile: "/etc/kedastral/password"},
					TLSConfig: config.TLSConfig{
						CAFile:     "/etc/kedastral/ca.crt",
						ServerName: "mimir.example.com",
						MinVersion: config.TLSVersion(tls.VersionTLS12),
					},
					HTTPHeaders: &config.Headers{Headers: map[string]config.Header{
						"X-Scope-OrgID": {Values: []string{"tenant-1"}},
					}},
					ProxyConfig:     config.ProxyConfig{ProxyURL: mustURL(t, "http://proxy.example.com:3128")},
					FollowRedirects: true,
					EnableHTTP2:     true,
				},
			},
		},
		{
			name: "defaults turned off",
			spec: `  url: http://prometheus:9090
  follow_redirects: false
  enable_http2: false
`,
			want: DataSourceSpec{
				Type:             "prometheus",
				URL:              "http://prometheus:9090",
				HTTPClientConfig: config.HTTPClientConfig{},
			},
		},
		{
			// As in Prometheus, the legacy bearer_token_file becomes an
			// authorization of type Bearer.
			name: "bearer token file",
			spec: `  url: https://prometheus:9090
  bearer_token_file: /var/run/secrets/token
`,
			want: DataSourceSpec{
				Type: "prometheus",
				URL:  "https://prometheus:9090",
				HTTPClientConfig: config.HTTPClientConfig{
					Authorization:   &config.Authorization{Type: "Bearer", CredentialsFile: "/var/run/secrets/token"},
					FollowRedirects: true,
					EnableHTTP2:     true,
				},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := "apiVersion: kedastral.io/v1alpha1\nkind: DataSource\nmetadata:\n  name: ds\nspec:\n" + tc.spec
			set, errs := Parse([]byte(in), "ds.yaml")
			if len(errs) > 0 {
				t.Fatalf("unexpected errors: %v", errs)
			}
			ds := set.DataSources["ds"]
			if ds == nil {
				t.Fatalf("no DataSource ds in %v", set.DataSources)
			}
			if !reflect.DeepEqual(ds.Spec, tc.want) {
				t.Errorf("spec:\n got %+v\nwant %+v", ds.Spec, tc.want)
			}
		})
	}
}

func mustURL(t *testing.T, s string) config.URL {
	t.Helper()
	var u config.URL
	if err := yaml.Unmarshal([]byte(s), &u); err != nil {
		t.Fatal(err)
	}
	return u
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	t.Run("missing file", func(t *testing.T) {
		missing := filepath.Join(dir, "missing.yaml")
		set, errs := LoadFile(missing)
		if set != nil {
			t.Errorf("got a Set %+v for a missing file", set)
		}
		if len(errs) != 1 || !strings.Contains(errs[0].Error(), missing) || !errors.Is(errs[0], os.ErrNotExist) {
			t.Errorf("got %v, want one not-exist error naming %s", errs, missing)
		}
	})
	t.Run("errors name the file", func(t *testing.T) {
		p := writeFile(t, dir, "bad.yaml", edit(t, validPolicy, "max: 50", "max: 0"))
		_, errs := LoadFile(p)
		if len(errs) != 1 || !strings.HasPrefix(errs[0].Error(), p+":12:5: ") {
			t.Errorf("got %v, want one error starting with %s:12:5: (the line and column of max)", errs, p)
		}
	})
}

func TestLoadFiles(t *testing.T) {
	dir := t.TempDir()
	ds := writeFile(t, dir, "ds.yaml", validDataSource)
	pol := writeFile(t, dir, "policy.yaml", edit(t, validPolicy, "  sources:\n", "  dataSourceRef: {name: prom}\n  sources:\n"))
	dup := writeFile(t, dir, "dup.yaml", header+validPolicy)
	missing := filepath.Join(dir, "missing.yaml")

	set, errs := LoadFiles(pol, ds, dup, missing)
	if len(set.Policies) != 1 || set.Policies[0].Spec.DataSourceRef.Name != "prom" || len(set.DataSources) != 1 {
		t.Fatalf("got %d policies and %d data sources, want the policy of %s referring to the DataSource of another file", len(set.Policies), len(set.DataSources), pol)
	}
	if len(errs) != 2 {
		t.Fatalf("got errors %q, want 2", errs)
	}
	if !errors.Is(errs[0], os.ErrNotExist) || !strings.Contains(errs[0].Error(), missing) {
		t.Errorf("first error %q does not name %s", errs[0], missing)
	}
	want := dup + `:6:3: ForecastPolicy "p": metadata.name: duplicate name, first defined at ` + pol + ":1"
	if errs[1].Error() != want {
		t.Errorf("second error:\n got %q\nwant %q", errs[1], want)
	}

	t.Run("no readable file", func(t *testing.T) {
		set, errs := LoadFiles(missing)
		if set != nil || len(errs) != 1 {
			t.Errorf("got %+v, %v; want nil and one error", set, errs)
		}
	})
}

// TestExamples loads every ForecastPolicy and DataSource in deploy/examples,
// all files together so that references across files resolve. Objects of
// other kinds (a KEDA ScaledObject, say) are skipped.
func TestExamples(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "deploy", "examples", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var docs []document
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range splitDocuments(data, f) {
			var tm TypeMeta
			if err := yaml.Unmarshal(d.data, &tm); err != nil {
				t.Errorf("%s:%d: %v", d.file, d.line, err)
				continue
			}
			if tm.Kind == KindForecastPolicy || tm.Kind == KindDataSource {
				docs = append(docs, d)
			}
		}
	}
	set, errs := parseDocuments(docs)
	for _, err := range errs {
		t.Error(err)
	}
	if len(set.Policies) == 0 || len(set.DataSources) == 0 {
		t.Errorf("found %d policies and %d data sources in %v, want some of each", len(set.Policies), len(set.DataSources), files)
	}
}

func TestCoverSteps(t *testing.T) {
	for _, tc := range []struct {
		lead, step time.Duration
		want       int
	}{
		{3 * time.Minute, time.Minute, 4},
		{0, time.Minute, 1},
		{3 * time.Minute, 5 * time.Minute, 2},
		{5 * time.Minute, 5 * time.Minute, 2},
		{3 * time.Minute, time.Hour, 2},
	} {
		s := ForecastPolicySpec{LeadTime: model.Duration(tc.lead), Step: model.Duration(tc.step)}
		if got := s.CoverSteps(); got != tc.want {
			t.Errorf("lead %v step %v: CoverSteps %d, want %d", tc.lead, tc.step, got, tc.want)
		}
	}
}
