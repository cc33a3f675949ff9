// Package scaler is KEDA's External Scaler served from Prometheus: it parses
// a trigger's scalerMetadata, reads the newest kedastral_desired_replicas
// sample the forecaster wrote for that policy and series, decides between the
// forecast and the reactive signal (hybrid, stale, missing), and answers
// IsActive, StreamIsActive, GetMetricSpec, StreamMetricSpec and GetMetrics
// over gRPC so that the HPA lands on exactly the desired replica count.
package scaler
