//go:build livewip

package live

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kedastral/kedastral/engine/capacity"
	"github.com/kedastral/kedastral/promapi"
)

// pollingInterval is the ScaledObjects' KEDA pollingInterval, in seconds.
const pollingInterval = 5

// deploymentYAML is a Deployment that never runs a pod (there is no
// scheduler or kubelet): its spec.replicas is what the HPA sets.
func deploymentYAML(ns, name string, replicas int) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: %[2]s, namespace: %[1]s}
spec:
  replicas: %[3]d
  selector: {matchLabels: {app: %[2]s}}
  template:
    metadata: {labels: {app: %[2]s}}
    spec:
      containers: [{name: app, image: registry.invalid/app:none}]
`, ns, name, replicas)
}

// scaledObjectYAML is a ScaledObject of Deployment name with the triggers
// (YAML list items, indented by 2).
func scaledObjectYAML(ns, name, extraSpec, triggers string) string {
	return fmt.Sprintf(`apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: %[2]s, namespace: %[1]s}
spec:
  scaleTargetRef: {name: %[2]s}
  pollingInterval: %[3]d
  minReplicaCount: 1
  maxReplicaCount: 30
%[4]s  triggers:
%[5]s`, ns, name, pollingInterval, extraSpec, triggers)
}

func kedastralTrigger(extra string) string {
	return fmt.Sprintf(`  - type: external
    name: kedastral
    metadata: {scalerAddress: %q, policy: api, maxForecastAge: 1m%s}
`, scalerGRPC, extra)
}

func reactiveTrigger(promURL string) string {
	return fmt.Sprintf(`  - type: prometheus
    name: reactive
    metadata: {serverAddress: %q, query: %q, threshold: "%d"}
`, promURL, signalQuery, targetPerPod)
}

// timeline records a Deployment's spec.replicas as it changes.
type timeline struct {
	mu     sync.Mutex
	points []step
}

type step struct {
	at time.Time
	n  int32
}

func (tl *timeline) add(at time.Time, n int32) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if k := len(tl.points); k == 0 || tl.points[k-1].n != n {
		tl.points = append(tl.points, step{at, n})
	}
}

func (tl *timeline) last() int32 {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if len(tl.points) == 0 {
		return -1
	}
	return tl.points[len(tl.points)-1].n
}

// reached is the first time the count was at least n.
func (tl *timeline) reached(n int32) (time.Time, bool) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	for _, p := range tl.points {
		if p.n >= n {
			return p.at, true
		}
	}
	return time.Time{}, false
}

func (tl *timeline) String(t0 time.Time) string {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	var parts []string
	for _, p := range tl.points {
		parts = append(parts, fmt.Sprintf("%s→%d", rel(p.at, t0), p.n))
	}
	return strings.Join(parts, " ")
}

func rel(at, t0 time.Time) string {
	d := at.Sub(t0).Round(time.Second)
	sign := "+"
	if d < 0 {
		sign, d = "-", -d
	}
	return fmt.Sprintf("T0%s%dm%02ds", sign, int(d.Minutes()), int(d.Seconds())%60)
}

// watch polls the Deployments' spec.replicas every second until ctx ends.
func (e *env) watch(ctx context.Context, tls map[string]*timeline) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		for ns, tl := range tls {
			qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			d, err := e.kube.AppsV1().Deployments(ns).Get(qctx, "api", metav1.GetOptions{})
			cancel()
			if err == nil && d.Spec.Replicas != nil {
				tl.add(time.Now(), *d.Spec.Replicas)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// TestLive starts the cluster, KEDA, Prometheus with the trace and
// Kedastral once, and runs the scenarios against them at the same time, in
// their own namespaces.
func TestLive(t *testing.T) {
	e := startEnv(t)
	s := startSignal(t, e)
	k := startKedastral(t, e, s)
	t.Logf("T0 = %s (history ends), the trace's rise at T0+%s", s.t0.Format(time.TimeOnly), riseAfter)
	t.Run("scenarios", func(t *testing.T) {
		t.Run("ahead", func(t *testing.T) { t.Parallel(); aheadOfLoad(t, e, s, k) })
		t.Run("3-faults", func(t *testing.T) { t.Parallel(); faults(t, e, s, k) })
		t.Run("4-generated", func(t *testing.T) { t.Parallel(); generated(t, e, s, k) })
	})
}

// aheadOfLoad runs scenarios 1 (ahead of the load), 2 (hybrid) and 7
// (fidelity of the simulated HPA) over the trace's rise: three Deployments
// scaled by KEDA from Kedastral's trigger, from KEDA's own prometheus
// trigger on the same signal, and from both.
func aheadOfLoad(t *testing.T, e *env, s *feedSignal, k *kedastral) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	q, err := promapi.NewClient(promapi.ClientConfig{URL: s.prom.URL()})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	// Wait for the forecaster's first forecast, so that KEDA's first
	// question has an answer.
	deadline := time.Now().Add(90 * time.Second)
	for {
		if _, err := desired(ctx, q); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("no kedastral_desired_replicas within 90s: %v", err)
		}
		time.Sleep(time.Second)
	}
	behavior := "  advanced:\n    horizontalPodAutoscalerConfig:\n      behavior:\n        scaleDown: {stabilizationWindowSeconds: 60}\n"
	setups := map[string]string{
		"ahead":    kedastralTrigger(""),
		"reactive": reactiveTrigger(s.prom.URL()),
		"hybrid":   kedastralTrigger("") + reactiveTrigger(s.prom.URL()),
	}
	tls := map[string]*timeline{}
	for ns, triggers := range setups {
		e.namespace(t, ns)
		e.applyYAML(ctx, t, deploymentYAML(ns, "api", 1))
		e.applyYAML(ctx, t, scaledObjectYAML(ns, "api", behavior, triggers))
		tls[ns] = &timeline{}
	}
	wctx, stopWatch := context.WithCancel(context.Background())
	watched := make(chan struct{})
	go func() { defer close(watched); e.watch(wctx, tls) }()

	// Print a line every 15 s until two minutes after the rise.
	end := s.rise.Add(2 * time.Minute)
	t.Logf("%-12s %9s %8s %6s %9s %7s", "time", "observed", "desired", "ahead", "reactive", "hybrid")
	var forecast timeline
	for now := time.Now(); now.Before(end); now = time.Now() {
		obs, _ := s.observed(now)
		qctx, qcancel := context.WithTimeout(context.Background(), 5*time.Second)
		d, derr := desired(qctx, q)
		qcancel()
		if derr == nil {
			forecast.add(now, int32(d))
		}
		t.Logf("%-12s %9.0f %8.0f %6d %9d %7d", rel(now, s.t0), obs, d, tls["ahead"].last(), tls["reactive"].last(), tls["hybrid"].last())
		if k.forecaster.exited() || k.scaler.exited() {
			t.Fatal("the forecaster or the scaler exited")
		}
		time.Sleep(min(15*time.Second, time.Until(end)))
	}
	stopWatch()
	<-watched
	for _, ns := range []string{"ahead", "reactive", "hybrid"} {
		t.Logf("%-8s spec.replicas: %s", ns, tls[ns].String(s.t0))
	}
	t.Logf("%-8s desired:      %s", "forecast", forecast.String(s.t0))

	t.Run("1-ahead-of-the-load", func(t *testing.T) {
		// need is the count the observed load needs once it has risen; tNeed
		// the first time it needs it.
		var need int32
		var tNeed time.Time
		s.mu.Lock()
		for _, p := range s.fed {
			if n := int32(math.Ceil(p.V / targetPerPod)); n > need && !p.T.After(end) {
				need = n
			}
		}
		for _, p := range s.fed {
			if int32(math.Ceil(p.V/targetPerPod)) >= need {
				tNeed = p.T
				break
			}
		}
		s.mu.Unlock()
		ahead, ok := tls["ahead"].reached(need)
		if !ok {
			t.Fatalf("the Kedastral-scaled Deployment never reached %d replicas: %s", need, tls["ahead"].String(s.t0))
		}
		reactive, rok := tls["reactive"].reached(need)
		lead := 5*time.Minute - pollingInterval*time.Second
		t.Logf("the load needs %d replicas from %s; Kedastral's Deployment has them at %s (%s ahead), the reactive one at %s",
			need, rel(tNeed, s.t0), rel(ahead, s.t0), tNeed.Sub(ahead).Round(time.Second), func() string {
				if !rok {
					return "never"
				}
				return fmt.Sprintf("%s (%s after the need)", rel(reactive, s.t0), reactive.Sub(tNeed).Round(time.Second))
			}())
		if tNeed.Sub(ahead) < lead {
			t.Errorf("Kedastral's Deployment reached %d replicas %s before the load needed them, want at least leadTime − pollingInterval = %s",
				need, tNeed.Sub(ahead).Round(time.Second), lead)
		}
		if rok && !reactive.After(ahead) {
			t.Errorf("the reactive Deployment reached %d replicas at %s, not later than Kedastral's (%s)", need, rel(reactive, s.t0), rel(ahead, s.t0))
		}
	})

	t.Run("2-hybrid", func(t *testing.T) {
		h := e.hpaOf(t, "hybrid")
		if len(h.targets) != 2 {
			t.Fatalf("the hybrid HPA has metrics %v, want Kedastral's and the reactive one", h.targets)
		}
		syncs := readSyncs(t, e, "hybrid", 1)
		disagreed := 0
		for _, s := range syncs {
			// Each trigger's proposal as the controller makes it: the count
			// it holds within the tolerance, else ceil(metric/target).
			want := int32(0)
			var props []string
			var counts []int32
			for name, v := range s.metrics {
				if math.IsNaN(v) {
					continue
				}
				p := float64(v) / h.targets[name]
				prop := s.before
				if !capacity.UsageWithinTolerance(p, s.before, 0.1) {
					prop = capacity.Proposal(p, h.min, h.max)
				}
				props = append(props, fmt.Sprintf("%s %d", name, prop))
				counts = append(counts, prop)
				want = max(want, prop)
			}
			if len(counts) != 2 {
				t.Errorf("sync at %s read %d of the two metrics: %v", s.at.Format(time.TimeOnly), len(counts), s.metrics)
				continue
			}
			if counts[0] != counts[1] {
				disagreed++
			}
			// Scaling up is at once, up to the default scale-up policy (100%
			// or 4 pods a 15 s period); scaling down is held by the window.
			limit := max(2*s.before, s.before+4)
			if s.after < min(want, limit) || (want < s.before && s.after < want) {
				t.Errorf("sync at %s: proposals %v, the HPA went %d → %d, not to the larger", s.at.Format(time.TimeOnly), props, s.before, s.after)
			}
			if s.after > max(want, s.before) {
				t.Errorf("sync at %s: proposals %v, the HPA went %d → %d, above both", s.at.Format(time.TimeOnly), props, s.before, s.after)
			}
		}
		t.Logf("hybrid: %d syncs, %d with the two triggers proposing different counts", len(syncs), disagreed)
		if len(syncs) < 10 || disagreed == 0 {
			t.Errorf("want at least 10 syncs and one where the triggers disagree; got %d and %d", len(syncs), disagreed)
		}
	})

	t.Run("7-fidelity", func(t *testing.T) {
		same, total := 0, 0
		for _, ns := range []string{"ahead", "reactive", "hybrid"} {
			h := e.hpaOf(t, ns)
			syncs := readSyncs(t, e, ns, 1)
			n, diffs := replay(h, syncs)
			t.Logf("%s: %d/%d syncs identical", ns, n, len(syncs))
			for _, d := range diffs {
				t.Logf("  %s differs: %s", ns, d)
			}
			same += n
			total += len(syncs)
		}
		t.Logf("hpa-fidelity: %d/%d syncs identical", same, total)
		if total < 30 {
			t.Fatalf("only %d HPA syncs in the audit log", total)
		}
		if float64(same) < 0.95*float64(total) {
			t.Errorf("hpa-fidelity %d/%d below 0.95", same, total)
		}
	})
}
