package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/kedastral/kedastral/promapi"
	"github.com/kedastral/kedastral/promapi/promtest"
	pb "github.com/kedastral/kedastral/proto"
	"github.com/kedastral/kedastral/test/testutil"
)

// utf8Policy fans out over a label whose name is UTF-8 ("my.label"), which
// only Prometheus 3 stores.
const utf8Policy = `apiVersion: kedastral.io/v1alpha1
kind: ForecastPolicy
metadata: {name: dotted}
spec:
  targetRef: {name: api}
  horizon: 30m
  leadTime: 5m
  interval: 1s
  capacity: {targetPerPod: 10, min: 1, max: 50}
  sources: [{name: rps, query: 'sum by ("my.label") ({"app.load", "my.label"=~"a|b"})'}]
`

// TestPrometheus3RemoteWrite2UTF8 runs the forecaster and the scaler
// binaries on Prometheus 3 (test/bins/build.sh prometheus) with Remote Write
// 2.0, the receiver told to accept only 2.0 messages, a history whose metric
// and label names are UTF-8 ("app.load", "my.label"), and a policy that fans
// out by the UTF-8 label: every output series carries "my.label", the scaler
// selects each with matchLabels my.label=..., and no sample is written ahead
// of its evaluation (Prometheus 3 refuses samples more than 10 minutes in
// the future).
func TestPrometheus3RemoteWrite2UTF8(t *testing.T) {
	prom := promtest.StartT(t, promtest.Options{
		BinDir:           promtest.Prometheus3Dir(t),
		OutOfOrderWindow: 4 * time.Hour,
		ExtraArgs:        []string{"--web.remote-write-receiver.accepted-protobuf-messages=io.prometheus.write.v2.Request"},
	})
	if v, err := prom.Version(t.Context()); err != nil || !strings.HasPrefix(v, "3.") {
		t.Fatalf("Prometheus version %q, %v; want 3.x", v, err)
	}

	// Three hours of history, written with 2.0 and UTF-8 names.
	w, err := promapi.NewWriter(promapi.WriterConfig{URL: prom.RemoteWriteURL(), Protocol: promapi.ProtocolV2, NameValidation: model.UTF8Validation})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	load := map[string]float64{"a": 42, "b": 85}
	now := time.Now().Truncate(time.Minute)
	var hist []promapi.Sample
	for v, l := range load {
		ls := labels.FromStrings("__name__", "app.load", "my.label", v)
		for i := 180; i >= 0; i-- {
			hist = append(hist, promapi.Sample{Labels: ls, T: now.Add(-time.Duration(i) * time.Minute).UnixMilli(), V: l})
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if st, err := w.Write(ctx, hist); err != nil || st.Sent != len(hist) {
		t.Fatalf("write history: %+v, %v", st, err)
	}

	cfg := filepath.Join(t.TempDir(), "policies.yaml")
	if err := os.WriteFile(cfg, []byte(utf8Policy), 0o644); err != nil {
		t.Fatal(err)
	}
	web := testutil.FreeAddr(t)
	testutil.Start(t, testutil.ProcOptions{Name: "forecaster", CleanExit: true}, testutil.Kedastral(t),
		"forecaster", "--config.file="+cfg, "--prometheus.url="+prom.URL(), "--web.listen-address="+web,
		"--remote-write.protocol=2.0")
	started := time.Now()

	type result struct {
		Metric map[string]string `json:"metric"`
		Value  [2]any            `json:"value"`
	}
	query := func(q string) []result {
		_, body := get(t, prom.URL()+"/api/v1/query?query="+url.QueryEscape(q))
		var r struct {
			Data struct{ Result []result } `json:"data"`
		}
		_ = json.Unmarshal([]byte(body), &r)
		return r.Data.Result
	}
	testutil.Eventually(t, 60*time.Second, `kedastral_desired_replicas by "my.label" in Prometheus 3`, func() (string, bool) {
		res := query(`kedastral_desired_replicas{policy="dotted"}`)
		ok := len(res) == 2
		for _, r := range res {
			ok = ok && fmt.Sprint(r.Value[1]) == strconv.Itoa(int(math.Ceil(load[r.Metric["my.label"]]/10)))
		}
		return fmt.Sprint(res), ok
	})
	// Every output series keeps the UTF-8 label; none is ahead of its write.
	for _, q := range []string{`kedastral_observed_value{policy="dotted"}`, `kedastral_predicted_value{policy="dotted"}`} {
		res := query(q)
		if len(res) == 0 {
			t.Errorf("%s: no series", q)
		}
		for _, r := range res {
			if _, ok := load[r.Metric["my.label"]]; !ok {
				t.Errorf("%s: series %v lacks my.label", q, r.Metric)
			}
		}
	}
	if res := query(`max(timestamp(kedastral_desired_replicas{policy="dotted"}))`); len(res) != 1 {
		t.Errorf("no time stamps of kedastral series: %v", res)
	} else if ts, _ := strconv.ParseFloat(fmt.Sprint(res[0].Value[1]), 64); ts*1000 > float64(time.Now().UnixMilli()) || ts*1000 < float64(started.UnixMilli()) {
		t.Errorf("newest kedastral sample at %v, want between the forecaster's start %v and now", ts, started)
	}

	// The scaler selects each series by its UTF-8 label.
	grpcAddr, scalerWeb := testutil.FreeAddr(t), testutil.FreeAddr(t)
	testutil.Start(t, testutil.ProcOptions{Name: "scaler", CleanExit: true}, testutil.Kedastral(t),
		"scaler", "--prometheus.url="+prom.URL(), "--grpc.listen-address="+grpcAddr, "--web.listen-address="+scalerWeb)
	testutil.Eventually(t, 30*time.Second, "ready scaler", func() (string, bool) {
		code, body := get(t, "http://"+scalerWeb+"/-/ready")
		return body, code == 200
	})
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := pb.NewExternalScalerClient(conn)
	for v, l := range load {
		for _, match := range []string{"my.label=" + v, `"my.label"="` + v + `"`} {
			resp, err := client.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: &pb.ScaledObjectRef{
				Name: "api", Namespace: "default", ScalerMetadata: map[string]string{"policy": "dotted", "matchLabels": match}}})
			if err != nil {
				t.Errorf("GetMetrics(matchLabels %s): %v", match, err)
				continue
			}
			if want := int64(math.Ceil(l / 10)); resp.MetricValues[0].MetricValue != want {
				t.Errorf("GetMetrics(matchLabels %s) = %d, want %d", match, resp.MetricValues[0].MetricValue, want)
			}
		}
	}
}
