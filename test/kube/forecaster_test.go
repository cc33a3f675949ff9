package kube_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kedastral/kedastral/promapi/promtest"
	"github.com/kedastral/kedastral/test/testutil"
)

var policyGVR = schema.GroupVersionResource{Group: "kedastral.io", Version: "v1alpha1", Resource: "forecastpolicies"}

// startForecaster runs `kedastral forecaster --policies.source=kubernetes`
// against the cluster and prom, and stops it at the end of the test.
func startForecaster(t *testing.T, c *cluster, promURL string, extra ...string) *testutil.Buffer {
	t.Helper()
	web := testutil.FreeAddr(t)
	args := append([]string{"forecaster", "--policies.source=kubernetes", "--kubeconfig=" + c.kubeconfig,
		"--prometheus.url=" + promURL, "--web.listen-address=" + web,
		"--kubernetes.debounce=200ms", "--kubernetes.status-interval=300ms"}, extra...)
	fc := testutil.Start(t, testutil.ProcOptions{Name: "forecaster", CleanExit: true}, testutil.Kedastral(t), args...)
	testutil.Eventually(t, 30*time.Second, "ready forecaster", func() (string, bool) {
		resp, err := http.Get("http://" + web + "/-/ready")
		if err != nil {
			return err.Error(), false
		}
		resp.Body.Close()
		return resp.Status, resp.StatusCode == 200
	})
	return fc.Logs
}

// promQuery runs an instant query and returns each series' labels and value.
func promQuery(t *testing.T, promURL, q string) []sample {
	t.Helper()
	resp, err := http.Get(promURL + "/api/v1/query?" + url.Values{"query": {q}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var r struct {
		Data struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("query %s: %v: %s", q, err, b)
	}
	var out []sample
	for _, s := range r.Data.Result {
		v, _ := strconv.ParseFloat(s.Value[1].(string), 64)
		out = append(out, sample{s.Metric, v})
	}
	return out
}

type sample struct {
	labels map[string]string
	value  float64
}

func (c *cluster) getPolicy(t *testing.T, ns, name string) *unstructured.Unstructured {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	o, err := c.dyn.Resource(policyGVR).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get %s/%s: %v", ns, name, err)
	}
	return o
}

func (c *cluster) applyYAML(t *testing.T, y string) *unstructured.Unstructured {
	t.Helper()
	objs, err := parseObjects([]byte(y), "test")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var last *unstructured.Unstructured
	for _, o := range objs {
		if last, err = c.apply(ctx, o); err != nil {
			t.Fatalf("apply %s %s: %v", o.GetKind(), o.GetName(), err)
		}
	}
	return last
}

// condition returns the status, reason and message of a condition.
func condition(o *unstructured.Unstructured, typ string) (status, reason, msg string) {
	conds, _, _ := unstructured.NestedSlice(o.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == typ {
			s, _ := m["status"].(string)
			r, _ := m["reason"].(string)
			ms, _ := m["message"].(string)
			return s, r, ms
		}
	}
	return "", "", ""
}

func statusString(o *unstructured.Unstructured) string {
	b, _ := json.Marshal(o.Object["status"])
	return fmt.Sprintf("generation %d, status %s", o.GetGeneration(), b)
}

// TestForecasterKubernetes applies, edits and deletes ForecastPolicy objects
// and checks that the forecaster in kubernetes mode follows: the kedastral_*
// series in a real Prometheus (named by policy and policy_namespace) and the
// status subresource.
func TestForecasterKubernetes(t *testing.T) {
	c := getCluster(t)
	prom := promtest.StartInT(t, testutil.LoadHistory(t), promtest.Options{})
	a, b := c.namespace(t, "team-a"), c.namespace(t, "team-b")
	// Only these two: other tests leave policies elsewhere.
	logs := startForecaster(t, c, prom.URL(), "--kubernetes.namespaces="+a+","+b)

	// The same policy name in two namespaces, with different capacities.
	c.applyYAML(t, policyYAML("api", a, "{targetPerPod: 10, min: 1, max: 50}", "", ""))
	c.applyYAML(t, policyYAML("api", b, "{targetPerPod: 5, min: 1, max: 50}", "", ""))

	desired := func(ns string) (float64, bool) {
		for _, s := range promQuery(t, prom.URL(), `kedastral_desired_replicas{policy="api"}`) {
			if s.labels["policy_namespace"] == ns {
				return s.value, true
			}
		}
		return 0, false
	}
	// At least what reactive scaling asks for the observed load
	// (neverBelowReactive), and the forecast of a constant load is that load.
	for ns, perPod := range map[string]float64{a: 10, b: 5} {
		want := float64(int((testutil.AppLoad + perPod - 1) / perPod))
		testutil.Eventually(t, 60*time.Second, "kedastral_desired_replicas of "+ns+"/api", func() (string, bool) {
			v, ok := desired(ns)
			return fmt.Sprint(v, ok), ok && v >= want && v <= want+1
		})
	}
	// The scaler answers each ScaledObject from its own namespace's policy
	// of the same name, or from the one policyNamespace names.
	scaler := startScaler(t, prom.URL())
	for _, tc := range []struct{ objectNS, policyNS, seriesNS string }{{a, "", a}, {b, "", b}, {a, b, b}} {
		meta := map[string]string{"policy": "api"}
		if tc.policyNS != "" {
			meta["policyNamespace"] = tc.policyNS
		}
		got, err := scalerAnswer(t, scaler, tc.objectNS, meta)
		want, _ := desired(tc.seriesNS)
		if err != nil || got != want {
			t.Errorf("ScaledObject in %s, metadata %v: scaler answered %v (%v), want %s/api's %v", tc.objectNS, meta, got, err, tc.seriesNS, want)
		}
	}

	for _, m := range []string{"kedastral_observed_value", "kedastral_predicted_value", "kedastral_capacity_per_replica"} {
		got := promQuery(t, prom.URL(), fmt.Sprintf(`count by (policy_namespace) (%s{policy="api"})`, m))
		if len(got) != 2 {
			t.Errorf("%s: want series of both namespaces, got %v", m, got)
		}
	}

	// The status follows: Ready, the series count, the desired replicas
	// that Prometheus has, the model, the generation.
	var st *unstructured.Unstructured
	testutil.Eventually(t, 30*time.Second, "Ready status of team-a/api", func() (string, bool) {
		st = c.getPolicy(t, a, "api")
		s, _, _ := condition(st, "Ready")
		return statusString(st), s == "True"
	})
	v, _ := desired(a)
	status := st.Object["status"].(map[string]any)
	if _, r, _ := condition(st, "Ready"); r != "Forecasting" {
		t.Errorf("Ready reason %q, want Forecasting", r)
	}
	if s, _, _ := condition(st, "Degraded"); s != "False" {
		t.Errorf("Degraded %q, want False", s)
	}
	if status["seriesCount"] != int64(1) || status["observedGeneration"] != st.GetGeneration() || status["model"] == "" {
		t.Errorf("status %v: want seriesCount 1, observedGeneration %d, a model", status, st.GetGeneration())
	}
	if d, _ := status["desiredReplicas"].(string); d == "" || (d != strconv.Itoa(int(v)) && d != strconv.Itoa(int(v)-1) && d != strconv.Itoa(int(v)+1)) {
		t.Errorf("status desiredReplicas %q, Prometheus has %v", d, v)
	}
	if ts, _ := status["lastEvaluationTime"].(string); ts == "" {
		t.Error("no lastEvaluationTime")
	} else if tt, err := time.Parse(time.RFC3339, ts); err != nil || time.Since(tt) > time.Minute {
		t.Errorf("lastEvaluationTime %q: %v", ts, err)
	}

	// No write storm: with nothing but lastEvaluationTime changing, the
	// object is not rewritten every cycle (--kubernetes.status-refresh=1m).
	rv := c.getPolicy(t, a, "api").GetResourceVersion()
	time.Sleep(3 * time.Second) // three cycles of the 1s interval
	if now := c.getPolicy(t, a, "api").GetResourceVersion(); now != rv {
		t.Errorf("status rewritten within 3s with nothing changed: resourceVersion %s -> %s", rv, now)
	}

	// kubectl get forecastpolicies: the printer columns, as a Table.
	table := c.table(t, "/apis/kedastral.io/v1alpha1/namespaces/"+a+"/forecastpolicies")
	t.Logf("kubectl get forecastpolicies -n %s:\n%s", a, table)
	for _, w := range []string{"NAME", "READY", "DESIRED", "SERIES", "MODEL", "api", "True", "Forecasting"} {
		if !strings.Contains(table, w) {
			t.Errorf("table does not show %q", w)
		}
	}

	// Editing the policy changes the output: a fifth of the capacity per pod.
	c.applyYAML(t, policyYAML("api", a, "{targetPerPod: 2, min: 1, max: 50}", "", ""))
	testutil.Eventually(t, 30*time.Second, "desired replicas after the edit", func() (string, bool) {
		v, ok := desired(a)
		return fmt.Sprint(v), ok && v >= 21
	})
	testutil.Eventually(t, 30*time.Second, "status of generation 2", func() (string, bool) {
		st := c.getPolicy(t, a, "api")
		s, _, _ := condition(st, "Ready")
		d, _, _ := unstructured.NestedString(st.Object, "status", "desiredReplicas")
		n, _ := strconv.Atoi(d)
		og, _, _ := unstructured.NestedInt64(st.Object, "status", "observedGeneration")
		return statusString(st), st.GetGeneration() == 2 && og == 2 && s == "True" && n >= 21
	})

	// A policy the CRD accepts but the forecaster refuses (PromQL is not
	// checked by the API server): Ready=False naming the field, and the
	// others keep running.
	c.applyYAML(t, policyYAML("broken", a, "", "", "[{name: rps, query: 'sum(app_load'}]"))
	testutil.Eventually(t, 30*time.Second, "Ready=False on the broken query", func() (string, bool) {
		st := c.getPolicy(t, a, "broken")
		s, r, m := condition(st, "Ready")
		return statusString(st), s == "False" && r == "InvalidQuery" && strings.Contains(m, "spec.sources[0].query") && strings.Contains(m, "PromQL")
	})
	// It never ran: not Degraded, and nothing claims a previous version runs.
	if st := c.getPolicy(t, a, "broken"); strings.Contains(statusString(st), "keeps running") {
		t.Errorf("status of a policy that never ran: %s", statusString(st))
	} else if s, _, _ := condition(st, "Degraded"); s != "False" {
		t.Errorf("Degraded %q for a policy that never ran, want False", s)
	}
	// A data source that does not answer: Degraded with the reason.
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + dead.Addr().String()
	dead.Close()
	c.applyYAML(t, fmt.Sprintf(`apiVersion: kedastral.io/v1alpha1
kind: DataSource
metadata: {name: down, namespace: %s}
spec: {url: %q}
`, a, deadURL))
	c.applyYAML(t, policyYAML("unreachable", a, "", "  dataSourceRef: {name: down}\n", ""))
	testutil.Eventually(t, 60*time.Second, "Degraded=True on the unreachable data source", func() (string, bool) {
		st := c.getPolicy(t, a, "unreachable")
		s, r, _ := condition(st, "Degraded")
		return statusString(st), s == "True" && r == "DataSourceUnreachable"
	})
	t.Logf("kubectl get forecastpolicies -n %s:\n%s", a, c.table(t, "/apis/kedastral.io/v1alpha1/namespaces/"+a+"/forecastpolicies"))
	// DataSources get a Ready condition too: down is valid (that it does
	// not answer is its policies' problem), a URL without a scheme is not.
	c.applyYAML(t, fmt.Sprintf("apiVersion: kedastral.io/v1alpha1\nkind: DataSource\nmetadata: {name: no-scheme, namespace: %s}\nspec: {url: 'prometheus:9090'}\n", a))
	dsGVR := schema.GroupVersionResource{Group: "kedastral.io", Version: "v1alpha1", Resource: "datasources"}
	for name, want := range map[string]string{"down": "True", "no-scheme": "False"} {
		testutil.Eventually(t, 30*time.Second, "DataSource "+name+" Ready="+want, func() (string, bool) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			ds, err := c.dyn.Resource(dsGVR).Namespace(a).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err.Error(), false
			}
			s, _, m := condition(ds, "Ready")
			return statusString(ds), s == want && (want == "True" || strings.Contains(m, "spec.url"))
		})
	}
	if v, ok := desired(a); !ok || v < 21 {
		t.Errorf("team-a/api stopped or changed with the bad policies beside it: %v %v", v, ok)
	}

	// A burst of changes is applied at once (--kubernetes.debounce=200ms).
	before := strings.Count(logs.String(), `msg="policies applied"`)
	for i := range 8 {
		c.applyYAML(t, policyYAML(fmt.Sprintf("burst-%d", i), b, "", "", ""))
	}
	testutil.Eventually(t, 30*time.Second, "the burst applied", func() (string, bool) {
		for i := range 8 {
			s, _, _ := condition(c.getPolicy(t, b, fmt.Sprintf("burst-%d", i)), "Ready")
			if s == "" {
				return fmt.Sprintf("burst-%d has no status", i), false
			}
		}
		return "", true
	})
	if applies := strings.Count(logs.String(), `msg="policies applied"`) - before; applies < 1 || applies > 3 {
		t.Errorf("8 policies created in a burst took %d applies, want 1 to 3", applies)
	} else {
		t.Logf("8 policies created in a burst: %d apply(s)", applies)
	}

	// Deleting a policy stops its series; the other namespace's go on.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.dyn.Resource(policyGVR).Namespace(b).Delete(ctx, "api", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	last := func(ns string) float64 {
		for _, s := range promQuery(t, prom.URL(), `timestamp(kedastral_desired_replicas{policy="api"})`) {
			if s.labels["policy_namespace"] == ns {
				return s.value
			}
		}
		return 0
	}
	time.Sleep(2 * time.Second) // the debounce and a cycle in flight
	stoppedAt, otherAt := last(b), last(a)
	time.Sleep(3 * time.Second) // three cycles
	if now := last(b); now != stoppedAt {
		t.Errorf("deleted policy still written: last sample at %v, then %v", stoppedAt, now)
	}
	if now := last(a); now <= otherAt {
		t.Errorf("remaining policy no longer written: last sample at %v, then %v", otherAt, now)
	}
}

// table GETs path as kubectl does for `kubectl get` and renders the Table
// the API server builds from the CRD's printer columns.
func (c *cluster) table(t *testing.T, path string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, c.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
	resp, err := insecureClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tbl metav1.Table
	if err := json.NewDecoder(resp.Body).Decode(&tbl); err != nil {
		t.Fatal(err)
	}
	var rows [][]string
	var head []string
	var wide []bool
	for _, col := range tbl.ColumnDefinitions {
		head = append(head, strings.ToUpper(col.Name))
		wide = append(wide, col.Priority > 0)
	}
	rows = append(rows, head)
	for _, r := range tbl.Rows {
		var row []string
		for _, cell := range r.Cells {
			row = append(row, fmt.Sprint(cell))
		}
		rows = append(rows, row)
	}
	widths := make([]int, len(head))
	for _, r := range rows {
		for i, cell := range r {
			if i < len(widths) {
				widths[i] = max(widths[i], len(cell))
			}
		}
	}
	var sb strings.Builder
	for _, r := range rows {
		for i, cell := range r {
			if i < len(wide) && wide[i] {
				continue // shown by -o wide only
			}
			fmt.Fprintf(&sb, "%-*s   ", widths[i], cell)
		}
		sb.WriteString("\n")
	}
	return sb.String()
}
