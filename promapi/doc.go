// Package promapi is everything Kedastral says to Prometheus over HTTP: a
// query client (instant queries and range queries split into chunks that stay
// under Prometheus' per-series point limit) and a remote-write client that
// sends the forecaster's kedastral_* series. Both build their HTTP client from
// Prometheus' own HTTP client configuration, so auth and TLS are configured
// exactly as in a prometheus.yml, and both mark failures that are worth
// retrying (see IsRetryable).
//
// Sub-package promtest starts a real Prometheus server for tests and demos.
package promapi
