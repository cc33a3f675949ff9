package stores

import (
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/kedastral/kedastral/test/testutil"
)

// TestThanosShardedForecasters runs two forecasters with --shard.count=2 on
// Thanos, each writing to another receiver of the hashring, and checks that
// every series is written by exactly one of them: their status pages list
// disjoint series whose union is the fleet, Thanos Query holds each
// kedastral_desired_replicas series once with its value, and no write failed.
func TestThanosShardedForecasters(t *testing.T) {
	prom := historyPrometheus(t, fleet)
	th := startThanos(t, 3, prom)
	policyFile := writePolicy(t)
	const shards = 2
	webs := make([]string, shards)
	for i := range shards {
		addrs, _ := testutil.StartKedastral(t, fmt.Sprintf("forecaster %d", i), 1, func(a []string) []string {
			return []string{"forecaster", "--config.file=" + policyFile,
				"--prometheus.url=" + th.queryURL, "--remote-write.url=" + th.receivers[i].RemoteWriteURL(),
				"--web.listen-address=" + a[0],
				"--shard.count=" + strconv.Itoa(shards), "--shard.index=" + strconv.Itoa(i)}
		})
		webs[i] = addrs[0]
	}
	testutil.Eventually(t, 60*time.Second, "kedastral_desired_replicas of every deployment through thanos query", func() (string, bool) {
		v, body := testutil.Instant(t, th.queryURL, `kedastral_desired_replicas{policy="fleet"}`)
		return body, len(v) == len(fleet)
	})
	v, body := testutil.Instant(t, th.queryURL, `kedastral_desired_replicas{policy="fleet"}`)
	seen := map[string]bool{}
	for _, s := range v {
		d := s.Metric["deployment"]
		if seen[d] {
			t.Errorf("deployment %s has two kedastral_desired_replicas series: %s", d, body)
		}
		seen[d] = true
		if want := fmt.Sprint(need(fleet[d])); s.Value[1] != want {
			t.Errorf("desired replicas of %s = %v, want %s", d, s.Value[1], want)
		}
	}

	owner := map[string]int{}
	for i, web := range webs {
		var got []string
		testutil.Eventually(t, 30*time.Second, fmt.Sprintf("forecaster %d's series", i), func() (string, bool) {
			_, body := testutil.Get(t, "http://"+web+"/api/v1/policies")
			var st struct {
				Data []struct {
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
				t.Errorf("series %s forecast by forecasters %d and %d", d, prev, i)
			}
			owner[d] = i
		}
		t.Logf("forecaster %d forecasts %d series", i, len(got))
		if f := metric(t, web, "kedastral_remote_write_samples_failed_total"); f != 0 {
			t.Errorf("forecaster %d: kedastral_remote_write_samples_failed_total %v", i, f)
		}
	}
	if len(owner) != len(fleet) {
		t.Errorf("%d series forecast, want %d", len(owner), len(fleet))
	}
	// Deduplicated, each kedastral series has one sample per time stamp:
	// two writers of one series would show as two samples close together
	// or as a second series.
	for _, s := range th.raw(t, `kedastral_desired_replicas{policy="fleet"}`, 2*time.Minute, true) {
		ts := stamps(t, s)
		for j := 1; j < len(ts); j++ {
			if ts[j]-ts[j-1] < 500 {
				t.Errorf("series %s: samples %d ms apart, two writers?", seriesKey(s.Metric), ts[j]-ts[j-1])
				break
			}
		}
	}
}
