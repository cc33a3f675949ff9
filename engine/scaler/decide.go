package scaler

import (
	"fmt"
	"math"
	"time"
)

// Source tells where an answer came from.
type Source string

// The sources of an answer.
const (
	SourceForecast Source = "forecast" // fresh forecast, no reactive signal
	SourceHybrid   Source = "hybrid"   // max(forecast, reactive)
	SourceReactive Source = "reactive" // forecast stale or missing: reactive alone
)

// forecastInput is the newest desired-replicas sample of the selected series.
type forecastInput struct {
	Found bool
	Value float64
	Age   time.Duration // now minus the sample's time stamp
}

// reactiveInput is the reactive signal's value, when a reactive query is
// configured and returned a sample.
type reactiveInput struct {
	Configured bool
	Found      bool
	Value      float64
	Err        error // the query failed
}

// decision is the answer: replicas (a whole number >= 0), its source, and
// whether the forecast was stale or missing.
type decision struct {
	Replicas float64
	Source   Source
	Stale    bool
	// Forecast tells whether a forecast sample was found, and Age how old
	// it was; set by Server.answer, also when it returns an error.
	Forecast bool
	Age      time.Duration
}

// unavailableError is an answer the scaler cannot give now (stale or missing
// forecast without a usable reactive signal); the service maps it to
// codes.Unavailable so that KEDA's fallback and other triggers take over.
type unavailableError struct{ msg string }

func (e *unavailableError) Error() string { return e.msg }

// decide is the hybrid/stale decision table:
//
//	forecast fresh, reactive sample      → max(ceil(forecast), ceil(reactive/targetPerPod))  hybrid
//	forecast fresh, no reactive sample   → ceil(forecast)                                     forecast
//	  (also when the reactive query failed: the forecast is the primary signal)
//	forecast stale/missing, reactive     → ceil(reactive/targetPerPod)                        reactive
//	forecast stale/missing, no reactive  → unavailableError naming the age
//
// A forecast that is not a finite number counts as missing; negative values
// count as 0; a sample time stamp in the future counts as age 0.
func decide(m Metadata, f forecastInput, r reactiveInput) (decision, error) {
	fresh := f.Found && !math.IsNaN(f.Value) && !math.IsInf(f.Value, 0) && f.Age <= m.MaxForecastAge
	reactiveOK := r.Configured && r.Err == nil && r.Found && !math.IsNaN(r.Value) && !math.IsInf(r.Value, 0)
	var reactive float64
	if reactiveOK {
		reactive = replicas(r.Value / m.ReactiveTargetPerPod)
	}
	switch {
	case fresh && reactiveOK:
		return decision{Replicas: max(replicas(f.Value), reactive), Source: SourceHybrid}, nil
	case fresh:
		return decision{Replicas: replicas(f.Value), Source: SourceForecast}, nil
	case reactiveOK:
		return decision{Replicas: reactive, Source: SourceReactive, Stale: true}, nil
	}
	var why string
	switch {
	case !f.Found:
		why = fmt.Sprintf("no %s sample for %s (forecast missing, or older than the query lookback)", DesiredReplicasMetric, m.Selector())
	case math.IsNaN(f.Value) || math.IsInf(f.Value, 0):
		why = fmt.Sprintf("the newest %s sample for %s is %v", DesiredReplicasMetric, m.Selector(), f.Value)
	default:
		why = fmt.Sprintf("forecast for %s is stale: newest sample is %s old (maxForecastAge %s)",
			m.Selector(), f.Age.Round(time.Millisecond), m.MaxForecastAge)
	}
	switch {
	case !r.Configured:
		return decision{}, &unavailableError{why + "; no reactiveQuery to fall back on"}
	case r.Err != nil:
		return decision{}, &unavailableError{fmt.Sprintf("%s; reactiveQuery failed: %v", why, r.Err)}
	case !r.Found:
		return decision{}, &unavailableError{why + "; reactiveQuery returned no sample"}
	default:
		return decision{}, &unavailableError{fmt.Sprintf("%s; reactiveQuery returned %v", why, r.Value)}
	}
}

// maxReplicas bounds an answer: Kubernetes counts replicas in an int32, and
// a larger value (e.g. 1e300 in the series) would overflow the answer's
// integer field.
const maxReplicas = math.MaxInt32

// replicas rounds a replica count up to a whole number in [0, maxReplicas].
func replicas(v float64) float64 {
	if v <= 0 {
		return 0
	}
	return min(math.Ceil(v), maxReplicas)
}
