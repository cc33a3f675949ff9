//go:build tools

// Package apiserver pins the kube-apiserver the Kubernetes tests run against,
// and the kube-controller-manager of the same version the live-loop tests
// (test/live) run beside it for the HorizontalPodAutoscaler and Deployment
// controllers. Build them with ../build.sh; nothing here is part of Kedastral.
package apiserver

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
)
