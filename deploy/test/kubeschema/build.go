package kubeschema

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Pinned sources of the schemas.
const (
	KubernetesModule         = "k8s.io/kubernetes@v1.36.3"
	KEDAModule               = "github.com/kedacore/keda/v2@v2.21.0"
	PrometheusOperatorModule = "github.com/prometheus-operator/prometheus-operator@v0.85.0"
)

// ModuleDir downloads a module through the Go module proxy (or finds it in the
// module cache) and returns its directory.
func ModuleDir(modVersion string) (string, error) {
	cmd := exec.Command("go", "mod", "download", "-json", modVersion)
	cmd.Dir = os.TempDir() // outside any module, so no go.mod is consulted or changed
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	out, err := cmd.Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			err = fmt.Errorf("%w: %s%s", err, ee.Stderr, out)
		}
		return "", fmt.Errorf("go mod download %s: %w", modVersion, err)
	}
	var m struct{ Dir, Error string }
	if err := json.Unmarshal(out, &m); err != nil {
		return "", fmt.Errorf("go mod download %s: %w", modVersion, err)
	}
	if m.Error != "" || m.Dir == "" {
		return "", fmt.Errorf("go mod download %s: %s", modVersion, m.Error)
	}
	return m.Dir, nil
}

// Build writes into dir the schemas of Kubernetes' built-in kinds, KEDA's
// ScaledObject, ScaledJob and TriggerAuthentication, prometheus-operator's
// ServiceMonitor and PrometheusRule, and the CRDs in crdFiles.
func Build(dir string, crdFiles ...string) error {
	k8s, err := ModuleDir(KubernetesModule)
	if err != nil {
		return err
	}
	f, err := os.Open(filepath.Join(k8s, "api", "openapi-spec", "swagger.json"))
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := FromSwagger(dir, f)
	if err != nil {
		return err
	}
	if n < 100 {
		return fmt.Errorf("only %d kinds in %s's swagger.json", n, KubernetesModule)
	}
	keda, err := ModuleDir(KEDAModule)
	if err != nil {
		return err
	}
	po, err := ModuleDir(PrometheusOperatorModule)
	if err != nil {
		return err
	}
	files := []string{
		filepath.Join(keda, "config", "crd", "bases", "keda.sh_scaledobjects.yaml"),
		filepath.Join(keda, "config", "crd", "bases", "keda.sh_scaledjobs.yaml"),
		filepath.Join(keda, "config", "crd", "bases", "keda.sh_triggerauthentications.yaml"),
		filepath.Join(keda, "config", "crd", "bases", "keda.sh_clustertriggerauthentications.yaml"),
		filepath.Join(po, "example", "prometheus-operator-crd", "monitoring.coreos.com_servicemonitors.yaml"),
		filepath.Join(po, "example", "prometheus-operator-crd", "monitoring.coreos.com_prometheusrules.yaml"),
		filepath.Join(po, "example", "prometheus-operator-crd", "monitoring.coreos.com_podmonitors.yaml"),
	}
	for _, file := range append(files, crdFiles...) {
		data, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		n, err := FromCRDs(dir, data)
		if err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		if n == 0 {
			return fmt.Errorf("%s: no CustomResourceDefinition", file)
		}
	}
	return nil
}
