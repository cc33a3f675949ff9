package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kedastral/kedastral/promapi/promtest"
)

// TestDemo runs `make demo` to its first forecast, so the README's first
// command stays true.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("the demo builds the binary and waits for a cycle")
	}
	promtest.RequireBinaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, &out, true); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	got := out.String()
	for _, re := range []string{
		// One line per phase, so that a slow step never looks hung.
		`(?m)^==> building kedastral$`,
		`(?m)^==> loading 8 days of history: \d+ points`,
		`(?m)^> kedastral_desired_replicas\n  \{job="demo-api", policy="api-forecast-policy"\}  \d+$`,
		`ahead="30m", job="demo-api", policy="api-forecast-policy", quantile="0.85"\}  \d+`,
		`policy api-forecast-policy, model baseline, 1 series, desired replicas \d+`,
		`GetMetricSpec: metric kedastral-\S+, target 1 per replica \(AverageValue\)`,
		`IsActive:      true`,
	} {
		if !regexp.MustCompile(re).MatchString(got) {
			t.Errorf("demo output does not match %s:\n%s", re, got)
		}
	}
	// What KEDA gets is what the forecaster wrote.
	desired := regexp.MustCompile(`(?m)^> kedastral_desired_replicas\n  \S+ \S+  (\d+)$`).FindStringSubmatch(got)
	metric := regexp.MustCompile(`(?m)^GetMetrics: +(\d+)$`).FindStringSubmatch(got)
	if desired == nil || metric == nil || desired[1] != metric[1] {
		t.Errorf("the scaler answered %v, Prometheus holds %v", metric, desired)
	}
	if strings.Contains(got, "(no data)") {
		t.Errorf("a query returned no data:\n%s", got)
	}
}
