//go:build livewip

package live

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kedastral/kedastral/promapi"
)

// The faults scenario has its own forecaster and scaler (policy "faults",
// the same spec as "api"), so that stopping them leaves the other
// scenarios alone.
const (
	faultsForecasterWeb = "127.0.0.1:8090"
	faultsScalerGRPC    = "127.0.0.1:50052"
	faultsScalerWeb     = "127.0.0.1:8091"
	fallbackReplicas    = 20
)

type faultsKedastral struct {
	bin, policyFile, promURL string
	forecaster, scaler       *proc
}

func (f *faultsKedastral) startForecaster(t testing.TB, e *env) {
	f.forecaster = e.start(t, "kedastral-forecaster-faults", nil, f.bin, "forecaster",
		"--config.file="+f.policyFile, "--prometheus.url="+f.promURL, "--web.listen-address="+faultsForecasterWeb)
	e.waitHTTP(t, "http://"+faultsForecasterWeb+"/-/ready", nil, "", time.Minute, f.forecaster)
}

func (f *faultsKedastral) startScaler(t testing.TB, e *env) {
	f.scaler = e.start(t, "kedastral-scaler-faults", nil, f.bin, "scaler",
		"--prometheus.url="+f.promURL, "--grpc.listen-address="+faultsScalerGRPC, "--web.listen-address="+faultsScalerWeb)
	e.waitHTTP(t, "http://"+faultsScalerWeb+"/-/ready", nil, "", time.Minute, f.scaler)
}

// faults is scenario 3: the forecaster stopped, then the scaler. With
// KEDA's fallback (namespace "faults") the Deployment goes to the fallback
// replicas once the forecast is older than maxForecastAge, and back to the
// forecast when it returns; with reactiveQuery (namespace
// "faults-reactive", in the same run) the scaler answers from the observed
// load instead and the fallback never applies while the scaler is up.
func faults(t *testing.T, e *env, s *feedSignal, k *kedastral) {
	f := &faultsKedastral{bin: k.bin, promURL: s.prom.URL(), policyFile: filepath.Join(e.dir, "policies-faults.yaml")}
	if err := os.WriteFile(f.policyFile, []byte(strings.Replace(policyYAML, "name: api\nspec", "name: faults\nspec", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	f.startForecaster(t, e)
	f.startScaler(t, e)
	q, err := promapi.NewClient(promapi.ClientConfig{URL: s.prom.URL()})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	forecast := func() int32 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		res, err := q.Query(ctx, `kedastral_desired_replicas{policy="faults"}`, time.Now())
		if err != nil || len(res) != 1 {
			return -1
		}
		return int32(res[0].V)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	trigger := func(extra string) string {
		return fmt.Sprintf(`  - type: external
    name: kedastral
    metadata: {scalerAddress: %q, policy: faults, maxForecastAge: 30s%s}
`, faultsScalerGRPC, extra)
	}
	spec := fmt.Sprintf("  fallback: {failureThreshold: 1, replicas: %d}\n", fallbackReplicas) +
		"  advanced:\n    horizontalPodAutoscalerConfig:\n      behavior:\n        scaleDown: {stabilizationWindowSeconds: 30}\n"
	for ns, tr := range map[string]string{
		"faults":          trigger(""),
		"faults-reactive": trigger(fmt.Sprintf(", reactiveQuery: %q, reactiveTargetPerPod: \"%d\"", signalQuery, targetPerPod)),
	} {
		e.namespace(t, ns)
		e.applyYAML(ctx, t, deploymentYAML(ns, "api", 1))
		e.applyYAML(ctx, t, scaledObjectYAML(ns, "api", spec, tr))
	}
	replicas := func(ns string) int32 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		d, err := e.kube.AppsV1().Deployments(ns).Get(ctx, "api", metav1.GetOptions{})
		if err != nil || d.Spec.Replicas == nil {
			return -1
		}
		return *d.Spec.Replicas
	}
	// waitFor polls until cond holds for the Deployment of ns, failing the
	// test after limit; it returns how long it took.
	waitFor := func(ns, what string, limit time.Duration, cond func(n int32) bool) time.Duration {
		t.Helper()
		start := time.Now()
		for {
			n := replicas(ns)
			if cond(n) {
				d := time.Since(start).Round(time.Second)
				t.Logf("%s: %s after %s (replicas %d)", ns, what, d, n)
				return d
			}
			if time.Since(start) > limit {
				t.Fatalf("%s: no %s within %s; replicas %d, forecast %d", ns, what, limit, n, forecast())
			}
			time.Sleep(time.Second)
		}
	}
	atForecast := func(n int32) bool { return n > 0 && n == forecast() }
	waitFor("faults", "replicas at the forecast", 2*time.Minute, atForecast)
	waitFor("faults-reactive", "replicas at the forecast", time.Minute, atForecast)

	// The forecaster stops: after maxForecastAge (30s) the scaler answers
	// Unavailable, KEDA counts the failures and serves the fallback.
	f.forecaster.kill()
	t.Log("forecaster killed")
	held := make(chan int32, 1)
	stopHold := make(chan struct{})
	go func() {
		// While the forecast is stale, the reactive one holds at least
		// what the observed load needs and never the fallback.
		low := int32(1 << 30)
		for {
			select {
			case <-stopHold:
				held <- low
				return
			case <-time.After(time.Second):
				if n := replicas("faults-reactive"); n > 0 {
					low = min(low, n)
					if n >= fallbackReplicas {
						held <- -n
						return
					}
				}
			}
		}
	}()
	waitFor("faults", "fallback replicas", 150*time.Second, func(n int32) bool { return n == fallbackReplicas })
	// The reactive one: its answer is now ceil(observed / 1000).
	time.Sleep(30 * time.Second)
	if n := replicas("faults"); n != fallbackReplicas {
		t.Errorf("faults: %d replicas 30s into the fallback, want %d", n, fallbackReplicas)
	}
	f.startForecaster(t, e)
	t.Log("forecaster restarted")
	close(stopHold)
	if low := <-held; low < 0 {
		t.Errorf("faults-reactive reached %d replicas while the forecast was stale: the fallback applied although reactiveQuery answers", -low)
	} else if obs, _ := s.observed(time.Now()); low < 1 {
		t.Errorf("faults-reactive went down to %d replicas while stale (observed %.0f)", low, obs)
	}
	waitFor("faults", "the forecast back", 3*time.Minute, atForecast)

	// The scaler stops: every call of KEDA's fails, the fallback applies;
	// restarted, the forecast takes over again.
	f.scaler.kill()
	t.Log("scaler killed")
	waitFor("faults", "fallback replicas", 150*time.Second, func(n int32) bool { return n == fallbackReplicas })
	f.startScaler(t, e)
	t.Log("scaler restarted")
	waitFor("faults", "the forecast back", 3*time.Minute, atForecast)
}
