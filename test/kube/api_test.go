package kube_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestExamplesAccepted creates every object of deploy/examples on the API
// server: the CRDs' schemas and CEL rules accept what the docs show.
func TestExamplesAccepted(t *testing.T) {
	c := getCluster(t)
	files, err := filepath.Glob(filepath.Join(repoRoot, "deploy", "examples", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if len(kedaCRDs()) == 0 {
		t.Fatal("KEDA's CRDs are not in the module cache: run make setup (go mod download github.com/kedacore/keda/v2@v2.21.0)")
	}
	created := 0
	for _, f := range files {
		if strings.HasPrefix(filepath.Base(f), "values-") {
			continue // Helm values files (values-kube-prometheus-stack.yaml), not manifests: deploy/test renders them
		}
		objs, err := readObjects(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			if o.GetNamespace() == "" {
				o.SetNamespace("examples")
			}
			c.namespace(t, o.GetNamespace())
			if _, err := c.apply(ctx, o); err != nil {
				t.Errorf("%s: %s %s refused: %v", filepath.Base(f), o.GetKind(), o.GetName(), err)
				continue
			}
			created++
		}
	}
	if created == 0 {
		t.Fatal("no example object created")
	}
	t.Logf("%d example objects accepted", created)
}

// TestInvalidRefused checks that the CRDs' CEL rules and schema refuse
// invalid policies at apply time with a message that names the field.
func TestInvalidRefused(t *testing.T) {
	c := getCluster(t)
	ns := c.namespace(t, "invalid")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const cap = "{targetPerPod: 10, max: 5}"
	for _, tc := range []struct {
		name     string
		capacity string
		extra    string // more spec lines
		sources  string
		want     []string
	}{
		{"min above max", "{targetPerPod: 10, min: 20, max: 5}", "", "", []string{"spec.capacity.min", "min is greater than max"}},
		{"max zero", "{targetPerPod: 10, max: 0}", "", "", []string{"spec.capacity.max", "must be at least 1"}},
		{"targetPerPod zero", "{targetPerPod: 0, max: 5}", "", "", []string{"spec.capacity.targetPerPod", "must be a positive number"}},
		{"quantile one", cap, "  model: {quantile: 1}\n", "", []string{"spec.model.quantile", "must be in (0, 1)"}},
		{"source quantile negative", cap, "", "[{name: rps, query: 'sum(x)', quantile: -0.5}]", []string{"spec.sources[0].quantile", "must be in (0, 1)"}},
		{"byom without byom", cap, "  model: {type: byom}\n", "", []string{"spec.model.byom", "required with type byom"}},
		{"no sources", cap, "", "[]", []string{"spec.sources", "at least 1"}},
		{"bad duration", cap, "  step: 5 minutes\n", "", []string{"spec.step", "should match"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			y := policyYAML("bad", ns, tc.capacity, tc.extra, tc.sources)
			objs, err := parseObjects([]byte(y), tc.name)
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.apply(ctx, objs[0])
			if err == nil {
				t.Fatalf("accepted:\n%s", y)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// policyYAML is a ForecastPolicy evaluated every second; empty capacity and
// sources take defaults (targetPerPod 10, max 50, one source on sum(app_load)).
func policyYAML(name, ns, capacity, extra, sources string) string {
	if capacity == "" {
		capacity = "{targetPerPod: 10, min: 1, max: 50}"
	}
	if sources == "" {
		sources = "[{name: rps, query: 'sum(app_load)'}]"
	}
	return fmt.Sprintf(`apiVersion: kedastral.io/v1alpha1
kind: ForecastPolicy
metadata: {name: %s, namespace: %s}
spec:
  targetRef: {name: api}
  horizon: 30m
  leadTime: 5m
  interval: 1s
  capacity: %s
%s  sources: %s
`, name, ns, capacity, extra, sources)
}
