// Package faults holds cross-component fault tests: the forecaster's loop fed
// hostile Prometheus answers.
package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/config"

	"github.com/kedastral/kedastral/engine/forecast"
	"github.com/kedastral/kedastral/engine/policy"
	"github.com/kedastral/kedastral/promapi"
)

// recorder is a forecast.Writer that keeps what it is given.
type recorder struct {
	mu      sync.Mutex
	samples []promapi.Sample
}

func (r *recorder) Write(_ context.Context, s []promapi.Sample) (promapi.WriteStats, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.samples = append(r.samples, s...)
	return promapi.WriteStats{Sent: len(s)}, nil
}

func (r *recorder) all() []promapi.Sample {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]promapi.Sample(nil), r.samples...)
}

type point struct {
	t float64
	v string
}

// hostileServer answers query_range like Prometheus, with the series that
// series() builds from a clean history of the asked range, or with raw
// bytes when raw is set.
func hostileServer(t *testing.T, series func(clean []point) [][]point, raw func(w http.ResponseWriter)) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if raw != nil {
			raw(w)
			return
		}
		_ = r.ParseForm()
		start, _ := strconv.ParseFloat(r.Form.Get("start"), 64)
		end, _ := strconv.ParseFloat(r.Form.Get("end"), 64)
		step, _ := strconv.ParseFloat(r.Form.Get("step"), 64)
		if step <= 0 {
			step = 60
		}
		var clean []point
		for ts := start; ts <= end && len(clean) < 20000; ts += step {
			v := 300 + 200*math.Sin(2*math.Pi*ts/86400)
			clean = append(clean, point{ts, strconv.FormatFloat(v, 'f', -1, 64)})
		}
		type res struct {
			Metric map[string]string `json:"metric"`
			Values [][2]any          `json:"values"`
		}
		var out []res
		for i, s := range series(clean) {
			rs := res{Metric: map[string]string{"shard": strconv.Itoa(i)}, Values: [][2]any{}}
			for _, p := range s {
				rs.Values = append(rs.Values, [2]any{p.t, p.v})
			}
			out = append(out, rs)
		}
		if out == nil {
			out = []res{}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": map[string]any{"resultType": "matrix", "result": out}})
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func every(clean []point, n int, v string) []point {
	out := append([]point(nil), clean...)
	for i := range out {
		if i%n == 0 {
			out[i].v = v
		}
	}
	return out
}

// TestHostileQueryResponses runs the forecaster's loop against a query API
// that answers garbage: nothing panics, and whatever is written is finite
// with desired replicas within the policy's [min, max].
func TestHostileQueryResponses(t *testing.T) {
	set, errs := policy.Parse([]byte(`apiVersion: kedastral.io/v1alpha1
kind: ForecastPolicy
metadata: {name: hostile}
spec:
  targetRef: {name: api}
  horizon: 30m
  leadTime: 5m
  interval: 1s
  lookback: 2d
  capacity: {targetPerPod: 100, min: 2, max: 50}
  sources: [{name: rps, query: 'sum by (shard) (x)'}]
`), "hostile.yaml")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	type run struct {
		name string
		mgr  *forecast.Manager
		rec  *recorder
	}
	var runs []run
	one := func(f func([]point) []point) func([]point) [][]point {
		return func(c []point) [][]point { return [][]point{f(c)} }
	}
	for _, tc := range []struct {
		name   string
		series func([]point) [][]point
		raw    func(http.ResponseWriter)
	}{
		{name: "clean", series: one(func(c []point) []point { return c })},
		{name: "empty", series: func([]point) [][]point { return nil }},
		{name: "NaN, Inf and negative values", series: one(func(c []point) []point {
			c = every(c, 7, "NaN")
			c = every(c, 11, "+Inf")
			c = every(c, 13, "-Inf")
			return every(c, 5, "-500")
		})},
		{name: "last value NaN", series: one(func(c []point) []point { c[len(c)-1].v = "NaN"; return c })},
		{name: "last value +Inf", series: one(func(c []point) []point { c[len(c)-1].v = "+Inf"; return c })},
		{name: "all NaN", series: one(func(c []point) []point { return every(c, 1, "NaN") })},
		{name: "all negative", series: one(func(c []point) []point { return every(c, 1, "-1e6") })},
		{name: "huge values", series: one(func(c []point) []point { return every(c, 3, "1.7e308") })},
		{name: "duplicated timestamps", series: one(func(c []point) []point {
			var out []point
			for _, p := range c {
				out = append(out, p, point{p.t, "999"})
			}
			return out
		})},
		{name: "out-of-order timestamps", series: one(func(c []point) []point {
			for i := 0; i+1 < len(c); i += 2 {
				c[i], c[i+1] = c[i+1], c[i]
			}
			return c
		})},
		{name: "timestamps off the step", series: one(func(c []point) []point {
			for i := range c {
				c[i].t += 0.123
			}
			return c
		})},
		{name: "timestamps in the future", series: one(func(c []point) []point {
			for i := range c {
				c[i].t += 86400 * 365
			}
			return c
		})},
		{name: "300 series", series: func(c []point) [][]point {
			out := make([][]point, 300)
			for i := range out {
				out[i] = c[max(0, len(c)-200):]
			}
			return out
		}},
		{name: "truncated body", raw: func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"1"],[2,`)
		}},
		{name: "error answer", raw: func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(422)
			fmt.Fprint(w, `{"status":"error","errorType":"execution","error":"boom"}`)
		}},
		{name: "string result", raw: func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"status":"success","data":{"resultType":"string","result":[1,"x"]}}`)
		}},
		{name: "value not a number", raw: func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"abc"],[1e300,"1"]]}]}}`)
		}},
		{name: "HTML", raw: func(w http.ResponseWriter) { fmt.Fprint(w, "<html>proxy error</html>") }},
	} {
		// Start every scenario first, then wait for them together: each
		// needs two cycles of a 1s interval.
		url := hostileServer(t, tc.series, tc.raw)
		q, err := promapi.NewClient(promapi.ClientConfig{URL: url, HTTPClientConfig: config.DefaultHTTPClientConfig, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(q.Close)
		rec := &recorder{}
		mgr, err := forecast.NewManager(forecast.Options{
			Registerer: prometheus.NewRegistry(), Writer: rec,
			Queriers: func(*policy.DataSource) (forecast.Querier, error) { return q, nil },
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(mgr.Stop)
		if err := mgr.Apply(set, nil); err != nil {
			t.Fatal(err)
		}
		runs = append(runs, run{name: tc.name, mgr: mgr, rec: rec})
	}
	for _, r := range runs {
		t.Run(r.name, func(t *testing.T) {
			mgr, rec := r.mgr, r.rec
			deadline := time.Now().Add(15 * time.Second)
			for {
				st := mgr.Status()[0]
				if st.Cycles >= 2 {
					t.Logf("cycles %d, series %d, desired %v, last error %.200q", st.Cycles, st.SeriesCount, st.DesiredRange, st.LastError)
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no two cycles in 15s: %+v", st)
				}
				time.Sleep(50 * time.Millisecond)
			}
			for _, s := range rec.all() {
				name := s.Labels.Get("__name__")
				switch {
				case name == forecast.DesiredMetric && (math.IsNaN(s.V) || s.V < 2 || s.V > 50):
					t.Errorf("desired replicas %v outside [2, 50]: %s", s.V, s.Labels)
				case name == forecast.PredictedMetric && (math.IsNaN(s.V) || math.IsInf(s.V, 0)):
					t.Errorf("forecast %v is not finite: %s", s.V, s.Labels)
				case name == forecast.ObservedMetric && math.IsNaN(s.V):
					t.Errorf("observed value written as NaN: %s", s.Labels)
				}
			}
		})
	}
}
