// Package stores runs Kedastral's forecaster and scaler binaries against the
// distributed stores users run in front of Prometheus: Thanos (three Receive
// in a hashring with replication factor 2, a sidecar over the Prometheus
// holding the history, Thanos Query over all of them), all on loopback, with
// a receiver killed and restarted under load, and sharded forecasters. The
// thanos binary comes from `test/bins/build.sh thanos`.
package stores

import (
	"context"
	"os"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/kedastral/kedastral/promapi/promtest"
	"github.com/kedastral/kedastral/test/testutil"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testutil.RemoveKedastral()
	os.Exit(code)
}

// metric reads a counter or gauge without labels from a /metrics page.
func metric(t *testing.T, web, name string) float64 {
	t.Helper()
	_, page := testutil.Get(t, "http://"+web+"/metrics")
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("%s not on %s/metrics", name, web)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return v
}

// historyPrometheus starts a real Prometheus holding app_load{deployment=d}
// at load[d] every minute for the last 3h, with an external label for the
// Thanos sidecar.
func historyPrometheus(t *testing.T, load map[string]float64) *promtest.Server {
	t.Helper()
	promtest.RequireBinaries(t)
	now := time.Now().Truncate(time.Minute)
	var series []promtest.Series
	for d, v := range load {
		s := promtest.Series{Name: "app_load", Labels: labels.FromStrings("deployment", d)}
		for i := 180; i >= 0; i-- {
			s.Points = append(s.Points, promtest.Point{T: now.Add(-time.Duration(i) * time.Minute).UnixMilli(), V: v})
		}
		series = append(series, s)
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := promtest.CreateBlocks(ctx, dir, series); err != nil {
		t.Fatal(err)
	}
	return promtest.StartInT(t, dir, promtest.Options{ExternalLabels: map[string]string{"prometheus": "history"}})
}
