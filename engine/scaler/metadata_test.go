package scaler

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestParseMetadata(t *testing.T) {
	for _, tc := range []struct {
		name string
		meta map[string]string
		want Metadata
	}{
		{
			name: "policy only, defaults",
			meta: map[string]string{"policy": "api"},
			want: Metadata{Policy: "api", MatchLabels: labels.EmptyLabels(), MaxForecastAge: 2 * time.Minute},
		},
		{
			name: "everything, with KEDA's own keys",
			meta: map[string]string{
				"scalerAddress": "kedastral:50051", "enableTLS": "true", "unsafeSsl": "false",
				"caCert": "x", "tlsClientCert": "y", "tlsClientKey": "z",
				"policy": " api ", "matchLabels": "namespace=shop, deployment=api",
				"reactiveQuery":        `sum(rate(http_requests_total{namespace="shop"}[1m]))`,
				"reactiveTargetPerPod": "50.5", "maxForecastAge": "90s", "activationReplicas": "1",
			},
			want: Metadata{
				Policy: "api", MatchLabels: labels.FromStrings("deployment", "api", "namespace", "shop"),
				ReactiveQuery:        `sum(rate(http_requests_total{namespace="shop"}[1m]))`,
				ReactiveTargetPerPod: 50.5, MaxForecastAge: 90 * time.Second, ActivationReplicas: 1,
			},
		},
		{
			name: "quoted label values, trailing comma, empty value",
			meta: map[string]string{"policy": "api", "matchLabels": `route="/a,b=c", zone=,`},
			want: Metadata{Policy: "api", MatchLabels: labels.FromStrings("route", "/a,b=c", "zone", ""), MaxForecastAge: 2 * time.Minute},
		},
		{
			name: "UTF-8 label names, plain and quoted (Prometheus 3)",
			meta: map[string]string{"policy": "api", "matchLabels": `my.label=x, "a,b=c" = "d", 1ab=ü`},
			want: Metadata{Policy: "api", MatchLabels: labels.FromStrings("1ab", "ü", "a,b=c", "d", "my.label", "x"), MaxForecastAge: 2 * time.Minute},
		},
		{
			name: "FromEnv keys and Go durations",
			meta: map[string]string{"policyFromEnv": "api", "maxForecastAge": "1.5m"},
			want: Metadata{Policy: "api", MatchLabels: labels.EmptyLabels(), MaxForecastAge: 90 * time.Second},
		},
		{
			name: "scalar reactive query",
			meta: map[string]string{"policy": "api", "reactiveQuery": "42", "reactiveTargetPerPod": "10"},
			want: Metadata{Policy: "api", MatchLabels: labels.EmptyLabels(), ReactiveQuery: "42", ReactiveTargetPerPod: 10, MaxForecastAge: 2 * time.Minute},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseMetadata(tc.meta)
			if err != nil {
				t.Fatal(err)
			}
			if got.Policy != tc.want.Policy || !labels.Equal(got.MatchLabels, tc.want.MatchLabels) ||
				got.ReactiveQuery != tc.want.ReactiveQuery || got.ReactiveTargetPerPod != tc.want.ReactiveTargetPerPod ||
				got.MaxForecastAge != tc.want.MaxForecastAge || got.ActivationReplicas != tc.want.ActivationReplicas {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseMetadataErrors(t *testing.T) {
	reactive := map[string]string{"reactiveQuery": "sum(up)", "reactiveTargetPerPod": "10"}
	with := func(extra map[string]string, base ...map[string]string) map[string]string {
		m := map[string]string{"policy": "api"}
		for _, b := range base {
			for k, v := range b {
				m[k] = v
			}
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	for _, tc := range []struct {
		name    string
		meta    map[string]string
		key     string // the key the error must name
		message string // and a part of the message
	}{
		{name: "nil metadata", meta: nil, key: "policy", message: "is required"},
		// Found by FuzzParseMetadata: PromQL cannot select these values.
		{name: "invalid UTF-8 label value", meta: with(map[string]string{"matchLabels": "a=\"\xfe\""}), key: "matchLabels", message: "not valid UTF-8"},
		{name: "U+FFFD label value", meta: with(map[string]string{"matchLabels": "a=x\uFFFD"}), key: "matchLabels", message: "not valid UTF-8"},
		{name: "invalid UTF-8 policy", meta: map[string]string{"policy": "a\xff"}, key: "policy", message: "not valid UTF-8"},
		{name: "missing policy", meta: map[string]string{"matchLabels": "a=b"}, key: "policy", message: "is required"},
		{name: "empty policy", meta: map[string]string{"policy": "  "}, key: "policy", message: "is required"},
		{name: "unknown key", meta: with(map[string]string{"polcy": "x"}), key: "polcy", message: "unknown key"},
		{name: "unknown FromEnv key", meta: with(map[string]string{"queryFromEnv": "x"}), key: "queryFromEnv", message: "unknown key"},
		{name: "key and FromEnv", meta: with(map[string]string{"policyFromEnv": "x"}), key: "policyFromEnv", message: "conflicts"},
		{name: "matchLabels empty", meta: with(map[string]string{"matchLabels": ""}), key: "matchLabels", message: "is empty"},
		{name: "matchLabels no =", meta: with(map[string]string{"matchLabels": "a=b,c"}), key: "matchLabels", message: `"c": want name=value`},
		{name: "matchLabels empty name", meta: with(map[string]string{"matchLabels": "a=b, =c"}), key: "matchLabels", message: `"" is not a valid label name`},
		{name: "matchLabels invalid UTF-8 name", meta: with(map[string]string{"matchLabels": "\xfe=b"}), key: "matchLabels", message: "not a valid label name"},
		{name: "matchLabels quoted name without =", meta: with(map[string]string{"matchLabels": `"my.label" x`}), key: "matchLabels", message: "want name=value"},
		{name: "matchLabels bad quoted name", meta: with(map[string]string{"matchLabels": `"my.label=x`}), key: "matchLabels", message: "bad quoted label name"},
		{name: "matchLabels reserved name", meta: with(map[string]string{"matchLabels": "__name__=b"}), key: "matchLabels", message: "not a valid label name"},
		{name: "matchLabels policy", meta: with(map[string]string{"matchLabels": "policy=b"}), key: "matchLabels", message: `"policy"`},
		{name: "matchLabels twice", meta: with(map[string]string{"matchLabels": "a=b,a=c"}), key: "matchLabels", message: "twice"},
		{name: "matchLabels bad quote", meta: with(map[string]string{"matchLabels": `a="b`}), key: "matchLabels", message: "quoted"},
		{name: "matchLabels junk after quote", meta: with(map[string]string{"matchLabels": `a="b"c`}), key: "matchLabels", message: "after the quoted value"},
		{name: "bad PromQL", meta: with(map[string]string{"reactiveQuery": "sum(rate(x[1m])"}, reactive), key: "reactiveQuery", message: "invalid PromQL"},
		{name: "range vector PromQL", meta: with(map[string]string{"reactiveQuery": "x[5m]"}, reactive), key: "reactiveQuery", message: "returns a matrix"},
		{name: "empty reactiveQuery", meta: with(map[string]string{"reactiveQuery": ""}), key: "reactiveQuery", message: "is empty"},
		{name: "target without query", meta: with(map[string]string{"reactiveTargetPerPod": "10"}), key: "reactiveTargetPerPod", message: "without reactiveQuery"},
		{name: "query without target", meta: with(map[string]string{"reactiveQuery": "sum(up)"}), key: "reactiveTargetPerPod", message: "is required"},
		{name: "target not a number", meta: with(map[string]string{"reactiveTargetPerPod": "ten"}, reactive), key: "reactiveTargetPerPod", message: `"ten" is not a number > 0`},
		{name: "target zero", meta: with(map[string]string{"reactiveTargetPerPod": "0"}, reactive), key: "reactiveTargetPerPod", message: "> 0"},
		{name: "target NaN", meta: with(map[string]string{"reactiveTargetPerPod": "NaN"}, reactive), key: "reactiveTargetPerPod", message: "> 0"},
		{name: "maxForecastAge bad", meta: with(map[string]string{"maxForecastAge": "two minutes"}), key: "maxForecastAge", message: "not a positive duration"},
		{name: "maxForecastAge zero", meta: with(map[string]string{"maxForecastAge": "0s"}), key: "maxForecastAge", message: "not a positive duration"},
		{name: "maxForecastAge negative", meta: with(map[string]string{"maxForecastAge": "-1m"}), key: "maxForecastAge", message: "not a positive duration"},
		{name: "activationReplicas bad", meta: with(map[string]string{"activationReplicas": "one"}), key: "activationReplicas", message: "not a number >= 0"},
		{name: "activationReplicas negative", meta: with(map[string]string{"activationReplicas": "-1"}), key: "activationReplicas", message: "not a number >= 0"},
		{name: "activationReplicas Inf", meta: with(map[string]string{"activationReplicas": "+Inf"}), key: "activationReplicas", message: "not a number >= 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseMetadata(tc.meta)
			if err == nil {
				t.Fatal("no error")
			}
			me, ok := err.(*MetadataError)
			if !ok {
				t.Fatalf("error %T %v, want *MetadataError", err, err)
			}
			if me.Key != tc.key {
				t.Errorf("key %q, want %q (%v)", me.Key, tc.key, err)
			}
			if !strings.Contains(err.Error(), `"`+tc.key+`"`) || !strings.Contains(err.Error(), tc.message) {
				t.Errorf("error %q does not name %q or contain %q", err, tc.key, tc.message)
			}
			st := status.Convert(grpcError(err))
			if st.Code() != codes.InvalidArgument || st.Message() != err.Error() {
				t.Errorf("gRPC status %v, want InvalidArgument with the message", st)
			}
		})
	}
}

var metricNameRE = regexp.MustCompile(`^kedastral-([a-z0-9]+-)*[0-9a-f]{16}$`)

func TestMetricName(t *testing.T) {
	metas := []Metadata{
		{Policy: "api"},
		{Policy: "API"},
		{Policy: "api.x"},
		{Policy: "api-x"},
		{Policy: "api_x"},
		{Policy: "api", MatchLabels: labels.FromStrings("deployment", "api")},
		{Policy: "api", MatchLabels: labels.FromStrings("deployment", "API")},
		{Policy: "api", MatchLabels: labels.FromStrings("service", "api")},
		{Policy: "api", MatchLabels: labels.FromStrings("deployment", "")},
		{Policy: "api", MatchLabels: labels.FromStrings("deployment", "api", "namespace", "shop")},
		{Policy: "api", MatchLabels: labels.FromStrings("deployment", "shop", "namespace", "api")},
		{Policy: "api", MatchLabels: labels.FromStrings("a", "b\x00c")},
		{Policy: "api", MatchLabels: labels.FromStrings("a", "b", "c", "")},
		{Policy: strings.Repeat("long-policy-name.", 20)},
		{Policy: strings.Repeat("long-policy-name.", 20) + "x"},
		{Policy: "!!!"},
	}
	seen := map[string]int{}
	for i, m := range metas {
		m.MaxForecastAge = time.Minute
		name := m.MetricName()
		if !metricNameRE.MatchString(name) || len(name) > 128 {
			t.Errorf("%+v: metric name %q is not a short sanitized name", m, name)
		}
		if j, dup := seen[name]; dup {
			t.Errorf("%+v and %+v share the metric name %q", metas[j], m, name)
		}
		seen[name] = i
		// Deterministic, and independent of everything but policy and labels.
		m2 := m
		m2.MatchLabels = m.MatchLabels.Copy()
		m2.ReactiveQuery, m2.ActivationReplicas, m2.MaxForecastAge = "sum(up)", 3, time.Hour
		if got := m2.MetricName(); got != name {
			t.Errorf("metric name not deterministic: %q, then %q", name, got)
		}
	}
	if got, want := (Metadata{Policy: "api", MatchLabels: labels.FromStrings("deployment", "web")}).MetricName(), "kedastral-api-web-"; !strings.HasPrefix(got, want) {
		t.Errorf("metric name %q, want prefix %q", got, want)
	}
}

func TestSelector(t *testing.T) {
	m, err := ParseMetadata(map[string]string{"policy": `a"b`, "matchLabels": `namespace=shop,deployment=api`})
	if err != nil {
		t.Fatal(err)
	}
	want := `kedastral_desired_replicas{policy="a\"b", deployment="api", namespace="shop"}`
	if got := m.Selector(); got != want {
		t.Errorf("selector %s, want %s", got, want)
	}
}
