package forecast_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/kedastral/kedastral/engine/forecast"
	"github.com/kedastral/kedastral/engine/policy"
	"github.com/kedastral/kedastral/promapi"
	"github.com/kedastral/kedastral/promapi/promtest"
	"github.com/kedastral/kedastral/test/testutil"
)

// loadSignals starts a real Prometheus with three hours of history ending at
// the current minute: app_rps{svc="a"} at 100; app_queue{svc="a"} at 10
// that spikes to 200 for the last 10 minutes; app_demand at 100; and
// kube-state-metrics' available replicas of two Deployments in namespace
// shop: api-under with 1, api-fine with 10.
func loadSignals(t *testing.T) (*promtest.Server, time.Time) {
	t.Helper()
	promtest.RequireBinaries(t)
	end := time.Now().Truncate(time.Minute)
	mk := func(name string, f func(time.Time) float64, ls ...string) promtest.Series {
		s := promtest.Series{Name: name, Labels: labels.FromStrings(ls...)}
		for tm := end.Add(-3 * time.Hour); !tm.After(end); tm = tm.Add(time.Minute) {
			s.Points = append(s.Points, promtest.Point{T: tm.UnixMilli(), V: f(tm)})
		}
		return s
	}
	constant := func(v float64) func(time.Time) float64 { return func(time.Time) float64 { return v } }
	series := []promtest.Series{
		mk("app_rps", constant(100), "svc", "a"),
		mk("app_queue", func(tm time.Time) float64 {
			if tm.After(end.Add(-10 * time.Minute)) {
				return 200
			}
			return 10
		}, "svc", "a"),
		mk("app_demand", constant(100)),
		mk("kube_deployment_status_replicas_available", constant(1), "namespace", "shop", "deployment", "api-under"),
		mk("kube_deployment_status_replicas_available", constant(10), "namespace", "shop", "deployment", "api-fine"),
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := promtest.CreateBlocks(ctx, dir, series); err != nil {
		t.Fatal(err)
	}
	return promtest.StartInT(t, dir, promtest.Options{}), end
}

// signalPolicy is a policy of the linear model (a flat history forecasts
// flat) at 50 per replica, evaluated every second; spec adds lines to spec.
func signalPolicy(t *testing.T, name, spec string) *policy.ForecastPolicy {
	t.Helper()
	set, errs := policy.Parse([]byte(fmt.Sprintf(`
apiVersion: kedastral.io/v1alpha1
kind: ForecastPolicy
metadata: {name: %s, namespace: shop}
spec:
  horizon: 10m
  leadTime: 5m
  interval: 1s
  lookback: 2h
  ahead: [5m]
  capacity: {targetPerPod: 50, min: 1, max: 100}
  model: {type: linear}
%s`, name, spec)), "test.yaml")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return set.Policies[0]
}

func startManager(t *testing.T, srv *promtest.Server, ps ...*policy.ForecastPolicy) (*forecast.Manager, *prometheus.Registry, *promapi.Client) {
	t.Helper()
	q, w := newClients(t, srv)
	reg := prometheus.NewRegistry()
	mgr, err := forecast.NewManager(forecast.Options{Registerer: reg, Writer: w,
		Queriers: func(*policy.DataSource) (forecast.Querier, error) { return q, nil }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mgr.Stop)
	if err := mgr.Apply(&policy.Set{Policies: ps}, nil); err != nil {
		t.Fatal(err)
	}
	return mgr, reg, q
}

func statusOf(mgr *forecast.Manager, name string) forecast.PolicyStatus {
	for _, s := range mgr.Status() {
		if s.Name == name {
			return s
		}
	}
	return forecast.PolicyStatus{}
}

func TestSignalsEndToEnd(t *testing.T) {
	srv, end := loadSignals(t)

	// A two-source policy: rps at 100 needs 2 replicas; queue, at 10 per
	// replica, needs 1 until it spikes to 200 and takes over the count.
	t.Run("second source takes over when it spikes", func(t *testing.T) {
		p := signalPolicy(t, "two", `  targetRef: {name: api}
  sources:
    - {name: rps, query: 'sum by (svc) (app_rps)'}
    - {name: queue, query: 'sum by (svc) (app_queue)', targetPerPod: 10}
`)
		q, _ := newClients(t, srv)
		e := forecast.NewEvaluator(p, q)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, c := range []struct {
			at          time.Time
			min, max    int32
			source      string
			rps, queues float64
		}{
			{end.Add(-30 * time.Minute), 2, 2, "rps", 100, 10},
			{end, 20, 100, "queue", 100, 200},
		} {
			if _, err := e.Fetch(ctx, c.at); err != nil {
				t.Fatal(err)
			}
			cy := e.Evaluate(ctx, c.at)
			if len(cy.Series) != 1 || cy.Series[0].Err != nil {
				t.Fatalf("at %v: %+v", c.at, cy.Series)
			}
			r := cy.Series[0]
			if r.Desired < c.min || r.Desired > c.max || r.Source != c.source || r.Sources[0].Observed != c.rps || r.Sources[1].Observed != c.queues {
				t.Errorf("at %v: desired %d driven by %s (observed %v, %v); want [%d, %d] by %s",
					c.at, r.Desired, r.Source, r.Sources[0].Observed, r.Sources[1].Observed, c.min, c.max, c.source)
			}
		}

		// Live: the series in Prometheus and the forecaster's own /metrics.
		mgr, reg, pq := startManager(t, srv, p)
		st := testutil.Eventually(t, 30*time.Second, "a successful cycle", func() (forecast.PolicyStatus, bool) {
			s := statusOf(mgr, "two")
			return s, !s.LastSuccess.IsZero()
		})
		ts := st.LastSuccess
		desired := queryAt(t, pq, `kedastral_desired_replicas{policy="two"}`, ts)
		d, ok := desired[`{policy="two", svc="a"}`]
		if !ok || d.V < 20 || len(desired) != 1 {
			t.Errorf("desired replicas in Prometheus: %v", desired)
		}
		observed := queryAt(t, pq, `kedastral_observed_value{policy="two"}`, ts)
		if observed[`{policy="two", source="queue", svc="a"}`].V != 200 || observed[`{policy="two", source="rps", svc="a"}`].V != 100 {
			t.Errorf("observed values in Prometheus: %v", observed)
		}
		// A capacity per source, in its unit, so the mixin's
		// under-provisioning rule compares each source with the desired
		// replicas (the rule's expression, against this Prometheus).
		capacity := queryAt(t, pq, `kedastral_capacity_per_replica{policy="two"}`, ts)
		if capacity[`{policy="two", source="queue"}`].V != 10 || capacity[`{policy="two", source="rps"}`].V != 50 || len(capacity) != 2 {
			t.Errorf("capacity per replica in Prometheus: %v", capacity)
		}
		under := queryAt(t, pq, `(kedastral_observed_value{policy="two"} / on (policy_namespace, policy, source) group_left kedastral_capacity_per_replica)
			> bool ignoring (source) group_left kedastral_desired_replicas`, ts)
		uq, okq := under[`{policy="two", source="queue", svc="a"}`]
		ur, okr := under[`{policy="two", source="rps", svc="a"}`]
		if len(under) != 2 || !okq || !okr || uq.V != 0 || ur.V != 0 {
			t.Errorf("under-provisioned per source: %v, want rps and queue served", under)
		}
		predicted := queryAt(t, pq, `kedastral_predicted_value{policy="two"}`, ts)
		if _, ok := predicted[`{ahead="5m", policy="two", quantile="0.5", source="queue", svc="a"}`]; !ok || len(predicted) != 2 {
			t.Errorf("predictions in Prometheus: %v", keys(predicted))
		}
		if st.DrivenBy["queue"] != 1 || st.DrivenBy["rps"] != 0 || len(st.Series) != 1 || st.Series[0].Source != "queue" {
			t.Errorf("status: driven by %v, series %+v", st.DrivenBy, st.Series)
		}
		if v := gatherValue(t, reg, "kedastral_forecaster_series_by_source", map[string]string{"policy": "two", "source": "queue"}); v != 1 {
			t.Errorf("series_by_source{source=queue} = %v, want 1", v)
		}
		if v := gatherValue(t, reg, "kedastral_forecaster_series_by_source", map[string]string{"policy": "two", "source": "rps"}); v != 0 {
			t.Errorf("series_by_source{source=rps} = %v, want 0", v)
		}
	})

	// An event with minReplicas 12 (rps alone needs 2) raises the count from
	// the lead time (5m) before its window opens until it closes.
	t.Run("event raises the floor leadTime before its window", func(t *testing.T) {
		open := end.Add(-20 * time.Minute)
		p := signalPolicy(t, "event", fmt.Sprintf(`  targetRef: {name: api}
  sources: [{name: rps, query: 'sum by (svc) (app_rps)'}]
  events:
    - {name: black-friday, start: '%s', end: '%s', minReplicas: 12}
`, open.Format(time.RFC3339), open.Add(10*time.Minute).Format(time.RFC3339)))
		q, _ := newClients(t, srv)
		e := forecast.NewEvaluator(p, q)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for m := -8; m <= 12; m++ {
			at := open.Add(time.Duration(m) * time.Minute)
			if _, err := e.Fetch(ctx, at); err != nil {
				t.Fatal(err)
			}
			r := e.Evaluate(ctx, at).Series[0]
			want := int32(2)
			if m >= -5 && m < 10 {
				want = 12
			}
			if r.Err != nil || r.Desired != want {
				t.Errorf("%+dm from the opening: desired %d (%v), want %d", m, r.Desired, r.Err, want)
			}
		}

		// Live: one event opens within the lead time, one after it.
		now := time.Now().UTC()
		soon := signalPolicy(t, "soon", fmt.Sprintf(`  targetRef: {name: api}
  sources: [{name: rps, query: 'sum by (svc) (app_rps)'}]
  events: [{name: launch, start: '%s', end: '%s', minReplicas: 12}]
`, now.Add(2*time.Minute).Format(time.RFC3339), now.Add(time.Hour).Format(time.RFC3339)))
		later := signalPolicy(t, "later", fmt.Sprintf(`  targetRef: {name: api}
  sources: [{name: rps, query: 'sum by (svc) (app_rps)'}]
  events: [{name: launch, start: '%s', end: '%s', minReplicas: 12}]
`, now.Add(8*time.Minute).Format(time.RFC3339), now.Add(time.Hour).Format(time.RFC3339)))
		mgr, _, pq := startManager(t, srv, soon, later)
		for name, want := range map[string]float64{"soon": 12, "later": 2} {
			st := testutil.Eventually(t, 30*time.Second, "a successful cycle of "+name, func() (forecast.PolicyStatus, bool) {
				s := statusOf(mgr, name)
				return s, !s.LastSuccess.IsZero()
			})
			got := queryAt(t, pq, fmt.Sprintf(`kedastral_desired_replicas{policy=%q}`, name), st.LastSuccess)
			if v := got[fmt.Sprintf(`{policy=%q, svc="a"}`, name)].V; v != want {
				t.Errorf("%s: desired %v in Prometheus, want %v", name, v, want)
			}
			if name == "soon" {
				if len(st.Events) != 1 || st.Events[0].Open || !strings.Contains(st.Events[0].Message, "event 'launch' opens at") {
					t.Errorf("soon: events on the status %+v", st.Events)
				}
				pred := queryAt(t, pq, `kedastral_predicted_value{policy="soon"}`, st.LastSuccess)
				// The forecast 5m ahead is inside the window: the load 12 replicas carry.
				if v := pred[`{ahead="5m", policy="soon", quantile="0.5", svc="a"}`].V; v != 600 {
					t.Errorf("soon: predicted %v, want the adjusted forecast 600", v)
				}
			} else if len(st.Events) != 0 {
				t.Errorf("later: events on the status %+v", st.Events)
			}
		}
	})

	// The default readyReplicasQuery reads the backfilled kube-state-metrics
	// series: api-under has 1 replica for a demand of 100 at 50 per replica,
	// api-fine has 10, api-gone has no series.
	t.Run("underprovision counter", func(t *testing.T) {
		var ps []*policy.ForecastPolicy
		for _, name := range []string{"api-under", "api-fine", "api-gone"} {
			ps = append(ps, signalPolicy(t, name, fmt.Sprintf("  targetRef: {name: %s}\n  sources: [{name: demand, query: 'sum(app_demand)'}]\n", name)))
		}
		if q := ps[0].Spec.ReadyReplicasQuery; q != `kube_deployment_status_replicas_available{namespace="shop", deployment="api-under"}` {
			t.Fatalf("default readyReplicasQuery %s", q)
		}
		mgr, reg, pq := startManager(t, srv, ps...)
		started := time.Now()
		st := testutil.Eventually(t, 30*time.Second, "3 seconds under-provisioned", func() (forecast.PolicyStatus, bool) {
			s := statusOf(mgr, "api-under")
			return s, len(s.Series) == 1 && s.Series[0].UnderprovisionSeconds != nil && *s.Series[0].UnderprovisionSeconds >= 3
		})
		counted := *st.Series[0].UnderprovisionSeconds
		if limit := time.Since(started).Seconds() + 1; counted > limit {
			t.Errorf("counted %vs under-provisioned in %vs", counted, limit)
		}
		if s := st.Series[0]; !s.Underprovisioned || s.Ready == nil || *s.Ready != 1 {
			t.Errorf("api-under: %+v", s)
		}
		if v := gatherValue(t, reg, forecast.UnderprovisionMetric, map[string]string{"policy": "api-under"}); v < counted {
			t.Errorf("/metrics: %s{policy=api-under} = %v, status says %v", forecast.UnderprovisionMetric, v, counted)
		}
		got := queryAt(t, pq, forecast.UnderprovisionMetric, st.LastSuccess)
		if v := got[`{policy="api-under"}`].V; v != counted {
			t.Errorf("remote-written counter %v, want %v (all: %v)", v, counted, got)
		}

		fine := statusOf(mgr, "api-fine")
		if len(fine.Series) != 1 || fine.Series[0].Underprovisioned || *fine.Series[0].UnderprovisionSeconds != 0 || *fine.Series[0].Ready != 10 {
			t.Errorf("api-fine: %+v", fine.Series)
		}
		if v := gatherValue(t, reg, forecast.UnderprovisionMetric, map[string]string{"policy": "api-fine"}); v != 0 {
			t.Errorf("/metrics: api-fine counter %v", v)
		}
		gone := statusOf(mgr, "api-gone")
		if len(gone.Series) != 1 || *gone.Series[0].UnderprovisionSeconds != 0 || !strings.Contains(gone.Series[0].ReadyNote, "returned nothing") {
			t.Errorf("api-gone: %+v", gone.Series)
		}
		// Monotonic across cycles.
		later := testutil.Eventually(t, 30*time.Second, "a later cycle", func() (forecast.PolicyStatus, bool) {
			s := statusOf(mgr, "api-under")
			return s, s.LastSuccess.After(st.LastSuccess.Add(time.Second))
		})
		if *later.Series[0].UnderprovisionSeconds <= counted {
			t.Errorf("counter went from %v to %v", counted, *later.Series[0].UnderprovisionSeconds)
		}
	})
}
