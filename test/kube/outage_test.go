package kube_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kedastral/kedastral/promapi/promtest"
	"github.com/kedastral/kedastral/test/testutil"
)

// TestAPIServerOutage stops the API server under a running forecaster (on a
// cluster of its own): the forecaster keeps forecasting the policies it
// has, stays up, and logs a failed status round once, not once per policy.
func TestAPIServerOutage(t *testing.T) {
	getCluster(t) // skips or fails without the binaries, like the others
	c, err := startCluster(binDir(), filepath.Join(t.TempDir(), "outage"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.stop()
	prom := promtest.StartInT(t, testutil.LoadHistory(t), promtest.Options{})
	ns := c.namespace(t, "outage")
	const n = 5
	for i := range n {
		c.applyYAML(t, policyYAML(fmt.Sprintf("p%d", i), ns, "", "", ""))
	}
	// Statuses refreshed every second, so each round has writes to try.
	logs := startForecaster(t, c, prom.URL(), "--kubernetes.status-refresh=1s")
	for i := range n {
		testutil.Eventually(t, 60*time.Second, fmt.Sprintf("p%d Ready", i), func() (string, bool) {
			st := c.getPolicy(t, ns, fmt.Sprintf("p%d", i))
			s, _, _ := condition(st, "Ready")
			return statusString(st), s == "True"
		})
	}
	last := func() float64 {
		v := promQuery(t, prom.URL(), `max(timestamp(kedastral_desired_replicas{policy="p0"}))`)
		if len(v) == 0 {
			return 0
		}
		return v[0].value
	}

	c.procs[len(c.procs)-1].stop() // kube-apiserver
	before := last()
	warnings := strings.Count(logs.String(), `msg="writing status"`)
	time.Sleep(5 * time.Second)
	if after := last(); after <= before {
		t.Errorf("no forecast written while the API server was down: last sample at %v, then %v", before, after)
	}
	// The status rounds every 300ms find no server: about one warning a
	// round (17 in 5s), not one per policy and round (5 times as many).
	limit := 2 * int(5*time.Second/(300*time.Millisecond))
	if w := strings.Count(logs.String(), `msg="writing status"`) - warnings; w > limit {
		t.Errorf("%d status warnings in 5s for %d policies, want about one a round (at most %d)", w, n, limit)
	} else {
		t.Logf("%d status warnings in 5s of outage with %d policies", w, n)
	}
}
