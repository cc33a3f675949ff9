// Command crdgen writes deploy/crds from engine/policy's Go types
// (make crds, or go generate in deploy/test).
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kedastral/kedastral/deploy/test/crdgen"
)

func main() {
	out := flag.String("out", "../crds", "Directory to write the CRD files to.")
	chart := flag.String("chart", "../helm/kedastral", "Chart directory: its crds/ get the same files and its values.schema.json the spec schemas.")
	flag.Parse()
	files, err := crdgen.Files()
	if err != nil {
		fmt.Fprintln(os.Stderr, "crdgen:", err)
		os.Exit(1)
	}
	for name, b := range files {
		for _, dir := range []string{*out, filepath.Join(*chart, "crds")} {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
				fail(err)
			}
		}
	}
	schemaFile := filepath.Join(*chart, "values.schema.json")
	cur, err := os.ReadFile(schemaFile)
	if err != nil {
		fail(err)
	}
	b, err := crdgen.ValuesSchema(cur)
	if err != nil {
		fail(err)
	}
	if err := os.WriteFile(schemaFile, b, 0o644); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "crdgen:", err)
	os.Exit(1)
}
