package deploytest

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

const generatedHeader = "# Generated from deploy/helm/kedastral by deploy/test (make kustomize). DO NOT EDIT.\n"

// kustomizeFiles renders the chart and splits it into the kustomize base's and
// the monitoring component's files: Helm's own labels, the namespace and the
// config checksum removed (kustomize sets the namespace and hashes the
// generated ConfigMap's name instead).
func kustomizeFiles(t *testing.T) map[string][]byte {
	t.Helper()
	objs := splitYAML(t, render(t, chartCase{name: "kustomize"},
		"--set", "serviceMonitor.enabled=true,prometheusRule.enabled=true,dashboards.enabled=true"))
	// The kubernetes-source component's RBAC: what the chart adds for it.
	for _, o := range splitYAML(t, render(t, chartCase{name: "kustomize"}, "--set", "kubernetesSource.enabled=true")) {
		switch o.kind() {
		case "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding":
			// The service account's namespace is the overlay's: kustomize
			// sets it on subjects without one.
			subjects, _ := o["subjects"].([]any)
			for _, s := range subjects {
				delete(s.(map[string]any), "namespace")
			}
			objs = append(objs, o)
		}
	}
	files := map[string][]object{}
	for _, o := range objs {
		md := o["metadata"].(map[string]any)
		delete(md, "namespace")
		for _, l := range []string{"labels"} {
			labels, _ := md[l].(map[string]any)
			delete(labels, "helm.sh/chart")
			delete(labels, "app.kubernetes.io/managed-by")
			delete(labels, "app.kubernetes.io/version")
		}
		if ann, ok := o.path("spec", "template", "metadata", "annotations").(map[string]any); ok {
			delete(ann, "checksum/config")
			if len(ann) == 0 {
				delete(o.path("spec", "template", "metadata").(map[string]any), "annotations")
			}
		}
		var file string
		switch {
		case o.kind() == "CustomResourceDefinition", o.name() == "kedastral-config":
			continue // ../../crds and the configMapGenerator
		case o.kind() == "ServiceAccount":
			file = "base/serviceaccount.yaml"
		case strings.Contains(o.kind(), "Role"):
			file = "components/kubernetes-source/rbac.yaml"
		case strings.HasSuffix(o.name(), "-forecaster") && o.kind() != "ServiceMonitor":
			file = "base/forecaster.yaml"
		case strings.HasSuffix(o.name(), "-scaler") && o.kind() != "ServiceMonitor":
			file = "base/scaler.yaml"
		case o.kind() == "ServiceMonitor":
			// Its own namespace, wherever the overlay puts it.
			delete(o["spec"].(map[string]any), "namespaceSelector")
			file = "components/monitoring/servicemonitors.yaml"
		case o.kind() == "PrometheusRule":
			file = "components/monitoring/prometheusrules.yaml"
		case o.kind() == "ConfigMap" && strings.Contains(o.name(), "-dashboard-"):
			file = "components/monitoring/dashboards.yaml"
		default:
			t.Fatalf("no kustomize file for %s %s", o.kind(), o.name())
		}
		files[file] = append(files[file], o)
	}
	out := map[string][]byte{}
	for f, objs := range files {
		var b bytes.Buffer
		b.WriteString(generatedHeader)
		for i, o := range objs {
			if i > 0 {
				b.WriteString("---\n")
			}
			y, err := yaml.Marshal(o)
			if err != nil {
				t.Fatal(err)
			}
			b.Write(y)
		}
		out[f] = b.Bytes()
	}
	return out
}

// TestKustomizeBaseMatchesChart keeps the kustomize base and the monitoring
// component the same objects as the chart's.
func TestKustomizeBaseMatchesChart(t *testing.T) {
	for f, b := range kustomizeFiles(t) {
		golden(t, filepath.Join(kustomize, f), b)
	}
}

func kustomizeBuild(t *testing.T, dir string) []byte {
	t.Helper()
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), abs)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	y, err := m.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	return y
}

// kustomizeDirs are the base and every overlay.
func kustomizeDirs(t *testing.T) []string {
	t.Helper()
	overlays, _ := filepath.Glob(filepath.Join(kustomize, "overlays", "*", "kustomization.yaml"))
	if len(overlays) == 0 {
		t.Fatal("no kustomize overlays")
	}
	dirs := []string{"base"}
	for _, o := range overlays {
		rel, _ := filepath.Rel(kustomize, filepath.Dir(o))
		dirs = append(dirs, filepath.ToSlash(rel))
	}
	return dirs
}

// TestKustomize builds the base and every overlay as kustomize does,
// validates the output with kubeconform, checks that the forecaster writes
// into the store the forecaster and the scaler read, and that each overlay
// puts everything in its namespace and has the monitoring component. An
// overlay's forecaster either loads the overlay's policy file (checked with
// `kedastral check config`) or reads policies from the cluster with the
// chart's RBAC bound to its service account.
func TestKustomize(t *testing.T) {
	for _, dir := range kustomizeDirs(t) {
		t.Run(dir, func(t *testing.T) {
			out := kustomizeBuild(t, filepath.Join(kustomize, dir))
			kubeconform(t, out, "-")
			objs := splitYAML(t, out)
			var cm object
			kinds := map[string]int{}
			for _, o := range objs {
				kinds[o.kind()]++
				if o.kind() == "ConfigMap" && strings.HasPrefix(o.name(), "kedastral-config-") {
					cm = o
				}
			}
			for _, k := range []string{"CustomResourceDefinition", "Deployment", "Service", "ServiceAccount", "PodDisruptionBudget", "ConfigMap"} {
				if kinds[k] == 0 {
					t.Errorf("no %s in the build", k)
				}
			}
			if cm == nil {
				t.Fatal("no hashed ConfigMap kedastral-config-*")
			}
			fc := forecaster(t, objs)
			vols, _ := fc.path("spec", "template", "spec", "volumes").([]any)
			var ref string
			for _, v := range vols {
				cmv, _ := v.(map[string]any)["configMap"].(map[string]any)
				if name, _ := cmv["name"].(string); name != "" {
					ref = name
				}
			}
			if ref != cm.name() {
				t.Errorf("forecaster mounts ConfigMap %q, the build has %q", ref, cm.name())
			}
			checkStore(t, objs)
			if dir == "base" {
				return
			}
			var k struct {
				Namespace string `json:"namespace"`
			}
			b, err := os.ReadFile(filepath.Join(kustomize, dir, "kustomization.yaml"))
			if err == nil {
				err = yaml.Unmarshal(b, &k)
			}
			if err != nil || k.Namespace == "" {
				t.Fatalf("%s/kustomization.yaml sets no namespace (%v)", dir, err)
			}
			for _, o := range objs {
				md := o["metadata"].(map[string]any)
				if o.kind() != "CustomResourceDefinition" && o.kind() != "Namespace" && !strings.HasPrefix(o.kind(), "Cluster") && md["namespace"] != k.Namespace {
					t.Errorf("%s %s is in namespace %v, want %s", o.kind(), o.name(), md["namespace"], k.Namespace)
				}
			}
			for _, k := range []string{"ServiceMonitor", "PrometheusRule"} {
				if kinds[k] == 0 {
					t.Errorf("overlay lacks the monitoring component's %s", k)
				}
			}
			if slices.Contains(containerArgs(fc), "--policies.source=kubernetes") {
				checkKubernetesSource(t, objs)
				return
			}
			file, _ := cm.path("data", "policies.yaml").(string)
			path := filepath.Join(t.TempDir(), "policies.yaml")
			if err := os.WriteFile(path, []byte(file), 0o644); err != nil {
				t.Fatal(err)
			}
			res, err := run(".", kedastral(t), "check", "config", path)
			if err != nil || !bytes.Contains(res, []byte("SUCCESS: 1 ForecastPolicy")) {
				t.Fatalf("kedastral check config: %v\n%s", err, res)
			}
		})
	}
}

// forecaster is the forecaster's Deployment or StatefulSet of a build.
func forecaster(t *testing.T, objs []object) object {
	t.Helper()
	for _, o := range objs {
		if (o.kind() == "Deployment" || o.kind() == "StatefulSet") && strings.HasSuffix(o.name(), "-forecaster") {
			return o
		}
	}
	t.Fatal("no forecaster Deployment or StatefulSet")
	return nil
}

// checkKubernetesSource: the forecaster of a build with the kubernetes-source
// component reads the cluster (no policy file), elects a leader, has a token,
// and the chart's roles are bound to its service account in the overlay's
// namespace.
func checkKubernetesSource(t *testing.T, objs []object) {
	t.Helper()
	fc := forecaster(t, objs)
	args := containerArgs(fc)
	for _, want := range []string{"--policies.source=kubernetes", "--leader-election.enabled"} {
		if !slices.Contains(args, want) {
			t.Errorf("forecaster args %q lack %s", args, want)
		}
	}
	if slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--config.file") }) {
		t.Errorf("forecaster args %q still name a policy file", args)
	}
	if v := fc.path("spec", "template", "spec", "automountServiceAccountToken"); v != true {
		t.Errorf("automountServiceAccountToken %v, want true", v)
	}
	bound := map[string]bool{}
	for _, kind := range []string{"ClusterRoleBinding", "RoleBinding"} {
		for _, b := range find(objs, kind) {
			for _, s := range b["subjects"].([]any) {
				sub := s.(map[string]any)
				if sub["kind"] != "ServiceAccount" || sub["name"] != fc.path("spec", "template", "spec", "serviceAccountName") || sub["namespace"] != "kedastral" {
					t.Errorf("%s %s binds %v, want the forecaster's service account in kedastral", kind, b.name(), sub)
				}
			}
			bound[b.path("roleRef", "kind").(string)+"/"+b.path("roleRef", "name").(string)] = true
		}
	}
	for _, kind := range []string{"ClusterRole", "Role"} {
		for _, r := range find(objs, kind) {
			if !bound[kind+"/"+r.name()] {
				t.Errorf("%s %s is bound to nothing", kind, r.name())
			}
		}
	}
	if len(find(objs, "ClusterRole")) != 1 || len(find(objs, "Role")) != 1 {
		t.Errorf("%d ClusterRoles and %d Roles, want the policies' and the Lease's", len(find(objs, "ClusterRole")), len(find(objs, "Role")))
	}
}
