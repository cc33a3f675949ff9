package promapi_test

import (
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/kedastral/kedastral/promapi"
	"github.com/kedastral/kedastral/promapi/promtest"
)

// TestServerOutage stops and kills the server under a client and writer, as
// the forecaster and scaler see a Prometheus outage, and checks that the
// restarted server on the same URL still has the data.
func TestServerOutage(t *testing.T) {
	t.Parallel()
	srv := promtest.StartT(t, promtest.Options{})
	url := srv.URL()
	c := newClient(t, promapi.ClientConfig{URL: url, Timeout: 2 * time.Second})
	w := newWriter(t, promapi.WriterConfig{URL: srv.RemoteWriteURL(), Timeout: 2 * time.Second, MaxRetries: 1, MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond})
	series := labels.FromStrings("__name__", "kedastral_desired_replicas", "policy", "web")
	t0 := minute(5 * time.Minute)

	write := func(i int, v float64) error {
		_, err := w.Write(t.Context(), []promapi.Sample{{Labels: series, T: t0.Add(time.Duration(i) * time.Minute).UnixMilli(), V: v}})
		return err
	}
	check := func(want ...float64) {
		t.Helper()
		got, err := c.QueryRange(t.Context(), "kedastral_desired_replicas", t0, t0.Add(time.Duration(len(want)-1)*time.Minute), time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || len(got[0].Points) != len(want) {
			t.Fatalf("got %+v, want values %v", got, want)
		}
		for i, p := range got[0].Points {
			if p.V != want[i] {
				t.Fatalf("point %d = %v, want %v", i, p.V, want[i])
			}
		}
	}
	down := func() {
		t.Helper()
		if _, err := c.Query(t.Context(), "up", time.Time{}); !promapi.IsRetryable(err) {
			t.Errorf("query while down: got %v, want a retryable error", err)
		}
		if err := write(9, 0); !promapi.IsRetryable(err) {
			t.Errorf("write while down: got %v, want a retryable error", err)
		}
	}

	for i, v := range []float64{1, 2} {
		if err := write(i, v); err != nil {
			t.Fatal(err)
		}
	}

	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	down()
	if err := srv.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	if srv.URL() != url {
		t.Errorf("restarted on %s, want %s", srv.URL(), url)
	}
	check(1, 2)

	if err := write(2, 3); err != nil {
		t.Fatal(err)
	}
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	down()
	if err := srv.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The write-ahead log is written (not fsynced) before the remote write
	// is acknowledged, so a killed process loses nothing.
	check(1, 2, 3)
}
