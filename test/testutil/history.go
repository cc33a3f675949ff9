package testutil

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/kedastral/kedastral/promapi/promtest"
)

// AppLoad is the value of app_load in the history LoadHistory writes.
const AppLoad = 42.0

// LoadHistory writes three hours of app_load{job="api"} = AppLoad, a sample
// a minute up to now, into TSDB blocks in a new temporary directory for
// promtest.StartInT, and returns the directory. Without the Prometheus
// binaries it skips the test.
func LoadHistory(tb testing.TB) string {
	tb.Helper()
	promtest.RequireBinaries(tb)
	dir := tb.TempDir()
	now := time.Now().Truncate(time.Minute)
	s := promtest.Series{Name: "app_load", Labels: labels.FromStrings("job", "api")}
	for i := 180; i >= 0; i-- {
		s.Points = append(s.Points, promtest.Point{T: now.Add(-time.Duration(i) * time.Minute).UnixMilli(), V: AppLoad})
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := promtest.CreateBlocks(ctx, dir, []promtest.Series{s}); err != nil {
		tb.Fatal(err)
	}
	return dir
}
