package model_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kedastral/kedastral/engine/model"
)

// exampleServer is a tiny bring-your-own-model server, the example of the
// contract: it answers the value one day before each forecast step (the
// last value when there is none) and, when asked for quantile 0.9, that
// value plus 10%.
func exampleServer() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Timestamps []int64
			Values     []*float64
			Step       float64
			Horizon    int
			Quantiles  []float64
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		day := int(86400 / req.Step)
		last := 0.0
		for _, v := range req.Values {
			if v != nil {
				last = *v
			}
		}
		resp := struct {
			Forecast  []float64            `json:"forecast"`
			Quantiles map[string][]float64 `json:"quantiles,omitempty"`
		}{Quantiles: map[string][]float64{}}
		for j := range req.Horizon {
			v := last
			if k := len(req.Values) + j - day; k >= 0 && req.Values[k] != nil {
				v = *req.Values[k]
			}
			resp.Forecast = append(resp.Forecast, v)
		}
		for _, q := range req.Quantiles {
			if q == 0.9 {
				for _, v := range resp.Forecast {
					resp.Quantiles["0.9"] = append(resp.Quantiles["0.9"], v*1.1)
				}
			}
		}
		json.NewEncoder(w).Encode(resp)
	})
}

func newBYOM(t *testing.T, url string, q float64, timeout time.Duration) model.Model {
	t.Helper()
	m, err := model.New(model.BYOM, model.Config{Step: 5 * time.Minute, Quantile: q, BYOM: model.BYOMConfig{URL: url, Timeout: timeout, MaxResponseBytes: 1 << 16}})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestBYOM(t *testing.T) {
	const step = 5 * time.Minute
	h := series(step, 2*day, dailySine)
	want := make([]float64, 6)
	for j := range want {
		want[j] = dailySine(h.End().Add(time.Duration(j+1)*step - day))
	}
	srv := httptest.NewServer(exampleServer())
	defer srv.Close()

	t.Run("point forecast", func(t *testing.T) {
		got, err := newBYOM(t, srv.URL, 0.5, time.Second).Forecast(context.Background(), h, 6)
		if err != nil {
			t.Fatal(err)
		}
		for j := range want {
			if math.Abs(got[j]-want[j]) > 1e-9 {
				t.Fatalf("forecast %v, want %v", got, want)
			}
		}
	})
	t.Run("quantile from the response", func(t *testing.T) {
		got, err := newBYOM(t, srv.URL, 0.9, time.Second).Forecast(context.Background(), h, 6)
		if err != nil {
			t.Fatal(err)
		}
		for j := range want {
			if math.Abs(got[j]-1.1*want[j]) > 1e-9 {
				t.Fatalf("forecast %v, want 1.1 × %v", got, want)
			}
		}
	})

	seasonal, err := newModel(t, model.Seasonal, step, 0.5).Forecast(context.Background(), h, 6)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
		wantErr string
	}{
		{"server error", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "model crashed", 500) }, "500 Internal Server Error"},
		{"not JSON", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "<html>") }, "decode response"},
		{"wrong length", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{"forecast":[1,2]}`) }, "has 2 values, want 6"},
		{"null value", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{"forecast":[1,2,null,4,5,6]}`) }, "forecast[2] is not a number"},
		{"bad quantile", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, `{"forecast":[1,2,3,4,5,6],"quantiles":{"0.5":[1]}}`)
		}, "quantiles.0.5 has 1 values"},
		{"too large", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, `{"forecast":[1,2,3,4,5,6],"pad":"`+strings.Repeat("x", 1<<17)+`"}`)
		}, "larger than 65536 bytes"},
		{"timeout", func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-time.After(time.Second):
			case <-r.Context().Done():
			}
		}, "deadline exceeded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := httptest.NewServer(tc.handler)
			defer bad.Close()
			m := newBYOM(t, bad.URL, 0.5, 200*time.Millisecond)
			got, err := m.Forecast(context.Background(), h, 6)
			if err != nil {
				t.Fatalf("no fallback: %v", err)
			}
			for j := range got {
				if got[j] != seasonal[j] {
					t.Fatalf("forecast %v, want the seasonal fallback %v", got, seasonal)
				}
			}
			last := m.(interface{ LastError() error }).LastError()
			if last == nil || !strings.Contains(last.Error(), tc.wantErr) {
				t.Errorf("LastError %v, want one containing %q", last, tc.wantErr)
			}
		})
	}
}
