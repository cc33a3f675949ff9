package scale

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kedastral/kedastral/test/testutil"
)

// TestShardedForecasters runs three forecaster processes with
// --shard.count=3 on one Prometheus and one fan-out policy of 60 series, and
// checks that every series is forecast and written by exactly one of them:
// the three status pages list disjoint series whose union is all 60,
// Prometheus holds each once with the right value, the per-policy
// kedastral_capacity_per_replica comes from one replica, and no write failed.
func TestShardedForecasters(t *testing.T) {
	const n, shards = 60, 3
	load := map[string]float64{}
	for i := range n {
		load[fmt.Sprintf("d%02d", i)] = float64(10 * (i%7 + 1))
	}
	b := startPrometheus(t, flatSeries(load))
	cfg := filepath.Join(t.TempDir(), "policies.yaml")
	if err := os.WriteFile(cfg, []byte(fleetPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	webs := make([]string, shards)
	for i := range shards {
		addrs, _ := testutil.StartKedastral(t, fmt.Sprintf("forecaster %d", i), 1, func(a []string) []string {
			return []string{"forecaster", "--config.file=" + cfg, "--prometheus.url=" + b.url,
				"--web.listen-address=" + a[0],
				"--shard.count=" + strconv.Itoa(shards), "--shard.index=" + strconv.Itoa(i)}
		})
		webs[i] = addrs[0]
	}

	testutil.Eventually(t, 60*time.Second, "every series in Prometheus", func() (string, bool) {
		v, body := testutil.Instant(t, b.url, `kedastral_desired_replicas{policy="fleet"}`)
		return body, len(v) == n
	})
	v, _ := testutil.Instant(t, b.url, `kedastral_desired_replicas{policy="fleet"}`)
	for _, s := range v {
		d := s.Metric["deployment"]
		if want := fmt.Sprint(int(load[d] / 10)); s.Value[1] != want {
			t.Errorf("desired replicas of %s = %v, want %s", d, s.Value[1], want)
		}
	}

	// Which replica forecasts what, from each one's status.
	owner := map[string]int{}
	for i, web := range webs {
		var got []string
		testutil.Eventually(t, 30*time.Second, fmt.Sprintf("forecaster %d's series", i), func() (string, bool) {
			_, body := testutil.Get(t, "http://"+web+"/api/v1/policies")
			var st struct {
				Data []struct {
					Name   string
					Series []struct {
						Labels map[string]string `json:"labels"`
					} `json:"series"`
				} `json:"data"`
			}
			if err := json.Unmarshal([]byte(body), &st); err != nil || len(st.Data) != 1 {
				return body, false
			}
			got = got[:0]
			for _, s := range st.Data[0].Series {
				got = append(got, s.Labels["deployment"])
			}
			return body, len(got) > 0
		})
		for _, d := range got {
			if prev, dup := owner[d]; dup {
				t.Errorf("series %s forecast by replicas %d and %d", d, prev, i)
			}
			owner[d] = i
		}
		t.Logf("replica %d forecasts %d series", i, len(got))
	}
	if len(owner) != n {
		t.Errorf("%d series forecast, want %d", len(owner), n)
	}

	// Exactly one replica writes the policy's capacity; no write failed
	// (a second writer of a series would fail with duplicate samples).
	if c, body := testutil.Instant(t, b.url, `count(count_over_time(kedastral_capacity_per_replica{policy="fleet"}[1m]))`); len(c) != 1 || c[0].Value[1] != "1" {
		t.Errorf("kedastral_capacity_per_replica series: %s", body)
	}
	failed := regexp.MustCompile(`(?m)^kedastral_remote_write_samples_failed_total (\S+)`)
	writers := 0
	for i, web := range webs {
		_, metrics := testutil.Get(t, "http://"+web+"/metrics")
		if m := failed.FindStringSubmatch(metrics); m == nil || m[1] != "0" {
			t.Errorf("forecaster %d: kedastral_remote_write_samples_failed_total %v", i, m)
		}
		if strings.Contains(metrics, `kedastral_forecaster_series{policy="fleet"}`) {
			writers++
		}
	}
	if writers != shards {
		t.Errorf("%d replicas report kedastral_forecaster_series, want %d", writers, shards)
	}
}
