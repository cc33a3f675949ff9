//go:build livewip

// Package live closes the loop with the real components: etcd,
// kube-apiserver and kube-controller-manager (its Deployment, ReplicaSet,
// HorizontalPodAutoscaler and garbage-collector controllers), KEDA's operator
// and metrics API server (reached by the API server through the aggregation
// layer), a real Prometheus holding days of a real trace that a live feed
// continues in real time, and Kedastral's forecaster and scaler. KEDA and the
// HPA scale Deployments from Kedastral's answers; the tests assert what they
// do, with real time (no clock tricks), and replay what the real HPA did
// through the backtest's simulated one.
//
// Everything runs inside a network namespace the test binary creates for
// itself (it re-executes itself under `unshare --net`, as root), with only
// lo up and a 10.x address on it, so every connection stays inside it. The
// binaries come from test/bins/build.sh (targets kube and keda) and
// Debian's prometheus; a missing one fails the test, naming the command that
// builds or installs it.
//
// WORK IN PROGRESS (issue #17): behind the livewip build tag until it has
// run end to end; run with `go test -tags livewip ./test/live` once
// test/bins/build.sh kube and keda have built their binaries.
package live
