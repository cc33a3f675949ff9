package deploytest

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestValuesKubePrometheusStack checks what the example values promise on
// top of the chart tests that render, lint, validate and load the policies of
// every chart case (this one included): one policy, which a ScaledObject
// example asks for, loaded by `kedastral check config`; ServiceMonitors and
// PrometheusRules with the release label kube-prometheus-stack selects; the
// mixin's dashboards in Grafana's namespace with the sidecar's label; the
// forecaster writing into the Prometheus it and the scaler read; the image
// `make image` builds.
func TestValuesKubePrometheusStack(t *testing.T) {
	c := chartCases[slices.IndexFunc(chartCases, func(c chartCase) bool { return c.name == "kube-prometheus-stack" })]
	objs := renderObjects(t, c)
	for _, kind := range []string{"ServiceMonitor", "PrometheusRule"} {
		got := find(objs, kind)
		if len(got) == 0 {
			t.Errorf("no %s", kind)
		}
		for _, o := range got {
			if o.path("metadata", "labels", "release") != "kube-prometheus-stack" {
				t.Errorf("%s %s: labels %v lack release: kube-prometheus-stack", kind, o.name(), o.path("metadata", "labels"))
			}
		}
	}
	dashboards := 0
	for _, o := range find(objs, "ConfigMap") {
		if o.path("metadata", "labels", "grafana_dashboard") == nil {
			continue
		}
		dashboards++
		if o.path("metadata", "labels", "grafana_dashboard") != "1" || o.path("metadata", "namespace") != "monitoring" {
			t.Errorf("dashboard ConfigMap %s: labels %v in namespace %v, want grafana_dashboard: \"1\" in monitoring", o.name(), o.path("metadata", "labels"), o.path("metadata", "namespace"))
		}
	}
	if dashboards < 2 {
		t.Errorf("%d dashboard ConfigMaps, want the mixin's (at least 2)", dashboards)
	}
	checkStore(t, objs)
	fc := forecaster(t, objs)
	if v, _ := flagValue(containerArgs(fc), "--prometheus.url"); v != "http://kube-prometheus-stack-prometheus.monitoring:9090" {
		t.Errorf("forecaster reads %q, want kube-prometheus-stack's Prometheus", v)
	}
	for _, ctr := range containers(fc) {
		if ctr["image"] != "ghcr.io/kedastral/kedastral:"+readVersion(t) {
			t.Errorf("image %v is not the one make image builds", ctr["image"])
		}
	}

	var cm object
	for _, o := range find(objs, "ConfigMap") {
		if o.name() == "kedastral-config" {
			cm = o
		}
	}
	if cm == nil {
		t.Fatal("no ConfigMap kedastral-config")
	}
	file, _ := cm.path("data", "policies.yaml").(string)
	path := filepath.Join(t.TempDir(), "policies.yaml")
	if err := os.WriteFile(path, []byte(file), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := run(".", kedastral(t), "check", "config", path)
	if err != nil || !bytes.Contains(out, []byte("SUCCESS: 1 ForecastPolicy")) {
		t.Fatalf("kedastral check config on the rendered policies: %v\n%s", err, out)
	}
	policies := splitYAML(t, []byte(file))
	asked := false
	files, _ := filepath.Glob(filepath.Join(examplesDir, "scaledobject-*.yaml"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		asked = asked || bytes.Contains(b, []byte("policy: "+policies[0].name()+"\n"))
	}
	if !asked {
		t.Errorf("no ScaledObject example asks for policy %q", policies[0].name())
	}
}
