package scaler

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are the scaler's own metrics.
type Metrics struct {
	requests        *prometheus.CounterVec
	latency         *prometheus.HistogramVec
	desiredReplicas *prometheus.GaugeVec
	answers         *prometheus.CounterVec
	staleAnswers    *prometheus.CounterVec
	forecastAge     *prometheus.GaugeVec
	queries         *prometheus.CounterVec
	queryErrors     *prometheus.CounterVec
}

// NewMetrics registers the scaler's metrics with reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	return &Metrics{
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kedastral", Subsystem: "scaler", Name: "requests_total",
			Help: "gRPC requests handled, by method and status code (a stream counts once, when it ends).",
		}, []string{"method", "code"}),
		latency: f.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "kedastral", Subsystem: "scaler", Name: "request_duration_seconds",
			Help:    "Latency of unary gRPC requests, by method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"method"}),
		desiredReplicas: f.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "kedastral", Subsystem: "scaler", Name: "desired_replicas",
			Help: "The replica count last answered for a trigger, by policy, its namespace (the ScaledObject's unless the policyNamespace key sets it) and metric name.",
		}, []string{"policy_namespace", "policy", "metric"}),
		answers: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kedastral", Subsystem: "scaler", Name: "answers_total",
			Help: "Replica counts answered, by policy, its namespace and source (forecast, hybrid, reactive).",
		}, []string{"policy_namespace", "policy", "source"}),
		staleAnswers: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kedastral", Subsystem: "scaler", Name: "stale_answers_total",
			Help: "Requests that found the forecast stale or missing, by policy, its namespace and outcome (reactive: answered from the reactive signal; unavailable: an error went back to KEDA).",
		}, []string{"policy_namespace", "policy", "outcome"}),
		forecastAge: f.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "kedastral", Subsystem: "scaler", Name: "forecast_age_seconds",
			Help: "Age of the newest kedastral_desired_replicas sample seen for a trigger, by policy, its namespace and metric name.",
		}, []string{"policy_namespace", "policy", "metric"}),
		queries: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kedastral", Subsystem: "scaler", Name: "prometheus_queries_total",
			Help: "Instant queries sent to Prometheus (after caching and coalescing), by kind (forecast, reactive).",
		}, []string{"kind"}),
		queryErrors: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kedastral", Subsystem: "scaler", Name: "prometheus_query_errors_total",
			Help: "Instant queries to Prometheus that failed, by kind (forecast, reactive).",
		}, []string{"kind"}),
	}
}
