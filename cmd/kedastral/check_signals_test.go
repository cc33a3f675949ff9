package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckConfigSignals: check config validates several sources, events and
// readyReplicasQuery, and names the field and the reason when they are wrong.
func TestCheckConfigSignals(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	policy := func(name, spec string) string {
		return `apiVersion: kedastral.io/v1alpha1
kind: ForecastPolicy
metadata: {name: ` + name + `}
spec:
  targetRef: {name: a}
  horizon: 30m
  leadTime: 5m
  capacity: {targetPerPod: 10, max: 50}
` + spec
	}
	content := policy("no-join", `  sources:
    - {name: rps, query: 'sum by (deployment) (rate(x[1m]))'}
    - {name: queue, query: 'sum by (deployment, pod) (y)'}
`) + "---\n" + policy("contradiction", `  sources: [{name: rps, query: 'sum(x)'}]
  events:
    - {name: sale, start: '2026-11-27T00:00:00Z', end: '2026-11-28T00:00:00Z', minReplicas: 20}
    - {name: launch, start: '2026-11-27T18:00:00Z', end: '2026-11-27T20:00:00Z', minReplicas: 30}
`) + "---\n" + policy("bad-ready", `  sources: [{name: rps, query: 'sum(x)'}]
  readyReplicasQuery: 'sum(kube_deployment_status_replicas_available'
`) + "---\n" + policy("bad-cron", `  sources: [{name: rps, query: 'sum(x)'}]
  events: [{name: nightly, schedule: '0 25 * * *', duration: 1h, scale: 2}]
`)
	if err := os.WriteFile(bad, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	example := filepath.Join("..", "..", "docs", "examples", "signals-policy.yaml")

	for _, tc := range []struct {
		name     string
		file     string
		wantCode int
		want     []string
	}{
		{"the documented example", example, 0, []string{"SUCCESS: 1 ForecastPolicy, 0 DataSource found"}},
		{"errors named", bad, 1, []string{
			`ForecastPolicy "no-join": spec.sources[1].query: returns series labelled by (deployment, pod) but sources[0] ("rps") by (deployment): sources are joined on the same labels; only this one has pod`,
			`ForecastPolicy "contradiction": spec.events[1]: event "launch" overlaps event "sale" (both active from 2026-11-27T18:00:00Z to 2026-11-27T20:00:00Z) with contradictory minReplicas 20 and 30`,
			`ForecastPolicy "bad-ready": spec.readyReplicasQuery: invalid PromQL`,
			`ForecastPolicy "bad-cron": spec.events[0].schedule: invalid cron schedule "0 25 * * *"`,
			"FAILED: 4 error(s)",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, code := kedastral(t, "check", "config", tc.file)
			if code != tc.wantCode {
				t.Errorf("exit code %d, want %d", code, tc.wantCode)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}
