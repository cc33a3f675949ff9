package kube_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kedastral/kedastral/promapi/promtest"
	"github.com/kedastral/kedastral/test/prereq"
	"github.com/kedastral/kedastral/test/testutil"
)

var chartDir = filepath.Join(repoRoot, "deploy", "helm", "kedastral")

// helmBinary finds helm on PATH or in GOPATH/bin (make setup installs it
// there), and fails the test without it.
func helmBinary(t *testing.T) string {
	t.Helper()
	return prereq.Program(t, "helm")
}

func helm(t *testing.T, c *cluster, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, helmBinary(t), append(args, "--kubeconfig="+c.kubeconfig)...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// prometheusOperatorCRDs creates the ServiceMonitor and PrometheusRule CRDs
// from the Go module cache (make setup downloads prometheus-operator) and
// reports whether they are there.
func (c *cluster) prometheusOperatorCRDs(t *testing.T) bool {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		return false
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "github.com", "prometheus-operator", "prometheus-operator@v0.85.0", "example", "prometheus-operator-crd")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, f := range []string{"monitoring.coreos.com_servicemonitors.yaml", "monitoring.coreos.com_prometheusrules.yaml"} {
		objs, err := readObjects(filepath.Join(dir, f))
		if err != nil {
			t.Logf("prometheus-operator CRDs not in the module cache (%v); ServiceMonitor and PrometheusRule stay off", err)
			return false
		}
		for _, o := range objs {
			if _, err := c.apply(ctx, o); err != nil {
				t.Fatalf("create %s: %v", o.GetName(), err)
			}
			for {
				cur, err := c.dyn.Resource(crdGVR).Get(ctx, o.GetName(), metav1.GetOptions{})
				if err == nil && established(cur) {
					break
				}
				if ctx.Err() != nil {
					t.Fatalf("CRD %s not established", o.GetName())
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	}
	c.mapper.Reset()
	return true
}

// TestHelmInstallDryRun runs `helm install --dry-run=server` of the chart
// against the API server: every object it renders passes the server's
// validation and admission, in file and in kubernetes mode.
func TestHelmInstallDryRun(t *testing.T) {
	c := getCluster(t)
	helmBinary(t)
	monitoring := c.prometheusOperatorCRDs(t)
	for _, tc := range []struct {
		name string
		set  []string
		want []string
	}{
		{"defaults", nil, []string{"kind: Deployment", "--config.file="}},
		{"kubernetes source, all namespaces", []string{"kubernetesSource.enabled=true"},
			[]string{"kind: ClusterRole", "kind: ClusterRoleBinding", "--policies.source=kubernetes", "--leader-election.enabled", "forecastpolicies/status", "leases"}},
		{"kubernetes source, two replicas with leader election", []string{"kubernetesSource.enabled=true", "forecaster.replicas=2"},
			[]string{"replicas: 2", "--leader-election.enabled"}},
		{"kubernetes source, two namespaces", []string{"kubernetesSource.enabled=true", "kubernetesSource.namespaces={team-a,team-b}"},
			[]string{"kind: Role", "namespace: team-a", "namespace: team-b", "--kubernetes.namespaces=team-a,team-b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"install", "kedastral", chartDir, "--namespace=kedastral", "--create-namespace", "--dry-run=server"}
			if monitoring {
				args = append(args, "--set=serviceMonitor.enabled=true", "--set=prometheusRule.enabled=true", "--set=dashboards.enabled=true")
			}
			for _, s := range tc.set {
				args = append(args, "--set="+s)
			}
			for _, ns := range []string{"kedastral", "team-a", "team-b"} {
				c.namespace(t, ns)
			}
			out, err := helm(t, c, args...)
			if err != nil {
				t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("rendered manifest lacks %q", w)
				}
			}
		})
	}
	// Without leader election, two forecasters would write every series
	// twice: the values schema refuses it.
	out, err := helm(t, c, "template", "kedastral", chartDir, "--set=forecaster.replicas=2")
	if err == nil || !strings.Contains(out, "replicas") {
		t.Errorf("two unsharded replicas without leader election accepted: %v\n%s", err, out)
	}
}

var leaseGVR = schema.GroupVersionResource{Group: "coordination.k8s.io", Version: "v1", Resource: "leases"}

// TestChartRBAC creates the chart's ServiceAccount and RBAC for a watched
// namespace, runs the forecaster with that service account's token and
// leader election, and checks that those permissions are enough: it takes
// the Lease, forecasts an applied policy and writes its status.
func TestChartRBAC(t *testing.T) {
	c := getCluster(t)
	helmBinary(t)
	prom := promtest.StartInT(t, testutil.LoadHistory(t), promtest.Options{})
	release := c.namespace(t, "kedastral-rbac")
	watched := c.namespace(t, "rbac-watched")
	out, err := helm(t, c, "template", "kedastral", chartDir, "--namespace="+release,
		"--set=kubernetesSource.enabled=true", "--set=kubernetesSource.namespaces={"+watched+"}",
		"--show-only=templates/serviceaccount.yaml", "--show-only=templates/forecaster-rbac.yaml")
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, out)
	}
	objs, err := parseObjects([]byte(out), "helm template")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sa := ""
	for _, o := range objs {
		if _, err := c.apply(ctx, o); err != nil {
			t.Fatalf("create %s %s: %v", o.GetKind(), o.GetName(), err)
		}
		if o.GetKind() == "ServiceAccount" {
			sa = o.GetName()
		}
	}
	if sa == "" {
		t.Fatal("the chart rendered no ServiceAccount")
	}
	// A token of the service account, as the kubelet would mount it.
	tr := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
		"metadata": map[string]any{"name": sa}, "spec": map[string]any{"expirationSeconds": int64(3600)}}}
	res, err := c.dyn.Resource(schema.GroupVersionResource{Version: "v1", Resource: "serviceaccounts"}).Namespace(release).
		Create(ctx, tr, metav1.CreateOptions{}, "token")
	if err != nil {
		t.Fatalf("token of %s/%s: %v", release, sa, err)
	}
	token, _, _ := unstructured.NestedString(res.Object, "status", "token")
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kc, []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: %q, insecure-skip-tls-verify: true}}]
users: [{name: sa, user: {token: %q}}]
contexts: [{name: test, context: {cluster: test, user: sa}}]
current-context: test
`, c.url, token)), 0o600); err != nil {
		t.Fatal(err)
	}
	sac := *c
	sac.kubeconfig = kc
	startForecaster(t, &sac, prom.URL(), "--kubernetes.namespaces="+watched, "--leader-election.enabled",
		"--leader-election.namespace="+release, "--leader-election.lease-name=kedastral-forecaster",
		"--leader-election.lease-duration=4s", "--leader-election.renew-deadline=3s", "--leader-election.retry-period=1s")

	c.applyYAML(t, policyYAML("api", watched, "", "", ""))
	testutil.Eventually(t, 60*time.Second, "Ready status written with the chart's RBAC", func() (string, bool) {
		st := c.getPolicy(t, watched, "api")
		s, _, _ := condition(st, "Ready")
		return statusString(st), s == "True"
	})
	lease, err := c.dyn.Resource(leaseGVR).Namespace(release).Get(ctx, "kedastral-forecaster", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("no Lease: %v", err)
	}
	holder, _, _ := unstructured.NestedString(lease.Object, "spec", "holderIdentity")
	if holder == "" {
		b, _ := json.Marshal(lease.Object["spec"])
		t.Errorf("Lease without holder: %s", b)
	}
}
