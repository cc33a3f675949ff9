// Command kubeschemas writes the JSON schemas kubeconform needs to validate
// Kedastral's manifests offline: Kubernetes' kinds from k8s.io/kubernetes'
// swagger.json, KEDA's and prometheus-operator's CRDs from their modules and
// Kedastral's own CRDs. Use them with
//
//	kubeconform -strict -schema-location "$DIR/{{ .Group }}/{{ .ResourceAPIVersion }}/{{ .ResourceKind }}.json" FILE...
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kedastral/kedastral/deploy/test/kubeschema"
)

func main() {
	out := flag.String("out", "", "Directory to write the schemas to (required).")
	crds := flag.String("crds", "../crds", "Directory of Kedastral's CRDs.")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "kubeschemas: -out is required")
		os.Exit(2)
	}
	files, _ := filepath.Glob(filepath.Join(*crds, "kedastral.io_*.yaml"))
	if err := kubeschema.Build(*out, files...); err != nil {
		fmt.Fprintln(os.Stderr, "kubeschemas:", err)
		os.Exit(1)
	}
	fmt.Printf("schemas written to %s; kubeconform -schema-location '%s/%s'\n", *out, *out, kubeschema.Template)
}
