//go:build tools

// Package keda pins the KEDA operator and metrics API server (adapter) the
// live-loop tests (test/live) run against. Build them with ../build.sh keda;
// nothing here is part of Kedastral.
package keda

import (
	_ "github.com/kedacore/keda/v2/cmd/adapter"
	_ "github.com/kedacore/keda/v2/cmd/operator"
)
