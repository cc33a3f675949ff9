package promapi_test

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kedastral/kedastral/promapi"
)

// TestLimiter runs many chunked range queries at once from two clients
// sharing a Limiter of 2, through a proxy in front of a real Prometheus
// that counts the requests in flight: never more than 2, and every query
// still gets its whole result.
func TestLimiter(t *testing.T) {
	srv, start, end := historyServer(t)
	target, err := url.Parse(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	var inFlight, most, total atomic.Int64
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		total.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)

	lim := promapi.NewLimiter(2)
	var clients []*promapi.Client
	for range 2 {
		// 20 points a request: each query of 180 points is 9 requests.
		c, err := promapi.NewClient(promapi.ClientConfig{URL: proxy.URL, MaxPointsPerRequest: 20, Limiter: lim})
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	const queries = 12
	var wg sync.WaitGroup
	for i := range queries {
		wg.Go(func() {
			res, err := clients[i%2].QueryRange(t.Context(), "demo", start, end, 60e9)
			if err != nil {
				t.Error(err)
				return
			}
			if len(res) != 2 || len(res[0].Points) != 180 || len(res[1].Points) != 180 {
				t.Errorf("query %d: %d series", i, len(res))
			}
		})
	}
	wg.Wait()
	if total.Load() != queries*9 {
		t.Errorf("%d requests, want %d", total.Load(), queries*9)
	}
	if m := most.Load(); m > 2 || m < 1 {
		t.Errorf("at most %d requests in flight, want 2 (the limit)", m)
	}
	t.Logf("%d requests, at most %d in flight", total.Load(), most.Load())

	if promapi.NewLimiter(0) != nil {
		t.Error("NewLimiter(0) bounds requests")
	}
}
