package scaler

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/kedastral/kedastral/promapi"
	pb "github.com/kedastral/kedastral/proto"
)

// fakeSeries is one kedastral_desired_replicas series of the fake Prometheus.
type fakeSeries struct {
	labels labels.Labels // with policy
	value  float64
	t      time.Time
}

// fakeQuerier answers the scaler's queries the way Prometheus would.
type fakeQuerier struct {
	mu       sync.Mutex
	series   []fakeSeries
	reactive map[string][]promapi.Sample
	err      error
	calls    atomic.Int32
	delay    time.Duration
}

func (f *fakeQuerier) set(series ...fakeSeries) {
	f.mu.Lock()
	f.series = series
	f.mu.Unlock()
}

func (f *fakeQuerier) Query(ctx context.Context, q string, ts time.Time) ([]promapi.Sample, error) {
	f.calls.Add(1)
	if f.delay > 0 {
		select {
		case <-time.After(f.delay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	if r, ok := f.reactive[q]; ok {
		return r, nil
	}
	var out []promapi.Sample
	for _, s := range f.series {
		if q != forecastQuery(s.labels.Get("policy")) {
			continue
		}
		out = append(out,
			promapi.Sample{Labels: s.labels, T: ts.UnixMilli(), V: s.value},
			promapi.Sample{Labels: labels.NewBuilder(s.labels).Set(tsLabel, "1").Labels(), T: ts.UnixMilli(), V: float64(s.t.UnixMilli()) / 1000})
	}
	return out, nil
}

type testServer struct {
	*Server
	conn   *grpc.ClientConn
	client pb.ExternalScalerClient
	reg    *prometheus.Registry
}

// startServer runs a scaler on 127.0.0.1:0 and connects a client to it.
func startServer(t testing.TB, opts Options) *testServer {
	t.Helper()
	opts.ListenAddress = "127.0.0.1:0"
	reg := prometheus.NewRegistry()
	opts.Registerer = reg
	s, err := NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	runErr := make(chan error, 1)
	go func() { runErr <- s.Run(context.Background()) }()
	conn, err := grpc.NewClient(s.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		s.Stop()
		select {
		case err := <-runErr:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after Stop")
		}
	})
	return &testServer{Server: s, conn: conn, client: pb.NewExternalScalerClient(conn), reg: reg}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func ref(meta map[string]string) *pb.ScaledObjectRef {
	return &pb.ScaledObjectRef{Name: "api", Namespace: "shop", ScalerMetadata: meta}
}

func TestServerAnswers(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	clock := &fakeClock{t: now}
	q := &fakeQuerier{reactive: map[string][]promapi.Sample{
		"sum(rate(req[1m]))": {{Labels: labels.EmptyLabels(), V: 95}},
		"rate(req[1m])":      {{Labels: labels.FromStrings("pod", "a"), V: 1}, {Labels: labels.FromStrings("pod", "b"), V: 2}},
		"sum(none)":          nil,
	}}
	q.set(
		fakeSeries{labels.FromStrings("policy", "api", "deployment", "api", "namespace", "shop"), 7, now.Add(-20 * time.Second)},
		fakeSeries{labels.FromStrings("policy", "api", "deployment", "web", "namespace", "shop"), 0, now.Add(-20 * time.Second)},
		fakeSeries{labels.FromStrings("policy", "old"), 9, now.Add(-10 * time.Minute)},
		fakeSeries{labels.FromStrings("policy", "one"), 3, now.Add(-time.Second)},
	)
	ts := startServer(t, Options{Querier: q, Now: clock.Now})
	ctx := ctxT(t)

	for _, tc := range []struct {
		name       string
		meta       map[string]string
		metricName string // sent in GetMetricsRequest; "" means the spec's
		want       float64
		active     bool
		code       codes.Code
		msg        string
	}{
		{name: "fresh", meta: map[string]string{"policy": "api", "matchLabels": "deployment=api"}, want: 7, active: true},
		{name: "fresh zero", meta: map[string]string{"policy": "api", "matchLabels": "deployment=web,namespace=shop"}, want: 0, active: false},
		{name: "activation threshold", meta: map[string]string{"policy": "api", "matchLabels": "deployment=api", "activationReplicas": "7"}, want: 7, active: false},
		{name: "only series without matchLabels", meta: map[string]string{"policy": "one"}, want: 3, active: true},
		{name: "hybrid", meta: map[string]string{"policy": "api", "matchLabels": "deployment=web", "reactiveQuery": "sum(rate(req[1m]))", "reactiveTargetPerPod": "10"}, want: 10, active: true},
		{name: "stale with reactive", meta: map[string]string{"policy": "old", "reactiveQuery": "sum(rate(req[1m]))", "reactiveTargetPerPod": "50"}, want: 2, active: true},
		{name: "stale with longer maxForecastAge", meta: map[string]string{"policy": "old", "maxForecastAge": "11m"}, want: 9, active: true},
		{name: "stale", meta: map[string]string{"policy": "old"}, code: codes.Unavailable, msg: "newest sample is 10m0s old (maxForecastAge 2m0s)"},
		{name: "missing", meta: map[string]string{"policy": "nope"}, code: codes.Unavailable, msg: "no kedastral_desired_replicas sample"},
		{name: "missing, reactive empty", meta: map[string]string{"policy": "nope", "reactiveQuery": "sum(none)", "reactiveTargetPerPod": "1"}, code: codes.Unavailable, msg: "reactiveQuery returned no sample"},
		{name: "ambiguous", meta: map[string]string{"policy": "api"}, code: codes.InvalidArgument,
			msg: `matches 2 series; add labels to tell them apart: {deployment="api", namespace="shop", policy="api"}, {deployment="web", namespace="shop", policy="api"}`},
		{name: "reactive several series", meta: map[string]string{"policy": "one", "reactiveQuery": "rate(req[1m])", "reactiveTargetPerPod": "1"}, code: codes.InvalidArgument, msg: `"reactiveQuery": query returns 2 series`},
		{name: "bad metadata", meta: map[string]string{"policy": "one", "activationReplicas": "x"}, code: codes.InvalidArgument, msg: `"activationReplicas"`},
		{name: "wrong metric name", meta: map[string]string{"policy": "one"}, metricName: "kedastral-other", code: codes.InvalidArgument, msg: `metricName "kedastral-other"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, merr := ParseMetadata(tc.meta)
			spec, err := ts.client.GetMetricSpec(ctx, ref(tc.meta))
			if merr != nil {
				if status.Code(err) != codes.InvalidArgument {
					t.Fatalf("GetMetricSpec: %v, want InvalidArgument", err)
				}
			} else {
				if err != nil {
					t.Fatalf("GetMetricSpec: %v", err)
				}
				if len(spec.MetricSpecs) != 1 || spec.MetricSpecs[0].MetricName != m.MetricName() ||
					spec.MetricSpecs[0].TargetSize != 1 || spec.MetricSpecs[0].TargetSizeFloat != 1 {
					t.Fatalf("GetMetricSpec: %v", spec)
				}
			}
			name := tc.metricName
			if name == "" && merr == nil {
				name = m.MetricName()
			}
			resp, err := ts.client.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: ref(tc.meta), MetricName: name})
			act, aerr := ts.client.IsActive(ctx, ref(tc.meta))
			if tc.code != codes.OK {
				st := status.Convert(err)
				if st.Code() != tc.code || !strings.Contains(st.Message(), tc.msg) {
					t.Fatalf("GetMetrics: %v, want %v containing %q", err, tc.code, tc.msg)
				}
				if tc.metricName == "" && status.Code(aerr) != tc.code {
					t.Fatalf("IsActive: %v, want %v", aerr, tc.code)
				}
				return
			}
			if err != nil || aerr != nil {
				t.Fatalf("GetMetrics: %v; IsActive: %v", err, aerr)
			}
			if len(resp.MetricValues) != 1 {
				t.Fatalf("GetMetrics: %v", resp)
			}
			v := resp.MetricValues[0]
			if v.MetricName != name || v.MetricValue != int64(tc.want) || v.MetricValueFloat != tc.want {
				t.Errorf("GetMetrics: %v, want %s = %v in both fields", v, name, tc.want)
			}
			if act.Result != tc.active {
				t.Errorf("IsActive %v, want %v", act.Result, tc.active)
			}
		})
	}

	if got := testutil.ToFloat64(ts.metrics.staleAnswers.WithLabelValues("shop", "old", "reactive")); got == 0 {
		t.Error("no stale answer from the reactive signal counted")
	}
	if got := testutil.ToFloat64(ts.metrics.desiredReplicas.WithLabelValues("shop", "api", mustParse(t, map[string]string{"policy": "api", "matchLabels": "deployment=api"}).MetricName())); got != 7 {
		t.Errorf("kedastral_scaler_desired_replicas %v, want 7", got)
	}
	if n, err := testutil.GatherAndCount(ts.reg, "kedastral_scaler_requests_total", "kedastral_scaler_request_duration_seconds"); err != nil || n == 0 {
		t.Errorf("request metrics: %d series, %v", n, err)
	}
	if got := testutil.ToFloat64(ts.metrics.requests.WithLabelValues("GetMetrics", "Unavailable")); got == 0 {
		t.Error("Unavailable GetMetrics not counted")
	}
}

func mustParse(t testing.TB, meta map[string]string) Metadata {
	t.Helper()
	m, err := ParseMetadata(meta)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestServerPrometheusDown(t *testing.T) {
	q := &fakeQuerier{err: fmt.Errorf("connection refused")}
	ts := startServer(t, Options{Querier: q})
	ctx := ctxT(t)
	meta := map[string]string{"policy": "api"}
	// The spec never needs Prometheus.
	if _, err := ts.client.GetMetricSpec(ctx, ref(meta)); err != nil {
		t.Fatalf("GetMetricSpec with Prometheus down: %v", err)
	}
	_, err := ts.client.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: ref(meta)})
	if st := status.Convert(err); st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "connection refused") {
		t.Fatalf("GetMetrics: %v, want Unavailable", err)
	}
	if got := testutil.ToFloat64(ts.metrics.queryErrors.WithLabelValues("forecast")); got != 1 {
		t.Errorf("query errors %v, want 1", got)
	}
}

func TestServerCoalesces(t *testing.T) {
	now := time.Now()
	q := &fakeQuerier{delay: 50 * time.Millisecond}
	var series []fakeSeries
	for i := range 1000 {
		series = append(series, fakeSeries{labels.FromStrings("policy", "api", "deployment", fmt.Sprint("d", i)), float64(i), now})
	}
	q.set(series...)
	ts := startServer(t, Options{Querier: q, CacheTTL: time.Minute})
	ctx := ctxT(t)
	var wg sync.WaitGroup
	for i := range 1000 {
		wg.Go(func() {
			meta := map[string]string{"policy": "api", "matchLabels": fmt.Sprint("deployment=d", i)}
			resp, err := ts.client.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: ref(meta)})
			if err != nil {
				t.Error(err)
				return
			}
			if v := resp.MetricValues[0].MetricValueFloat; v != float64(i) {
				t.Errorf("d%d: got %v", i, v)
			}
		})
	}
	wg.Wait()
	if n := q.calls.Load(); n != 1 {
		t.Errorf("1000 ScaledObjects of one policy cost %d queries, want 1", n)
	}
}

func TestHealth(t *testing.T) {
	ts := startServer(t, Options{Querier: &fakeQuerier{}})
	resp, err := healthpb.NewHealthClient(ts.conn).Check(ctxT(t), &healthpb.HealthCheckRequest{Service: "externalscaler.ExternalScaler"})
	if err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %v, %v", resp, err)
	}
}

func TestStreams(t *testing.T) {
	now := time.Now()
	q := &fakeQuerier{}
	q.set(fakeSeries{labels.FromStrings("policy", "api"), 0, now})
	ts := startServer(t, Options{Querier: q, CacheTTL: -1, StreamCheckInterval: 10 * time.Millisecond})
	ctx := ctxT(t)
	meta := map[string]string{"policy": "api"}

	stream, err := ts.client.StreamIsActive(ctx, ref(meta))
	if err != nil {
		t.Fatal(err)
	}
	recv := func() bool {
		t.Helper()
		resp, err := stream.Recv() // bounded by ctx
		if err != nil {
			t.Fatal(err)
		}
		return resp.Result
	}
	if recv() {
		t.Fatal("first push: active with 0 replicas")
	}
	q.set(fakeSeries{labels.FromStrings("policy", "api"), 2, now})
	if !recv() {
		t.Fatal("second push: not active with 2 replicas")
	}
	q.set(fakeSeries{labels.FromStrings("policy", "api"), 0, now})
	if recv() {
		t.Fatal("third push: active again")
	}

	specs, err := ts.client.StreamMetricSpec(ctx, ref(meta))
	if err != nil {
		t.Fatal(err)
	}
	spec, err := specs.Recv()
	if err != nil || len(spec.MetricSpecs) != 1 || spec.MetricSpecs[0].MetricName != mustParse(t, meta).MetricName() || spec.MetricSpecs[0].TargetSizeFloat != 1 {
		t.Fatalf("StreamMetricSpec: %v, %v", spec, err)
	}

	// A bad trigger ends the stream with InvalidArgument.
	bad, err := ts.client.StreamIsActive(ctx, ref(map[string]string{"policy": "api", "x": "y"}))
	if err == nil {
		_, err = bad.Recv()
	}
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("bad trigger: %v, want InvalidArgument", err)
	}

	// Stop ends open streams cleanly.
	ts.Stop()
	for _, s := range []interface{ RecvMsg(any) error }{stream, specs} {
		for {
			err := s.RecvMsg(new(pb.IsActiveResponse))
			if err == nil {
				continue
			}
			if err != io.EOF {
				t.Errorf("after Stop: %v, want EOF", err)
			}
			break
		}
	}
}

func TestStreamResend(t *testing.T) {
	q := &fakeQuerier{}
	q.set(fakeSeries{labels.FromStrings("policy", "api"), 1, time.Now().Add(time.Hour)})
	ts := startServer(t, Options{Querier: q, StreamCheckInterval: 5 * time.Millisecond, StreamResendInterval: 20 * time.Millisecond})
	stream, err := ts.client.StreamIsActive(ctxT(t), ref(map[string]string{"policy": "api"}))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if resp, err := stream.Recv(); err != nil || !resp.Result {
			t.Fatalf("push %d: %v, %v", i, resp, err)
		}
	}
}

func TestStopBeforeRun(t *testing.T) {
	s, err := NewServer(Options{Querier: &fakeQuerier{}, ListenAddress: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	s.Stop()
	s.Stop()
	if err := s.Run(context.Background()); err != nil {
		t.Fatalf("Run after Stop: %v", err)
	}
}

func TestServerQueryTimeout(t *testing.T) {
	q := &fakeQuerier{delay: time.Minute}
	ts := startServer(t, Options{Querier: q, QueryTimeout: 50 * time.Millisecond})
	_, err := ts.client.GetMetrics(ctxT(t), &pb.GetMetricsRequest{ScaledObjectRef: ref(map[string]string{"policy": "api"})})
	if st := status.Convert(err); st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "query prometheus") {
		t.Fatalf("GetMetrics with a slow Prometheus: %v, want Unavailable", err)
	}
	// The caller's own deadline is reported as such.
	ctx, cancel := context.WithTimeout(ctxT(t), 10*time.Millisecond)
	defer cancel()
	ts2 := startServer(t, Options{Querier: q, QueryTimeout: time.Minute})
	_, err = ts2.client.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: ref(map[string]string{"policy": "api"})})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("GetMetrics past the caller's deadline: %v, want DeadlineExceeded", err)
	}
}
