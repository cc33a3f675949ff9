package promapi_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/kedastral/kedastral/promapi"
	"github.com/kedastral/kedastral/promapi/promtest"
)

// historyServer loads 180 one-minute points of demo{job="a"} (0, 1, 2, …) and
// demo{job="b"} (1000, 1000.5, …) ending ten minutes ago and serves them.
func historyServer(t *testing.T) (srv *promtest.Server, start, end time.Time) {
	t.Helper()
	promtest.RequireBinaries(t)
	end = minute(10 * time.Minute)
	start = end.Add(-179 * time.Minute)
	var a, b []promtest.Point
	for i := range 180 {
		ts := start.Add(time.Duration(i) * time.Minute).UnixMilli()
		a = append(a, promtest.Point{T: ts, V: float64(i)})
		b = append(b, promtest.Point{T: ts, V: 1000 + float64(i)/2})
	}
	dir := t.TempDir()
	err := promtest.CreateBlocks(t.Context(), dir, []promtest.Series{
		{Name: "demo", Labels: labels.FromStrings("job", "a"), Points: a},
		{Name: "demo", Labels: labels.FromStrings("job", "b"), Points: b},
	})
	if err != nil {
		t.Fatal(err)
	}
	return promtest.StartInT(t, dir, promtest.Options{}), start, end
}

func wantPoints(start time.Time, n int, v func(i int) float64) []promapi.Point {
	out := make([]promapi.Point, n)
	for i := range out {
		out[i] = promapi.Point{T: start.Add(time.Duration(i) * time.Minute).UnixMilli(), V: v(i)}
	}
	return out
}

func comparePoints(t *testing.T, got, want []promapi.Point) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d points, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("point %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestQueryRangeAgainstPrometheus(t *testing.T) {
	t.Parallel()
	srv, start, end := historyServer(t)
	a := func(i int) float64 { return float64(i) }
	b := func(i int) float64 { return 1000 + float64(i)/2 }

	tests := []struct {
		name         string
		query        string
		maxPoints    int
		wantRequests int
		wantLabels   []labels.Labels
		want         [][]promapi.Point
	}{
		{
			name: "one series in four chunks", query: `demo{job="a"}`, maxPoints: 50, wantRequests: 4,
			wantLabels: []labels.Labels{labels.FromStrings("job", "a")},
			want:       [][]promapi.Point{wantPoints(start, 180, a)},
		},
		{
			name: "ragged last chunk", query: `demo{job="a"}`, maxPoints: 7, wantRequests: 26,
			wantLabels: []labels.Labels{labels.FromStrings("job", "a")},
			want:       [][]promapi.Point{wantPoints(start, 180, a)},
		},
		{
			name: "one request when the range fits", query: `demo{job="a"}`, maxPoints: 180, wantRequests: 1,
			wantLabels: []labels.Labels{labels.FromStrings("job", "a")},
			want:       [][]promapi.Point{wantPoints(start, 180, a)},
		},
		{
			name: "fan-out to two series, __name__ dropped", query: `demo`, maxPoints: 60, wantRequests: 3,
			wantLabels: []labels.Labels{labels.FromStrings("job", "a"), labels.FromStrings("job", "b")},
			want:       [][]promapi.Point{wantPoints(start, 180, a), wantPoints(start, 180, b)},
		},
		{
			name: "aggregation keeps its labels", query: `sum by (job) (demo)`, maxPoints: 60, wantRequests: 3,
			wantLabels: []labels.Labels{labels.FromStrings("job", "a"), labels.FromStrings("job", "b")},
			want:       [][]promapi.Point{wantPoints(start, 180, a), wantPoints(start, 180, b)},
		},
		{
			name: "empty labels", query: `sum(demo)`, maxPoints: 100, wantRequests: 2,
			wantLabels: []labels.Labels{labels.EmptyLabels()},
			want:       [][]promapi.Point{wantPoints(start, 180, func(i int) float64 { return a(i) + b(i) })},
		},
		{
			name: "no data", query: `nonexistent_metric`, maxPoints: 100, wantRequests: 2,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var requests atomic.Int32
			c := newClient(t, promapi.ClientConfig{
				URL:                 srv.URL(),
				MaxPointsPerRequest: tc.maxPoints,
				ObserveRequest: func(endpoint string, _ time.Duration, err error) {
					if endpoint != "query_range" || err != nil {
						t.Errorf("observed %s request, err %v", endpoint, err)
					}
					requests.Add(1)
				},
			})
			got, err := c.QueryRange(t.Context(), tc.query, start, end, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if int(requests.Load()) != tc.wantRequests {
				t.Errorf("made %d requests, want %d", requests.Load(), tc.wantRequests)
			}
			if len(got) != len(tc.wantLabels) {
				t.Fatalf("got %d series, want %d: %v", len(got), len(tc.wantLabels), got)
			}
			for i, s := range got {
				if !labels.Equal(s.Labels, tc.wantLabels[i]) {
					t.Errorf("series %d labels %s, want %s", i, s.Labels, tc.wantLabels[i])
				}
				comparePoints(t, s.Points, tc.want[i])
			}
		})
	}

	t.Run("chunked equals unchunked off the data grid", func(t *testing.T) {
		// Evaluation steps between the samples, a step that does not divide
		// the range, a range beyond the data: the chunks must still add up
		// to exactly what one request returns.
		qStart, qEnd, step := start.Add(-7*time.Minute+1500*time.Millisecond), end.Add(13*time.Minute), 97*time.Second
		whole, err := newClient(t, promapi.ClientConfig{URL: srv.URL()}).QueryRange(t.Context(), "demo", qStart, qEnd, step)
		if err != nil {
			t.Fatal(err)
		}
		chunked, err := newClient(t, promapi.ClientConfig{URL: srv.URL(), MaxPointsPerRequest: 9}).QueryRange(t.Context(), "demo", qStart, qEnd, step)
		if err != nil {
			t.Fatal(err)
		}
		if len(whole) != 2 || len(chunked) != 2 {
			t.Fatalf("got %d and %d series, want 2", len(whole), len(chunked))
		}
		for i := range whole {
			comparePoints(t, chunked[i].Points, whole[i].Points)
		}
	})
}

func TestQueryRangeErrors(t *testing.T) {
	t.Parallel()
	srv := promtest.StartT(t, promtest.Options{})
	c := newClient(t, promapi.ClientConfig{URL: srv.URL()})
	now := time.Now()

	t.Run("bad PromQL", func(t *testing.T) {
		const q = `sum by (job demo`
		_, err := c.QueryRange(t.Context(), q, now.Add(-time.Hour), now, time.Minute)
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%q", q)) {
			t.Fatalf("error %v does not name the query", err)
		}
		ae, ok := errors.AsType[*v1.Error](err)
		if !ok || ae.Type != v1.ErrBadData {
			t.Errorf("error %v is not a v1 bad_data error", err)
		}
		if se, ok := errors.AsType[*promapi.StatusError](err); !ok || se.StatusCode != http.StatusBadRequest {
			t.Errorf("error %v does not carry status 400", err)
		}
		if promapi.IsRetryable(err) {
			t.Errorf("bad query reported retryable: %v", err)
		}
	})
	t.Run("too many points without chunking", func(t *testing.T) {
		// Prometheus' own limit, reached only because the client is told
		// to ask for more points than Prometheus serves per request.
		big := newClient(t, promapi.ClientConfig{URL: srv.URL(), MaxPointsPerRequest: 20000})
		_, err := big.QueryRange(t.Context(), "up", now.Add(-12000*time.Second), now, time.Second)
		if err == nil || !strings.Contains(err.Error(), "11,000 points") || promapi.IsRetryable(err) {
			t.Fatalf("got %v, want a non-retryable resolution error", err)
		}
		// The same range, chunked by default.
		if _, err := c.QueryRange(t.Context(), "up", now.Add(-12000*time.Second), now, time.Second); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("bad arguments", func(t *testing.T) {
		for _, tc := range []struct {
			name       string
			start, end time.Time
			step       time.Duration
		}{
			{"end before start", now, now.Add(-time.Minute), time.Second},
			{"zero step", now.Add(-time.Minute), now, 0},
			{"sub-millisecond step", now.Add(-time.Minute), now, 1500 * time.Microsecond},
		} {
			if _, err := c.QueryRange(t.Context(), "up", tc.start, tc.end, tc.step); err == nil || !strings.Contains(err.Error(), `"up"`) {
				t.Errorf("%s: got %v, want an error naming the query", tc.name, err)
			}
		}
	})
}

func TestQueryInstant(t *testing.T) {
	t.Parallel()
	srv := promtest.StartT(t, promtest.Options{})
	c := newClient(t, promapi.ClientConfig{URL: srv.URL()})
	ts := time.UnixMilli(1_700_000_000_123)

	got, err := c.Query(t.Context(), `label_replace(vector(2.5), "job", "x", "", "")`, ts)
	if err != nil {
		t.Fatal(err)
	}
	want := []promapi.Sample{{Labels: labels.FromStrings("job", "x"), T: ts.UnixMilli(), V: 2.5}}
	if len(got) != 1 || !labels.Equal(got[0].Labels, want[0].Labels) || got[0].T != want[0].T || got[0].V != want[0].V {
		t.Errorf("vector: got %+v, want %+v", got, want)
	}

	got, err = c.Query(t.Context(), `scalar(vector(4))`, ts)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !got[0].Labels.IsEmpty() || got[0].V != 4 || got[0].T != ts.UnixMilli() {
		t.Errorf("scalar: got %+v", got)
	}

	if _, err := c.Query(t.Context(), `up[5m]`, ts); err == nil || !strings.Contains(err.Error(), "want vector or scalar") {
		t.Errorf("range vector: got %v, want a result type error", err)
	}
}

func TestQueryUnreachable(t *testing.T) {
	t.Parallel()
	c := newClient(t, promapi.ClientConfig{URL: closedURL(t), Timeout: 2 * time.Second})
	_, err := c.QueryRange(t.Context(), "up", time.Now().Add(-time.Hour), time.Now(), time.Minute)
	if err == nil || !strings.Contains(err.Error(), `"up"`) {
		t.Fatalf("got %v, want an error naming the query", err)
	}
	if !promapi.IsRetryable(err) || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("connection refused not retryable: %v", err)
	}
}

func TestQueryHTTPStatus(t *testing.T) {
	t.Parallel()
	// Proxies and overloaded servers answer with statuses a healthy
	// Prometheus cannot be made to return on demand, hence a fake.
	tests := []struct {
		status    int
		wantType  v1.ErrorType
		retryable bool
	}{
		{http.StatusServiceUnavailable, v1.ErrServer, true},
		{http.StatusBadGateway, v1.ErrServer, true},
		{http.StatusTooManyRequests, v1.ErrClient, true},
		{http.StatusNotFound, v1.ErrClient, false},
		{http.StatusUnauthorized, v1.ErrClient, false},
	}
	for _, tc := range tests {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				http.Error(w, "nope", tc.status)
			}))
			t.Cleanup(srv.Close)
			c := newClient(t, promapi.ClientConfig{URL: srv.URL})
			_, err := c.Query(t.Context(), "up", time.Time{})
			ae, ok := errors.AsType[*v1.Error](err)
			if !ok || ae.Type != tc.wantType {
				t.Fatalf("got %v, want a %s error", err, tc.wantType)
			}
			if se, ok := errors.AsType[*promapi.StatusError](err); !ok || se.StatusCode != tc.status {
				t.Errorf("error %v does not carry status %d", err, tc.status)
			}
			if got := promapi.IsRetryable(err); got != tc.retryable {
				t.Errorf("IsRetryable = %t, want %t for %v", got, tc.retryable, err)
			}
		})
	}

	t.Run("timeout", func(t *testing.T) {
		t.Parallel()
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}))
		t.Cleanup(srv.Close)
		t.Cleanup(func() { close(release) })
		c := newClient(t, promapi.ClientConfig{URL: srv.URL, Timeout: 200 * time.Millisecond})
		begin := time.Now()
		_, err := c.Query(t.Context(), "up", time.Time{})
		if err == nil || !promapi.IsRetryable(err) || time.Since(begin) > 2*time.Second {
			t.Errorf("got %v after %s, want a retryable timeout after 200ms", err, time.Since(begin))
		}
	})
}

func TestNewClientValidation(t *testing.T) {
	for _, u := range []string{"", "prometheus:9090", "ftp://prometheus", "http://", "http://user:secret@ho st"} {
		_, err := promapi.NewClient(promapi.ClientConfig{URL: u})
		if err == nil {
			t.Errorf("NewClient(%q) accepted", u)
			continue
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("error leaks the password: %v", err)
		}
	}
	if _, err := promapi.NewWriter(promapi.WriterConfig{URL: "http://x/api/v1/write", Protocol: "3.0"}); err == nil {
		t.Error("NewWriter accepted protocol 3.0")
	}
}

func TestIsRetryable(t *testing.T) {
	urlErr := &url.Error{Op: "Post", URL: "http://x", Err: syscall.ECONNREFUSED}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"connection refused", fmt.Errorf("query range %q: %w", "up", urlErr), true},
		{"deadline", context.DeadlineExceeded, true},
		{"canceled", fmt.Errorf("x: %w", context.Canceled), false},
		{"bad data", &v1.Error{Type: v1.ErrBadData}, false},
		{"execution", &v1.Error{Type: v1.ErrExec}, false},
		{"server", &v1.Error{Type: v1.ErrServer}, true},
		{"timeout", &v1.Error{Type: v1.ErrTimeout}, true},
		{"client 429", &promapi.StatusError{StatusCode: 429, Err: &v1.Error{Type: v1.ErrClient}}, true},
		{"client 403", &promapi.StatusError{StatusCode: 403, Err: &v1.Error{Type: v1.ErrClient}}, false},
		{"write retryable", &promapi.WriteError{Retryable: true, Err: errors.New("x")}, true},
		{"write not retryable", &promapi.WriteError{Err: errors.New("x")}, false},
		{"invalid sample", fmt.Errorf("w: %w", promapi.ErrInvalidSample), false},
		{"other", errors.New("x"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := promapi.IsRetryable(tc.err); got != tc.want {
				t.Errorf("IsRetryable(%v) = %t, want %t", tc.err, got, tc.want)
			}
		})
	}
}

func TestQueryRangeChunkBoundaries(t *testing.T) {
	t.Parallel()
	// A fake that records the requested ranges: the real server's answers
	// cannot show whether chunks overlapped, since the merge drops
	// duplicate steps.
	type span struct{ start, end, step string }
	var (
		mu    sync.Mutex
		spans []span
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			t.Error(err)
		}
		mu.Lock()
		spans = append(spans, span{r.Form.Get("start"), r.Form.Get("end"), r.Form.Get("step")})
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"status":"success","data":{"resultType":"matrix","result":[]}}`)
	}))
	t.Cleanup(srv.Close)

	tests := []struct {
		name      string
		start     time.Time
		end       time.Time
		step      time.Duration
		maxPoints int
		want      []span
	}{
		{
			name: "exact multiple", start: time.UnixMilli(1_000_000), end: time.UnixMilli(1_000_000 + 11*10_000), step: 10 * time.Second, maxPoints: 4,
			want: []span{{"1000", "1030", "10"}, {"1040", "1070", "10"}, {"1080", "1110", "10"}},
		},
		{
			name: "ragged end off the grid", start: time.UnixMilli(1_000_500), end: time.UnixMilli(1_000_500 + 95_000), step: 20 * time.Second, maxPoints: 2,
			want: []span{{"1000.5", "1020.5", "20"}, {"1040.5", "1060.5", "20"}, {"1080.5", "1095.5", "20"}},
		},
		{
			name: "single point", start: time.UnixMilli(1_000_000), end: time.UnixMilli(1_000_000), step: time.Minute, maxPoints: 11000,
			want: []span{{"1000", "1000", "60"}},
		},
		{
			name: "sub-millisecond start truncated", start: time.UnixMilli(1_000_000).Add(300 * time.Microsecond), end: time.UnixMilli(1_001_000), step: 500 * time.Millisecond, maxPoints: 2,
			want: []span{{"1000", "1000.5", "0.5"}, {"1001", "1001", "0.5"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			spans = nil
			mu.Unlock()
			c := newClient(t, promapi.ClientConfig{URL: srv.URL, MaxPointsPerRequest: tc.maxPoints})
			if _, err := c.QueryRange(t.Context(), "up", tc.start, tc.end, tc.step); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if fmt.Sprint(spans) != fmt.Sprint(tc.want) {
				t.Errorf("requested %v, want %v", spans, tc.want)
			}
		})
	}
}
