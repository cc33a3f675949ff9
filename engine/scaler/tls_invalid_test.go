package scaler

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	pb "github.com/kedastral/kedastral/proto"
)

// issueFor is testCA.issue with a chosen validity window.
func (ca *testCA) issueFor(t *testing.T, cn string, usage x509.ExtKeyUsage, notBefore, notAfter time.Time) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: notBefore, NotAfter: notAfter,
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
	kp, err := tls.X509KeyPair(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// TestMTLSRefusesInvalidClientCertificates: a client certificate signed by
// the right CA is still refused when it has expired, is not valid yet, or is
// not meant for client authentication; and a client refuses an expired
// server certificate.
func TestMTLSRefusesInvalidClientCertificates(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, "kedastral test CA")
	srvCert, srvKey := ca.issue(t, "kedastral-scaler", x509.ExtKeyUsageServerAuth)
	cfg, err := TLSConfig(writeFile(t, dir, "tls.crt", srvCert), writeFile(t, dir, "tls.key", srvKey), writeFile(t, dir, "ca.crt", ca.pem))
	if err != nil {
		t.Fatal(err)
	}
	q := &fakeQuerier{}
	q.set(fakeSeries{labels.FromStrings("policy", "api"), 4, time.Now()})
	addr := startServer(t, Options{Querier: q, TLSConfig: cfg}).Addr().String()
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
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
	now := time.Now()
	for _, tc := range []struct {
		name string
		cert tls.Certificate
		ok   bool
	}{
		{"valid", ca.issueFor(t, "keda", x509.ExtKeyUsageClientAuth, now.Add(-time.Hour), now.Add(time.Hour)), true},
		{"expired", ca.issueFor(t, "keda", x509.ExtKeyUsageClientAuth, now.Add(-48*time.Hour), now.Add(-24*time.Hour)), false},
		{"not valid yet", ca.issueFor(t, "keda", x509.ExtKeyUsageClientAuth, now.Add(24*time.Hour), now.Add(48*time.Hour)), false},
		{"server-only key usage", ca.issueFor(t, "keda", x509.ExtKeyUsageServerAuth, now.Add(-time.Hour), now.Add(time.Hour)), false},
	} {
		t.Run("client certificate "+tc.name, func(t *testing.T) {
			err := call(t, addr, &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{tc.cert}})
			if tc.ok != (err == nil) {
				t.Fatalf("error %v, want ok=%t", err, tc.ok)
			}
		})
	}

	t.Run("expired server certificate", func(t *testing.T) {
		expired := ca.issueFor(t, "kedastral-scaler", x509.ExtKeyUsageServerAuth, now.Add(-48*time.Hour), now.Add(-24*time.Hour))
		certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: expired.Certificate[0]})
		kder, err := x509.MarshalECPrivateKey(expired.PrivateKey.(*ecdsa.PrivateKey))
		if err != nil {
			t.Fatal(err)
		}
		keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
		cfg, err := TLSConfig(writeFile(t, dir, "old.crt", certPEM), writeFile(t, dir, "old.key", keyPEM), "")
		if err != nil {
			t.Fatal(err)
		}
		addr := startServer(t, Options{Querier: q, TLSConfig: cfg}).Addr().String()
		if err := call(t, addr, &tls.Config{RootCAs: roots}); err == nil {
			t.Fatal("a client accepted the expired server certificate")
		}
	})
}
