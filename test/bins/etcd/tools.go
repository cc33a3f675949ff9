//go:build tools

// Package etcd pins the etcd the Kubernetes tests run against.
// Build it with ../build.sh; nothing here is part of Kedastral.
package etcd

import _ "go.etcd.io/etcd/server/v3"
