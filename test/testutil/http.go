package testutil

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// Get fetches u and returns its status code and body; on a transport error,
// code 0 and the error's text.
func Get(tb testing.TB, u string) (int, string) {
	tb.Helper()
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(u)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// Vector is an instant query's result: labels and value per series.
type Vector []struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// Instant runs an instant query against a Prometheus-compatible API at
// base; on failure the result is nil and the string says why.
func Instant(tb testing.TB, base, q string) (Vector, string) {
	tb.Helper()
	_, body := Get(tb, base+"/api/v1/query?query="+url.QueryEscape(q))
	var r struct {
		Status string `json:"status"`
		Data   struct {
			Result Vector `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil || r.Status != "success" {
		return nil, fmt.Sprintf("query %s: %v: %s", q, err, body)
	}
	return r.Data.Result, body
}

// StartKedastral starts the kedastral binary with the arguments args builds
// from n free loopback addresses, again on new ones when another process
// took one (at most 3 tries).
func StartKedastral(tb testing.TB, name string, n int, args func(addrs []string) []string) ([]string, *Proc) {
	tb.Helper()
	for try := 1; ; try++ {
		addrs := make([]string, n)
		for i := range addrs {
			addrs[i] = FreeAddr(tb)
		}
		p := Start(tb, ProcOptions{Name: name}, Kedastral(tb), args(addrs)...)
		select {
		case <-p.Done():
			if strings.Contains(p.Logs.String(), "address already in use") && try < 3 {
				continue
			}
			tb.Fatalf("%s exited at start:\n%s", name, p.Logs.String())
		case <-time.After(2 * time.Second):
		}
		return addrs, p
	}
}
