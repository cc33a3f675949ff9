// Package stores runs Kedastral's forecaster and scaler binaries against the
// distributed stores users run in front of Prometheus: Thanos (three Receive
// in a hashring with replication factor 2, a sidecar over the Prometheus
// holding the history, Thanos Query over all of them), all on loopback, with
// a receiver killed and restarted under load, and sharded forecasters. The
// thanos binary comes from `test/bins/build.sh thanos`.
package stores

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
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

// startKedastral starts the kedastral binary with the arguments args builds
// from n free loopback addresses, again on new ones when another process
// took one (at most 3 tries).
func startKedastral(t *testing.T, name string, n int, args func(addrs []string) []string) ([]string, *testutil.Proc) {
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

// metric reads a counter or gauge without labels from a /metrics page.
func metric(t *testing.T, web, name string) float64 {
	t.Helper()
	_, page := get(t, "http://"+web+"/metrics")
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
