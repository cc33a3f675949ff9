package keda

import (
	"context"
	"crypto/x509"
	"testing"
	"time"

	"github.com/kedacore/keda/v2/pkg/scalers"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kedastral/kedastral/test/testca"
)

// TestExternalScalerMTLS: KEDA's TLS settings (caCert, tlsClientCert and
// tlsClientKey from a TriggerAuthentication) against
// --grpc.tls.client-ca-file.
func TestExternalScalerMTLS(t *testing.T) {
	dir := t.TempDir()
	ca := testca.New(t, "kedastral test CA")
	srvCert, srvKey := ca.Issue(t, "kedastral-scaler", x509.ExtKeyUsageServerAuth)
	cliCert, cliKey := ca.Issue(t, "keda-operator", x509.ExtKeyUsageClientAuth)
	e := start(t,
		"--grpc.tls.cert-file="+testca.Write(t, dir, "tls.crt", srvCert),
		"--grpc.tls.key-file="+testca.Write(t, dir, "tls.key", srvKey),
		"--grpc.tls.client-ca-file="+testca.Write(t, dir, "ca.crt", ca.PEM),
	)
	e.write(t, desired("api"), 6, time.Now())

	for _, tc := range []struct {
		name string
		auth map[string]string
		ok   bool
	}{
		{name: "client certificate", auth: map[string]string{"caCert": string(ca.PEM), "tlsClientCert": string(cliCert), "tlsClientKey": string(cliKey)}, ok: true},
		{name: "no client certificate", auth: map[string]string{"caCert": string(ca.PEM)}, ok: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config("external", 0, map[string]string{"scalerAddress": e.addr, "policy": "api"})
			cfg.AuthParams = tc.auth
			s, err := scalers.NewExternalScaler(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(context.Background())
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			specs := s.GetMetricSpecForScaling(ctx)
			if !tc.ok {
				if len(specs) != 0 {
					t.Errorf("metric specs without a client certificate: %+v", specs)
				}
				// The handshake fails before the metric name is looked at.
				_, _, err := s.GetMetricsAndActivity(ctx, "s0-kedastral-api")
				if status.Code(err) != codes.Unavailable {
					t.Errorf("GetMetricsAndActivity without a client certificate: %v, want Unavailable", err)
				}
				t.Logf("refused: %v", err)
				return
			}
			if len(specs) != 1 {
				t.Fatalf("metric specs %+v", specs)
			}
			values, active, err := s.GetMetricsAndActivity(ctx, specs[0].External.Metric.Name)
			if err != nil || !active || len(values) != 1 || values[0].Value.MilliValue() != 6000 {
				t.Fatalf("GetMetricsAndActivity: %v, %v, %v", values, active, err)
			}
		})
	}
}
