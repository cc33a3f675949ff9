package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/kedastral/kedastral/promapi/promtest"
	pb "github.com/kedastral/kedastral/proto"
	"github.com/kedastral/kedastral/test/testutil"
)

// startKedastral runs the binary with args until the test ends, then stops
// it with SIGTERM and expects a clean exit.
func startKedastral(t *testing.T, args ...string) *testutil.Proc {
	t.Helper()
	return testutil.Start(t, testutil.ProcOptions{CleanExit: true}, testutil.Kedastral(t), args...)
}

func writePolicy(t *testing.T, max int) string {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "policies.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(policyTmpl, "api", max)), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// rawSamples returns every stored sample of the policy's kedastral_* series
// over the last 15 minutes, by "labels@milliseconds".
func rawSamples(t *testing.T, promURL string) map[string]float64 {
	t.Helper()
	q := url.Values{"query": {`{__name__=~"kedastral_.*",policy="api"}[15m]`}}
	code, body := get(t, promURL+"/api/v1/query?"+q.Encode())
	if code != 200 {
		t.Fatalf("query raw samples: %d %s", code, body)
	}
	var resp struct {
		Data struct {
			Result []struct {
				Metric map[string]string
				Values [][2]json.RawMessage
			}
		}
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, r := range resp.Data.Result {
		ls := labels.FromMap(r.Metric).String()
		prev := int64(math.MinInt64)
		for _, v := range r.Values {
			ts, err := strconv.ParseFloat(string(v[0]), 64)
			if err != nil {
				t.Fatal(err)
			}
			ms := int64(math.Round(ts * 1000))
			if ms <= prev {
				t.Errorf("%s: samples not in time order at %d", ls, ms)
			}
			prev = ms
			val, err := strconv.ParseFloat(strings.Trim(string(v[1]), `"`), 64)
			if err != nil {
				t.Fatal(err)
			}
			out[ls+"@"+strconv.FormatInt(ms, 10)] = val
		}
	}
	return out
}

func metricValue(t *testing.T, metricsURL, series string) float64 {
	t.Helper()
	_, body := get(t, metricsURL)
	for line := range strings.Lines(body) {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	return 0
}

// TestForecasterRemoteWriteFaults runs the forecaster binary with a
// fault-injecting proxy between it and a real Prometheus: an outage of 5xx
// answers, a 429 with Retry-After, slow answers and a 400. Every sample the
// forecaster sent must be in Prometheus afterwards, with its value, except
// those of the batch refused with 400; every cycle's samples are there, but
// the 400's; evaluation never stops.
func TestForecasterRemoteWriteFaults(t *testing.T) {
	t.Parallel()
	prom := promtest.StartInT(t, testutil.LoadHistory(t), promtest.Options{})
	proxy := promtest.NewFaultProxy(t, prom.RemoteWriteURL())
	web := testutil.FreeAddr(t)
	fc := startKedastral(t, "forecaster", "--config.file="+writePolicy(t, 50), "--prometheus.url="+prom.URL(),
		"--remote-write.url="+proxy.URL(), "--remote-write.timeout=1s", "--web.listen-address="+web)
	metrics := "http://" + web + "/metrics"
	cycles := func() float64 { return metricValue(t, metrics, `kedastral_forecaster_cycles_total{policy="api"}`) }

	testutil.Eventually(t, 30*time.Second, "a first write", func() (string, bool) {
		v := metricValue(t, metrics, "kedastral_remote_write_queue_samples_sent_total")
		return fmt.Sprint(v), v > 0
	})

	// An outage of 5xx answers: evaluation goes on.
	proxy.Down(500)
	before := cycles()
	time.Sleep(2500 * time.Millisecond)
	fc.Alive(t)
	if n := cycles() - before; n < 2 {
		t.Errorf("%g cycles during a 2.5s remote-write outage at a 1s interval: evaluation blocked", n)
	}
	if v := metricValue(t, metrics, "kedastral_remote_write_queue_samples"); v == 0 {
		t.Errorf("nothing queued during the outage")
	}
	// Back, but rate limited once and slow twice.
	proxy.Inject(promtest.Fault{Status: 429, RetryAfter: "1"}, promtest.Fault{Delay: 1500 * time.Millisecond}, promtest.Fault{Delay: 1500 * time.Millisecond})
	proxy.Down(0)
	drained := func() (string, bool) {
		v := metricValue(t, metrics, "kedastral_remote_write_queue_samples")
		return fmt.Sprintf("%g samples queued, %d faults left", v, proxy.PendingFaults()), v == 0 && proxy.PendingFaults() == 0
	}
	testutil.Eventually(t, 20*time.Second, "an empty queue after recovery", drained)

	// A 400 is not retried: its cycle is dropped and counted.
	proxy.Inject(promtest.Fault{Status: 400})
	testutil.Eventually(t, 10*time.Second, "the 400 used", drained)
	testutil.Eventually(t, 10*time.Second, "the rejected samples counted", func() (string, bool) {
		v := metricValue(t, metrics, `kedastral_remote_write_samples_dropped_total{reason="rejected"}`)
		return fmt.Sprint(v), v > 0
	})
	time.Sleep(1500 * time.Millisecond) // a cycle after the 400

	stored := rawSamples(t, prom.URL())
	seen := map[string]bool{}
	var nStored, retried, lost, rejected int
	rejectedKeys := map[string]bool{}
	for _, s := range proxy.Samples() {
		if s.Status == 400 {
			rejectedKeys[s.Labels.String()+"@"+strconv.FormatInt(s.T, 10)] = true
		}
	}
	for _, s := range proxy.Samples() {
		key := s.Labels.String() + "@" + strconv.FormatInt(s.T, 10)
		if seen[key] {
			continue
		}
		seen[key] = true
		v, ok := stored[key]
		switch {
		case rejectedKeys[key]:
			rejected++
			if ok {
				t.Errorf("sample refused with 400 is stored: %s", key)
			}
		case !ok:
			lost++
			t.Errorf("sample sent (answer %d) is not in Prometheus: %s", s.Status, key)
		case v != s.V && !(math.IsNaN(v) && math.IsNaN(s.V)):
			t.Errorf("%s: stored %g, sent %g", key, v, s.V)
		default:
			nStored++
			if s.Status != 204 && s.Status != 200 {
				retried++
			}
		}
	}
	t.Logf("distinct samples sent: %d, stored: %d (%d of them after a failed attempt), lost: %d, rejected (400) and dropped: %d",
		len(seen), nStored, retried, lost, rejected)
	if retried == 0 || rejected == 0 {
		t.Errorf("the faults were not exercised: %d retried, %d rejected", retried, rejected)
	}
	// Every cycle is there but the 400's and any the forecaster reports
	// missed: one desired_replicas sample per interval, no other gap.
	var ts []int64
	desired := labels.FromStrings("__name__", "kedastral_desired_replicas", "policy", "api").String()
	for key := range stored {
		if l, at, ok := strings.Cut(key, "@"); ok && l == desired {
			n, _ := strconv.ParseInt(at, 10, 64)
			ts = append(ts, n)
		}
	}
	slices.Sort(ts)
	if len(ts) < 5 {
		t.Fatalf("%d desired-replicas samples stored", len(ts))
	}
	gaps := 0
	for i := 1; i < len(ts); i++ {
		if d := ts[i] - ts[i-1]; d != 1000 {
			gaps += int(d/1000) - 1
		}
	}
	rejectedCycles := 0
	for key := range rejectedKeys {
		if strings.HasPrefix(key, desired+"@") {
			rejectedCycles++
		}
	}
	missed := metricValue(t, metrics, `kedastral_forecaster_missed_cycles_total{policy="api"}`)
	if want := rejectedCycles + int(missed); gaps != want {
		t.Errorf("%d cycles missing from Prometheus over %d stored, want %d (400: %d, missed: %g)", gaps, len(ts), want, rejectedCycles, missed)
	}
	if dropped := metricValue(t, metrics, `kedastral_remote_write_samples_dropped_total{reason="rejected"}`); int(dropped) != rejected {
		t.Errorf("samples_dropped_total{reason=rejected} = %g, the proxy refused %d with 400", dropped, rejected)
	}
	if v := metricValue(t, metrics, `kedastral_remote_write_samples_dropped_total{reason="overflow"}`); v != 0 {
		t.Errorf("%g samples overflowed", v)
	}
	if v := metricValue(t, metrics, "kedastral_remote_write_samples_retried_total"); v == 0 {
		t.Errorf("samples_retried_total is 0")
	}
}

// TestPrometheusRestartUnderForecasterAndScaler kills Prometheus (SIGKILL)
// while the forecaster and the scaler binaries run against it: neither
// exits, the scaler answers the true count or Unavailable and never another
// number, the forecaster counts failed cycles, and after the restart it
// writes again within a few intervals and the scaler answers again.
func TestPrometheusRestartUnderForecasterAndScaler(t *testing.T) {
	t.Parallel()
	prom := promtest.StartInT(t, testutil.LoadHistory(t), promtest.Options{})
	web := testutil.FreeAddr(t)
	fc := startKedastral(t, "forecaster", "--config.file="+writePolicy(t, 50), "--prometheus.url="+prom.URL(),
		"--prometheus.timeout=2s", "--remote-write.timeout=2s", "--web.listen-address="+web)
	grpcAddr, scalerWeb := testutil.FreeAddr(t), testutil.FreeAddr(t)
	sc := startKedastral(t, "scaler", "--prometheus.url="+prom.URL(), "--prometheus.timeout=2s",
		"--grpc.listen-address="+grpcAddr, "--web.listen-address="+scalerWeb)
	metrics := "http://" + web + "/metrics"

	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := pb.NewExternalScalerClient(conn)
	ask := func() (int64, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := client.GetMetrics(ctx, &pb.GetMetricsRequest{
			ScaledObjectRef: &pb.ScaledObjectRef{ScalerMetadata: map[string]string{"policy": "api", "maxForecastAge": "5s"}},
		})
		if err != nil {
			return 0, err
		}
		return resp.MetricValues[0].MetricValue, nil
	}
	// 42 / 10 per pod = 5 replicas.
	testutil.Eventually(t, 30*time.Second, "the scaler answering 5", func() (string, bool) {
		n, err := ask()
		return fmt.Sprint(n, err), err == nil && n == 5
	})

	if err := prom.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	failuresBefore := metricValue(t, metrics, `kedastral_forecaster_cycle_failures_total{policy="api",stage="query"}`)
	var unavailable int
	for time.Since(killed) < 4*time.Second {
		n, err := ask()
		switch {
		case err == nil && n != 5:
			t.Fatalf("during the outage the scaler answered %d, an invented number", n)
		case err != nil && status.Code(err) != codes.Unavailable:
			t.Fatalf("during the outage the scaler answered %v, want Unavailable", err)
		case err != nil:
			unavailable++
		}
		time.Sleep(200 * time.Millisecond)
	}
	if unavailable == 0 {
		t.Errorf("the scaler never answered Unavailable during a 4s outage")
	}
	fc.Alive(t)
	sc.Alive(t)
	if code, _ := get(t, "http://"+web+"/-/healthy"); code != 200 {
		t.Errorf("forecaster /-/healthy %d during the outage", code)
	}
	if v := metricValue(t, metrics, `kedastral_forecaster_cycle_failures_total{policy="api",stage="query"}`); v <= failuresBefore {
		t.Errorf("no failed cycles counted during the outage")
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := prom.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	testutil.Eventually(t, 10*time.Second, "a forecast written after the restart", func() (string, bool) {
		q := url.Values{"query": {`timestamp(kedastral_desired_replicas{policy="api"})`}}
		_, body := get(t, prom.URL()+"/api/v1/query?"+q.Encode())
		var resp struct {
			Data struct {
				Result []struct{ Value [2]json.RawMessage }
			}
		}
		_ = json.Unmarshal([]byte(body), &resp)
		if len(resp.Data.Result) != 1 {
			return body, false
		}
		ts, _ := strconv.ParseFloat(strings.Trim(string(resp.Data.Result[0].Value[1]), `"`), 64)
		return body, ts*1000 >= float64(back.UnixMilli())
	})
	t.Logf("forecaster wrote again %s after Prometheus was back (interval 1s)", time.Since(back).Round(100*time.Millisecond))
	testutil.Eventually(t, 10*time.Second, "the scaler answering 5 again", func() (string, bool) {
		n, err := ask()
		return fmt.Sprint(n, err), err == nil && n == 5
	})
	// Nothing written twice or out of order for one timestamp (rawSamples
	// checks the order).
	_ = rawSamples(t, prom.URL())
}

// TestNoSecretsExposed runs the forecaster and the scaler with credentials
// in every place a user may put them (URLs of flags and DataSources, an
// inline basic-auth password) and with a DataSource that fails, so that
// errors are shown; no HTTP endpoint may show a secret. POST /-/reload is
// refused with --web.disable-reload.
func TestNoSecretsExposed(t *testing.T) {
	t.Parallel()
	prom := promtest.StartInT(t, testutil.LoadHistory(t), promtest.Options{})
	const secret = "s3cr3t-pw"
	withUser := func(raw string) string {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		u.User = url.UserPassword("kedastral", secret)
		return u.String()
	}
	closed := "http://" + testutil.FreeAddr(t)
	cfg := filepath.Join(t.TempDir(), "policies.yaml")
	policies := fmt.Sprintf(policyTmpl, "api", 50) + "---\n" +
		strings.Replace(fmt.Sprintf(policyTmpl, "broken", 50), "sources:", "dataSourceRef: {name: down}\n  sources:", 1) +
		"---\napiVersion: kedastral.io/v1alpha1\nkind: DataSource\nmetadata: {name: down}\nspec:\n  url: " + withUser(closed) +
		"\n  basic_auth: {username: kedastral, password: " + secret + "}\n"
	if err := os.WriteFile(cfg, []byte(policies), 0o644); err != nil {
		t.Fatal(err)
	}
	web := testutil.FreeAddr(t)
	fc := startKedastral(t, "forecaster", "--config.file="+cfg, "--prometheus.url="+withUser(prom.URL()),
		"--remote-write.url="+withUser(prom.RemoteWriteURL()), "--web.listen-address="+web, "--web.disable-reload")
	grpcAddr, scalerWeb := testutil.FreeAddr(t), testutil.FreeAddr(t)
	sc := startKedastral(t, "scaler", "--prometheus.url="+withUser(closed), "--grpc.listen-address="+grpcAddr, "--web.listen-address="+scalerWeb)

	base := "http://" + web
	testutil.Eventually(t, 30*time.Second, "both policies evaluated", func() (string, bool) {
		_, body := get(t, base+"/api/v1/policies")
		return body, strings.Contains(body, `"lastSuccess"`) && strings.Contains(body, "connection refused")
	})
	// The scaler's failing query shows in its metrics.
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := pb.NewExternalScalerClient(conn).GetMetrics(ctx, &pb.GetMetricsRequest{
		ScaledObjectRef: &pb.ScaledObjectRef{ScalerMetadata: map[string]string{"policy": "api"}},
	}); err == nil || strings.Contains(err.Error(), secret) {
		t.Errorf("scaler answer with Prometheus down: %v", err)
	}
	for _, u := range []string{base + "/", base + "/api/v1/policies", base + "/metrics", base + "/-/ready", "http://" + scalerWeb + "/metrics", "http://" + scalerWeb + "/"} {
		code, body := get(t, u)
		if code == 0 {
			t.Errorf("%s: %s", u, body)
		}
		if strings.Contains(body, secret) {
			t.Errorf("%s shows the secret:\n%s", u, body)
		}
	}
	resp, err := http.Post(base+"/-/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("POST /-/reload with --web.disable-reload: %s", resp.Status)
	}
	for name, p := range map[string]*testutil.Proc{"forecaster": fc, "scaler": sc} {
		if strings.Contains(p.Logs.String(), secret) {
			t.Errorf("the %s's log shows the secret", name)
		}
	}
}

// TestForecasterKilledMidCycle kills the forecaster (SIGKILL) while its
// remote write is in flight (Prometheus stored the samples, the answer is
// held back), starts a new one at once, and then runs a second replica next
// to it. Prometheus runs without an out-of-order window, so a sample stamped
// at or before one already stored would be refused: none may be, no cycle's
// timestamp is written twice with different values, and every stored sample
// sits on the policy's slot grid.
func TestForecasterKilledMidCycle(t *testing.T) {
	t.Parallel()
	prom := promtest.StartInT(t, testutil.LoadHistory(t), promtest.Options{})
	proxy := promtest.NewFaultProxy(t, prom.RemoteWriteURL())
	cfg := writePolicy(t, 50)
	args := func(web string) []string {
		return []string{"forecaster", "--config.file=" + cfg, "--prometheus.url=" + prom.URL(),
			"--remote-write.url=" + proxy.URL(), "--remote-write.timeout=10s", "--web.listen-address=" + web}
	}
	webA := testutil.FreeAddr(t)
	a := testutil.Start(t, testutil.ProcOptions{Name: "first forecaster"}, testutil.Kedastral(t), args(webA)...)
	defer a.Kill()
	testutil.Eventually(t, 30*time.Second, "a first write", func() (string, bool) {
		v := metricValue(t, "http://"+webA+"/metrics", "kedastral_remote_write_queue_samples_sent_total")
		return fmt.Sprint(v), v > 0
	})

	// Hold the next answer: the cycle is in its write when it dies.
	seen := proxy.Requests()
	proxy.Inject(promtest.Fault{Delay: 5 * time.Second})
	testutil.Eventually(t, 5*time.Second, "the held write", func() (string, bool) {
		return fmt.Sprint(proxy.Requests()), proxy.Requests() > seen && proxy.PendingFaults() == 0
	})
	time.Sleep(100 * time.Millisecond) // forwarded to Prometheus by now
	if err := a.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()

	webB := testutil.FreeAddr(t)
	startKedastral(t, args(webB)...)
	time.Sleep(2500 * time.Millisecond)
	webC := testutil.FreeAddr(t)
	startKedastral(t, args(webC)...) // a second replica
	time.Sleep(3500 * time.Millisecond)

	for _, web := range []string{webB, webC} {
		m := "http://" + web + "/metrics"
		if v := metricValue(t, m, "kedastral_remote_write_queue_samples_sent_total"); v == 0 {
			t.Errorf("%s: wrote nothing", web)
		}
		if v := metricValue(t, m, `kedastral_remote_write_samples_dropped_total{reason="rejected"}`); v != 0 {
			t.Errorf("%s: %g samples refused by Prometheus", web, v)
		}
		if v := metricValue(t, m, `kedastral_forecaster_cycle_failures_total{policy="api",stage="write"}`); v != 0 {
			t.Errorf("%s: %g failed writes", web, v)
		}
	}
	if log, _ := os.ReadFile(prom.LogFile()); bytes.Contains(bytes.ToLower(log), []byte("out of order")) || bytes.Contains(log, []byte("duplicate sample")) {
		t.Errorf("Prometheus refused samples:\n%s", prom.LogTail(20))
	}
	// One sample per slot, all on one grid, strictly increasing (checked
	// by rawSamples); across the kill at most the slots of the restart
	// are missing.
	desired := labels.FromStrings("__name__", "kedastral_desired_replicas", "policy", "api").String()
	var ts []int64
	for key := range rawSamples(t, prom.URL()) {
		if l, at, ok := strings.Cut(key, "@"); ok && l == desired {
			n, _ := strconv.ParseInt(at, 10, 64)
			ts = append(ts, n)
		}
	}
	slices.Sort(ts)
	if len(ts) < 5 {
		t.Fatalf("%d samples", len(ts))
	}
	var gaps []int64
	for i := 1; i < len(ts); i++ {
		if d := ts[i] - ts[i-1]; d%1000 != 0 {
			t.Errorf("samples at %d and %d are off the 1s slot grid", ts[i-1], ts[i])
		} else if d > 1000 {
			gaps = append(gaps, d)
		}
	}
	t.Logf("%d samples; gaps (ms): %v; killed at %d", len(ts), gaps, killed.UnixMilli())
	if len(gaps) > 1 || (len(gaps) == 1 && gaps[0] > 5000) {
		t.Errorf("gaps %v: more than the restart's", gaps)
	}
}
