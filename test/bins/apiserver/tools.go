//go:build tools

// Package apiserver pins the kube-apiserver the Kubernetes tests run against.
// Build it with ../build.sh; nothing here is part of Kedastral.
package apiserver

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
