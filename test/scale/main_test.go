// Package scale holds Kedastral's scale-out tests, run against the built
// kedastral binary: forecaster replicas sharing the series of a policy with
// --shard.count on one Prometheus, and the forecaster and the scaler end to
// end on each Prometheus-compatible backend (Prometheus, VictoriaMetrics).
package scale

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kedastral/kedastral/test/testutil"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testutil.RemoveKedastral()
	os.Exit(code)
}

// startOnFreePorts starts the kedastral binary with the arguments args
// builds from n free loopback addresses, and starts it again on new ones
// when another process took one of them between the test's pick and the
// binary's bind (at most 3 tries). It returns the addresses in use and the
// process.
func startOnFreePorts(t *testing.T, name string, n int, args func(addrs []string) []string) ([]string, *testutil.Proc) {
	t.Helper()
	for try := 1; ; try++ {
		addrs := make([]string, n)
		for i := range addrs {
			addrs[i] = testutil.FreeAddr(t)
		}
		p := testutil.Start(t, testutil.ProcOptions{Name: name}, testutil.Kedastral(t), args(addrs)...)
		select {
		case <-p.Done():
			if strings.Contains(p.Logs.String(), "address already in use") && try < 3 {
				continue
			}
			t.Fatalf("%s exited at start:\n%s", name, p.Logs.String())
		case <-time.After(2 * time.Second):
		}
		return addrs, p
	}
}

func get(t *testing.T, u string) (int, string) {
	t.Helper()
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(u)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// vector is an instant query's result: labels and value per series.
type vector []struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// instant runs an instant query against a Prometheus-compatible API.
func instant(t *testing.T, base, q string) (vector, string) {
	t.Helper()
	_, body := get(t, base+"/api/v1/query?query="+url.QueryEscape(q))
	var r struct {
		Status string `json:"status"`
		Data   struct {
			Result vector `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil || r.Status != "success" {
		return nil, fmt.Sprintf("query %s: %v: %s", q, err, body)
	}
	return r.Data.Result, body
}
