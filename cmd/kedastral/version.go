package main

import (
	"fmt"
	"runtime/debug"

	"github.com/prometheus/common/version"
)

// VersionCmd prints the version.
type VersionCmd struct{}

// Run prints version information in Prometheus' format.
func (VersionCmd) Run() error {
	fmt.Println(version.Print("kedastral"))
	return nil
}

func init() { fillVersion(debug.ReadBuildInfo) }

// fillVersion sets prometheus/common/version's Version, which only the
// Makefile's ldflags set, when a build did not (go build, go run, go
// install): the module's version, else "devel". The revision needs no help:
// the version package reads the one Go stamps into the binary.
func fillVersion(read func() (*debug.BuildInfo, bool)) {
	if version.Version != "" {
		return
	}
	version.Version = "devel"
	if bi, ok := read(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		version.Version = bi.Main.Version
	}
}

// versionLine is the version as the status pages show it.
func versionLine() string {
	return version.Version + ", revision " + version.GetRevision()
}
