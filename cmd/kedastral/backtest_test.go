package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

const (
	btPolicy = "../../testdata/backtest/nyc-taxi-policy.yaml"
	btTrace  = "../../testdata/traces/nab_nyc_taxi_passengers_30min.csv"
)

func TestBacktestOutputs(t *testing.T) {
	dir := t.TempDir()
	t.Run("text", func(t *testing.T) {
		out, code := kedastral(t, "backtest", "--policy", btPolicy, "--trace", btTrace)
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		for _, want := range []string{"policy nyc-taxi: model auto at quantile 0.85, step 30m", "scaling outcome", "kedastral", "reactive", "oracle", "seasonal_naive", "predict_linear"} {
			if !strings.Contains(out, want) {
				t.Errorf("no %q in:\n%s", want, out)
			}
		}
	})
	t.Run("csv", func(t *testing.T) {
		file := filepath.Join(dir, "out.csv")
		if out, code := kedastral(t, "backtest", "--policy", btPolicy, "--trace", btTrace, "--output", "csv", "--out", file); code != 0 || out != "" {
			t.Fatalf("exit %d, output %q", code, out)
		}
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		recs, err := csv.NewReader(f).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(recs[0], ","); got != "timestamp,observed,pred_30m,pred_1h,desired_replicas" {
			t.Errorf("header %q", got)
		}
		if len(recs) != 10321 {
			t.Errorf("%d rows, want one per trace row (10320)", len(recs)-1)
		}
		if last := recs[len(recs)-1]; last[0] != "1422747000" || last[4] == "" {
			t.Errorf("last row %v", last)
		}
	})
	t.Run("json", func(t *testing.T) {
		out, code := kedastral(t, "backtest", "--policy", btPolicy, "--trace", btTrace, "--output", "json", "--no-progress")
		if code != 0 {
			t.Fatalf("exit %d", code)
		}
		var got struct {
			Model   string
			Scaling []struct{ Method string }
			Rows    [][]*float64
		}
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatal(err)
		}
		if got.Model != "auto" || len(got.Scaling) != 6 || len(got.Rows) != 10320 {
			t.Errorf("model %q, %d scaling rows, %d rows", got.Model, len(got.Scaling), len(got.Rows))
		}
	})
	t.Run("html", func(t *testing.T) {
		file := filepath.Join(dir, "out.html")
		if out, code := kedastral(t, "backtest", "--policy", btPolicy, "--trace", btTrace, "--output", "html", "--out", file); code != 0 {
			t.Fatalf("exit %d: %s", code, out)
		}
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if s := string(b); !strings.HasPrefix(s, "<!DOCTYPE html>") || strings.Count(s, "<polyline") != 6 {
			t.Errorf("page of %d bytes with %d polylines", len(s), strings.Count(s, "<polyline"))
		}
	})
}

func TestBacktestErrors(t *testing.T) {
	mongo := "../../testdata/traces/ms_mongodb_app_query_rate_1min.csv"
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"step mismatch", []string{"--policy", btPolicy, "--trace", mongo}, "the trace's step is 1m but the policy's spec.step is 30m; set spec.step: 1m"},
		{"no such trace", []string{"--policy", btPolicy, "--trace", "nope.csv"}, "nope.csv"},
		{"bad output", []string{"--policy", btPolicy, "--trace", btTrace, "--output", "pdf"}, "--output"},
		{"bad tolerance", []string{"--policy", btPolicy, "--trace", btTrace, "--hpa.tolerance", "1.5"}, "--hpa.tolerance must be in [0, 1)"},
		{"unknown policy name", []string{"--policy", btPolicy, "--trace", btTrace, "--policy.name", "x"}, `no ForecastPolicy named "x"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, code := kedastral(t, append([]string{"backtest"}, tc.args...)...)
			if code == 0 || !strings.Contains(out, tc.want) {
				t.Errorf("exit %d, output:\n%s\nwant an error containing %q", code, out, tc.want)
			}
		})
	}
}

// TestBacktestFromPrometheus reads the history with the policy's query from
// a Prometheus HTTP API (a fake that serves the NYC taxi trace, each row as
// the sample at the end of its step) and checks that the result is the one
// of the trace file.
func TestBacktestFromPrometheus(t *testing.T) {
	raw, err := os.ReadFile(btTrace)
	if err != nil {
		t.Fatal(err)
	}
	type sample struct {
		t int64
		v string
	}
	var samples []sample
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n")[1:] {
		ts, v, _ := strings.Cut(line, ",")
		sec, _ := strconv.ParseInt(ts, 10, 64)
		samples = append(samples, sample{sec + 1800, v})
	}
	var (
		mu      sync.Mutex
		queries []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/query_range" {
			http.NotFound(w, r)
			return
		}
		r.ParseForm()
		mu.Lock()
		queries = append(queries, r.Form.Get("query"))
		mu.Unlock()
		start, _ := strconv.ParseFloat(r.Form.Get("start"), 64)
		end, _ := strconv.ParseFloat(r.Form.Get("end"), 64)
		var vals []string
		for _, s := range samples {
			if float64(s.t) >= start && float64(s.t) <= end {
				vals = append(vals, fmt.Sprintf(`[%d,"%s"]`, s.t, s.v))
			}
		}
		fmt.Fprintf(w, `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[%s]}]}}`, strings.Join(vals, ","))
	}))
	defer srv.Close()

	fromFile, code := kedastral(t, "backtest", "--policy", btPolicy, "--trace", btTrace, "--output", "csv")
	if code != 0 {
		t.Fatal(fromFile)
	}
	first, last := samples[0].t, samples[len(samples)-1].t
	fromProm, code := kedastral(t, "backtest", "--policy", btPolicy, "--prometheus.url", srv.URL, "--output", "csv",
		"--start", strconv.FormatInt(first, 10), "--end", strconv.FormatInt(last, 10))
	if code != 0 {
		t.Fatal(fromProm)
	}
	if fromProm != fromFile {
		t.Errorf("the replay from Prometheus differs from the one from the file (%d and %d bytes)", len(fromProm), len(fromFile))
	}
	mu.Lock()
	if len(queries) == 0 || queries[0] != "sum(rate(taxi_passengers_total[30m])) * 1800" {
		t.Errorf("queries %q", queries)
	}
	mu.Unlock()
	out, code := kedastral(t, "backtest", "--policy", btPolicy, "--prometheus.url", srv.URL, "--start", "1", "--end", "1000")
	if code == 0 || !strings.Contains(out, "returned no series") {
		t.Errorf("empty range: exit %d, %s", code, out)
	}
}
