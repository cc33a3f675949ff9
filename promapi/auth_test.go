package promapi_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/config"
	"github.com/prometheus/prometheus/model/labels"
	"go.yaml.in/yaml/v2"

	"github.com/kedastral/kedastral/promapi"
	"github.com/kedastral/kedastral/promapi/promtest"
	"github.com/kedastral/kedastral/test/testca"
)

const (
	promUser     = "kedastral"
	promPassword = "k3dastral-secret"
	// promPasswordHash is bcrypt (cost 4) of promPassword, for Prometheus'
	// basic_auth_users.
	promPasswordHash = "$2a$04$4I.ZXVNW5I9JLyMQL2O08.brlxl4QQ1SrN7pTW4Sy9DV98RTqOWhu"
)

// httpConfig decodes a DataSource-style HTTP client configuration.
func httpConfig(t *testing.T, y string) config.HTTPClientConfig {
	t.Helper()
	var hc config.HTTPClientConfig
	if err := yaml.UnmarshalStrict([]byte(y), &hc); err != nil {
		t.Fatal(err)
	}
	return hc
}

func writeSecret(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestPrometheusWithTLSAndAuth runs the query and remote-write clients
// against a real Prometheus that serves TLS and requires basic auth
// (--web.config.file), configured as a DataSource would be: a custom CA and
// a password file that is re-read when it changes. Wrong credentials and an
// untrusted certificate are refused and not retried, and no error carries
// the password.
func TestPrometheusWithTLSAndAuth(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	caFile, certFile, keyFile, _ := testca.ServerFiles(t)
	srv := promtest.StartT(t, promtest.Options{WebConfig: fmt.Sprintf(
		"tls_server_config:\n  cert_file: %s\n  key_file: %s\nbasic_auth_users:\n  %s: %s\n",
		certFile, keyFile, promUser, promPasswordHash)})
	if !strings.HasPrefix(srv.URL(), "https://") {
		t.Fatalf("URL %s", srv.URL())
	}
	pwFile := filepath.Join(dir, "password")
	writeSecret(t, pwFile, promPassword)
	hc := httpConfig(t, fmt.Sprintf("basic_auth: {username: %s, password_file: %s}\ntls_config: {ca_file: %s}\n", promUser, pwFile, caFile))

	c := newClient(t, promapi.ClientConfig{URL: srv.URL(), HTTPClientConfig: hc, Timeout: 5 * time.Second})
	w := newWriter(t, promapi.WriterConfig{URL: srv.RemoteWriteURL(), HTTPClientConfig: hc, MaxRetries: 2,
		MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond, Timeout: 5 * time.Second})
	now := time.Now().Truncate(time.Second)
	series := labels.FromStrings("__name__", "auth_test", "policy", "p")
	if _, err := w.Write(t.Context(), []promapi.Sample{{Labels: series, T: now.UnixMilli(), V: 7}}); err != nil {
		t.Fatalf("write with TLS and basic auth: %v", err)
	}
	got, err := c.Query(t.Context(), "auth_test", now)
	if err != nil || len(got) != 1 || got[0].V != 7 {
		t.Fatalf("query with TLS and basic auth: %+v, %v", got, err)
	}

	noSecret := func(t *testing.T, err error) {
		t.Helper()
		if err != nil && strings.Contains(err.Error(), promPassword) {
			t.Errorf("error shows the password: %v", err)
		}
	}
	t.Run("password file re-read on change", func(t *testing.T) {
		writeSecret(t, pwFile, "wrong")
		_, err := c.Query(t.Context(), "auth_test", now)
		if err == nil || promapi.IsRetryable(err) || !strings.Contains(err.Error(), "401") {
			t.Errorf("query with the wrong password: %v, want a non-retryable 401", err)
		}
		_, err = w.Write(t.Context(), []promapi.Sample{{Labels: series, T: now.UnixMilli() + 1, V: 8}})
		if we, ok := err.(*promapi.WriteError); !ok || we.StatusCode != 401 || we.Retryable || we.Attempts != 1 {
			t.Errorf("write with the wrong password: %v, want one non-retryable 401", err)
		}
		writeSecret(t, pwFile, promPassword)
		if _, err := c.Query(t.Context(), "auth_test", now); err != nil {
			t.Errorf("query after the password file was fixed: %v", err)
		}
	})
	t.Run("untrusted certificate", func(t *testing.T) {
		bad := newClient(t, promapi.ClientConfig{URL: srv.URL(), Timeout: 5 * time.Second,
			HTTPClientConfig: httpConfig(t, fmt.Sprintf("basic_auth: {username: %s, password_file: %s}\n", promUser, pwFile))})
		_, err := bad.Query(t.Context(), "up", now)
		if err == nil || promapi.IsRetryable(err) {
			t.Errorf("got %v, want a non-retryable certificate error", err)
		}
		noSecret(t, err)
	})
	t.Run("plain HTTP to the TLS port", func(t *testing.T) {
		plain := newClient(t, promapi.ClientConfig{URL: strings.Replace(srv.URL(), "https://", "http://", 1), Timeout: 5 * time.Second, HTTPClientConfig: hc})
		if _, err := plain.Query(t.Context(), "up", now); err == nil {
			t.Error("plain HTTP answered")
		}
	})
	t.Run("credentials in the URL are redacted from errors", func(t *testing.T) {
		u, _ := url.Parse(srv.URL())
		u.User = url.UserPassword(promUser, promPassword)
		withURL := newClient(t, promapi.ClientConfig{URL: u.String() + "/nonexistent-prefix", Timeout: 5 * time.Second,
			HTTPClientConfig: httpConfig(t, fmt.Sprintf("tls_config: {ca_file: %s}\n", caFile))})
		_, err := withURL.Query(t.Context(), "up", now)
		if err == nil {
			t.Fatal("query under a wrong prefix succeeded")
		}
		noSecret(t, err)
	})
}

// TestBearerTokenFileReread checks that a DataSource's
// authorization.credentials_file is read again when it changes: a rotated
// token is sent without restarting anything. Prometheus has no bearer-token
// auth of its own, so a small gate checks the token in front of it.
func TestBearerTokenFileReread(t *testing.T) {
	t.Parallel()
	srv := promtest.StartT(t, promtest.Options{})
	target, _ := url.Parse(srv.URL())
	fwd := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(fwd.CloseIdleConnections)
	var token atomic.Pointer[string]
	setToken := func(s string) { token.Store(&s) }
	setToken("token-1")
	gate := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+*token.Load() {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		req, _ := http.NewRequestWithContext(r.Context(), r.Method, target.String()+r.URL.RequestURI(), r.Body)
		req.Header = r.Header.Clone()
		resp, err := fwd.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	}))
	t.Cleanup(gate.Close)

	tokenFile := filepath.Join(t.TempDir(), "token")
	writeSecret(t, tokenFile, "token-1\n")
	c := newClient(t, promapi.ClientConfig{URL: gate.URL, Timeout: 5 * time.Second,
		HTTPClientConfig: httpConfig(t, fmt.Sprintf("authorization: {credentials_file: %s}\n", tokenFile))})
	if _, err := c.Query(t.Context(), "up", time.Now()); err != nil {
		t.Fatalf("query with the first token: %v", err)
	}
	setToken("token-2") // the server rotates...
	if _, err := c.Query(t.Context(), "up", time.Now()); err == nil || promapi.IsRetryable(err) {
		t.Fatalf("query with a revoked token: %v, want a non-retryable 401", err)
	}
	writeSecret(t, tokenFile, "token-2\n") // ...and the secret mount follows.
	if _, err := c.Query(t.Context(), "up", time.Now()); err != nil {
		t.Fatalf("query after the token file changed: %v", err)
	}
}
