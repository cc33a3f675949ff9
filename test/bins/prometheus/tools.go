//go:build tools

// Package prometheus pins the Prometheus 3 (and its promtool) the integration
// tests and the demo run against when Debian's 2.42 is not the one asked for.
// Build it with ../build.sh prometheus; nothing here is part of Kedastral.
package prometheus

import (
	_ "github.com/prometheus/prometheus/cmd/prometheus"
	_ "github.com/prometheus/prometheus/cmd/promtool"
)
