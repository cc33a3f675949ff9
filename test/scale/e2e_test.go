package scale

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/kedastral/kedastral/proto"
	"github.com/kedastral/kedastral/test/testutil"
)

const fleetPolicy = `apiVersion: kedastral.io/v1alpha1
kind: ForecastPolicy
metadata: {name: fleet}
spec:
  targetRef: {name: fleet}
  horizon: 30m
  leadTime: 5m
  interval: 1s
  capacity: {targetPerPod: 10, min: 1, max: 50}
  sources: [{name: load, query: 'sum by (deployment) (app_load)'}]
`

func writePolicy(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "policies.yaml")
	if err := os.WriteFile(p, []byte(fleetPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// want is the demand of each deployment and the replicas it needs at 10 per pod.
var (
	e2eLoad    = map[string]float64{"api": 42, "web": 85, "worker": 120}
	e2eDesired = map[string]int64{"api": 5, "web": 9, "worker": 12}
)

func TestEndToEndPrometheus(t *testing.T) {
	endToEnd(t, startPrometheus(t, flatSeries(e2eLoad)))
}

func TestEndToEndVictoriaMetrics(t *testing.T) {
	endToEnd(t, startVictoriaMetrics(t, flatSeries(e2eLoad)))
}

// endToEnd runs the forecaster and the scaler binaries on backend b, as in a
// cluster: the forecaster reads the history with query_range and writes
// kedastral_* with remote write; the scaler reads them with instant queries
// and answers KEDA's GetMetrics, and calls a forecast stale once the
// forecaster is gone.
func endToEnd(t *testing.T, b backend) {
	policyFile := writePolicy(t)
	_, fc := testutil.StartKedastral(t, "forecaster", 1, func(a []string) []string {
		return []string{"forecaster", "--config.file=" + policyFile,
			"--prometheus.url=" + b.url, "--remote-write.url=" + b.remoteWriteURL,
			"--web.listen-address=" + a[0], "--log.level=debug"}
	})
	testutil.Eventually(t, 60*time.Second, "kedastral_desired_replicas of every deployment in "+b.name, func() (string, bool) {
		v, body := testutil.Instant(t, b.url, `kedastral_desired_replicas{policy="fleet"}`)
		if len(v) != len(e2eDesired) {
			return body, false
		}
		for _, s := range v {
			if fmt.Sprint(s.Value[1]) != fmt.Sprint(e2eDesired[s.Metric["deployment"]]) {
				return body, false
			}
		}
		return body, true
	})

	addrs, _ := testutil.StartKedastral(t, "scaler", 2, func(a []string) []string {
		return []string{"scaler", "--prometheus.url=" + b.url,
			"--grpc.listen-address=" + a[0], "--web.listen-address=" + a[1], "--cache.ttl=0s"}
	})
	grpcAddr, web := addrs[0], addrs[1]
	testutil.Eventually(t, 30*time.Second, "ready scaler", func() (string, bool) {
		code, body := testutil.Get(t, "http://"+web+"/-/ready")
		return body, code == 200
	})
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := pb.NewExternalScalerClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ref := func(d string) *pb.ScaledObjectRef {
		return &pb.ScaledObjectRef{Name: d, Namespace: "default", ScalerMetadata: map[string]string{
			"policy": "fleet", "matchLabels": "deployment=" + d, "maxForecastAge": "5s"}}
	}
	for d, want := range e2eDesired {
		spec, err := client.GetMetricSpec(ctx, ref(d))
		if err != nil || len(spec.MetricSpecs) != 1 {
			t.Fatalf("GetMetricSpec(%s): %v %v", d, spec, err)
		}
		resp, err := client.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: ref(d), MetricName: spec.MetricSpecs[0].MetricName})
		if err != nil {
			t.Fatalf("GetMetrics(%s): %v", d, err)
		}
		if got := resp.MetricValues[0]; got.MetricValue != want || got.MetricValueFloat != float64(want) {
			t.Errorf("GetMetrics(%s) = %v, want %d", d, got, want)
		}
		if a, err := client.IsActive(ctx, ref(d)); err != nil || !a.Result {
			t.Errorf("IsActive(%s) = %v, %v", d, a, err)
		}
	}

	// Without the forecaster, the newest sample ages past maxForecastAge:
	// the scaler must see the sample's own time stamp, not the query's.
	fc.Stop()
	testutil.Eventually(t, 30*time.Second, "a stale answer", func() (string, bool) {
		resp, err := client.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: ref("api")})
		if err != nil && !strings.Contains(err.Error(), "stale") {
			t.Fatalf("GetMetrics after the forecaster stopped: %v, want a stale forecast", err)
		}
		return fmt.Sprint(resp, err), err != nil
	})
}
