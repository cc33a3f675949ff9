package scaler

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func TestDecide(t *testing.T) {
	plain := Metadata{Policy: "api", MaxForecastAge: 2 * time.Minute}
	hybrid := plain
	hybrid.ReactiveQuery, hybrid.ReactiveTargetPerPod = "sum(up)", 10

	fresh := func(v float64) forecastInput { return forecastInput{Found: true, Value: v, Age: 30 * time.Second} }
	stale := func(v float64) forecastInput { return forecastInput{Found: true, Value: v, Age: 5 * time.Minute} }
	missing := forecastInput{}
	noReactive := reactiveInput{}
	reactive := func(v float64) reactiveInput { return reactiveInput{Configured: true, Found: true, Value: v} }
	reactiveEmpty := reactiveInput{Configured: true}
	reactiveFailed := reactiveInput{Configured: true, Err: errors.New("connection refused")}

	for _, tc := range []struct {
		name     string
		m        Metadata
		f        forecastInput
		r        reactiveInput
		want     decision
		wantErr  string // part of the unavailable error, "" for none
		stateErr bool
	}{
		{name: "fresh forecast", m: plain, f: fresh(7), r: noReactive, want: decision{Replicas: 7, Source: SourceForecast}},
		{name: "fresh zero", m: plain, f: fresh(0), r: noReactive, want: decision{Replicas: 0, Source: SourceForecast}},
		{name: "fresh fractional rounds up", m: plain, f: fresh(6.2), r: noReactive, want: decision{Replicas: 7, Source: SourceForecast}},
		{name: "fresh negative is zero", m: plain, f: fresh(-3), r: noReactive, want: decision{Replicas: 0, Source: SourceForecast}},
		{name: "huge is capped at int32", m: plain, f: fresh(1e300), r: noReactive, want: decision{Replicas: math.MaxInt32, Source: SourceForecast}},
		{name: "age exactly max is fresh", m: plain, f: forecastInput{Found: true, Value: 4, Age: 2 * time.Minute}, r: noReactive, want: decision{Replicas: 4, Source: SourceForecast}},
		{name: "stale without reactive", m: plain, f: stale(7), r: noReactive, wantErr: "is stale: newest sample is 5m0s old (maxForecastAge 2m0s); no reactiveQuery"},
		{name: "missing without reactive", m: plain, f: missing, r: noReactive, wantErr: "no kedastral_desired_replicas sample"},
		{name: "NaN forecast without reactive", m: plain, f: fresh(math.NaN()), r: noReactive, wantErr: "is NaN"},
		{name: "hybrid forecast higher", m: hybrid, f: fresh(7), r: reactive(41), want: decision{Replicas: 7, Source: SourceHybrid}},
		{name: "hybrid reactive higher", m: hybrid, f: fresh(3), r: reactive(41), want: decision{Replicas: 5, Source: SourceHybrid}},
		{name: "hybrid both zero", m: hybrid, f: fresh(0), r: reactive(0), want: decision{Replicas: 0, Source: SourceHybrid}},
		{name: "fresh, reactive empty", m: hybrid, f: fresh(3), r: reactiveEmpty, want: decision{Replicas: 3, Source: SourceForecast}},
		{name: "fresh, reactive failed", m: hybrid, f: fresh(3), r: reactiveFailed, want: decision{Replicas: 3, Source: SourceForecast}},
		{name: "fresh, reactive NaN", m: hybrid, f: fresh(3), r: reactive(math.NaN()), want: decision{Replicas: 3, Source: SourceForecast}},
		{name: "stale, reactive", m: hybrid, f: stale(30), r: reactive(41), want: decision{Replicas: 5, Source: SourceReactive, Stale: true}},
		{name: "missing, reactive", m: hybrid, f: missing, r: reactive(41), want: decision{Replicas: 5, Source: SourceReactive, Stale: true}},
		{name: "missing, reactive zero", m: hybrid, f: missing, r: reactive(0), want: decision{Replicas: 0, Source: SourceReactive, Stale: true}},
		{name: "Inf forecast, reactive", m: hybrid, f: fresh(math.Inf(1)), r: reactive(10), want: decision{Replicas: 1, Source: SourceReactive, Stale: true}},
		{name: "stale, reactive empty", m: hybrid, f: stale(7), r: reactiveEmpty, wantErr: "reactiveQuery returned no sample"},
		{name: "stale, reactive failed", m: hybrid, f: stale(7), r: reactiveFailed, wantErr: "reactiveQuery failed: connection refused"},
		{name: "missing, reactive NaN", m: hybrid, f: missing, r: reactive(math.NaN()), wantErr: "reactiveQuery returned NaN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decide(tc.m, tc.f, tc.r)
			if tc.wantErr != "" {
				var ue *unavailableError
				if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want an unavailable error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
