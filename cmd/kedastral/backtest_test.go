package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/kedastral/kedastral/promapi/promtest"
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
		for _, want := range []string{"policy nyc-taxi: model auto at quantile 0.85, step 30m", "scaling outcome", "kedastral", "reactive", "oracle", "seasonal_naive", "predict_linear", "perfect_forecast", "kedastral forecasts the 0.85 quantile"} {
			if !strings.Contains(out, want) {
				t.Errorf("no %q in:\n%s", want, out)
			}
		}
	})
	t.Run("csv", func(t *testing.T) {
		file := filepath.Join(dir, "out.csv")
		if out, code := kedastral(t, "backtest", "--no-progress", "--policy", btPolicy, "--trace", btTrace, "--output", "csv", "--out", file); code != 0 || out != "" {
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
		if got.Model != "auto" || len(got.Scaling) != 7 || len(got.Rows) != 10320 {
			t.Errorf("model %q, %d scaling rows, %d rows", got.Model, len(got.Scaling), len(got.Rows))
		}
	})
	t.Run("curve", func(t *testing.T) {
		out, code := kedastral(t, "backtest", "--no-progress", "--policy", btPolicy, "--trace", btTrace, "--quantiles", "0.5,0.9", "--output", "json")
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		var got struct {
			CoverageAhead string `json:"coverageAhead"`
			Curve         []struct {
				Quantile, Coverage float64
				Scaling            struct {
					Method             string
					UnservedVsReactive float64
					ReplicaHours       float64 `json:"replicaHours"`
				}
			}
			OtherMethods []struct{ Method string }
		}
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("%v:\n%s", err, out)
		}
		if len(got.Curve) != 2 || got.Curve[0].Quantile != 0.5 || got.Curve[1].Quantile != 0.9 || len(got.OtherMethods) != 6 || got.CoverageAhead != "30m" {
			t.Fatalf("curve %+v, other methods %+v, coverage at %q", got.Curve, got.OtherMethods, got.CoverageAhead)
		}
		lo, hi := got.Curve[0], got.Curve[1]
		if !(lo.Scaling.UnservedVsReactive > hi.Scaling.UnservedVsReactive && lo.Scaling.ReplicaHours < hi.Scaling.ReplicaHours) {
			t.Errorf("q 0.5: %.3f of reactive's unserved at %.0f replica-hours; q 0.9: %.3f at %.0f: the higher quantile should serve more at a higher cost",
				lo.Scaling.UnservedVsReactive, lo.Scaling.ReplicaHours, hi.Scaling.UnservedVsReactive, hi.Scaling.ReplicaHours)
		}
		for _, p := range got.Curve {
			if math.Abs(p.Coverage-p.Quantile) > 0.03 {
				t.Errorf("coverage %.3f at quantile %v", p.Coverage, p.Quantile)
			}
		}
		file := filepath.Join(dir, "curve.html")
		if out, code := kedastral(t, "backtest", "--policy", btPolicy, "--trace", btTrace, "--quantiles", "0.5,0.9", "--output", "html", "--out", file); code != 0 {
			t.Fatalf("exit %d: %s", code, out)
		}
		if b, err := os.ReadFile(file); err != nil || !strings.Contains(string(b), `<svg id="curve"`) || !strings.Contains(string(b), "q 0.9") {
			t.Errorf("html curve: %v, %d bytes", err, len(b))
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
		{"quantile out of range", []string{"--policy", btPolicy, "--trace", btTrace, "--quantiles", "0.5,1"}, "--quantiles: 1 is not in (0, 1)"},
		{"curve as csv", []string{"--policy", btPolicy, "--trace", btTrace, "--quantiles", "0.5", "--output", "csv"}, "--quantiles prints the trade-off curve as text, json or html, not csv"},
		// The README's form of a relative start parses and reaches the
		// query (a closed port on loopback).
		{"relative start", []string{"--policy", btPolicy, "--prometheus.url", "http://127.0.0.1:1", "--start=-7d", "--end=now"}, "127.0.0.1:1"},
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
// a real Prometheus holding the NYC taxi trace (each row as the sample at the
// end of its step, as a rate is stamped) and checks that the replay is the
// one of the trace file, byte for byte.
func TestBacktestFromPrometheus(t *testing.T) {
	promtest.RequireBinaries(t)
	raw, err := os.ReadFile(btTrace)
	if err != nil {
		t.Fatal(err)
	}
	// The last ten days: promtool writes a block per two hours, and months of
	// them make a slow start.
	rows := strings.Split(strings.TrimSpace(string(raw)), "\n")
	rows = append(rows[:1], rows[len(rows)-10*48:]...)
	trace := filepath.Join(t.TempDir(), "taxi.csv")
	if err := os.WriteFile(trace, []byte(strings.Join(rows, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	series := promtest.Series{Name: "taxi_passengers", Labels: labels.FromStrings("city", "nyc")}
	for _, line := range rows[1:] {
		ts, v, _ := strings.Cut(line, ",")
		sec, err := strconv.ParseInt(ts, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			t.Fatal(err)
		}
		series.Points = append(series.Points, promtest.Point{T: (sec + 1800) * 1000, V: f})
	}
	// A second city with twice the demand, for a query with two series.
	sf := promtest.Series{Name: "taxi_passengers", Labels: labels.FromStrings("city", "sf")}
	for _, pt := range series.Points {
		sf.Points = append(sf.Points, promtest.Point{T: pt.T, V: 2 * pt.V})
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := promtest.CreateBlocks(ctx, dir, []promtest.Series{series, sf}); err != nil {
		t.Fatal(err)
	}
	// The trace is from 2015: keep it.
	prom := promtest.StartInT(t, dir, promtest.Options{ExtraArgs: []string{"--storage.tsdb.retention.time=100y"}})

	// The example policy with a query for the loaded gauge.
	pol, err := os.ReadFile(btPolicy)
	if err != nil {
		t.Fatal(err)
	}
	policyFile := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(policyFile, []byte(strings.Replace(string(pol),
		"query: sum(rate(taxi_passengers_total[30m])) * 1800", `query: sum(taxi_passengers{city="nyc"})`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}

	fromFile, code := kedastral(t, "backtest", "--no-progress", "--policy", policyFile, "--trace", trace, "--output", "csv")
	if code != 0 {
		t.Fatal(fromFile)
	}
	first, last := series.Points[0].T/1000, series.Points[len(series.Points)-1].T/1000
	fromProm, code := kedastral(t, "backtest", "--no-progress", "--policy", policyFile, "--prometheus.url", prom.URL(), "--output", "csv",
		"--start", strconv.FormatInt(first, 10), "--end", strconv.FormatInt(last, 10))
	if code != 0 {
		t.Fatal(fromProm)
	}
	if n := strings.Count(fromFile, "\n"); n != 10*48+1 {
		t.Errorf("the replay has %d lines, want a header and %d rows", n, 10*48)
	}
	if fromProm != fromFile {
		t.Errorf("the replay from Prometheus differs from the one from the file (%d and %d bytes)", len(fromProm), len(fromFile))
	}
	out, code := kedastral(t, "backtest", "--policy", policyFile, "--prometheus.url", prom.URL(), "--start", "1", "--end", "1000")
	if code == 0 || !strings.Contains(out, "returned no series") {
		t.Errorf("empty range: exit %d, %s", code, out)
	}

	// The query of both cities: each is backtested, and summed up.
	both := filepath.Join(t.TempDir(), "both.yaml")
	if err := os.WriteFile(both, []byte(strings.Replace(string(pol),
		"query: sum(rate(taxi_passengers_total[30m])) * 1800", `query: taxi_passengers`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	span := []string{"--prometheus.url", prom.URL(), "--start", strconv.FormatInt(first, 10), "--end", strconv.FormatInt(last, 10)}
	bt := func(args ...string) (string, int) {
		return kedastral(t, append(append([]string{"backtest", "--policy", both}, span...), args...)...)
	}
	if out, code := bt("--output", "html"); code != 0 || !strings.Contains(out, `<svg id="series"`) || !strings.Contains(out, "2 series, 2 backtested") {
		t.Errorf("html of two series: exit %d, %.300s", code, out)
	}
	if out, code := bt("--output", "csv"); code == 0 ||
		!strings.Contains(out, `2 series to backtest ({city="nyc"}, {city="sf"}); --output csv shows one series: pick one with --series '{city="nyc"}'`) {
		t.Errorf("csv of two series: exit %d, %s", code, out)
	}
	if out, code := bt("--output", "csv", "--series", `{city="nyc"}`); code != 0 || out != fromFile {
		t.Errorf("--series {city=\"nyc\"}: exit %d, the replay differs from the trace file's (%d and %d bytes)", code, len(out), len(fromFile))
	}
	if out, code := bt("--series", `{city="sf"}`); code != 0 || !strings.Contains(out, `policy nyc-taxi {city="sf"}: model auto`) {
		t.Errorf("text of one series picked: exit %d, %s", code, out)
	}
	out, code = bt()
	if code != 0 {
		t.Fatal(out)
	}
	for _, want := range []string{"2 series, from ", `{city="nyc"}`, `{city="sf"}`, "all series together (2 of 2 backtested)", "kedastral", "oracle"} {
		if !strings.Contains(out, want) {
			t.Errorf("text of two series lacks %q:\n%s", want, out)
		}
	}
	jsonOut, code := bt("--output", "json", "--series", `{city=~"nyc|sf"}`)
	var j struct {
		Series []struct {
			Labels map[string]string `json:"labels"`
		} `json:"series"`
		Total []struct {
			Method string `json:"method"`
		} `json:"total"`
	}
	if err := json.Unmarshal([]byte(jsonOut), &j); code != 0 || err != nil || len(j.Series) != 2 || j.Series[1].Labels["city"] != "sf" || len(j.Total) == 0 {
		t.Errorf("json of two series: exit %d, %v: %s", code, err, jsonOut)
	}
	curve, code := bt("--quantiles", "0.6,0.8")
	if code != 0 || !strings.Contains(curve, ", each backtested on its own and summed up (2 of 2 backtested)") ||
		!strings.Contains(curve, "2 series from 2015-01-22T00:00:00Z to 2015-01-31T23:30:00Z") ||
		!regexp.MustCompile(`(?m)^\s+0\.6\s+0\.\d+\s`).MatchString(curve) || !regexp.MustCompile(`(?m)^\s+0\.8\s+0\.\d+\s`).MatchString(curve) {
		t.Errorf("--quantiles over two series: exit %d, %s", code, curve)
	}
	if out, code := bt("--series", `{city="la"}`); code == 0 || !strings.Contains(out, `none of the 2 series of query "taxi_passengers" matches --series {city="la"}`) {
		t.Errorf("--series matching none: exit %d, %s", code, out)
	}
	if out, code := bt("--series", `{city=`); code == 0 || !strings.Contains(out, `--series "{city=": `) {
		t.Errorf("--series that does not parse: exit %d, %s", code, out)
	}
	if out, code := kedastral(t, "backtest", "--policy", both, "--trace", trace, "--series", `{city="nyc"}`); code == 0 || !strings.Contains(out, "--series selects among the series of --prometheus.url") {
		t.Errorf("--series with --trace: exit %d, %s", code, out)
	}
}

// TestBacktestHTTPConfigFile reads the history from a Prometheus that
// requires basic auth: refused without --prometheus.http-config-file (the
// 401 said), read with it, the password shown nowhere.
func TestBacktestHTTPConfigFile(t *testing.T) {
	prom, httpCfg := basicAuthPrometheus(t)
	pol := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(pol, []byte(fmt.Sprintf(policyTmpl, "api", 50)), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"backtest", "--policy", pol, "--prometheus.url", prom.URL(), "--start=-3h", "--no-progress"}
	out, code := kedastral(t, args...)
	if code == 0 || !strings.Contains(out, `query range "sum(app_load)"`) || !strings.Contains(out, "401") {
		t.Errorf("without credentials: exit %d, %s", code, out)
	}
	out, code = kedastral(t, append(args, "--prometheus.http-config-file", httpCfg)...)
	if code != 0 || !strings.Contains(out, "scaling outcome") || strings.Contains(out, authPassword) {
		t.Errorf("with credentials: exit %d, %s", code, out)
	}
}

// TestBacktestCSVKeepsTraceTimestamps backtests a 5-minute trace recorded on
// a clock that is not aligned to the step (every 5 minutes from :03): the
// replay runs on the step's grid, and the csv shows the trace's own
// timestamps, each row next to the value the trace has at that time.
func TestBacktestCSVKeepsTraceTimestamps(t *testing.T) {
	dir := t.TempDir()
	start := time.Date(2026, 3, 1, 0, 3, 0, 0, time.UTC)
	var b strings.Builder
	b.WriteString("timestamp,value\n")
	const n = 3 * 24 * 12 // three days
	want := map[int64]float64{}
	for i := range n {
		ts := start.Add(time.Duration(i) * 5 * time.Minute)
		v := math.Round(100 + 50*math.Sin(2*math.Pi*float64(i)/(24*12)) + float64(i%7))
		want[ts.Unix()] = v
		fmt.Fprintf(&b, "%d,%v\n", ts.Unix(), v)
	}
	tracePath := filepath.Join(dir, "at03.csv")
	policyPath := filepath.Join(dir, "p.yaml")
	if err := os.WriteFile(tracePath, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(policyPath, []byte(`apiVersion: kedastral.io/v1alpha1
kind: ForecastPolicy
metadata: {name: at03}
spec:
  targetRef: {name: api}
  step: 5m
  lookback: 1d
  horizon: 15m
  leadTime: 5m
  capacity: {targetPerPod: 20, max: 50}
  model: {type: seasonal}
  sources: [{name: rps, query: 'sum(rate(x[5m]))'}]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	out, code := kedastral(t, "backtest", "--no-progress", "--policy", policyPath, "--trace", tracePath, "--output", "csv")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	rows := recs[1:]
	if len(rows) != n {
		t.Fatalf("%d rows, want one per trace row (%d)", len(rows), n)
	}
	if rows[0][0] != strconv.FormatInt(start.Unix(), 10) {
		t.Errorf("first row at %s, want the trace's first timestamp %d (%s)", rows[0][0], start.Unix(), start.Format(time.RFC3339))
	}
	for i, r := range rows {
		ts, err := strconv.ParseInt(r[0], 10, 64)
		if err != nil {
			t.Fatalf("row %d: %v", i, err)
		}
		v, ok := want[ts]
		if !ok {
			t.Fatalf("row %d at %s: not a timestamp of the trace", i, time.Unix(ts, 0).UTC().Format(time.RFC3339))
		}
		if got, err := strconv.ParseFloat(r[1], 64); err != nil || got != v {
			t.Fatalf("row %d at %s: observed %q, the trace has %v", i, time.Unix(ts, 0).UTC().Format(time.RFC3339), r[1], v)
		}
	}
}
