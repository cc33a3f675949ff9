package main

import (
	"fmt"

	"github.com/kedastral/kedastral/engine/policy"
)

// CheckCmd groups the checks.
type CheckCmd struct {
	Config CheckConfigCmd `cmd:"" help:"Check policy files: decode strictly, validate, parse every PromQL expression."`
}

// CheckConfigCmd is `kedastral check config FILE...`.
type CheckConfigCmd struct {
	Files []string `arg:"" name:"file" help:"Policy files (YAML streams of ForecastPolicy and DataSource objects)." type:"path"`
}

// Run checks each file on its own and reports like promtool does.
func (c *CheckConfigCmd) Run() error {
	failed := 0
	for _, f := range c.Files {
		fmt.Printf("Checking %s\n", f)
		set, errs := policy.LoadFile(f)
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
		fmt.Printf("  SUCCESS: %d ForecastPolicy, %d DataSource found\n\n", len(set.Policies), len(set.DataSources))
	}
	if failed > 0 {
		return exitError{code: 1, msg: fmt.Sprintf("%d of %d file(s) failed the check", failed, len(c.Files))}
	}
	return nil
}
