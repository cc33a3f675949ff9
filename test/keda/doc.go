// Package keda holds the conformance test of the Kedastral scaler with KEDA's
// own external scaler client (github.com/kedacore/keda/v2/pkg/scalers), driven
// the way the KEDA operator drives it for external and external-push triggers.
package keda
