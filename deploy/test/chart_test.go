package deploytest

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/kedastral/kedastral/engine/scaler"
	"github.com/kedastral/kedastral/test/testca"
	"github.com/kedastral/kedastral/test/testutil"
)

// chartCase is one set of values the chart is rendered with.
type chartCase struct {
	name   string
	values []string // values files, relative to the chart
}

var chartCases = []chartCase{
	{name: "default"},
	{name: "all-values", values: []string{"ci/all-values.yaml"}},
	// The install next to kube-prometheus-stack and KEDA (an absolute path:
	// TestChartNotes renders a copy of the chart elsewhere).
	{name: "kube-prometheus-stack", values: []string{absPath(filepath.Join(examplesDir, "values-kube-prometheus-stack.yaml"))}},
}

func absPath(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		panic(err)
	}
	return a
}

// render runs helm template like `helm install kedastral -n kedastral` would,
// with the CRDs from the chart's crds/ and KEDA's API available.
func render(t *testing.T, c chartCase, extra ...string) []byte {
	t.Helper()
	args := []string{"template", "kedastral", ".", "--namespace", "kedastral", "--include-crds",
		"--api-versions", "keda.sh/v1alpha1", "--api-versions", "monitoring.coreos.com/v1"}
	for _, v := range c.values {
		args = append(args, "--values", v)
	}
	out, err := run(chartDir, helm(t), append(args, extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestChartLint(t *testing.T) {
	h := helm(t)
	for _, c := range chartCases {
		t.Run(c.name, func(t *testing.T) {
			args := []string{"lint", ".", "--strict", "--namespace", "kedastral"}
			for _, v := range c.values {
				args = append(args, "--values", v)
			}
			out, err := run(chartDir, h, args...)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(out, []byte("1 chart(s) linted, 0 chart(s) failed")) {
				t.Fatalf("helm lint:\n%s", out)
			}
		})
	}
}

// TestChartTemplate renders the chart, compares it with the golden files in
// testdata/ and validates every manifest against the Kubernetes, KEDA,
// prometheus-operator and Kedastral schemas with kubeconform.
func TestChartTemplate(t *testing.T) {
	for _, c := range chartCases {
		t.Run(c.name, func(t *testing.T) {
			out := render(t, c)
			golden(t, filepath.Join("testdata", "chart-"+c.name+".yaml"), out)
			kubeconform(t, out, "-")
		})
	}
}

func renderObjects(t *testing.T, c chartCase) []object {
	t.Helper()
	return splitYAML(t, render(t, c))
}

func find(objs []object, kind string) []object {
	var out []object
	for _, o := range objs {
		if o.kind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// TestChartPoliciesLoad extracts the policy file from the rendered ConfigMap
// and checks it with `kedastral check config` (the forecaster's loader), and
// each object in it against the CRDs.
func TestChartPoliciesLoad(t *testing.T) {
	bin := kedastral(t)
	crds := loadCRDs(t)
	for _, c := range chartCases {
		t.Run(c.name, func(t *testing.T) {
			objs := renderObjects(t, c)
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
			out, err := run(".", bin, "check", "config", path)
			if err != nil {
				t.Fatalf("kedastral check config: %v", err)
			}
			if !bytes.Contains(out, []byte("SUCCESS")) {
				t.Fatalf("kedastral check config:\n%s", out)
			}
			t.Logf("%s", bytes.TrimSpace(out))
			n := 0
			for _, o := range splitYAML(t, []byte(file)) {
				n++
				if err := validateCR(crds, o); err != nil {
					t.Errorf("%s %s: CRD schema: %v", o.kind(), o.name(), err)
				}
			}
			if c.name == "all-values" && n != 4 {
				t.Errorf("want 4 objects in the policy file, got %d", n)
			}
			// The forecaster mounts exactly this ConfigMap at the --config.file path.
			for _, d := range find(objs, "Deployment") {
				if d.name() != "kedastral-forecaster" {
					continue
				}
				args := containerArgs(d)
				if !slices.Contains(args, "--config.file=/etc/kedastral/config/policies.yaml") {
					t.Errorf("forecaster args %v lack --config.file", args)
				}
			}
		})
	}
}

func containers(d object) []map[string]any {
	var out []map[string]any
	l, _ := d.path("spec", "template", "spec", "containers").([]any)
	for _, c := range l {
		out = append(out, c.(map[string]any))
	}
	return out
}

func containerArgs(d object) []string {
	var args []string
	for _, c := range containers(d) {
		l, _ := c["args"].([]any)
		for _, a := range l {
			args = append(args, a.(string))
		}
	}
	return args
}

// TestChartWorkloads checks what every install must have: both components,
// probes on /-/healthy and /-/ready, a restricted security context, resources,
// the scaler's PodDisruptionBudget, kube-prometheus-stack as the default
// Prometheus.
func TestChartWorkloads(t *testing.T) {
	for _, c := range chartCases {
		t.Run(c.name, func(t *testing.T) {
			objs := renderObjects(t, c)
			deps := find(objs, "Deployment")
			names := map[string]object{}
			for _, d := range deps {
				names[d.name()] = d
			}
			for _, want := range []string{"kedastral-forecaster", "kedastral-scaler"} {
				if names[want] == nil {
					t.Errorf("no Deployment %s", want)
				}
			}
			for _, d := range deps {
				if d.path("spec", "template", "spec", "securityContext", "runAsNonRoot") != true {
					t.Errorf("%s: pod securityContext.runAsNonRoot is not true", d.name())
				}
				for _, ctr := range containers(d) {
					sc, _ := ctr["securityContext"].(map[string]any)
					if sc["readOnlyRootFilesystem"] != true || sc["allowPrivilegeEscalation"] != false {
						t.Errorf("%s: container securityContext %v", d.name(), sc)
					}
					for probe, path := range map[string]string{"livenessProbe": "/-/healthy", "readinessProbe": "/-/ready"} {
						p, _ := ctr[probe].(map[string]any)
						hg, _ := p["httpGet"].(map[string]any)
						if hg["path"] != path {
							t.Errorf("%s: %s is %v, want httpGet %s", d.name(), probe, p, path)
						}
					}
					if res, _ := ctr["resources"].(map[string]any); res["requests"] == nil {
						t.Errorf("%s: no resource requests", d.name())
					}
				}
			}
			var pdb bool
			for _, p := range find(objs, "PodDisruptionBudget") {
				pdb = pdb || p.name() == "kedastral-scaler"
			}
			if !pdb {
				t.Error("no PodDisruptionBudget for the scaler")
			}
			checkStore(t, objs)
			if c.name == "default" {
				args := containerArgs(names["kedastral-forecaster"])
				if !slices.Contains(args, "--prometheus.url=http://kube-prometheus-stack-prometheus.monitoring:9090") {
					t.Errorf("forecaster args %v: default Prometheus is not kube-prometheus-stack's", args)
				}
				for _, kind := range []string{"ServiceMonitor", "PrometheusRule"} {
					if len(find(objs, kind)) > 0 {
						t.Errorf("default values render a %s; it needs prometheus-operator's CRDs and must be opt-in", kind)
					}
				}
			}
			if c.name == "all-values" {
				args := containerArgs(names["kedastral-scaler"])
				for _, want := range []string{
					"--grpc.tls.cert-file=/etc/kedastral/tls/tls.crt",
					"--grpc.tls.key-file=/etc/kedastral/tls/tls.key",
					"--grpc.tls.client-ca-file=/etc/kedastral/client-ca/ca.crt",
					"--prometheus.http-config-file=/etc/kedastral/config/scaler-http-config.yaml",
				} {
					if !slices.Contains(args, want) {
						t.Errorf("scaler args %v lack %s", args, want)
					}
				}
				if got := len(find(objs, "ServiceMonitor")); got != 2 {
					t.Errorf("want 2 ServiceMonitors, got %d", got)
				}
			}
		})
	}
}

// TestChartMixin checks that the chart ships the mixin's generated output
// unchanged: files/ is a copy of mixins/kedastral/out (make chart), the
// PrometheusRules hold its groups and the dashboards are ConfigMaps with the
// grafana_dashboard label.
func TestChartMixin(t *testing.T) {
	outs, _ := filepath.Glob(filepath.Join(mixinOut, "*"))
	if len(outs) == 0 {
		t.Fatalf("nothing in %s", mixinOut)
	}
	copies := map[string]string{}
	for _, f := range outs {
		dst := filepath.Join(chartDir, "files", filepath.Base(f))
		if strings.HasSuffix(f, ".json") {
			dst = filepath.Join(chartDir, "files", "dashboards", filepath.Base(f))
		}
		copies[f] = dst
		want, _ := os.ReadFile(f)
		got, err := os.ReadFile(dst)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s is not a copy of %s; run make chart", dst, f)
		}
	}
	for _, dir := range []string{filepath.Join(chartDir, "files"), filepath.Join(chartDir, "files", "dashboards")} {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if e.IsDir() {
				continue
			}
			if _, err := os.Stat(filepath.Join(mixinOut, e.Name())); err != nil {
				t.Errorf("%s/%s is not in %s; run make chart", dir, e.Name(), mixinOut)
			}
		}
	}

	objs := renderObjects(t, chartCases[1])
	rules := map[string]object{}
	for _, r := range find(objs, "PrometheusRule") {
		rules[r.name()] = r
	}
	for _, f := range []string{"rules", "alerts"} {
		r := rules["kedastral-"+f]
		if r == nil {
			t.Errorf("no PrometheusRule kedastral-%s", f)
			continue
		}
		data, err := os.ReadFile(filepath.Join(mixinOut, "kedastral-"+f+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		var want map[string]any
		if err := yaml.Unmarshal(data, &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(map[string]any(r["spec"].(map[string]any)), want) {
			t.Errorf("PrometheusRule kedastral-%s's spec is not mixins/kedastral/out/kedastral-%s.yaml", f, f)
		}
	}

	dashboards := 0
	for _, cm := range find(objs, "ConfigMap") {
		labels, _ := cm.path("metadata", "labels").(map[string]any)
		if labels["grafana_dashboard"] == nil {
			continue
		}
		dashboards++
		if labels["grafana_dashboard"] != "1" {
			t.Errorf("%s: grafana_dashboard label is %v, want \"1\"", cm.name(), labels["grafana_dashboard"])
		}
		data, _ := cm["data"].(map[string]any)
		for key, v := range data {
			want, err := os.ReadFile(filepath.Join(mixinOut, key))
			if err != nil {
				t.Errorf("%s: key %s is not a mixin dashboard", cm.name(), key)
				continue
			}
			var got, exp any
			if err := json.Unmarshal([]byte(v.(string)), &got); err != nil {
				t.Errorf("%s: %s is not JSON: %v", cm.name(), key, err)
			}
			_ = json.Unmarshal(want, &exp)
			if !reflect.DeepEqual(got, exp) {
				t.Errorf("%s: %s differs from the mixin's", cm.name(), key)
			}
		}
	}
	var jsonFiles int
	for f := range copies {
		if strings.HasSuffix(f, ".json") {
			jsonFiles++
		}
	}
	if dashboards != jsonFiles {
		t.Errorf("want %d dashboard ConfigMaps, got %d", jsonFiles, dashboards)
	}
}

// TestValuesSchemaRejects checks that values.schema.json turns bad values into
// an install-time error that says what is wrong.
func TestValuesSchemaRejects(t *testing.T) {
	h := helm(t)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown top-level key", []string{"--set", "promethus.url=http://x:9090"}, "promethus"},
		{"bad prometheus url", []string{"--set", "prometheus.url=prometheus:9090"}, "prometheus/url"},
		{"two forecasters", []string{"--set", "forecaster.replicas=2"}, "forecaster/replicas"},
		{"no shard", []string{"--set", "forecaster.shards=0"}, "forecaster/shards"},
		{"bad log level", []string{"--set", "log.level=verbose"}, "log/level"},
		{"bad remote-write protocol", []string{"--set-string", "remoteWrite.protocol=3.0"}, "remoteWrite/protocol"},
		{"tls without secret", []string{"--set", "scaler.tls.enabled=true"}, "secretName"},
		{"web tls without secret", []string{"--set", "webTLS.enabled=true"}, "webTLS.enabled needs webTLS.secretName"},
		{"web tls misspelled", []string{"--set", "webTLS.secret=x"}, "webTLS"},
		{"port out of range", []string{"--set", "scaler.grpcPort=70000"}, "scaler/grpcPort"},
		{"policy without spec", []string{"--set", "policies[0].name=x"}, "spec"},
		{"policy with misspelled field", []string{"--values", "-"}, "metrc"},
		{"policy with bad duration", []string{"--values", "-"}, "horizon"},
		{"datasource with unknown http client field", []string{"--values", "-"}, "follow_redirect"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"template", "kedastral", ".", "--namespace", "kedastral"}, tc.args...)
			cmd := command(chartDir, h, args...)
			switch tc.name {
			case "policy with misspelled field":
				cmd.Stdin = strings.NewReader(policyValues(strings.Replace(minimalSpec, "metric:", "metrc:", 1)))
			case "policy with bad duration":
				cmd.Stdin = strings.NewReader(policyValues(strings.Replace(minimalSpec, "horizon: 30m", "horizon: 30 minutes", 1)))
			case "datasource with unknown http client field":
				cmd.Stdin = strings.NewReader("dataSources:\n  - name: p\n    spec:\n      url: http://p:9090\n      follow_redirect: true\n")
			}
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("helm template accepted the values")
			}
			if !bytes.Contains(out, []byte(tc.want)) {
				t.Errorf("error does not mention %q:\n%s", tc.want, out)
			}
		})
	}
	// The minimal policy itself is accepted, so the cases above fail for their change only.
	cmd := command(chartDir, h, "template", "kedastral", ".", "--values", "-")
	cmd.Stdin = strings.NewReader(policyValues(minimalSpec))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("minimal policy rejected: %v\n%s", err, out)
	}
}

const minimalSpec = `targetRef: {name: web}
metric: http_rps
horizon: 30m
leadTime: 5m
capacity: {targetPerPod: 100, max: 10}
sources: [{name: rps, query: 'sum(rate(http_requests_total[1m]))'}]
`

func policyValues(spec string) string {
	var b strings.Builder
	b.WriteString("policies:\n  - name: web\n    spec:\n")
	for _, l := range strings.Split(strings.TrimSpace(spec), "\n") {
		b.WriteString("      " + l + "\n")
	}
	return b.String()
}

// TestChartFlagsExist checks every flag the chart passes to a component
// against that subcommand's --help, so a renamed flag fails here rather than
// in a crash-looping pod.
func TestChartFlagsExist(t *testing.T) {
	bin := kedastral(t)
	help := map[string]string{}
	for _, c := range chartCases {
		for _, d := range find(renderObjects(t, c), "Deployment") {
			args := containerArgs(d)
			if len(args) == 0 {
				t.Fatalf("%s: no args", d.name())
			}
			sub := args[0]
			if _, ok := help[sub]; !ok {
				out, err := run(".", bin, sub, "--help")
				if err != nil {
					t.Fatalf("kedastral %s --help: %v", sub, err)
				}
				help[sub] = string(out)
			}
			for _, a := range args[1:] {
				name, _, _ := strings.Cut(a, "=")
				if !strings.HasPrefix(name, "--") {
					t.Errorf("%s: argument %q is not a flag", d.name(), a)
					continue
				}
				if !strings.Contains(help[sub], name+"=") && !strings.Contains(help[sub], name+" ") && !strings.Contains(help[sub], "--[no-]"+name[2:]) {
					t.Errorf("%s (%s): kedastral %s has no flag %s", d.name(), c.name, sub, name)
				}
			}
		}
	}
	if len(help) != 2 {
		t.Errorf("want the forecaster and scaler subcommands, got %d", len(help))
	}
}

// TestChartNotes renders NOTES.txt (helm template skips it, so through a copy
// of the chart that includes it in a ConfigMap) and checks that the
// ScaledObject it shows is valid and its trigger metadata parses.
func TestChartNotes(t *testing.T) {
	h := helm(t)
	dir := filepath.Join(t.TempDir(), "kedastral")
	if out, err := run(".", "cp", "-r", chartDir, dir); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	notes, err := os.ReadFile(filepath.Join(dir, "templates", "NOTES.txt"))
	if err != nil {
		t.Fatal(err)
	}
	tpl := "{{- define \"test.notes\" -}}\n" + string(notes) + "\n{{- end -}}\n"
	cm := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n  notes: {{ include \"test.notes\" . | quote }}\n"
	if err := os.WriteFile(filepath.Join(dir, "templates", "_test_notes.tpl"), []byte(tpl), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "templates", "test-notes.yaml"), []byte(cm), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range chartCases {
		t.Run(c.name, func(t *testing.T) {
			args := []string{"template", "kedastral", ".", "--namespace", "kedastral", "--show-only", "templates/test-notes.yaml"}
			for _, v := range c.values {
				args = append(args, "--values", v)
			}
			out, err := run(dir, h, args...)
			if err != nil {
				t.Fatal(err)
			}
			objs := splitYAML(t, out)
			text, _ := objs[0].path("data", "notes").(string)
			start := strings.Index(text, "apiVersion: keda.sh/v1alpha1")
			if start < 0 {
				t.Fatalf("NOTES show no ScaledObject:\n%s", text)
			}
			so := text[start:]
			if end := strings.Index(so, "\n\n"); end > 0 {
				so = so[:end+1]
			}
			kubeconform(t, []byte(so), "-")
			for _, o := range splitYAML(t, []byte(so)) {
				for _, tr := range o.path("spec", "triggers").([]any) {
					meta := map[string]string{}
					for k, v := range tr.(map[string]any)["metadata"].(map[string]any) {
						meta[k], _ = v.(string)
					}
					if _, err := scaler.ParseMetadata(meta); err != nil {
						t.Errorf("NOTES' trigger metadata: %v", err)
					}
					if !strings.HasPrefix(meta["scalerAddress"], "kedastral-scaler.kedastral.svc.cluster.local:") {
						t.Errorf("NOTES' scalerAddress %q is not the scaler Service", meta["scalerAddress"])
					}
				}
			}
		})
	}
}

// TestChartShards renders forecaster.shards=3: a StatefulSet of 3
// forecasters (no Deployment) that start together, each with
// --shard.count=3 and its index from its pod ordinal, under the forecaster
// Service; the manifests validate and the flags exist.
func TestChartShards(t *testing.T) {
	out := render(t, chartCase{name: "shards"}, "--set", "forecaster.shards=3")
	kubeconform(t, out, "-")
	objs := splitYAML(t, out)
	for _, d := range find(objs, "Deployment") {
		if d.name() == "kedastral-forecaster" {
			t.Error("a forecaster Deployment next to the StatefulSet")
		}
	}
	sts := find(objs, "StatefulSet")
	if len(sts) != 1 || sts[0].name() != "kedastral-forecaster" {
		t.Fatalf("want one StatefulSet kedastral-forecaster, got %d", len(sts))
	}
	s := sts[0]
	if r, _ := s.path("spec", "replicas").(float64); r != 3 {
		t.Errorf("replicas %v, want 3", s.path("spec", "replicas"))
	}
	if p := s.path("spec", "podManagementPolicy"); p != "Parallel" {
		t.Errorf("podManagementPolicy %v, want Parallel", p)
	}
	var svc bool
	for _, o := range find(objs, "Service") {
		svc = svc || o.name() == s.path("spec", "serviceName")
	}
	if !svc {
		t.Errorf("serviceName %v names no Service of the chart", s.path("spec", "serviceName"))
	}
	args := containerArgs(s)
	for _, want := range []string{"--shard.count=3", "--shard.index-from-hostname"} {
		if !slices.Contains(args, want) {
			t.Errorf("forecaster args %v lack %s", args, want)
		}
	}
	help, err := run(".", kedastral(t), "forecaster", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range args[1:] {
		name, _, _ := strings.Cut(a, "=")
		if !bytes.Contains(help, []byte(name)) {
			t.Errorf("kedastral forecaster has no flag %s", name)
		}
	}
	// One shard is the Deployment, without shard flags.
	one := splitYAML(t, render(t, chartCase{name: "one shard"}, "--set", "forecaster.shards=1"))
	if len(find(one, "StatefulSet")) != 0 {
		t.Error("forecaster.shards=1 renders a StatefulSet")
	}
	for _, d := range find(one, "Deployment") {
		for _, a := range containerArgs(d) {
			if strings.HasPrefix(a, "--shard.") {
				t.Errorf("%s: %s with one shard", d.name(), a)
			}
		}
	}
	// Shards with the Kubernetes source: every shard runs its part, none
	// waits for a Lease (the forecaster refuses both flags together).
	kube := splitYAML(t, render(t, chartCase{name: "kubernetes shards"}, "--set", "forecaster.shards=2", "--set", "kubernetesSource.enabled=true"))
	ksts := find(kube, "StatefulSet")
	if len(ksts) != 1 {
		t.Fatalf("want one StatefulSet with kubernetesSource and shards, got %d", len(ksts))
	}
	kargs := containerArgs(ksts[0])
	if !slices.Contains(kargs, "--policies.source=kubernetes") {
		t.Errorf("forecaster args %v lack --policies.source=kubernetes", kargs)
	}
	for _, a := range kargs {
		if strings.HasPrefix(a, "--leader-election.") {
			t.Errorf("sharded forecaster with %s: it refuses leader election with --shard.count > 1", a)
		}
	}
}

// TestChartWebTLS: with webTLS, both components get --web.config.file from
// the ConfigMap and the certificate Secret mounted where that file says,
// their probes use HTTPS and the ServiceMonitors scrape with https and the
// tlsConfig given; the rendered web configuration, with the mount replaced by
// a real certificate, makes the scaler answer its readiness path over TLS.
// Without webTLS none of it is rendered.
func TestChartWebTLS(t *testing.T) {
	objs := renderObjects(t, chartCases[1])
	var webCfg string
	for _, o := range find(objs, "ConfigMap") {
		if o.name() == "kedastral-config" {
			webCfg, _ = o.path("data", "web-config.yaml").(string)
		}
	}
	if !strings.Contains(webCfg, "cert_file: /etc/kedastral/web-tls/tls.crt") {
		t.Fatalf("web-config.yaml: %q", webCfg)
	}
	for _, d := range find(objs, "Deployment") {
		if !slices.Contains(containerArgs(d), "--web.config.file=/etc/kedastral/web/web-config.yaml") {
			t.Errorf("%s: args %v lack --web.config.file", d.name(), containerArgs(d))
		}
		ctr := containers(d)[0]
		for _, probe := range []string{"livenessProbe", "readinessProbe"} {
			p, _ := ctr[probe].(map[string]any)
			if hg, _ := p["httpGet"].(map[string]any); hg["scheme"] != "HTTPS" {
				t.Errorf("%s: %s %v is not HTTPS", d.name(), probe, p)
			}
		}
		mounts := map[string]string{}
		for _, m := range ctr["volumeMounts"].([]any) {
			mm := m.(map[string]any)
			mounts[mm["name"].(string)] = mm["mountPath"].(string)
		}
		if mounts["web-config"] != "/etc/kedastral/web" || mounts["web-tls"] != "/etc/kedastral/web-tls" {
			t.Errorf("%s: mounts %v", d.name(), mounts)
		}
	}
	for _, sm := range find(objs, "ServiceMonitor") {
		ep := sm.path("spec", "endpoints").([]any)[0].(map[string]any)
		if ep["scheme"] != "https" || ep["tlsConfig"] == nil {
			t.Errorf("%s: endpoint %v", sm.name(), ep)
		}
	}
	for _, d := range find(renderObjects(t, chartCases[0]), "Deployment") {
		for _, a := range containerArgs(d) {
			if strings.HasPrefix(a, "--web.config.file") {
				t.Errorf("default values: %s has %s", d.name(), a)
			}
		}
	}

	// The rendered file, pointed at a real certificate.
	_, certFile, _, ca := testca.ServerFiles(t)
	cfg := filepath.Join(t.TempDir(), "web-config.yaml")
	if err := os.WriteFile(cfg, []byte(strings.ReplaceAll(webCfg, "/etc/kedastral/web-tls/", filepath.Dir(certFile)+"/")), 0o600); err != nil {
		t.Fatal(err)
	}
	web := testutil.FreeAddr(t)
	p := testutil.Start(t, testutil.ProcOptions{}, kedastral(t), "scaler", "--prometheus.url=http://127.0.0.1:1",
		"--grpc.listen-address="+testutil.FreeAddr(t), "--web.listen-address="+web, "--web.config.file="+cfg)
	defer p.Stop()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	testutil.Eventually(t, 30*time.Second, "the scaler's /-/healthy over TLS", func() (string, bool) {
		resp, err := client.Get("https://" + web + "/-/healthy")
		if err != nil {
			return err.Error(), false
		}
		resp.Body.Close()
		return resp.Status, resp.StatusCode == http.StatusOK
	})
}
