package forecast

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are the forecaster's own metrics, served on its /metrics.
type Metrics struct {
	cycleDuration   *prometheus.HistogramVec
	cycles          *prometheus.CounterVec
	cycleFailures   *prometheus.CounterVec
	missed          *prometheus.CounterVec
	series          *prometheus.GaugeVec
	seriesFailures  *prometheus.CounterVec
	queryDuration   *prometheus.HistogramVec
	lastSuccess     *prometheus.GaugeVec
	samplesSent     prometheus.Counter
	samplesFailed   prometheus.Counter
	writeDuration   prometheus.Histogram
	seriesByModel   *prometheus.GaugeVec
	seriesBySource  *prometheus.GaugeVec
	historyBytes    *prometheus.GaugeVec
	modelBytes      *prometheus.GaugeVec
	policyInfo      *prometheus.GaugeVec
	policies        prometheus.Gauge
	policiesInvalid prometheus.Gauge
	reloadSuccess   prometheus.Gauge
	reloadTime      prometheus.Gauge
	objective       objectiveMetrics
}

// NewMetrics registers the forecaster's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	return &Metrics{
		objective: newObjectiveMetrics(f),
		cycleDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "kedastral", Subsystem: "forecaster", Name: "cycle_duration_seconds",
			Help:    "Duration of a policy's evaluation cycle: fetch, forecast and remote write.",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"policy"}),
		cycles: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kedastral", Subsystem: "forecaster", Name: "cycles_total",
			Help: "Evaluation cycles run, per policy.",
		}, []string{"policy"}),
		cycleFailures: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kedastral", Subsystem: "forecaster", Name: "cycle_failures_total",
			Help: "Evaluation cycles that failed, per policy and stage (query, write).",
		}, []string{"policy", "stage"}),
		missed: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kedastral", Subsystem: "forecaster", Name: "missed_cycles_total",
			Help: "Evaluation cycles skipped because the previous one ran past its slot.",
		}, []string{"policy"}),
		series: f.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "kedastral", Subsystem: "forecaster", Name: "series",
			Help: "Series a policy's query returned in its last cycle that were forecast.",
		}, []string{"policy"}),
		seriesFailures: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kedastral", Subsystem: "forecaster", Name: "series_failures_total",
			Help: "Series that could not be forecast in a cycle, per policy and reason (insufficient_data, model).",
		}, []string{"policy", "reason"}),
		queryDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "kedastral", Subsystem: "forecaster", Name: "query_duration_seconds",
			Help:    "Duration of the history fetch (range queries) of a cycle.",
			Buckets: []float64{.005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"policy"}),
		lastSuccess: f.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "kedastral", Subsystem: "forecaster", Name: "last_success_timestamp_seconds",
			Help: "Time of the policy's last cycle whose forecasts were written.",
		}, []string{"policy"}),
		samplesSent: f.NewCounter(prometheus.CounterOpts{
			Namespace: "kedastral", Subsystem: "remote_write", Name: "samples_total",
			Help: "Samples remote-written successfully.",
		}),
		samplesFailed: f.NewCounter(prometheus.CounterOpts{
			Namespace: "kedastral", Subsystem: "remote_write", Name: "samples_failed_total",
			Help: "Samples whose remote write failed after retries.",
		}),
		writeDuration: f.NewHistogram(prometheus.HistogramOpts{
			Namespace: "kedastral", Subsystem: "remote_write", Name: "duration_seconds",
			Help:    "Duration of a remote write, retries included.",
			Buckets: []float64{.005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		seriesByModel: f.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "kedastral", Subsystem: "forecaster", Name: "series_by_model",
			Help: "Series of a policy per model answering over the lead time (auto picks per series).",
		}, []string{"policy", "model"}),
		seriesBySource: f.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "kedastral", Subsystem: "forecaster", Name: "series_by_source",
			Help: "Series of a policy whose desired replicas each source drives (the source needing the most replicas).",
		}, []string{"policy", "source"}),
		historyBytes: f.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "kedastral", Subsystem: "forecaster", Name: "history_bytes",
			Help: "Memory the per-series histories of a policy hold (float32 values, older ones packed at 16 bits or at a coarser step); the models' state comes on top.",
		}, []string{"policy"}),
		modelBytes: f.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "kedastral", Subsystem: "forecaster", Name: "model_bytes",
			Help: "Memory the per-series model state of a policy holds (point models, conformal error sketches, pending forecasts); byom models count as 0.",
		}, []string{"policy"}),
		policyInfo: f.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "kedastral", Subsystem: "forecaster", Name: "policy_info",
			Help: "Always 1: a policy's model, quantile and target, to join on policy.",
		}, []string{"policy", "model", "quantile", "target_kind", "target_name", "metric"}),
		policies: f.NewGauge(prometheus.GaugeOpts{
			Namespace: "kedastral", Subsystem: "forecaster", Name: "policies",
			Help: "Policies being evaluated.",
		}),
		policiesInvalid: f.NewGauge(prometheus.GaugeOpts{
			Namespace: "kedastral", Subsystem: "forecaster", Name: "policies_invalid",
			Help: "Objects of the last configuration load that were refused as invalid.",
		}),
		reloadSuccess: f.NewGauge(prometheus.GaugeOpts{
			Namespace: "kedastral", Subsystem: "forecaster", Name: "config_last_reload_successful",
			Help: "Whether the last configuration load had no error.",
		}),
		reloadTime: f.NewGauge(prometheus.GaugeOpts{
			Namespace: "kedastral", Subsystem: "forecaster", Name: "config_last_reload_success_timestamp_seconds",
			Help: "Time of the last configuration load without error.",
		}),
	}
}

// ageCollector exposes kedastral_forecast_age_seconds computed at scrape
// time: now minus the last successful cycle (or minus the policy's start
// while it has had none), so the age keeps growing when cycles stop.
type ageCollector struct {
	m    *Manager
	desc *prometheus.Desc
}

func (c *ageCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *ageCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.m.now()
	for _, st := range c.m.Status() {
		ref := st.LastSuccess
		if ref.IsZero() {
			ref = st.Started
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, now.Sub(ref).Seconds(), st.Name)
	}
}
