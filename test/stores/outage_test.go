package stores

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/kedastral/kedastral/proto"
	"github.com/kedastral/kedastral/test/testutil"
)

const fleetPolicy = `apiVersion: kedastral.io/v1alpha1
kind: ForecastPolicy
metadata: {name: fleet}
spec:
  targetRef: {name: fleet}
  horizon: 30m
  leadTime: 5m
  interval: 1s
  capacity: {targetPerPod: 10, min: 1, max: 50}
  sources: [{name: load, query: 'sum by (deployment) (app_load)'}]
`

func writePolicy(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "policies.yaml")
	if err := os.WriteFile(p, []byte(fleetPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// fleet is the demand of each deployment.
var fleet = map[string]float64{"api": 42, "web": 85, "worker": 120, "cart": 30, "search": 64, "mail": 17}

// need is the replicas a load needs at 10 per pod.
func need(load float64) int64 { return int64(math.Ceil(load / 10)) }

// TestThanosReceiverOutage runs the forecaster and the scaler on Thanos:
// the forecaster reads the history from Prometheus through its sidecar and
// Thanos Query and remote-writes to a receiver of a hashring of three with
// replication factor 2; the scaler reads kedastral_desired_replicas through
// Thanos Query. One receiver is killed mid-run and restarted: the forecaster
// keeps writing (a write needs one of the two replicas), the scaler keeps
// answering fresh forecasts, every sample the forecaster wrote is queryable
// once afterwards (deduplicated along the replica label), and the restarted
// receiver stores its share again.
func TestThanosReceiverOutage(t *testing.T) {
	prom := historyPrometheus(t, fleet)
	th := startThanos(t, 3, prom)
	start := time.Now()

	policyFile := writePolicy(t)
	fcAddrs, fc := testutil.StartKedastral(t, "forecaster", 1, func(a []string) []string {
		return []string{"forecaster", "--config.file=" + policyFile,
			"--prometheus.url=" + th.queryURL, "--remote-write.url=" + th.receivers[0].RemoteWriteURL(),
			"--web.listen-address=" + a[0]}
	})
	fcWeb := fcAddrs[0]
	testutil.Eventually(t, 60*time.Second, "kedastral_desired_replicas of every deployment through thanos query", func() (string, bool) {
		v, body := testutil.Instant(t, th.queryURL, `kedastral_desired_replicas{policy="fleet"}`)
		if len(v) != len(fleet) {
			return body, false
		}
		for _, s := range v {
			if fmt.Sprint(s.Value[1]) != fmt.Sprint(need(fleet[s.Metric["deployment"]])) {
				return body, false
			}
		}
		return body, true
	})

	scAddrs, _ := testutil.StartKedastral(t, "scaler", 2, func(a []string) []string {
		return []string{"scaler", "--prometheus.url=" + th.queryURL,
			"--grpc.listen-address=" + a[0], "--web.listen-address=" + a[1], "--cache.ttl=0s"}
	})
	testutil.Eventually(t, 30*time.Second, "ready scaler", func() (string, bool) {
		code, body := testutil.Get(t, "http://"+scAddrs[1]+"/-/ready")
		return body, code == 200
	})
	conn, err := grpc.NewClient(scAddrs[0], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := pb.NewExternalScalerClient(conn)

	// KEDA's calls, every 200ms for every deployment, until the receiver is
	// back: each must answer the forecast, never stale.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var bad []string
	calls := 0
	wg.Go(func() {
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			for d, load := range fleet {
				ref := &pb.ScaledObjectRef{Name: d, Namespace: "default", ScalerMetadata: map[string]string{
					"policy": "fleet", "matchLabels": "deployment=" + d, "maxForecastAge": "10s"}}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				resp, err := client.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: ref})
				cancel()
				mu.Lock()
				calls++
				switch {
				case err != nil:
					bad = append(bad, fmt.Sprintf("%s %s: %v", time.Now().Format(time.StampMilli), d, err))
				case resp.MetricValues[0].MetricValue != need(load):
					bad = append(bad, fmt.Sprintf("%s %s: %d, want %d", time.Now().Format(time.StampMilli), d, resp.MetricValues[0].MetricValue, need(load)))
				}
				mu.Unlock()
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	})

	// The outage: r2 killed for 10s, then started again on its ports and TSDB.
	time.Sleep(3 * time.Second)
	victim := th.receivers[2]
	if err := victim.proc.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	time.Sleep(10 * time.Second)
	th.start(t, victim)
	restarted := time.Now()
	// It catches up: the other receivers forward its share to it again
	// once their backoff for it ends, and Query reads it again.
	testutil.Eventually(t, 90*time.Second, "samples on "+victim.name+" after its restart", func() (string, bool) {
		for _, s := range th.raw(t, `kedastral_desired_replicas{policy="fleet"}`, 30*time.Second, false) {
			if ts := stamps(t, s); s.Metric[replicaLabel] == victim.name && len(ts) > 0 && ts[len(ts)-1] > restarted.UnixMilli() {
				return "", true
			}
		}
		return "none", false
	})
	t.Logf("%s stores again %s after its restart", victim.name, time.Since(restarted).Round(time.Second))
	close(stop)
	wg.Wait()
	t.Logf("%d GetMetrics calls over the outage", calls)
	if len(bad) > 0 {
		t.Errorf("%d of %d GetMetrics answers were not the fresh forecast; first: %v", len(bad), calls, bad[:min(len(bad), 5)])
	}

	// No write failed, none is waiting for a retry.
	if f := metric(t, fcWeb, "kedastral_remote_write_samples_failed_total"); f != 0 {
		t.Errorf("kedastral_remote_write_samples_failed_total %v, want 0", f)
	}
	sentBefore := metric(t, fcWeb, "kedastral_remote_write_samples_total")
	fc.Stop()
	end := time.Now()

	// Every sample written is stored once: deduplicated, each series has
	// strictly increasing time stamps, and they are the union of its
	// replicas' time stamps; the total is at least what the forecaster
	// counted as written before it stopped (it may write a cycle more).
	window := end.Sub(start) + time.Minute
	sel := `{__name__=~"kedastral_.+", policy="fleet"}`
	deduped := th.raw(t, sel, window, true)
	replicas := th.raw(t, sel, window, false)
	// copies[series][time stamp] is how many receivers hold that sample.
	copies := map[string]map[int64]int{}
	r2After := 0
	for _, s := range replicas {
		k := seriesKey(s.Metric)
		if copies[k] == nil {
			copies[k] = map[int64]int{}
		}
		for _, ts := range stamps(t, s) {
			copies[k][ts]++
			if s.Metric[replicaLabel] == victim.name && ts > restarted.UnixMilli() {
				r2After++
			}
		}
	}
	total := 0
	for _, s := range deduped {
		k := seriesKey(s.Metric)
		ts := stamps(t, s)
		if !slices.IsSorted(ts) || len(slices.Compact(slices.Clone(ts))) != len(ts) {
			t.Errorf("series %s has duplicate time stamps after deduplication", k)
		}
		if len(ts) != len(copies[k]) {
			t.Errorf("series %s: %d samples deduplicated, its replicas hold %d time stamps", k, len(ts), len(copies[k]))
		}
		total += len(ts)
	}
	if len(deduped) != len(copies) {
		t.Errorf("%d series deduplicated, %d in the replicas", len(deduped), len(copies))
	}
	if float64(total) < sentBefore {
		t.Errorf("%d samples stored, the forecaster wrote %v: some were lost", total, sentBefore)
	}
	// Replication worked before the kill (two copies), and the outage
	// mattered: some samples written during it have one copy only.
	two, one := 0, 0
	for _, byTS := range copies {
		for ts, n := range byTS {
			switch {
			case ts < killed.UnixMilli() && n == 2:
				two++
			case ts > killed.UnixMilli()+1000 && ts < restarted.UnixMilli() && n == 1:
				one++
			case n > 2:
				t.Errorf("a sample at %d has %d copies with replication factor 2", ts, n)
			}
		}
	}
	t.Logf("%d series, %d samples deduplicated (forecaster: %v written); before the kill %d samples in two copies, during the outage %d in one; %d samples on %s after its restart",
		len(deduped), total, sentBefore, two, one, r2After, victim.name)
	if two == 0 || one == 0 {
		t.Errorf("replication not seen: %d samples with two copies before the kill, %d with one during the outage", two, one)
	}
	if r2After == 0 {
		t.Errorf("receiver %s stored nothing after its restart", victim.name)
	}
}
