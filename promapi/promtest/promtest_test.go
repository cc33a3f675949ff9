package promtest_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/kedastral/kedastral/promapi"
	"github.com/kedastral/kedastral/promapi/promtest"
)

// TestOptions checks that rule files, scrape configs and the evaluation
// interval reach the server. (Prometheus applies discovered scrape targets
// only every 5s, too slow for a unit test, so the scrape config is checked in
// the loaded configuration rather than by its samples.)
func TestOptions(t *testing.T) {
	t.Parallel()
	rules := filepath.Join(t.TempDir(), "rules.yml")
	err := os.WriteFile(rules, []byte(`groups:
- name: test
  rules:
  - record: kedastral:test:one
    expr: vector(1)
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	srv := promtest.StartT(t, promtest.Options{
		EvaluationInterval: 100 * time.Millisecond,
		OutOfOrderWindow:   90 * time.Minute,
		ExternalLabels:     map[string]string{"site": "a"},
		RuleFiles:          []string{rules},
		ScrapeConfigs: `- job_name: somewhere
  static_configs:
  - targets: ['127.0.0.1:1']
`,
	})

	resp, err := http.Get(srv.URL() + "/api/v1/status/config")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"job_name: somewhere", "evaluation_interval: 100ms", "out_of_order_time_window: 1h30m", "site: a", rules} {
		if !strings.Contains(string(body), want) {
			t.Errorf("loaded configuration lacks %q:\n%s", want, body)
		}
	}

	c, err := promapi.NewClient(promapi.ClientConfig{URL: srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	deadline := time.Now().Add(3 * time.Second)
	for {
		got, err := c.Query(t.Context(), "kedastral:test:one", time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 1 && got[0].V == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("recording rule has no value after 3s: %+v", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestCreateBlocksEscaping loads label values that need escaping and
// millisecond timestamps and reads them back.
func TestCreateBlocksEscaping(t *testing.T) {
	t.Parallel()
	promtest.RequireBinaries(t)
	dir := t.TempDir()
	base := time.Now().Add(-time.Hour).Truncate(time.Second).UnixMilli()
	values := []string{`back\slash`, `double"quote`, "new\nline", "ünïcödé"}
	var series []promtest.Series
	for i, v := range values {
		series = append(series, promtest.Series{
			Name:   "escaped",
			Labels: labels.FromStrings("v", v, "i", fmt.Sprint(i)),
			Points: []promtest.Point{{T: base + 1001, V: float64(i)}, {T: base + 7, V: -0.5}},
		})
	}
	if err := promtest.CreateBlocks(t.Context(), dir, series); err != nil {
		t.Fatal(err)
	}
	srv := promtest.StartInT(t, dir, promtest.Options{})
	c, err := promapi.NewClient(promapi.ClientConfig{URL: srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	got, err := c.QueryRange(t.Context(), "escaped", time.UnixMilli(base+7), time.UnixMilli(base+1001), 994*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(values) {
		t.Fatalf("got %d series, want %d", len(got), len(values))
	}
	for i, s := range got {
		if v := s.Labels.Get("v"); v != values[i] {
			t.Errorf("series %d: label v = %q, want %q", i, v, values[i])
		}
		want := []promapi.Point{{T: base + 7, V: -0.5}, {T: base + 1001, V: float64(i)}}
		if fmt.Sprint(s.Points) != fmt.Sprint(want) {
			t.Errorf("series %d: points %v, want %v", i, s.Points, want)
		}
	}
}

func TestStartFailureShowsLog(t *testing.T) {
	t.Parallel()
	promtest.RequireBinaries(t)
	_, err := promtest.Start(t.Context(), t.TempDir(), promtest.Options{ExtraArgs: []string{"--no-such-flag"}})
	if err == nil {
		t.Fatal("Start succeeded with an unknown flag")
	}
	if !strings.Contains(err.Error(), "no-such-flag") {
		t.Errorf("error does not show the log: %v", err)
	}
}

func TestCreateBlocksRefusesDuplicates(t *testing.T) {
	t.Parallel()
	err := promtest.CreateBlocks(t.Context(), t.TempDir(), []promtest.Series{
		{Name: "dup", Points: []promtest.Point{{T: 5000, V: 1}, {T: 1000, V: 0}, {T: 5000, V: 2}}},
	})
	if err == nil || !strings.Contains(err.Error(), "dup: two points at timestamp 5000") {
		t.Errorf("got %v, want a duplicate timestamp error", err)
	}
}

// TestSelectedPrometheus checks that the server Start runs is the one
// $KEDASTRAL_PROMETHEUS_BIN selects: Prometheus 3 in the matrix's second run
// (make test-prom3), the one on PATH otherwise.
func TestSelectedPrometheus(t *testing.T) {
	t.Parallel()
	want, err := promtest.SelectedVersion()
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv(promtest.BinEnv) != "" && !strings.HasPrefix(want, "3.") {
		t.Errorf("%s=%s holds Prometheus %s, want 3.x", promtest.BinEnv, os.Getenv(promtest.BinEnv), want)
	}
	srv := promtest.StartT(t, promtest.Options{})
	got, err := srv.Version(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("server reports version %s, the selected binary %s", got, want)
	}
}
