package keda

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kedacore/keda/v2/pkg/scalers"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  string
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kedastral test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))}
}

func (ca *testCA) issue(t *testing.T, cn string, usage x509.ExtKeyUsage) (certPEM, keyPEM string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
}

// TestExternalScalerMTLS: KEDA's TLS settings (caCert, tlsClientCert and
// tlsClientKey from a TriggerAuthentication) against
// --grpc.tls.client-ca-file.
func TestExternalScalerMTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t)
	srvCert, srvKey := ca.issue(t, "kedastral-scaler", x509.ExtKeyUsageServerAuth)
	cliCert, cliKey := ca.issue(t, "keda-operator", x509.ExtKeyUsageClientAuth)
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	e := start(t,
		"--grpc.tls.cert-file="+write("tls.crt", srvCert),
		"--grpc.tls.key-file="+write("tls.key", srvKey),
		"--grpc.tls.client-ca-file="+write("ca.crt", ca.pem),
	)
	e.write(t, desired("api"), 6, time.Now())

	for _, tc := range []struct {
		name string
		auth map[string]string
		ok   bool
	}{
		{name: "client certificate", auth: map[string]string{"caCert": ca.pem, "tlsClientCert": cliCert, "tlsClientKey": cliKey}, ok: true},
		{name: "no client certificate", auth: map[string]string{"caCert": ca.pem}, ok: false},
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
