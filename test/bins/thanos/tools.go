//go:build tools

// Package thanos pins the Thanos (receive, query, sidecar: one binary) that
// test/stores runs as a distributed store in front of Kedastral. Build it with
// ../build.sh thanos; nothing here is part of Kedastral.
package thanos

import (
	_ "github.com/thanos-io/thanos/cmd/thanos"
)
