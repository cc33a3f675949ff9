package promapi_test

import (
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/kedastral/kedastral/promapi"
	"github.com/kedastral/kedastral/promapi/promtest"
	"github.com/kedastral/kedastral/test/testutil"
)

func TestWriteRoundTrip(t *testing.T) {
	t.Parallel()
	srv := promtest.StartT(t, promtest.Options{})
	w := newWriter(t, promapi.WriterConfig{URL: srv.RemoteWriteURL()})
	c := newClient(t, promapi.ClientConfig{URL: srv.URL()})

	t0 := minute(3 * time.Minute)
	at := func(i int) int64 { return t0.Add(time.Duration(i) * time.Minute).UnixMilli() }
	obs := labels.FromStrings("__name__", "kedastral_observed_value", "policy", "web", "deployment", "api")
	pred := labels.FromStrings("__name__", "kedastral_predicted_value", "policy", "web", "deployment", "api", "ahead", "5m", "quantile", "0.85")
	samples := []promapi.Sample{
		// Out of order and with one identical duplicate: Write sorts and dedupes.
		{Labels: obs, T: at(2), V: 12},
		{Labels: obs, T: at(0), V: 10},
		{Labels: pred, T: at(0), V: 20.5},
		{Labels: obs, T: at(1), V: 11},
		{Labels: pred, T: at(1), V: math.Inf(1)},
		{Labels: pred, T: at(2), V: -3e-9},
		{Labels: obs, T: at(2), V: 12},
	}
	stats, err := w.Write(t.Context(), samples)
	if err != nil {
		t.Fatal(err)
	}
	if want := (promapi.WriteStats{Series: 2, Sent: 6, Attempts: 1}); stats != want {
		t.Errorf("stats %+v, want %+v", stats, want)
	}

	got, err := c.QueryRange(t.Context(), `{__name__=~"kedastral_.*"}`, t0, t0.Add(2*time.Minute), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	want := []promapi.Series{
		{Labels: obs.DropMetricName(), Points: []promapi.Point{{at(0), 10}, {at(1), 11}, {at(2), 12}}},
		{Labels: pred.DropMetricName(), Points: []promapi.Point{{at(0), 20.5}, {at(1), math.Inf(1)}, {at(2), -3e-9}}},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d series, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		// Sorted by labels: "ahead" sorts before "deployment".
		j := len(want) - 1 - i
		if !labels.Equal(got[j].Labels, want[i].Labels) {
			t.Errorf("series %d labels %s, want %s", j, got[j].Labels, want[i].Labels)
		}
		comparePoints(t, got[j].Points, want[i].Points)
	}

	inst, err := c.Query(t.Context(), `kedastral_observed_value{policy="web"}`, time.UnixMilli(at(2)))
	if err != nil {
		t.Fatal(err)
	}
	if len(inst) != 1 || inst[0].V != 12 || !labels.Equal(inst[0].Labels, obs.DropMetricName()) {
		t.Errorf("instant query got %+v", inst)
	}
}

func TestWriteOutOfOrder(t *testing.T) {
	t.Parallel()
	series := labels.FromStrings("__name__", "kedastral_desired_replicas", "policy", "web")
	now := time.Now().UnixMilli()
	late := now - (30 * time.Minute).Milliseconds()

	t.Run("refused with 400 and not retried without a window", func(t *testing.T) {
		t.Parallel()
		srv := promtest.StartT(t, promtest.Options{})
		w := newWriter(t, promapi.WriterConfig{URL: srv.RemoteWriteURL(), MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond})
		if _, err := w.Write(t.Context(), []promapi.Sample{{Labels: series, T: now, V: 3}}); err != nil {
			t.Fatal(err)
		}
		// A real Prometheus answers 400 for a sample older than the
		// series' newest one.
		stats, err := w.Write(t.Context(), []promapi.Sample{{Labels: series, T: late, V: 2}})
		we, ok := errors.AsType[*promapi.WriteError](err)
		if !ok || we.StatusCode != http.StatusBadRequest || we.Retryable || we.Attempts != 1 || promapi.IsRetryable(err) {
			t.Fatalf("got %#v, want a non-retryable 400 after one attempt", err)
		}
		if !strings.Contains(err.Error(), "out of order") {
			t.Errorf("error %v does not carry the server's reason", err)
		}
		if want := (promapi.WriteStats{Series: 1, Failed: 1, Attempts: 1}); stats != want {
			t.Errorf("stats %+v, want %+v", stats, want)
		}
	})
	t.Run("accepted within the out-of-order window", func(t *testing.T) {
		t.Parallel()
		srv := promtest.StartT(t, promtest.Options{OutOfOrderWindow: time.Hour})
		w := newWriter(t, promapi.WriterConfig{URL: srv.RemoteWriteURL()})
		for _, s := range []promapi.Sample{{Labels: series, T: now, V: 3}, {Labels: series, T: late, V: 2}} {
			if _, err := w.Write(t.Context(), []promapi.Sample{s}); err != nil {
				t.Fatal(err)
			}
		}
		c := newClient(t, promapi.ClientConfig{URL: srv.URL()})
		got, err := c.Query(t.Context(), "kedastral_desired_replicas", time.UnixMilli(late))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].V != 2 {
			t.Errorf("got %+v, want the late sample", got)
		}
	})
}

// Prometheus 2.42 predates Remote Write 2.0: it answers 204 without the
// written-samples headers a 2.0 receiver must send and stores nothing; the
// remote-write client detects that and Write fails without retrying.
func TestWriteProtocolV2AgainstPrometheus2(t *testing.T) {
	t.Parallel()
	// Debian's 2.42 on PATH, also in the Prometheus 3 run of the matrix.
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatalf("prometheus 2 is not on PATH: %v (apt-get install prometheus)", err)
	}
	srv := promtest.StartT(t, promtest.Options{BinDir: filepath.Dir(bin)})
	if v, err := srv.Version(t.Context()); err != nil || !strings.HasPrefix(v, "2.") {
		t.Fatalf("the prometheus on PATH is %q (%v), want 2.x", v, err)
	}
	w := newWriter(t, promapi.WriterConfig{URL: srv.RemoteWriteURL(), Protocol: promapi.ProtocolV2})
	now := time.Now().UnixMilli()
	stats, err := w.Write(t.Context(), []promapi.Sample{{Labels: labels.FromStrings("__name__", "v2_test"), T: now, V: 1}})
	we, ok := errors.AsType[*promapi.WriteError](err)
	if !ok || we.Retryable || we.Attempts != 1 || !strings.Contains(err.Error(), "PRW 1.0") {
		t.Fatalf("got %v, want a non-retryable error naming PRW 1.0", err)
	}
	if want := (promapi.WriteStats{Series: 1, Failed: 1, Attempts: 1}); stats != want {
		t.Errorf("stats %+v, want %+v", stats, want)
	}
	c := newClient(t, promapi.ClientConfig{URL: srv.URL()})
	got, err := c.Query(t.Context(), "v2_test", time.UnixMilli(now))
	if err != nil || len(got) != 0 {
		t.Errorf("got %+v, %v; want nothing stored", got, err)
	}
}

// TestWriteReceiverDisabled writes to a Prometheus started without its
// remote-write receiver: the error names the flag that turns it on in the
// versions people run (Prometheus' own 404 message names a flag only old
// versions had) and kube-prometheus-stack's value for it.
func TestWriteReceiverDisabled(t *testing.T) {
	t.Parallel()
	srv := promtest.StartT(t, promtest.Options{NoRemoteWriteReceiver: true})
	w := newWriter(t, promapi.WriterConfig{URL: srv.RemoteWriteURL()})
	_, err := w.Write(t.Context(), cycleBatch(time.Now(), 0))
	we, ok := errors.AsType[*promapi.WriteError](err)
	if !ok || we.StatusCode != http.StatusNotFound || we.Retryable || !errors.Is(err, promapi.ErrReceiverDisabled) {
		t.Fatalf("got %#v, want a non-retryable 404 WriteError wrapping ErrReceiverDisabled", err)
	}
	msg := err.Error()
	for _, want := range []string{srv.RemoteWriteURL(), "--web.enable-remote-write-receiver", "prometheus.prometheusSpec.enableRemoteWriteReceiver: true"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not name %q", msg, want)
		}
	}
	if strings.Contains(msg, "--enable-feature") {
		t.Errorf("error %q passes on the outdated --enable-feature hint", msg)
	}
}

// countingServer answers every request with status and counts them. A real
// Prometheus cannot be made to answer 500 or 429 on demand.
func countingServer(t *testing.T, status int, header http.Header) (url string, requests *atomic.Int32) {
	t.Helper()
	requests = new(atomic.Int32)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if r.Header.Get("Content-Encoding") != "snappy" || r.Header.Get("X-Prometheus-Remote-Write-Version") != "0.1.0" {
			t.Errorf("unexpected headers %v", r.Header)
		}
		for k, v := range header {
			w.Header()[k] = v
		}
		http.Error(w, http.StatusText(status), status)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/api/v1/write", requests
}

func TestWriteInvalidSamples(t *testing.T) {
	t.Parallel()
	url, requests := countingServer(t, http.StatusNoContent, nil)
	w := newWriter(t, promapi.WriterConfig{URL: url})
	good := promapi.Sample{Labels: labels.FromStrings("__name__", "ok_metric", "a", "b"), T: 1000, V: 1}
	tests := []struct {
		name     string
		sample   promapi.Sample
		extra    []promapi.Sample
		wantText string
	}{
		{name: "no metric name", sample: promapi.Sample{Labels: labels.FromStrings("job", "x"), T: 1}, wantText: `{job="x"} has no metric name`},
		{name: "empty metric name", sample: promapi.Sample{Labels: labels.FromStrings("__name__", "", "job", "x"), T: 1}, wantText: "has no metric name"},
		{name: "invalid metric name", sample: promapi.Sample{Labels: labels.FromStrings("__name__", "1abc"), T: 1}, wantText: `invalid metric name "1abc"`},
		{name: "invalid label name", sample: promapi.Sample{Labels: labels.FromStrings("__name__", "m", "bad-name", "v"), T: 1}, wantText: `{__name__="m", "bad-name"="v"}: invalid label name "bad-name"`},
		{name: "invalid UTF-8 value", sample: promapi.Sample{Labels: labels.FromStrings("__name__", "m", "l", "\xff"), T: 1}, wantText: `label "l" has a value that is not valid UTF-8`},
		{name: "conflicting values at one timestamp", sample: promapi.Sample{Labels: good.Labels, T: good.T, V: 2}, extra: []promapi.Sample{good}, wantText: `series {__name__="ok_metric", a="b"} has values`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			samples := append([]promapi.Sample{good, tc.sample}, tc.extra...)
			stats, err := w.Write(t.Context(), samples)
			if !errors.Is(err, promapi.ErrInvalidSample) || !strings.Contains(err.Error(), tc.wantText) {
				t.Fatalf("got %v, want an invalid sample error containing %s", err, tc.wantText)
			}
			if promapi.IsRetryable(err) {
				t.Errorf("invalid sample reported retryable")
			}
			if stats.Failed != len(samples) || stats.Sent != 0 || stats.Attempts != 0 {
				t.Errorf("stats %+v", stats)
			}
		})
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("sent %d requests, want none", n)
	}

	// UTF-8 names pass when the receiver accepts them; empty values are dropped.
	utf8w := newWriter(t, promapi.WriterConfig{URL: url, NameValidation: model.UTF8Validation})
	stats, err := utf8w.Write(t.Context(), []promapi.Sample{{Labels: labels.FromStrings("__name__", "m.with.dots", "bad-name", "v", "empty", ""), T: 1}})
	if err != nil || stats.Sent != 1 || requests.Load() != 1 {
		t.Errorf("UTF-8 names: %+v, %v", stats, err)
	}
}

func TestWriteRetries(t *testing.T) {
	t.Parallel()
	sample := []promapi.Sample{{Labels: labels.FromStrings("__name__", "m"), T: 1000, V: 1}}
	tests := []struct {
		name         string
		status       int
		header       http.Header
		maxRetries   int
		timeout      time.Duration
		wantAttempts int // 0: at least one, bounded by the timeout
		retryable    bool
	}{
		{name: "400 is not retried", status: 400, maxRetries: 5, wantAttempts: 1},
		{name: "404 is not retried", status: 404, maxRetries: 5, wantAttempts: 1},
		{name: "500 is retried MaxRetries times", status: 500, maxRetries: 3, wantAttempts: 4, retryable: true},
		{name: "429 is retried", status: 429, maxRetries: 2, wantAttempts: 3, retryable: true},
		{name: "negative MaxRetries disables retries", status: 503, maxRetries: -1, wantAttempts: 1, retryable: true},
		{name: "Retry-After is bounded by the timeout", status: 503, header: http.Header{"Retry-After": {"60"}}, maxRetries: 5, timeout: 300 * time.Millisecond, wantAttempts: 1, retryable: true},
		{name: "endless 503 is bounded by the timeout", status: 503, maxRetries: 1000, timeout: 300 * time.Millisecond, retryable: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			url, requests := countingServer(t, tc.status, tc.header)
			var logs testutil.Buffer
			timeout := tc.timeout
			if timeout == 0 {
				timeout = 5 * time.Second
			}
			w := newWriter(t, promapi.WriterConfig{
				URL: url, MaxRetries: tc.maxRetries, Timeout: timeout,
				MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond,
				Logger: log.NewLogfmtLogger(&logs),
			})
			begin := time.Now()
			stats, err := w.Write(t.Context(), sample)
			elapsed := time.Since(begin)
			if elapsed > timeout+time.Second {
				t.Errorf("Write took %s, timeout %s", elapsed, timeout)
			}
			we, ok := errors.AsType[*promapi.WriteError](err)
			if !ok {
				t.Fatalf("got %v, want a *WriteError", err)
			}
			if we.Retryable != tc.retryable || promapi.IsRetryable(err) != tc.retryable {
				t.Errorf("retryable = %t, want %t: %v", we.Retryable, tc.retryable, err)
			}
			n := int(requests.Load())
			// When the timeout ends a request in flight, there is no last
			// status and the server may not have seen that attempt.
			cutShort := tc.timeout != 0 && we.StatusCode == 0
			if we.StatusCode != tc.status && !cutShort {
				t.Errorf("status %d, want %d", we.StatusCode, tc.status)
			}
			if stats.Attempts != we.Attempts || (we.Attempts != n && !(cutShort && we.Attempts == n+1)) {
				t.Errorf("reported %d/%d attempts, server saw %d", we.Attempts, stats.Attempts, n)
			}
			if tc.wantAttempts != 0 && n != tc.wantAttempts {
				t.Errorf("server saw %d attempts, want %d", n, tc.wantAttempts)
			}
			if n > 1 && !strings.Contains(logs.String(), "level=error") {
				t.Errorf("retries not logged through go-kit: %q", logs.String())
			}
		})
	}

	t.Run("a server that never answers is bounded by the timeout", func(t *testing.T) {
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
		w := newWriter(t, promapi.WriterConfig{URL: srv.URL + "/api/v1/write", Timeout: 300 * time.Millisecond})
		begin := time.Now()
		_, err := w.Write(t.Context(), sample)
		if !promapi.IsRetryable(err) || time.Since(begin) > 2*time.Second {
			t.Errorf("got %v after %s, want a retryable timeout", err, time.Since(begin))
		}
	})
	t.Run("connection refused is retryable", func(t *testing.T) {
		t.Parallel()
		w := newWriter(t, promapi.WriterConfig{URL: closedURL(t) + "/api/v1/write", MaxRetries: 2, MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond})
		_, err := w.Write(t.Context(), sample)
		we, ok := errors.AsType[*promapi.WriteError](err)
		if !ok || !we.Retryable || we.StatusCode != 0 || we.Attempts != 3 {
			t.Errorf("got %#v, want a retryable error after 3 attempts", err)
		}
	})
}
