// Remote Write 2.0 and UTF-8 names on Prometheus 3 (test/bins/build.sh
// prometheus builds it; make setup does).
package promapi_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/kedastral/kedastral/promapi"
	"github.com/kedastral/kedastral/promapi/promtest"
)

// TestWriteProtocolV2Prometheus3 writes with Remote Write 2.0 to Prometheus 3
// told to accept only 2.0 messages, with UTF-8 metric and label names, and
// reads the samples back; a sample more than 10 minutes ahead of the
// receiver's clock is refused (not retried), one less far ahead is stored.
func TestWriteProtocolV2Prometheus3(t *testing.T) {
	t.Parallel()
	srv := promtest.StartT(t, promtest.Options{
		BinDir:    promtest.Prometheus3Dir(t),
		ExtraArgs: []string{"--web.remote-write-receiver.accepted-protobuf-messages=io.prometheus.write.v2.Request"},
	})
	w := newWriter(t, promapi.WriterConfig{URL: srv.RemoteWriteURL(), Protocol: promapi.ProtocolV2, NameValidation: model.UTF8Validation})
	c := newClient(t, promapi.ClientConfig{URL: srv.URL()})
	now := time.Now()
	ls := labels.FromStrings("__name__", "kedastral.observed", "my.label", "x", "policy", "web")
	samples := []promapi.Sample{
		{Labels: ls, T: now.Add(-time.Minute).UnixMilli(), V: 1},
		{Labels: ls, T: now.UnixMilli(), V: 2},
		{Labels: ls, T: now.Add(9 * time.Minute).UnixMilli(), V: 3},
	}
	stats, err := w.Write(t.Context(), samples)
	if err != nil || stats.Sent != 3 || stats.Attempts != 1 {
		t.Fatalf("write: %+v, %v", stats, err)
	}
	got, err := c.QueryRange(t.Context(), `{"kedastral.observed", "my.label"="x"}`, now.Add(-time.Minute), now.Add(9*time.Minute), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Labels.Get("my.label") != "x" || len(got[0].Points) == 0 || got[0].Points[len(got[0].Points)-1].V != 3 {
		t.Errorf("read back %+v", got)
	}

	_, err = w.Write(t.Context(), []promapi.Sample{{Labels: ls, T: now.Add(11 * time.Minute).UnixMilli(), V: 4}})
	we, ok := errors.AsType[*promapi.WriteError](err)
	if !ok || we.Retryable || !strings.Contains(err.Error(), "out of bounds") {
		t.Errorf("a sample 11 minutes ahead: %v, want a non-retryable out of bounds error", err)
	}

	// A 1.0 message is refused by a receiver that accepts only 2.0.
	w1 := newWriter(t, promapi.WriterConfig{URL: srv.RemoteWriteURL(), Protocol: promapi.ProtocolV1})
	if _, err := w1.Write(t.Context(), []promapi.Sample{{Labels: labels.FromStrings("__name__", "v1_test"), T: now.UnixMilli(), V: 1}}); err == nil {
		t.Error("a 1.0 message was accepted by a receiver that accepts only 2.0")
	}
}
