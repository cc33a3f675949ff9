package deploytest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kedastral/kedastral/deploy/test/kubeschema"
	"github.com/kedastral/kedastral/engine/policy"
	"github.com/kedastral/kedastral/engine/scaler"
)

// manifests are the examples that are manifests: all but the Helm values
// files (values-*.yaml, tested as chart cases).
func manifests(t *testing.T) []string {
	t.Helper()
	all, _ := filepath.Glob(filepath.Join(examplesDir, "*.yaml"))
	var files []string
	for _, f := range all {
		if !strings.HasPrefix(filepath.Base(f), "values-") {
			files = append(files, f)
		}
	}
	return files
}

// TestExamplesKubeconform validates every example manifest against the
// Kubernetes, KEDA and Kedastral schemas.
func TestExamplesKubeconform(t *testing.T) {
	files := manifests(t)
	if len(files) == 0 {
		t.Fatal("no examples")
	}
	kubeconform(t, nil, files...)
}

// TestScaledObjectExamples checks the ScaledObject examples the way the scaler
// reads them: every Kedastral trigger's metadata parses, names an example
// policy and points at the chart's scaler Service; there is a hybrid example
// (external + reactive prometheus trigger) and an external-push one.
func TestScaledObjectExamples(t *testing.T) {
	files := manifests(t)
	policies := map[string]bool{}
	var scaledObjects []object
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range splitYAML(t, data) {
			switch o.kind() {
			case policy.KindForecastPolicy:
				policies[o.name()] = true
			case "ScaledObject":
				scaledObjects = append(scaledObjects, o)
			}
		}
	}
	wantAddr := "kedastral-scaler.kedastral.svc.cluster.local:50051"
	types := map[string]int{}
	hybrid := false
	for _, so := range scaledObjects {
		t.Run(so.name(), func(t *testing.T) {
			triggers, _ := so.path("spec", "triggers").([]any)
			var kedastral, prom bool
			for i, tr := range triggers {
				tr := tr.(map[string]any)
				typ, _ := tr["type"].(string)
				types[typ]++
				if typ == "prometheus" {
					prom = true
				}
				if typ != "external" && typ != "external-push" {
					continue
				}
				kedastral = true
				meta := map[string]string{}
				for k, v := range tr["metadata"].(map[string]any) {
					s, ok := v.(string)
					if !ok {
						t.Errorf("trigger %d: metadata %s is %T; KEDA wants strings (quote it)", i, k, v)
					}
					meta[k] = s
				}
				md, err := scaler.ParseMetadata(meta)
				if err != nil {
					t.Errorf("trigger %d: %v", i, err)
					continue
				}
				if !policies[md.Policy] {
					t.Errorf("trigger %d: policy %q is not an example ForecastPolicy", i, md.Policy)
				}
				if meta["scalerAddress"] != wantAddr {
					t.Errorf("trigger %d: scalerAddress %q, want the chart's %s", i, meta["scalerAddress"], wantAddr)
				}
			}
			if !kedastral {
				t.Error("no Kedastral trigger")
			}
			hybrid = hybrid || (kedastral && prom)
		})
	}
	if !hybrid {
		t.Error("no example with a Kedastral trigger and a reactive prometheus trigger")
	}
	for _, typ := range []string{"external", "external-push"} {
		if types[typ] == 0 {
			t.Errorf("no example with a %s trigger", typ)
		}
	}
	if t.Failed() {
		t.Logf("example policies: %v", keys(policies))
	}
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestKubeconformRejects makes sure the offline schemas are not vacuous: a
// broken manifest of each kind the tests validate fails.
func TestKubeconformRejects(t *testing.T) {
	bin := kubeconformBin(t)
	dir := schemas(t)
	for _, tc := range []struct{ name, doc string }{
		{"Deployment with unknown field", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replica: 1\n  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n    spec: {containers: [{name: c, image: i}]}\n"},
		{"Service with string port", "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: [{port: http}]}\n"},
		{"ScaledObject without scaleTargetRef", "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: x}\nspec: {triggers: [{type: external, metadata: {scalerAddress: a:1}}]}\n"},
		{"ServiceMonitor with bad endpoints", "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: x}\nspec: {selector: {}, endpoints: {port: http}}\n"},
		{"ForecastPolicy with bad horizon", "apiVersion: kedastral.io/v1alpha1\nkind: ForecastPolicy\nmetadata: {name: x}\nspec: {targetRef: {name: a}, horizon: soon, capacity: {targetPerPod: 1, max: 2}, sources: [{name: a, query: up}]}\n"},
		{"unknown kind", "apiVersion: example.com/v1\nkind: Gadget\nmetadata: {name: x}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := command(".", bin, "-strict", "-summary", "-schema-location", dir+"/"+kubeschema.Template, "-")
			cmd.Stdin = strings.NewReader(tc.doc)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Errorf("kubeconform accepted it:\n%s", out)
			}
		})
	}
}
