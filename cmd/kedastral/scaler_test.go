package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kong"
	"github.com/go-kit/log"
	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/kedastral/kedastral/promapi"
	"github.com/kedastral/kedastral/promapi/promtest"
	pb "github.com/kedastral/kedastral/proto"
	"github.com/kedastral/kedastral/test/testutil"
)

// parseScaler parses `scaler args...` into a ScalerCmd, with kong's
// validation.
func parseScaler(t *testing.T, args ...string) (*ScalerCmd, error) {
	t.Helper()
	var cli struct {
		Scaler ScalerCmd `cmd:""`
	}
	p, err := kong.New(&cli, kong.Exit(func(int) { t.Fatal("kong exited") }))
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Parse(append([]string{"scaler"}, args...))
	return &cli.Scaler, err
}

func TestScalerFlags(t *testing.T) {
	c, err := parseScaler(t)
	if err != nil {
		t.Fatal(err)
	}
	if c.Prometheus.URL != "http://localhost:9090" || c.GRPC.ListenAddress != ":50051" || c.Web.ListenAddress != ":8081" ||
		c.CacheTTL != time.Second || c.StreamCheckInterval != time.Second || c.StreamResendInterval != 30*time.Second {
		t.Errorf("defaults: %+v", c)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--prometheus.url=ftp://x"}, "--prometheus.url"},
		{[]string{"--grpc.tls.cert-file=scaler.go"}, "go together"},
		{[]string{"--grpc.tls.key-file=scaler.go"}, "go together"},
		{[]string{"--grpc.tls.client-ca-file=scaler.go"}, "needs --grpc.tls.cert-file"},
		{[]string{"--grpc.tls.cert-file=/nonexistent"}, "/nonexistent"},
		{[]string{"--cache.ttl=-1s"}, "--cache.ttl"},
		{[]string{"--stream.check-interval=0s"}, "--stream.check-interval"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			if _, err := parseScaler(t, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestScalerRun(t *testing.T) {
	prom := promtest.StartT(t, promtest.Options{})
	w, err := promapi.NewWriter(promapi.WriterConfig{URL: prom.RemoteWriteURL()})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := w.Write(ctx, []promapi.Sample{{
		Labels: labels.FromStrings("__name__", "kedastral_desired_replicas", "policy", "api", "deployment", "api"),
		T:      time.Now().UnixMilli(), V: 5,
	}}); err != nil {
		t.Fatal(err)
	}

	// The URL carries credentials that the log and the page must not show.
	promURL := strings.Replace(prom.URL(), "http://", "http://u:s3cret@", 1)
	c, err := parseScaler(t, "--prometheus.url="+promURL, "--grpc.listen-address=127.0.0.1:0", "--web.listen-address=127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	addrs := make(chan [2]net.Addr, 1)
	done := make(chan error, 1)
	var logs testutil.Buffer
	go func() {
		done <- c.run(runCtx, log.NewLogfmtLogger(&logs), func(g, w net.Addr) { addrs <- [2]net.Addr{g, w} })
	}()
	var a [2]net.Addr
	select {
	case a = <-addrs:
	case err := <-done:
		t.Fatalf("run: %v", err)
	case <-ctx.Done():
		t.Fatal("scaler did not start")
	}

	conn, err := grpc.NewClient(a[0].String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	resp, err := pb.NewExternalScalerClient(conn).GetMetrics(ctx, &pb.GetMetricsRequest{
		ScaledObjectRef: &pb.ScaledObjectRef{Name: "api-so", ScalerMetadata: map[string]string{"policy": "api"}},
	})
	if err != nil || resp.MetricValues[0].MetricValue != 5 || resp.MetricValues[0].MetricValueFloat != 5 {
		t.Fatalf("GetMetrics: %v, %v", resp, err)
	}
	// A policy nobody forecast: no answer, and the page says so.
	if _, err := pb.NewExternalScalerClient(conn).GetMetrics(ctx, &pb.GetMetricsRequest{
		ScaledObjectRef: &pb.ScaledObjectRef{Name: "orders", Namespace: "shop", ScalerMetadata: map[string]string{"policy": "orders"}},
	}); err == nil {
		t.Fatal("GetMetrics of a policy without forecast answered")
	}

	redacted := strings.Replace(prom.URL(), "http://", "http://u:xxxxx@", 1)
	testutil.Eventually(t, 10*time.Second, "the start and the first query in the log", func() (string, bool) {
		l := logs.String()
		return l, strings.Contains(l, `msg="reading forecasts from Prometheus" url=`+redacted) &&
			strings.Contains(l, `msg="Prometheus answered" url=`+redacted+" forecast_series=1")
	})
	if strings.Contains(logs.String(), "s3cret") {
		t.Errorf("the log shows the password:\n%s", logs.String())
	}

	_, page := get(t, "http://"+a[1].String()+"/")
	for _, want := range []string{"reads <code>" + redacted + "</code>", "Policies asked about: <code>api</code>, <code>shop/orders</code>",
		"<td>api-so</td><td>api</td>", "<td>GetMetrics, ", "<td>5</td>", "<td>forecast</td>",
		"<td>shop/orders</td><td>shop/orders</td>", `error: Unavailable: no kedastral_desired_replicas sample for kedastral_desired_replicas{policy=&#34;orders&#34;}`, "(KEDA's fallback applies)", "<td>none</td>"} {
		if !strings.Contains(page, want) {
			t.Errorf("status page lacks %q:\n%s", want, page)
		}
	}
	if strings.Contains(page, "s3cret") || strings.Contains(page, "<script src") || strings.Contains(page, "<link") {
		t.Errorf("status page shows the password or loads something:\n%s", page)
	}
	_, js := get(t, "http://"+a[1].String()+"/api/v1/scaledobjects")
	var st struct {
		Status string
		Data   []struct {
			ScaledObject, Namespace, Policy, Source string
			Replicas                                float64
			ForecastAgeSeconds                      *float64
		}
	}
	if err := json.Unmarshal([]byte(js), &st); err != nil || st.Status != "success" || len(st.Data) != 2 {
		t.Fatalf("/api/v1/scaledobjects: %v\n%s", err, js)
	}
	if d := st.Data[0]; d.ScaledObject != "api-so" || d.Policy != "api" || d.Source != "forecast" || d.Replicas != 5 || d.ForecastAgeSeconds == nil || *d.ForecastAgeSeconds > 60 {
		t.Errorf("first answer %+v", d)
	}
	if d := st.Data[1]; d.ScaledObject != "orders" || d.Namespace != "shop" || d.Source != "error" || d.ForecastAgeSeconds != nil {
		t.Errorf("second answer %+v", d)
	}

	hresp, err := http.Get("http://" + a[1].String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(hresp.Body)
	hresp.Body.Close()
	for _, want := range []string{
		`kedastral_scaler_requests_total{code="OK",method="GetMetrics"} 1`,
		`kedastral_scaler_desired_replicas{metric="kedastral-api-`,     // no namespace in the request: policy_namespace=""
		`kedastral_scaler_prometheus_queries_total{kind="forecast"} 2`, // one a policy
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("scaler did not stop")
	}
}

// TestScalerFirstQueryFails starts the scaler against a port where no
// Prometheus listens: the log says so at once, before KEDA calls.
func TestScalerFirstQueryFails(t *testing.T) {
	url := "http://" + testutil.FreeAddr(t)
	c, err := parseScaler(t, "--prometheus.url="+url, "--prometheus.timeout=2s", "--grpc.listen-address=127.0.0.1:0", "--web.listen-address=127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithTimeout(context.Background(), 30*time.Second)
	defer stop()
	var logs testutil.Buffer
	done := make(chan error, 1)
	go func() { done <- c.run(ctx, log.NewLogfmtLogger(&logs), nil) }()
	testutil.Eventually(t, 10*time.Second, "a warning that the first query failed", func() (string, bool) {
		l := logs.String()
		return l, strings.Contains(l, `level=warn msg="the first query to Prometheus failed: is --prometheus.url right?" url=`+url)
	})
	stop()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("scaler did not stop")
	}
}
