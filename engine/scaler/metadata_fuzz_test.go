package scaler

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
)

var fuzzParser = parser.NewParser(parser.Options{})

// FuzzParseMetadata feeds arbitrary trigger metadata to ParseMetadata: it
// never panics, every refusal is a *MetadataError naming a key, and what it
// accepts yields a valid PromQL selector and a metric name KEDA accepts.
func FuzzParseMetadata(f *testing.F) {
	f.Add("api", "", "", "", "", "", "")
	f.Add("api", "namespace=shop,deployment=api", "sum(rate(x[1m]))", "200", "2m", "0", "")
	f.Add("api", `a="b,c"`, "", "", "1h30m", "1.5", "scalerAddress")
	f.Add("", "x", "sum(", "-1", "-5m", "NaN", "policyFromEnv")
	f.Add("a\"b", "__name__=x", "up", "Inf", "1e9h", "1e309", "unknown")
	f.Fuzz(func(t *testing.T, policy, match, reactive, target, age, activation, extraKey string) {
		meta := map[string]string{KeyPolicy: policy}
		for k, v := range map[string]string{KeyMatchLabels: match, KeyReactiveQuery: reactive,
			KeyReactiveTargetPerPod: target, KeyMaxForecastAge: age, KeyActivationReplicas: activation} {
			if v != "" {
				meta[k] = v
			}
		}
		if extraKey != "" {
			meta[extraKey] = "x"
		}
		m, err := ParseMetadata(meta)
		if err != nil {
			var me *MetadataError
			if !errors.As(err, &me) {
				t.Fatalf("error %v (%T) is not a *MetadataError", err, err)
			}
			return
		}
		if m.Policy == "" {
			t.Fatal("accepted an empty policy")
		}
		if m.MaxForecastAge <= 0 {
			t.Fatalf("accepted maxForecastAge %v", m.MaxForecastAge)
		}
		for _, v := range []float64{m.ReactiveTargetPerPod, m.ActivationReplicas} {
			if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
				t.Fatalf("accepted a number that is not finite and non-negative: %v", v)
			}
		}
		if _, err := fuzzParser.ParseExpr(m.Selector()); err != nil {
			t.Fatalf("selector %q of accepted metadata does not parse: %v", m.Selector(), err)
		}
		if m.ReactiveQuery != "" {
			if _, err := fuzzParser.ParseExpr(m.ReactiveQuery); err != nil {
				t.Fatalf("accepted reactive query %q: %v", m.ReactiveQuery, err)
			}
		}
		name := m.MetricName()
		if name == "" || len(name) > 253 || strings.ContainsAny(name, " \n\"{}") {
			t.Fatalf("metric name %q", name)
		}
	})
}
