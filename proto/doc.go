// Package externalscaler is the Go code generated from externalscaler.proto,
// KEDA's External Scaler gRPC protocol: the service that `kedastral scaler`
// implements and that KEDA's external and external-push triggers call.
package externalscaler
