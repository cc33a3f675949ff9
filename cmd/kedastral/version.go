package main

import (
	"fmt"

	"github.com/prometheus/common/version"
)

// VersionCmd prints the version.
type VersionCmd struct{}

// Run prints version information in Prometheus' format.
func (VersionCmd) Run() error {
	fmt.Println(version.Print("kedastral"))
	return nil
}
