package scaler

import (
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	pb "github.com/kedastral/kedastral/proto"
	"github.com/kedastral/kedastral/test/testca"
)

// TestMTLSRefusesInvalidClientCertificates: a client certificate signed by
// the right CA is still refused when it has expired, is not valid yet, or is
// not meant for client authentication; and a client refuses an expired
// server certificate.
func TestMTLSRefusesInvalidClientCertificates(t *testing.T) {
	dir := t.TempDir()
	ca := testca.New(t, "kedastral test CA")
	srvCert, srvKey := ca.Issue(t, "kedastral-scaler", x509.ExtKeyUsageServerAuth)
	cfg, err := TLSConfig(testca.Write(t, dir, "tls.crt", srvCert), testca.Write(t, dir, "tls.key", srvKey), testca.Write(t, dir, "ca.crt", ca.PEM))
	if err != nil {
		t.Fatal(err)
	}
	q := &fakeQuerier{}
	q.set(fakeSeries{labels.FromStrings("policy", "api"), 4, time.Now()})
	addr := startServer(t, Options{Querier: q, TLSConfig: cfg}).Addr().String()
	roots := ca.Pool()
	call := func(t *testing.T, addr string, tc *tls.Config) error {
		t.Helper()
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_, err = pb.NewExternalScalerClient(conn).GetMetrics(ctxT(t), &pb.GetMetricsRequest{ScaledObjectRef: ref(map[string]string{"policy": "api"})})
		return err
	}
	pair := func(certPEM, keyPEM []byte) tls.Certificate {
		kp, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return kp
	}
	now := time.Now()
	for _, tc := range []struct {
		name string
		cert tls.Certificate
		ok   bool
	}{
		{"valid", pair(ca.IssueFor(t, "keda", x509.ExtKeyUsageClientAuth, now.Add(-time.Hour), now.Add(time.Hour))), true},
		{"expired", pair(ca.IssueFor(t, "keda", x509.ExtKeyUsageClientAuth, now.Add(-48*time.Hour), now.Add(-24*time.Hour))), false},
		{"not valid yet", pair(ca.IssueFor(t, "keda", x509.ExtKeyUsageClientAuth, now.Add(24*time.Hour), now.Add(48*time.Hour))), false},
		{"server-only key usage", pair(ca.IssueFor(t, "keda", x509.ExtKeyUsageServerAuth, now.Add(-time.Hour), now.Add(time.Hour))), false},
	} {
		t.Run("client certificate "+tc.name, func(t *testing.T) {
			err := call(t, addr, &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{tc.cert}})
			if tc.ok != (err == nil) {
				t.Fatalf("error %v, want ok=%t", err, tc.ok)
			}
		})
	}

	t.Run("expired server certificate", func(t *testing.T) {
		certPEM, keyPEM := ca.IssueFor(t, "kedastral-scaler", x509.ExtKeyUsageServerAuth, now.Add(-48*time.Hour), now.Add(-24*time.Hour))
		cfg, err := TLSConfig(testca.Write(t, dir, "old.crt", certPEM), testca.Write(t, dir, "old.key", keyPEM), "")
		if err != nil {
			t.Fatal(err)
		}
		addr := startServer(t, Options{Querier: q, TLSConfig: cfg}).Addr().String()
		if err := call(t, addr, &tls.Config{RootCAs: roots}); err == nil {
			t.Fatal("a client accepted the expired server certificate")
		}
	})
}
