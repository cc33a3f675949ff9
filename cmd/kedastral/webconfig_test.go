package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kedastral/kedastral/promapi/promtest"
	"github.com/kedastral/kedastral/test/testca"
	"github.com/kedastral/kedastral/test/testutil"
)

// TestWebConfigFile serves the forecaster's and the scaler's web endpoints
// with a web configuration file of Prometheus' format (TLS and basic auth):
// /metrics answers over TLS with the credentials, 401 without them, and not
// over plain HTTP; a configuration that cannot be read stops the component at
// start, naming the flag.
func TestWebConfigFile(t *testing.T) {
	promtest.RequireBinaries(t)
	prom := promtest.StartInT(t, testutil.LoadHistory(t), promtest.Options{})
	_, certFile, keyFile, ca := testca.ServerFiles(t)
	dir := t.TempDir()
	webCfg := filepath.Join(dir, "web.yml")
	if err := os.WriteFile(webCfg, []byte(fmt.Sprintf("tls_server_config:\n  cert_file: %s\n  key_file: %s\nbasic_auth_users:\n  %s: %s\n",
		certFile, keyFile, authUser, authHash)), 0o600); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	get := func(url string, auth bool) (int, string, error) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if auth {
			req.SetBasicAuth(authUser, authPassword)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	for _, component := range []string{"forecaster", "scaler"} {
		t.Run(component, func(t *testing.T) {
			web := testutil.FreeAddr(t)
			args := []string{component, "--prometheus.url=" + prom.URL(), "--web.listen-address=" + web}
			if component == "forecaster" {
				args = append(args, "--config.file="+writePolicy(t, 50))
			} else {
				args = append(args, "--grpc.listen-address="+testutil.FreeAddr(t))
			}
			p := startKedastral(t, append(args, "--web.config.file="+webCfg)...)
			defer p.Stop()
			body := testutil.Eventually(t, 30*time.Second, "/metrics over TLS", func() (string, bool) {
				code, body, err := get("https://"+web+"/metrics", true)
				return fmt.Sprint(code, err, body), err == nil && code == http.StatusOK
			})
			if !strings.Contains(body, "kedastral_build_info") {
				t.Errorf("/metrics: %.300s", body)
			}
			if code, _, err := get("https://"+web+"/metrics", false); err != nil || code != http.StatusUnauthorized {
				t.Errorf("without credentials: %d %v, want 401", code, err)
			}
			if code, body, err := get("http://"+web+"/metrics", true); err == nil && code == http.StatusOK {
				t.Errorf("plain HTTP answered: %d %.100s", code, body)
			}
			if strings.Contains(p.Logs.String(), authPassword) {
				t.Error("the log shows the password")
			}
		})
	}

	bad := filepath.Join(dir, "bad.yml")
	if err := os.WriteFile(bad, []byte("tls_server_config:\n  cert_file: /nonexistent.crt\n  key_file: /nonexistent.key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code := kedastral(t, "scaler", "--prometheus.url="+prom.URL(), "--web.listen-address="+testutil.FreeAddr(t),
		"--grpc.listen-address="+testutil.FreeAddr(t), "--web.config.file="+bad)
	if code == 0 || !strings.Contains(out, "--web.config.file") || !strings.Contains(out, "nonexistent") {
		t.Errorf("a web config with missing files: exit %d, %s", code, out)
	}
}

// TestSlogThroughGoKit: records of slog go through the go-kit logger with
// their level (filtered like ours), attributes and groups.
func TestSlogThroughGoKit(t *testing.T) {
	var buf strings.Builder
	lc := LogConfig{Level: "info", Format: "logfmt"}
	logger, err := lc.New(&buf)
	if err != nil {
		t.Fatal(err)
	}
	s := newSlog(logger)
	s.Debug("hidden")
	s.With("address", "127.0.0.1:1").WithGroup("tls").Warn("TLS is enabled.", "http2", false)
	s.Error("failed", "err", io.EOF)
	out := buf.String()
	for _, want := range []string{`level=warn`, `msg="TLS is enabled."`, `address=127.0.0.1:1`, `tls.http2=false`, `level=error`, `msg=failed`, `err=EOF`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, "hidden") {
		t.Errorf("a debug record passed the info filter:\n%s", out)
	}
}
