package main

import (
	"context"
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

	c, err := parseScaler(t, "--prometheus.url="+prom.URL(), "--grpc.listen-address=127.0.0.1:0", "--web.listen-address=127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	addrs := make(chan [2]net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- c.run(runCtx, log.NewNopLogger(), func(g, w net.Addr) { addrs <- [2]net.Addr{g, w} })
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
		ScaledObjectRef: &pb.ScaledObjectRef{ScalerMetadata: map[string]string{"policy": "api"}},
	})
	if err != nil || resp.MetricValues[0].MetricValue != 5 || resp.MetricValues[0].MetricValueFloat != 5 {
		t.Fatalf("GetMetrics: %v, %v", resp, err)
	}

	hresp, err := http.Get("http://" + a[1].String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(hresp.Body)
	hresp.Body.Close()
	for _, want := range []string{
		`kedastral_scaler_requests_total{code="OK",method="GetMetrics"} 1`,
		`kedastral_scaler_desired_replicas{metric="kedastral-api-`, // no namespace in the request: policy_namespace=""
		`kedastral_scaler_prometheus_queries_total{kind="forecast"} 1`,
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
