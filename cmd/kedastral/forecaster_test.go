package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kedastral/kedastral/promapi/promtest"
	"github.com/kedastral/kedastral/test/testutil"
)

const policyTmpl = `apiVersion: kedastral.io/v1alpha1
kind: ForecastPolicy
metadata: {name: %s}
spec:
  targetRef: {name: api}
  horizon: 30m
  leadTime: 5m
  interval: 1s
  capacity: {targetPerPod: 10, min: 1, max: %d}
  sources: [{name: rps, query: 'sum(app_load)'}]
`

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestForecasterBinary runs `kedastral forecaster` as a user would, against a
// real Prometheus, and checks what it serves and writes, and its reloads.
func TestForecasterBinary(t *testing.T) {
	prom := promtest.StartInT(t, testutil.LoadHistory(t), promtest.Options{})

	cfg := filepath.Join(t.TempDir(), "policies.yaml")
	writeCfg := func(content string) {
		if err := os.WriteFile(cfg, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeCfg(fmt.Sprintf(policyTmpl, "api", 50))
	web := testutil.FreeAddr(t)
	fc := testutil.Start(t, testutil.ProcOptions{Name: "forecaster", CleanExit: true}, testutil.Kedastral(t),
		"forecaster", "--config.file="+cfg, "--prometheus.url="+prom.URL(), "--web.listen-address="+web, "--log.level=debug")
	base := "http://" + web

	testutil.Eventually(t, 30*time.Second, "ready forecaster", func() (string, bool) {
		code, body := get(t, base+"/-/ready")
		return body, code == 200
	})
	if code, body := get(t, base+"/-/healthy"); code != 200 {
		t.Errorf("/-/healthy: %d %s", code, body)
	}
	// 42 / 10 per pod = 5 replicas, in the status JSON, the page and Prometheus.
	testutil.Eventually(t, 10*time.Second, "desired replicas in the status", func() (string, bool) {
		_, body := get(t, base+"/api/v1/policies")
		var st struct {
			Data []struct {
				Name         string
				DesiredRange [2]int32
				LastSuccess  time.Time
				Series       []struct{ Desired, Need, HPA int32 }
			}
		}
		_ = json.Unmarshal([]byte(body), &st)
		// A flat load: the need is the count, and the HPA holds it.
		return body, len(st.Data) == 1 && !st.Data[0].LastSuccess.IsZero() && st.Data[0].DesiredRange == [2]int32{5, 5} &&
			len(st.Data[0].Series) == 1 && st.Data[0].Series[0] == struct{ Desired, Need, HPA int32 }{5, 5, 5}
	})
	if code, page := get(t, base+"/"); code != 200 || !strings.Contains(page, "<td><a href=\"#api\">api</a></td>") || !strings.Contains(page, "sum(app_load)") {
		t.Errorf("status page %d:\n%s", code, page)
	}
	testutil.Eventually(t, 10*time.Second, "kedastral_desired_replicas in Prometheus", func() (string, bool) {
		_, body := get(t, prom.URL()+"/api/v1/query?query=kedastral_desired_replicas")
		return body, strings.Contains(body, `"policy":"api"`) && strings.Contains(body, `"5"]`)
	})
	_, metrics := get(t, base+"/metrics")
	for _, want := range []string{
		`kedastral_forecaster_cycles_total{policy="api"}`,
		`kedastral_forecast_age_seconds{policy="api"}`,
		`kedastral_remote_write_samples_total`,
		`kedastral_build_info{`,
		`kedastral_forecaster_config_last_reload_successful 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// A bad file on SIGHUP: the running policy keeps running, the error shows.
	writeCfg(strings.Replace(fmt.Sprintf(policyTmpl, "api", 50), "sum(app_load)", "sum(app_load", 1))
	if err := fc.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "the reload error on the status page", func() (string, bool) {
		_, page := get(t, base+"/")
		return page, strings.Contains(page, "spec.sources[0].query: invalid PromQL")
	})
	_, metrics = get(t, base+"/metrics")
	if !strings.Contains(metrics, "kedastral_forecaster_config_last_reload_successful 0") {
		t.Error("failed reload not reported in /metrics")
	}
	before := time.Now()
	testutil.Eventually(t, 10*time.Second, "cycles of the kept policy", func() (string, bool) {
		_, body := get(t, base+"/api/v1/policies")
		var st struct {
			Data []struct{ LastSuccess time.Time }
		}
		_ = json.Unmarshal([]byte(body), &st)
		return body, len(st.Data) == 1 && st.Data[0].LastSuccess.After(before)
	})

	// A good file on POST /-/reload: max 3 now caps the count; the
	// spec.scaledObject it adds is only acted on in Kubernetes mode, and
	// the log says so.
	writeCfg(fmt.Sprintf(policyTmpl, "api", 3) + "  scaledObject: {scalerAddress: 'kedastral-scaler:50051'}\n")
	resp, err := http.Post(base+"/-/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("POST /-/reload: %s", resp.Status)
	}
	testutil.Eventually(t, 15*time.Second, "the new max applied", func() (string, bool) {
		_, body := get(t, prom.URL()+"/api/v1/query?query=kedastral_desired_replicas")
		return body, strings.Contains(body, `"3"]`)
	})
	if code, _ := get(t, base+"/-/reload"); code != http.StatusMethodNotAllowed {
		t.Errorf("GET /-/reload answered %d", code)
	}
	if logs := fc.Logs.String(); !strings.Contains(logs, "spec.scaledObject is ignored: only a forecaster with --policies.source=kubernetes") {
		t.Errorf("no warning that spec.scaledObject is ignored in file mode:\n%s", logs)
	}
}

// TestForecasterNoPolicy starts the forecaster on a file without objects:
// it runs, and says at start and on its status page that it runs no policy.
func TestForecasterNoPolicy(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "policies.yaml")
	if err := os.WriteFile(cfg, []byte("# no policies yet\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	web := testutil.FreeAddr(t)
	fc := testutil.Start(t, testutil.ProcOptions{Name: "forecaster", CleanExit: true}, testutil.Kedastral(t),
		"forecaster", "--config.file="+cfg, "--prometheus.url=http://"+testutil.FreeAddr(t), "--web.listen-address="+web)
	base := "http://" + web
	page := testutil.Eventually(t, 30*time.Second, "the status page", func() (string, bool) {
		code, body := get(t, base+"/")
		return body, code == 200
	})
	if !strings.Contains(page, `<p class="warn">No policy is running`) {
		t.Errorf("status page does not warn that no policy runs:\n%s", page)
	}
	_, body := get(t, base+"/api/v1/policies")
	var st struct {
		Data     []any
		Warnings []string
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil || len(st.Data) != 0 || len(st.Warnings) != 1 || !strings.HasPrefix(st.Warnings[0], "No policy is running") {
		t.Errorf("/api/v1/policies: %s", body)
	}
	warned := false
	for line := range strings.Lines(fc.Logs.String()) {
		warned = warned || strings.HasPrefix(line, "level=warn ") && strings.Contains(line, "file="+cfg) &&
			strings.Contains(line, `msg="no policy to run: the configuration file holds no valid ForecastPolicy, so nothing is forecast"`)
	}
	if !warned {
		t.Errorf("no warning in the log that no policy runs:\n%s", fc.Logs.String())
	}
}

// TestForecasterBadStart checks that a forecaster with nothing valid to run
// says why and exits non-zero.
func TestForecasterBadStart(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"missing file", []string{"--config.file=/nonexistent/policies.yaml"}, "/nonexistent/policies.yaml"},
		{"bad prometheus url", []string{"--config.file=x.yaml", "--prometheus.url=localhost:9090"}, "--prometheus.url"},
		{"bad protocol", []string{"--config.file=x.yaml", "--remote-write.protocol=3"}, "--remote-write.protocol"},
		{"no policy file", []string{}, "--config.file is required"},
		{"kubernetes outside a cluster", []string{"--policies.source=kubernetes"}, "--kubeconfig"},
		{"file and kubernetes", []string{"--policies.source=kubernetes", "--config.file=x.yaml"}, "exclude each other"},
		{"leader election with a file", []string{"--config.file=x.yaml", "--leader-election.enabled"}, "needs --policies.source=kubernetes"},
		// The test machine's hostname is no StatefulSet pod's, or its
		// ordinal is beyond a count of 1.
		{"shard index from hostname", []string{"--config.file=x.yaml", "--shard.index-from-hostname"}, "--shard.index"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if host, _ := os.Hostname(); tc.name == "shard index from hostname" {
				if i, err := shardIndexFromHostname(host); err == nil && i == 0 {
					t.Skipf("hostname %q is a valid first shard", host)
				}
			}
			out, code := kedastral(t, append([]string{"forecaster", "--web.listen-address=127.0.0.1:0"}, tc.args...)...)
			if code == 0 || !strings.Contains(out, tc.want) {
				t.Errorf("exit %d, output:\n%s\nwant it to name %q", code, out, tc.want)
			}
		})
	}
}

// TestForecasterHTTPConfigFile runs the forecaster against a Prometheus that
// requires basic auth: with --prometheus.http-config-file it reads and (by
// default with the same credentials) writes; the password never shows.
func TestForecasterHTTPConfigFile(t *testing.T) {
	prom, httpCfg := basicAuthPrometheus(t)
	cfg := filepath.Join(t.TempDir(), "policies.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(policyTmpl, "api", 50)), 0o644); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name  string
		extra []string
		ok    bool
	}{
		{"without credentials", nil, false},
		{"with --prometheus.http-config-file", []string{"--prometheus.http-config-file=" + httpCfg}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			web := testutil.FreeAddr(t)
			args := append([]string{"forecaster", "--config.file=" + cfg, "--prometheus.url=" + prom.URL(), "--web.listen-address=" + web}, tc.extra...)
			fc := testutil.Start(t, testutil.ProcOptions{Name: "forecaster"}, testutil.Kedastral(t), args...)
			defer func() {
				fc.Stop()
				if strings.Contains(fc.Logs.String(), authPassword) {
					t.Error("the log shows the password")
				}
			}()
			body := testutil.Eventually(t, 30*time.Second, "a first cycle", func() (string, bool) {
				_, body := get(t, "http://"+web+"/api/v1/policies")
				return body, strings.Contains(body, `"lastCycle"`)
			})
			if tc.ok {
				if strings.Contains(body, `"lastError"`) {
					t.Fatalf("cycle failed with credentials: %s", body)
				}
				// Written with the same credentials: read back with them.
				req, _ := http.NewRequest(http.MethodGet, prom.URL()+"/api/v1/query?query=kedastral_desired_replicas", nil)
				req.SetBasicAuth(authUser, authPassword)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if !strings.Contains(string(b), `"policy":"api"`) {
					t.Errorf("kedastral_desired_replicas not written: %s", b)
				}
			} else if !strings.Contains(body, "401") {
				t.Errorf("without credentials the status should show the 401: %s", body)
			}
		})
	}
}

const (
	authUser     = "kedastral"
	authPassword = "k3dastral-secret"
	// bcrypt (cost 4) of authPassword, for Prometheus' basic_auth_users.
	authHash = "$2a$04$4I.ZXVNW5I9JLyMQL2O08.brlxl4QQ1SrN7pTW4Sy9DV98RTqOWhu"
)

// basicAuthPrometheus starts a Prometheus with testutil.LoadHistory that
// requires basic auth (authUser, authPassword), and writes an HTTP client
// configuration file with those credentials (the password in a file).
func basicAuthPrometheus(t *testing.T) (*promtest.Server, string) {
	t.Helper()
	promtest.RequireBinaries(t)
	prom := promtest.StartInT(t, testutil.LoadHistory(t), promtest.Options{WebConfig: fmt.Sprintf("basic_auth_users:\n  %s: %s\n", authUser, authHash)})
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "password")
	httpCfg := filepath.Join(dir, "http.yaml")
	if err := os.WriteFile(pwFile, []byte(authPassword), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(httpCfg, []byte(fmt.Sprintf("basic_auth:\n  username: %s\n  password_file: %s\n", authUser, pwFile)), 0o600); err != nil {
		t.Fatal(err)
	}
	return prom, httpCfg
}

func TestShardIndexFromHostname(t *testing.T) {
	for _, tc := range []struct {
		host string
		want int // -1: an error
	}{
		{"kedastral-forecaster-0", 0},
		{"kedastral-forecaster-12", 12},
		{"web-7", 7},
		{"kedastral-forecaster", -1},
		{"kedastral-forecaster-", -1},
		{"kedastral-forecaster-01", -1},
		{"forecaster-abc12", -1},
		{"12", -1},
	} {
		got, err := shardIndexFromHostname(tc.host)
		switch {
		case tc.want < 0 && (err == nil || !strings.Contains(err.Error(), tc.host)):
			t.Errorf("%q: %d, %v; want an error naming it", tc.host, got, err)
		case tc.want >= 0 && (err != nil || got != tc.want):
			t.Errorf("%q: %d, %v; want %d", tc.host, got, err, tc.want)
		}
	}
}
