// Package testca is a throwaway certificate authority for tests: TLS and
// mTLS of the scaler, the forecaster's and the scaler's web endpoints, a
// Prometheus behind TLS. It imports nothing but the standard library, so
// that every test module can use it.
package testca

import (
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
	"sync/atomic"
	"testing"
	"time"
)

// CA is a certificate authority valid from an hour ago to an hour ahead.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
	PEM  []byte // Cert, PEM-encoded
}

var serial atomic.Int64

// New returns a CA named name.
func New(tb testing.TB, name string) *CA {
	tb.Helper()
	key := newKey(tb)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial.Add(1)), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return &CA{Cert: cert, Key: key, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// Issue returns a certificate for 127.0.0.1 and localhost with common name
// cn and extended key usage usage, signed by the CA and valid from an hour
// ago to an hour ahead, and its key, both PEM-encoded.
func (ca *CA) Issue(tb testing.TB, cn string, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte) {
	tb.Helper()
	return ca.IssueFor(tb, cn, usage, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
}

// IssueFor is Issue with the validity window [notBefore, notAfter].
func (ca *CA) IssueFor(tb testing.TB, cn string, usage x509.ExtKeyUsage, notBefore, notAfter time.Time) (certPEM, keyPEM []byte) {
	tb.Helper()
	key := newKey(tb)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial.Add(1)), Subject: pkix.Name{CommonName: cn},
		NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		tb.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// Pool returns a pool that trusts the CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// ServerFiles writes a new CA (ca.crt) and a server certificate it signed
// (tls.crt, tls.key) into a new temporary directory and returns their paths
// and the CA.
func ServerFiles(tb testing.TB) (caFile, certFile, keyFile string, ca *CA) {
	tb.Helper()
	ca = New(tb, "kedastral test CA")
	cert, key := ca.Issue(tb, "kedastral", x509.ExtKeyUsageServerAuth)
	dir := tb.TempDir()
	return Write(tb, dir, "ca.crt", ca.PEM), Write(tb, dir, "tls.crt", cert), Write(tb, dir, "tls.key", key), ca
}

// Write writes data to dir/name (mode 0600) and returns the path.
func Write(tb testing.TB, dir, name string, data []byte) string {
	tb.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		tb.Fatal(err)
	}
	return p
}

func newKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return key
}
