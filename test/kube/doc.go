// Package kube holds the tests that run Kedastral against a real Kubernetes
// API server: etcd and kube-apiserver (built by bins/build.sh, cached by
// version) on loopback with the CRDs of deploy/crds, a real Prometheus, the
// kedastral binary in --policies.source=kubernetes mode, and helm.
//
// Without the binaries the tests fail, naming what is missing; make setup
// (test/setup.sh) builds them.
package kube
