package mixin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/config"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/kedastral/kedastral/engine/forecast"
	"github.com/kedastral/kedastral/engine/policy"
	"github.com/kedastral/kedastral/engine/trace"
	"github.com/kedastral/kedastral/promapi"
	"github.com/kedastral/kedastral/promapi/promtest"
	"github.com/kedastral/kedastral/test/testutil"
)

const (
	e2eMetric = "demo_queries_per_second"
	e2ePolicy = "demo"
	// capacityPerReplica is kedastral_capacity_per_replica: the seeded history
	// and the forecaster's policy (targetPerPod) use it, with max 1 replica, so
	// every series is under-provisioned whatever the forecaster decides.
	capacityPerReplica = 0.001
)

var e2eAheads = []string{"5m", "15m", "30m"}

// seededPrediction is the prediction the seeded history holds for a service
// and ahead: constant, so that every error is known exactly.
func seededPrediction(svc string, i int) float64 {
	base := 1000.0
	if svc == "b" {
		base = 200
	}
	return base * float64(i+1)
}

// TestEndToEnd loads the generated rules and alerts into a real Prometheus
// holding a day of a real trace and the last hour of Kedastral's series, runs
// the forecaster on the trace for a few cycles, asserts the accuracy,
// under-provisioning and age recording rules, that every rule evaluates
// without error, and that every dashboard query runs.
func TestEndToEnd(t *testing.T) {
	promtest.RequireBinaries(t)
	path, ok := trace.Locate("ms_mongodb_app_query_rate_1min.csv")
	if !ok {
		t.Fatal("trace ms_mongodb_app_query_rate_1min.csv not found")
	}
	pts, err := trace.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pts = pts[len(pts)-24*60:]
	end := time.Now().Truncate(time.Minute)
	shift := end.Sub(pts[len(pts)-1].T)
	scale := map[string]float64{"a": 1, "b": 0.5}
	last := map[string]float64{} // the observed value the forecaster will write
	var series []promtest.Series
	for _, svc := range []string{"a", "b"} {
		s := promtest.Series{Name: e2eMetric, Labels: labels.FromStrings("service", svc)}
		for _, p := range pts {
			s.Points = append(s.Points, promtest.Point{T: p.T.Add(shift).UnixMilli(), V: p.V * scale[svc]})
		}
		last[svc] = pts[len(pts)-1].V * scale[svc]
		series = append(series, s)

		// The last hour of what a forecaster would have written: the observed
		// value at its last level, constant predictions, one desired replica.
		hour := func(name string, v float64, kv ...string) promtest.Series {
			s := promtest.Series{Name: name, Labels: labels.FromStrings(append([]string{"policy", e2ePolicy, "service", svc}, kv...)...)}
			for m := 60; m >= 0; m-- {
				s.Points = append(s.Points, promtest.Point{T: end.Add(-time.Duration(m) * time.Minute).UnixMilli(), V: v})
			}
			return s
		}
		series = append(series, hour(forecast.ObservedMetric, last[svc]), hour(forecast.DesiredMetric, 1))
		for i, a := range e2eAheads {
			series = append(series, hour(forecast.PredictedMetric, seededPrediction(svc, i), "ahead", a, "quantile", "0.85"))
		}
	}
	capacity := promtest.Series{Name: "kedastral_capacity_per_replica", Labels: labels.FromStrings("policy", e2ePolicy)}
	for m := 60; m >= 0; m-- {
		capacity.Points = append(capacity.Points, promtest.Point{T: end.Add(-time.Duration(m) * time.Minute).UnixMilli(), V: capacityPerReplica})
	}
	series = append(series, capacity)

	// What kube-state-metrics reports over the last hour, for the Policy
	// dashboard's shadow-rollout panels: the target of policy demo (a
	// Deployment, demo-api) and of policy demo-db (a StatefulSet, demo-db),
	// each next to a workload of the same name and the other kind, which the
	// panels must leave out, and another Deployment.
	series = append(series, lastHour(e2eDBPolicyDesired, forecast.DesiredMetric, "policy", e2eDBPolicy))
	for _, w := range e2eWorkloads {
		series = append(series, lastHour(w.v, w.metric, "job", "kube-state-metrics", "namespace", "shop", w.label, w.name))
	}

	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := promtest.CreateBlocks(ctx, dir, series); err != nil {
		t.Fatal(err)
	}

	// The forecaster's /metrics, scraped as job kedastral-forecaster; a second
	// forecaster (as with sharding) runs policy demo-db.
	reg := prometheus.NewRegistry()
	reg.MustRegister(versioncollector.NewCollector("kedastral"))
	metrics := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer metrics.Close()
	mu, _ := url.Parse(metrics.URL)
	regDB := prometheus.NewRegistry()
	metricsDB := httptest.NewServer(promhttp.HandlerFor(regDB, promhttp.HandlerOpts{}))
	defer metricsDB.Close()
	muDB, _ := url.Parse(metricsDB.URL)

	abs := func(name string) string {
		p, err := filepath.Abs(filepath.Join(outDir, name))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	srv := promtest.StartInT(t, dir, promtest.Options{
		RuleFiles:          []string{abs("kedastral-rules.yaml"), abs("kedastral-alerts.yaml")},
		EvaluationInterval: time.Second,
		ScrapeConfigs: fmt.Sprintf(`- job_name: kedastral-forecaster
  scrape_interval: 1s
  static_configs: [{targets: [%q, %q]}]
`, mu.Host, muDB.Host),
	})
	q, err := promapi.NewClient(promapi.ClientConfig{URL: srv.URL(), HTTPClientConfig: config.DefaultHTTPClientConfig, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	w, err := promapi.NewWriter(promapi.WriterConfig{URL: srv.RemoteWriteURL(), HTTPClientConfig: config.DefaultHTTPClientConfig,
		Timeout: 5 * time.Second, MaxRetries: 2})
	if err != nil {
		t.Fatal(err)
	}

	set, errs := policy.Parse(fmt.Appendf(nil, `
apiVersion: kedastral.io/v1alpha1
kind: ForecastPolicy
metadata: {name: %s}
spec:
  targetRef: {name: demo-api}
  horizon: 30m
  leadTime: 5m
  interval: 1s
  ahead: [%s]
  capacity: {targetPerPod: 0.001, min: 1, max: 1}
  model: {type: baseline, quantile: 0.85}
  sources: [{name: qps, query: 'sum by (service) (%s)'}]
`, e2ePolicy, strings.Join(e2eAheads, ", "), e2eMetric), "e2e.yaml")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	mgr, err := forecast.NewManager(forecast.Options{
		Registerer: reg, Writer: w,
		Queriers: func(*policy.DataSource) (forecast.Querier, error) { return q, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer mgr.Stop()
	if err := mgr.Apply(set, nil); err != nil {
		t.Fatal(err)
	}

	// Policy demo-db scales a StatefulSet; its query finds nothing here, so
	// it writes no series (its desired replicas are the seeded ones), but its
	// forecaster publishes its target in kedastral_forecaster_policy_info.
	setDB, errs := policy.Parse(fmt.Appendf(nil, `
apiVersion: kedastral.io/v1alpha1
kind: ForecastPolicy
metadata: {name: %s}
spec:
  targetRef: {kind: StatefulSet, name: demo-db}
  horizon: 30m
  leadTime: 5m
  interval: 1s
  capacity: {targetPerPod: 1, min: 1, max: 10}
  sources: [{name: qps, query: 'sum(demo_db_queries_absent)'}]
`, e2eDBPolicy), "e2e-db.yaml")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	mgrDB, err := forecast.NewManager(forecast.Options{
		Registerer: regDB, Writer: w,
		Queriers: func(*policy.DataSource) (forecast.Querier, error) { return q, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer mgrDB.Stop()
	if err := mgrDB.Apply(setDB, nil); err != nil {
		t.Fatal(err)
	}

	// A few cycles written, then the forecaster's samples are what the rules see.
	var written time.Time
	testutil.Eventually(t, 60*time.Second, "three successful cycles", func() (string, bool) {
		st := mgr.Status()[0]
		if st.LastSuccess.IsZero() {
			return "no successful cycle yet", false
		}
		if written.IsZero() {
			written = st.LastSuccess
		}
		return fmt.Sprintf("last success %v", st.LastSuccess), st.LastSuccess.After(written.Add(1500 * time.Millisecond))
	})
	observed := instant(t, q, forecast.ObservedMetric+`{policy="demo"}`)
	for _, svc := range []string{"a", "b"} {
		s, ok := observed[`{policy="demo", service="`+svc+`"}`]
		if !ok || math.Abs(s.V-last[svc]) > 1e-9 || s.T < written.UnixMilli() {
			t.Fatalf("service %s: observed %+v, want %v written by the forecaster at or after %v", svc, s, last[svc], written)
		}
	}

	// The instant rules, per series and ahead.
	key := func(svc, ahead string) string {
		return fmt.Sprintf(`{ahead="%s", policy="demo", quantile="0.85", service="%s"}`, ahead, svc)
	}
	want := map[string]map[string]float64{
		"policy_series_ahead:kedastral_forecast_error:signed": {},
		"policy_series_ahead:kedastral_forecast_error:abs":    {},
		"policy_series_ahead:kedastral_forecast_covered:bool": {},
		"policy_series:kedastral_underprovisioned:bool": {
			`{policy="demo", service="a"}`: 1,
			`{policy="demo", service="b"}`: 1,
		},
	}
	perAhead := map[string]map[string]float64{ // ahead → quantity → value, over both services
		"mean_abs": {}, "mean_signed": {}, "sum_abs": {}, "coverage": {},
	}
	for i, a := range e2eAheads {
		for _, svc := range []string{"a", "b"} {
			e := seededPrediction(svc, i) - last[svc]
			want["policy_series_ahead:kedastral_forecast_error:signed"][key(svc, a)] = e
			want["policy_series_ahead:kedastral_forecast_error:abs"][key(svc, a)] = math.Abs(e)
			covered := 0.0
			if e >= 0 {
				covered = 1
			}
			want["policy_series_ahead:kedastral_forecast_covered:bool"][key(svc, a)] = covered
			perAhead["mean_abs"][a] += math.Abs(e) / 2
			perAhead["mean_signed"][a] += e / 2
			perAhead["sum_abs"][a] += math.Abs(e)
			perAhead["coverage"][a] += covered / 2
		}
	}
	// The windowed rules: every input is constant over the window, so each is
	// its instant counterpart averaged over the two series.
	for _, win := range []string{"1h", "1d"} {
		m := map[string]map[string]float64{
			"policy_ahead:kedastral_forecast_error:mean_abs" + win:    {},
			"policy_ahead:kedastral_forecast_error:mean_signed" + win: {},
			"policy_ahead:kedastral_forecast_error:relative" + win:    {},
			"policy_ahead:kedastral_forecast_coverage:ratio" + win:    {},
		}
		for _, a := range e2eAheads {
			k := fmt.Sprintf(`{ahead="%s", policy="demo"}`, a)
			m["policy_ahead:kedastral_forecast_error:mean_abs"+win][k] = perAhead["mean_abs"][a]
			m["policy_ahead:kedastral_forecast_error:mean_signed"+win][k] = perAhead["mean_signed"][a]
			m["policy_ahead:kedastral_forecast_error:relative"+win][k] = perAhead["sum_abs"][a] / (last["a"] + last["b"])
			m["policy_ahead:kedastral_forecast_coverage:ratio"+win][k] = perAhead["coverage"][a]
		}
		for name, v := range m {
			want[name] = v
		}
		want["policy:kedastral_underprovisioned:ratio"+win] = map[string]float64{`{policy="demo"}`: 1}
	}
	for _, r := range readRules(t, "kedastral-rules.yaml") {
		if _, ok := want[r.Record]; !ok && r.Record != "policy:kedastral_forecast_age:seconds" {
			t.Errorf("recording rule %s is not checked end to end", r.Record)
		}
	}
	names := make([]string, 0, len(want))
	for name := range want {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		exp := want[name]
		testutil.Eventually(t, 30*time.Second, name, func() (string, bool) {
			got := instant(t, q, name)
			var diffs []string
			for k, v := range exp {
				s, ok := got[k]
				switch {
				case !ok:
					diffs = append(diffs, fmt.Sprintf("%s missing", k))
				case math.Abs(s.V-v) > 1e-9*math.Max(1, math.Abs(v)):
					diffs = append(diffs, fmt.Sprintf("%s = %v, want %v", k, s.V, v))
				}
			}
			if len(got) != len(exp) {
				diffs = append(diffs, fmt.Sprintf("%d series, want %d: %v", len(got), len(exp), keysOf(got)))
			}
			return strings.Join(diffs, "; "), len(diffs) == 0
		})
	}
	age := instant(t, q, "policy:kedastral_forecast_age:seconds")
	if s, ok := age[`{policy="demo"}`]; !ok || s.V < 0 || s.V > 5 {
		t.Errorf("policy:kedastral_forecast_age:seconds = %+v, want a few seconds at most (%v)", s, age)
	}

	// The forecaster is scraped (twice, for rates): its own metrics are there
	// for the dashboards.
	testutil.Eventually(t, 30*time.Second, "the forecaster's /metrics scraped", func() (string, bool) {
		got := instant(t, q, `rate(kedastral_forecaster_cycles_total{job="kedastral-forecaster", policy="demo"}[1m])`)
		return fmt.Sprintf("%d series", len(got)), len(got) == 1
	})

	testutil.Eventually(t, 30*time.Second, "both forecasters' policy_info scraped", func() (string, bool) {
		got := instant(t, q, `kedastral_forecaster_policy_info{job="kedastral-forecaster"}`)
		return fmt.Sprintf("%d series: %v", len(got), keysOf(got)), len(got) == 2
	})

	t.Run("rules evaluate without error", func(t *testing.T) { checkRuleHealth(t, srv.URL()) })
	t.Run("dashboard queries", func(t *testing.T) { checkDashboardQueries(t, q) })
	t.Run("shadow rollout panels", func(t *testing.T) { checkShadowPanels(t, q) })
}

const (
	// e2eDBPolicy is a second policy, whose target is a StatefulSet.
	e2eDBPolicy        = "demo-db"
	e2eDBPolicyDesired = 6
)

// e2eWorkloads are kube-state-metrics' series in namespace shop.
var e2eWorkloads = []struct {
	metric, label, name string
	v                   float64
}{
	{"kube_deployment_spec_replicas", "deployment", "demo-api", 3},
	{"kube_deployment_status_replicas_ready", "deployment", "demo-api", 2},
	{"kube_deployment_status_replicas_available", "deployment", "demo-api", 2},
	{"kube_statefulset_replicas", "statefulset", "demo-db", 5},
	{"kube_statefulset_status_replicas_ready", "statefulset", "demo-db", 4},
	// The same names with the other kind, and another Deployment.
	{"kube_statefulset_replicas", "statefulset", "demo-api", 11},
	{"kube_statefulset_status_replicas_ready", "statefulset", "demo-api", 11},
	{"kube_deployment_spec_replicas", "deployment", "demo-db", 9},
	{"kube_deployment_status_replicas_ready", "deployment", "demo-db", 9},
	{"kube_deployment_spec_replicas", "deployment", "other", 7},
	{"kube_deployment_status_replicas_ready", "deployment", "other", 7},
}

// lastHour is a constant series over the last hour, a sample a minute.
func lastHour(v float64, name string, kv ...string) promtest.Series {
	end := time.Now().Truncate(time.Minute)
	s := promtest.Series{Name: name, Labels: labels.FromStrings(kv...)}
	for m := 60; m >= 0; m-- {
		s.Points = append(s.Points, promtest.Point{T: end.Add(-time.Duration(m) * time.Minute).UnixMilli(), V: v})
	}
	return s
}

// checkShadowPanels runs the Policy dashboard's shadow-rollout panels and its
// target variable for both policies, and checks that they show the desired
// replicas against exactly the spec and ready replicas of the policy's target
// (its name and kind), and their differences.
func checkShadowPanels(t *testing.T, q *promapi.Client) {
	d, ok := readDashboards(t)["kedastral-policy.json"]
	if !ok {
		t.Fatal("no kedastral-policy.json")
	}
	panels := map[string][]string{}
	for _, p := range allPanels(d.Panels) {
		for _, tg := range p.Targets {
			panels[p.Title] = append(panels[p.Title], tg.Expr)
		}
	}
	var target string
	for _, v := range d.Templating.List {
		if v.Name == "target" {
			target = v.Definition
		}
	}
	m := labelValues.FindStringSubmatch(target)
	if m == nil || m[2] != "target_name" {
		t.Fatalf("variable target: %q is not label_values(..., target_name)", target)
	}
	deploy := `{deployment="demo-api", namespace="shop"}`
	sts := `{namespace="shop", statefulset="demo-db"}`
	for _, tc := range []struct {
		policy, target string
		want           map[string][]map[string]float64 // panel → per target: series → value
	}{
		{e2ePolicy, "demo-api", map[string][]map[string]float64{
			// Two series, one desired replica each.
			"Desired vs the workload": {{"{}": 2}, {deploy: 3}, {deploy: 2}, {}, {}},
			"Desired minus what ran":  {{"{}": -1}, {"{}": 0}},
		}},
		{e2eDBPolicy, "demo-db", map[string][]map[string]float64{
			"Desired vs the workload": {{"{}": e2eDBPolicyDesired}, {}, {}, {sts: 5}, {sts: 4}},
			"Desired minus what ran":  {{"{}": 1}, {"{}": 2}},
		}},
	} {
		t.Run(tc.policy, func(t *testing.T) {
			vals := maps.Clone(dashboardValues)
			vals["policy"], vals["target"] = tc.policy, tc.target
			got := instant(t, q, fmt.Sprintf("count by (%s) (%s)", m[2], substituteWith(t, m[1], vals)))
			if want := fmt.Sprintf(`{target_name="%s"}`, tc.target); len(got) != 1 || got[want].T == 0 {
				t.Errorf("variable target: %v, want only %s", keysOf(got), want)
			}
			for title, want := range tc.want {
				exprs := panels[title]
				if len(exprs) != len(want) {
					t.Fatalf("panel %q has %d targets, want %d", title, len(exprs), len(want))
				}
				for i, e := range exprs {
					got := instant(t, q, substituteWith(t, e, vals))
					var diffs []string
					for k, v := range want[i] {
						if s, ok := got[k]; !ok || s.V != v {
							diffs = append(diffs, fmt.Sprintf("%s = %v (found: %v), want %v", k, s.V, ok, v))
						}
					}
					if len(got) != len(want[i]) {
						diffs = append(diffs, fmt.Sprintf("series %v, want %d", keysOf(got), len(want[i])))
					}
					if len(diffs) > 0 {
						t.Errorf("panel %q target %d: %s: %s", title, i, e, strings.Join(diffs, "; "))
					}
				}
			}
		})
	}
}

func instant(t *testing.T, q *promapi.Client, query string) map[string]promapi.Sample {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := q.Query(ctx, query, time.Now())
	if err != nil {
		t.Fatalf("query %s: %v", query, err)
	}
	out := map[string]promapi.Sample{}
	for _, s := range res {
		out[s.Labels.String()] = s
	}
	return out
}

func keysOf[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// checkRuleHealth fails on any rule that Prometheus could not evaluate.
func checkRuleHealth(t *testing.T, base string) {
	var body struct {
		Data struct {
			Groups []struct {
				Name  string `json:"name"`
				Rules []struct {
					Name      string `json:"name"`
					Health    string `json:"health"`
					LastError string `json:"lastError"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	resp, err := http.Get(base + "/api/v1/rules")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range body.Data.Groups {
		for _, r := range g.Rules {
			n++
			if r.Health == "err" || r.LastError != "" {
				t.Errorf("group %s rule %s: health %s: %s", g.Name, r.Name, r.Health, r.LastError)
			}
		}
	}
	want := len(readRules(t, "kedastral-rules.yaml")) + len(readRules(t, "kedastral-alerts.yaml"))
	if n != want {
		t.Errorf("Prometheus loaded %d rules, the files have %d", n, want)
	}
}

// dashboardValues are the values the template variables take in the
// end-to-end check; multi-value variables get their "All" value.
var dashboardValues = map[string]string{
	"job":              ".+",
	"instance":         ".+",
	"policy":           e2ePolicy,
	"policy_namespace": ".*",
	"ahead":            "5m",
	"target":           "demo-api",
	"__rate_interval":  "1m",
	"__interval":       "15s",
	"__range":          "1h",
}

var labelValues = regexp.MustCompile(`^label_values\((.*),\s*(\w+)\)$`)

var varUse = regexp.MustCompile(`\$\{(\w+)\}|\$(\w+)`)

func substitute(t *testing.T, expr string) string {
	t.Helper()
	return substituteWith(t, expr, dashboardValues)
}

// substituteWith replaces the template variables of expr with their values.
func substituteWith(t *testing.T, expr string, values map[string]string) string {
	t.Helper()
	return varUse.ReplaceAllStringFunc(expr, func(m string) string {
		sm := varUse.FindStringSubmatch(m)
		name := sm[1] + sm[2]
		v, ok := values[name]
		if !ok {
			t.Errorf("no test value for variable $%s in %s", name, expr)
		}
		return v
	})
}

// checkDashboardQueries runs every panel target and every template variable
// query of every dashboard against Prometheus, as an instant and a range
// query, and fails on any error. The panels that show Kedastral's own series
// must also return data.
func checkDashboardQueries(t *testing.T, q *promapi.Client) {
	// Queries of these series must return data; the scaler's and
	// kube-state-metrics' are absent here, as are counters never incremented.
	required := []string{"policy_ahead:", "policy:", "kedastral_observed_value", "kedastral_predicted_value",
		"kedastral_desired_replicas", "kedastral_forecast_age_seconds", "kedastral_forecaster_cycles_total",
		"kedastral_forecaster_cycle_duration_seconds", "kedastral_forecaster_query_duration_seconds",
		"kedastral_remote_write_samples_total", "kedastral_forecaster_policies{", "kedastral_forecaster_series{",
		"kedastral_build_info"}
	mustHaveData := func(expr string) bool {
		if strings.Contains(expr, "kedastral_scaler_") || strings.Contains(expr, "kube_") {
			return false
		}
		return slices.ContainsFunc(required, func(s string) bool { return strings.Contains(expr, s) })
	}
	now := time.Now()
	queries := 0
	for file, d := range readDashboards(t) {
		var exprs []struct{ where, expr string }
		for _, v := range d.Templating.List {
			if v.Type != "query" {
				continue
			}
			m := labelValues.FindStringSubmatch(v.Definition)
			if m == nil {
				t.Errorf("%s: variable %s: query %q is not label_values(selector, label)", file, v.Name, v.Definition)
				continue
			}
			exprs = append(exprs, struct{ where, expr string }{"variable " + v.Name, fmt.Sprintf("count by (%s) (%s)", m[2], m[1])})
		}
		for _, p := range allPanels(d.Panels) {
			for _, tg := range p.Targets {
				exprs = append(exprs, struct{ where, expr string }{fmt.Sprintf("panel %q %s", p.Title, tg.RefID), tg.Expr})
			}
		}
		for _, e := range exprs {
			query := substitute(t, e.expr)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			res, err := q.Query(ctx, query, now)
			if err == nil {
				_, err = q.QueryRange(ctx, query, now.Add(-10*time.Minute), now, 15*time.Second)
			}
			cancel()
			queries++
			if err != nil {
				t.Errorf("%s %s: %s: %v", file, e.where, query, err)
				continue
			}
			if len(res) == 0 && mustHaveData(e.expr) {
				t.Errorf("%s %s: %s returned no data", file, e.where, query)
			}
			if len(res) == 0 {
				t.Logf("%s %s: no data (expected in this setup): %s", file, e.where, query)
			}
		}
	}
	if queries < 40 {
		t.Errorf("only %d dashboard queries ran", queries)
	}
}
