package kube_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/kedastral/kedastral/proto"
	"github.com/kedastral/kedastral/test/testutil"
)

// startScaler runs `kedastral scaler` against prom and returns a client of
// its gRPC External Scaler, as KEDA calls it.
func startScaler(t *testing.T, promURL string) pb.ExternalScalerClient {
	t.Helper()
	grpcAddr, web := testutil.FreeAddr(t), testutil.FreeAddr(t)
	testutil.Start(t, testutil.ProcOptions{Name: "scaler"}, testutil.Kedastral(t), "scaler", "--prometheus.url="+promURL,
		"--grpc.listen-address="+grpcAddr, "--web.listen-address="+web, "--cache.ttl=0")
	testutil.Eventually(t, 30*time.Second, "ready scaler", func() (string, bool) {
		resp, err := http.Get("http://" + web + "/-/ready")
		if err != nil {
			return err.Error(), false
		}
		resp.Body.Close()
		return resp.Status, resp.StatusCode == 200
	})
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return pb.NewExternalScalerClient(conn)
}

// scalerAnswer is the scaler's GetMetrics answer for a trigger with
// metadata in a ScaledObject of namespace ns.
func scalerAnswer(t *testing.T, client pb.ExternalScalerClient, ns string, meta map[string]string) (float64, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := client.GetMetrics(ctx, &pb.GetMetricsRequest{
		ScaledObjectRef: &pb.ScaledObjectRef{Name: "api", Namespace: ns, ScalerMetadata: meta},
	})
	if err != nil {
		return 0, err
	}
	return resp.GetMetricValues()[0].GetMetricValueFloat(), nil
}
