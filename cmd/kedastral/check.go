package main

import (
	"fmt"
	"strings"

	"github.com/kedastral/kedastral/engine/policy"
)

// CheckCmd groups the checks.
type CheckCmd struct {
	Config CheckConfigCmd `cmd:"" help:"Check policy files: decode strictly, validate, parse every PromQL expression."`
}

// CheckConfigCmd is `kedastral check config FILE...`.
type CheckConfigCmd struct {
	Files    []string `arg:"" name:"file" help:"Policy files (YAML streams of ForecastPolicy and DataSource objects)." type:"path"`
	Together bool     `name:"together" help:"Check the files as one set, as the objects of a namespace in the Kubernetes API are: a policy may use a DataSource of another file, and names must be unique across the files. Without it each file is checked on its own, as --config.file loads one."`
}

// Run checks each file on its own, or all of them as one set, and reports
// like promtool does.
func (c *CheckConfigCmd) Run() error {
	failed := 0
	load := func(f string) (*policy.Set, []error) { return policy.LoadFile(f) }
	files := c.Files
	if c.Together {
		load = func(string) (*policy.Set, []error) { return policy.LoadFiles(c.Files...) }
		files = []string{strings.Join(c.Files, ", ")}
	}
	for _, f := range files {
		fmt.Printf("Checking %s\n", f)
		set, errs := load(f)
		if len(errs) > 0 {
			failed++
			fmt.Printf("  FAILED: %d error(s):\n", len(errs))
			for _, err := range errs {
				fmt.Printf("    %s\n", err)
			}
			if set != nil && len(set.Policies)+len(set.DataSources) > 0 {
				fmt.Printf("  valid: %d ForecastPolicy, %d DataSource\n", len(set.Policies), len(set.DataSources))
			}
			fmt.Println()
			continue
		}
		if len(set.Policies)+len(set.DataSources) == 0 {
			// An empty file is most likely the wrong file, or a template
			// that rendered nothing: a forecaster given it runs nothing.
			failed++
			fmt.Printf("  FAILED: no ForecastPolicy or DataSource objects in %s\n\n", f)
			continue
		}
		fmt.Printf("  SUCCESS: %d ForecastPolicy, %d DataSource found\n\n", len(set.Policies), len(set.DataSources))
	}
	if failed > 0 && c.Together {
		return exitError{code: 1, msg: fmt.Sprintf("the %d file(s) failed the check together", len(c.Files))}
	}
	if failed > 0 {
		return exitError{code: 1, msg: fmt.Sprintf("%d of %d file(s) failed the check", failed, len(c.Files))}
	}
	return nil
}
