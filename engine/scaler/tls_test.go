package scaler

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/kedastral/kedastral/proto"
	"github.com/kedastral/kedastral/test/testca"
)

func TestMTLS(t *testing.T) {
	dir := t.TempDir()
	ca := testca.New(t, "kedastral test CA")
	srvCert, srvKey := ca.Issue(t, "kedastral-scaler", x509.ExtKeyUsageServerAuth)
	cliCert, cliKey := ca.Issue(t, "keda-operator", x509.ExtKeyUsageClientAuth)
	otherCA := testca.New(t, "someone else")
	strangerCert, strangerKey := otherCA.Issue(t, "stranger", x509.ExtKeyUsageClientAuth)

	cfg, err := TLSConfig(testca.Write(t, dir, "tls.crt", srvCert), testca.Write(t, dir, "tls.key", srvKey), testca.Write(t, dir, "ca.crt", ca.PEM))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Fatalf("client auth %v, want RequireAndVerifyClientCert", cfg.ClientAuth)
	}
	q := &fakeQuerier{}
	q.set(fakeSeries{labels.FromStrings("policy", "api"), 4, time.Now()})
	ts := startServer(t, Options{Querier: q, TLSConfig: cfg})
	addr := ts.Addr().String()

	roots := ca.Pool()
	call := func(t *testing.T, creds credentials.TransportCredentials) (*pb.GetMetricsResponse, error) {
		t.Helper()
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return pb.NewExternalScalerClient(conn).GetMetrics(ctxT(t), &pb.GetMetricsRequest{ScaledObjectRef: ref(map[string]string{"policy": "api"})})
	}
	pair := func(t *testing.T, c, k []byte) []tls.Certificate {
		kp, err := tls.X509KeyPair(c, k)
		if err != nil {
			t.Fatal(err)
		}
		return []tls.Certificate{kp}
	}

	t.Run("client with a certificate", func(t *testing.T) {
		resp, err := call(t, credentials.NewTLS(&tls.Config{RootCAs: roots, Certificates: pair(t, cliCert, cliKey)}))
		if err != nil || resp.MetricValues[0].MetricValue != 4 {
			t.Fatalf("%v, %v", resp, err)
		}
	})
	for _, tc := range []struct {
		name  string
		creds credentials.TransportCredentials
	}{
		{"client without a certificate", credentials.NewTLS(&tls.Config{RootCAs: roots})},
		{"client with a certificate of another CA", credentials.NewTLS(&tls.Config{RootCAs: roots, Certificates: pair(t, strangerCert, strangerKey)})},
		{"plaintext client", insecure.NewCredentials()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if resp, err := call(t, tc.creds); err == nil {
				t.Fatalf("accepted: %v", resp)
			}
		})
	}

	t.Run("TLS without client CA", func(t *testing.T) {
		cfg, err := TLSConfig(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), "")
		if err != nil {
			t.Fatal(err)
		}
		ts := startServer(t, Options{Querier: q, TLSConfig: cfg})
		addr = ts.Addr().String()
		if resp, err := call(t, credentials.NewTLS(&tls.Config{RootCAs: roots})); err != nil || resp.MetricValues[0].MetricValueFloat != 4 {
			t.Fatalf("%v, %v", resp, err)
		}
	})

	t.Run("bad files", func(t *testing.T) {
		if _, err := TLSConfig(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "missing.key"), ""); err == nil {
			t.Error("missing key accepted")
		}
		if _, err := TLSConfig(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), testca.Write(t, dir, "empty.pem", nil)); err == nil {
			t.Error("empty client CA accepted")
		}
		if _, err := TLSConfig("", "x", ""); err == nil {
			t.Error("no certificate accepted")
		}
	})
}

func TestTLSRotation(t *testing.T) {
	dir := t.TempDir()
	ca1, ca2 := testca.New(t, "CA 1"), testca.New(t, "CA 2")
	c1, k1 := ca1.Issue(t, "scaler", x509.ExtKeyUsageServerAuth)
	certFile, keyFile := testca.Write(t, dir, "tls.crt", c1), testca.Write(t, dir, "tls.key", k1)
	cfg, err := TLSConfig(certFile, keyFile, "")
	if err != nil {
		t.Fatal(err)
	}
	q := &fakeQuerier{}
	q.set(fakeSeries{labels.FromStrings("policy", "api"), 2, time.Now()})
	ts := startServer(t, Options{Querier: q, TLSConfig: cfg})

	call := func(ca *testca.CA) error {
		conn, err := grpc.NewClient(ts.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: ca.Pool()})))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_, err = pb.NewExternalScalerClient(conn).GetMetrics(ctxT(t), &pb.GetMetricsRequest{ScaledObjectRef: ref(map[string]string{"policy": "api"})})
		return err
	}
	if err := call(ca1); err != nil {
		t.Fatalf("before rotation: %v", err)
	}
	if err := call(ca2); err == nil {
		t.Fatal("before rotation, a client trusting only CA 2 was served")
	}

	// A broken rotation (key not written yet) keeps the old certificate.
	c2, k2 := ca2.Issue(t, "scaler", x509.ExtKeyUsageServerAuth)
	testca.Write(t, dir, "tls.crt", c2)
	if err := call(ca1); err != nil {
		t.Fatalf("half-rotated: %v", err)
	}
	testca.Write(t, dir, "tls.key", k2)
	later := time.Now().Add(time.Minute) // a new modification time, whatever the file system's resolution
	for _, f := range []string{certFile, keyFile} {
		if err := os.Chtimes(f, later, later); err != nil {
			t.Fatal(err)
		}
	}
	if err := call(ca2); err != nil {
		t.Fatalf("after rotation: %v", err)
	}
	if err := call(ca1); err == nil {
		t.Fatal("after rotation, the old certificate is still served")
	}
}
