package policy

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// twoSources is validPolicy with a second source; tests edit its queries.
func twoSources(t *testing.T, q1, q2, extra string) string {
	t.Helper()
	return edit(t, validPolicy,
		"  sources:\n    - name: rps\n      query: sum(rate(http_requests_total[1m]))\n",
		extra+"  sources:\n    - name: rps\n      query: '"+q1+"'\n    - name: queue\n      query: '"+q2+"'\n      targetPerPod: 30\n      quantile: 0.9\n")
}

func TestSourcesValidation(t *testing.T) {
	cases := []struct {
		name   string
		in     string
		field  string // "" when valid
		reason string
	}{
		{name: "two sources, same grouping",
			in: twoSources(t, "sum by (deployment) (rate(http_requests_total[1m]))", "sum by (deployment) (queue_depth)", "")},
		{name: "two sources, no grouping",
			in: twoSources(t, "sum(rate(http_requests_total[1m]))", "max(queue_depth) * 2", "")},
		{name: "grouping order does not matter",
			in: twoSources(t, "sum by (a, b) (x)", "(avg by (b, a) (y))", "")},
		{name: "unknown grouping is left to run time",
			in: twoSources(t, "sum by (deployment) (x)", "rate(y[1m])", "")},
		{name: "different grouping", in: twoSources(t, "sum by (deployment) (x)", "sum by (deployment, pod) (y)", ""),
			field: "spec.sources[1].query", reason: `returns series labelled by (deployment, pod) but sources[0] ("rps") by (deployment): sources are joined on the same labels; only this one has pod`},
		{name: "grouping versus none", in: twoSources(t, "sum(x)", "sum by (namespace) (y)", ""),
			field: "spec.sources[1].query", reason: "only this one has namespace"},
		{name: "the other has more", in: twoSources(t, "sum by (namespace, app) (x)", "sum by (namespace) (y)", ""),
			field: "spec.sources[1].query", reason: "only the other has app"},
		{name: "duplicate name", in: strings.Replace(twoSources(t, "sum(x)", "sum(y)", ""), "name: queue", "name: rps", 1),
			field: "spec.sources[1].name", reason: `duplicate source name "rps"`},
		{name: "negative targetPerPod", in: strings.Replace(twoSources(t, "sum(x)", "sum(y)", ""), "targetPerPod: 30", "targetPerPod: -1", 1),
			field: "spec.sources[1].targetPerPod", reason: "must be a positive number"},
		{name: "quantile out of range", in: strings.Replace(twoSources(t, "sum(x)", "sum(y)", ""), "quantile: 0.9", "quantile: 1.5", 1),
			field: "spec.sources[1].quantile", reason: "must be in (0, 1)"},
		{name: "invalid readyReplicasQuery", in: twoSources(t, "sum(x)", "sum(y)", "  readyReplicasQuery: 'sum(x'\n"),
			field: "spec.readyReplicasQuery", reason: "invalid PromQL"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			set, errs := Parse([]byte(c.in), "p.yaml")
			if c.field == "" {
				if len(errs) > 0 {
					t.Fatalf("unexpected errors: %v", errs)
				}
				if n := len(set.Policies[0].Spec.Sources); n != 2 {
					t.Fatalf("%d sources", n)
				}
				return
			}
			if len(errs) != 1 {
				t.Fatalf("got %d errors (%v), want 1", len(errs), errs)
			}
			var pe *Error
			if !errors.As(errs[0], &pe) || pe.Field != c.field || !strings.Contains(pe.Err.Error(), c.reason) {
				t.Errorf("got %v\nwant field %s and %q", errs[0], c.field, c.reason)
			}
		})
	}
}

func TestSourceSettings(t *testing.T) {
	set, errs := Parse([]byte(twoSources(t, "sum(x)", "sum(y)", "")), "p.yaml")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	s := &set.Policies[0].Spec
	if got := s.SourceCapacity(0).TargetPerPod; got != 200 {
		t.Errorf("source 0 targetPerPod %v, want the policy's 200", got)
	}
	if got := s.SourceCapacity(1).TargetPerPod; got != 30 {
		t.Errorf("source 1 targetPerPod %v, want its own 30", got)
	}
	if got := s.SourceQuantile(0); got != DefaultQuantile {
		t.Errorf("source 0 quantile %v, want the model's %v", got, DefaultQuantile)
	}
	if got := s.SourceModelConfig(1).Quantile; got != 0.9 {
		t.Errorf("source 1 model quantile %v, want 0.9", got)
	}
	if s.Capacity.TargetPerPod != 200 {
		t.Errorf("SourceCapacity changed the policy's capacity: %v", s.Capacity.TargetPerPod)
	}
}

func TestDefaultReadyReplicasQuery(t *testing.T) {
	cases := []struct {
		ns   string
		ref  TargetRef
		want string
	}{
		{"", TargetRef{Name: "api"}, `kube_deployment_status_replicas_available{deployment="api"}`},
		{"shop", TargetRef{Kind: "Deployment", Name: "api"}, `kube_deployment_status_replicas_available{namespace="shop", deployment="api"}`},
		{"shop", TargetRef{Kind: "StatefulSet", Name: "db"}, `kube_statefulset_status_replicas_available{namespace="shop", statefulset="db"}`},
		{"shop", TargetRef{Kind: "Rollout", Name: "api"}, ""},
	}
	for _, c := range cases {
		if got := DefaultReadyReplicasQuery(c.ns, c.ref); got != c.want {
			t.Errorf("%q %+v: got %s, want %s", c.ns, c.ref, got, c.want)
		}
	}
	// The namespace comes from the policy's metadata.
	set, errs := Parse([]byte(edit(t, validPolicy, "  name: p\n", "  name: p\n  namespace: shop\n")), "p.yaml")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if got, want := set.Policies[0].Spec.ReadyReplicasQuery, `kube_deployment_status_replicas_available{namespace="shop", deployment="my-api"}`; got != want {
		t.Errorf("readyReplicasQuery %s, want %s", got, want)
	}
}

// withEvents is validPolicy (max 50) with the given events YAML.
func withEvents(t *testing.T, events string) string {
	t.Helper()
	return edit(t, validPolicy, "  sources:\n", "  events:\n"+events+"  sources:\n")
}

func TestEventsValidation(t *testing.T) {
	defer func(f func() time.Time) { timeNow = f }(timeNow)
	timeNow = func() time.Time { return time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC) }
	cases := []struct {
		name   string
		events string
		field  string
		reason string
	}{
		{name: "absolute floor", events: "    - {name: black-friday, start: '2026-11-27T00:00:00Z', end: '2026-11-28T00:00:00Z', minReplicas: 20}\n"},
		{name: "recurring scale", events: "    - {name: month-end, schedule: '0 18 28-31 * *', duration: 6h, timeZone: Europe/Berlin, scale: 2}\n"},
		{name: "same floor overlapping agrees", events: "    - {name: a, start: '2026-11-27T00:00:00Z', end: '2026-11-28T00:00:00Z', minReplicas: 20}\n" +
			"    - {name: b, start: '2026-11-27T12:00:00Z', end: '2026-11-29T00:00:00Z', minReplicas: 20}\n"},
		{name: "floor and scale compose", events: "    - {name: a, start: '2026-11-27T00:00:00Z', end: '2026-11-28T00:00:00Z', minReplicas: 20}\n" +
			"    - {name: b, start: '2026-11-27T12:00:00Z', end: '2026-11-29T00:00:00Z', scale: 1.5}\n"},
		{name: "adjacent windows do not overlap", events: "    - {name: a, start: '2026-11-27T00:00:00Z', end: '2026-11-28T00:00:00Z', minReplicas: 20}\n" +
			"    - {name: b, start: '2026-11-28T00:00:00Z', end: '2026-11-29T00:00:00Z', minReplicas: 10}\n"},
		{name: "recurring windows that never meet", events: "    - {name: mornings, schedule: '0 8 * * *', duration: 2h, minReplicas: 10}\n" +
			"    - {name: evenings, schedule: '0 18 * * *', duration: 2h, minReplicas: 20}\n"},
		{name: "overlapping floors", events: "    - {name: a, start: '2026-11-27T00:00:00Z', end: '2026-11-28T00:00:00Z', minReplicas: 20}\n" +
			"    - {name: b, start: '2026-11-27T12:00:00Z', end: '2026-11-29T00:00:00Z', minReplicas: 10}\n",
			field: "spec.events[1]", reason: `event "b" overlaps event "a" (both active from 2026-11-27T12:00:00Z to 2026-11-28T00:00:00Z) with contradictory minReplicas 20 and 10`},
		{name: "recurring overlaps absolute", events: "    - {name: daily, schedule: '0 9 * * *', duration: 8h, scale: 1.5}\n" +
			"    - {name: launch, start: '2026-12-03T16:00:00Z', end: '2026-12-03T20:00:00Z', scale: 3}\n",
			field: "spec.events[1]", reason: "from 2026-12-03T16:00:00Z to 2026-12-03T17:00:00Z) with contradictory scale 1.5 and 3"},
		{name: "recurring overlaps recurring", events: "    - {name: weekdays, schedule: '0 9 * * 1-5', duration: 8h, minReplicas: 10}\n" +
			"    - {name: fridays, schedule: '0 15 * * 5', duration: 4h, minReplicas: 20}\n",
			field: "spec.events[1]", reason: "from 2026-11-06T15:00:00Z to 2026-11-06T17:00:00Z"},
		{name: "neither floor nor scale", events: "    - {name: a, start: '2026-11-27T00:00:00Z', end: '2026-11-28T00:00:00Z'}\n",
			field: "spec.events[0]", reason: "set exactly one of minReplicas and scale"},
		{name: "both floor and scale", events: "    - {name: a, start: '2026-11-27T00:00:00Z', end: '2026-11-28T00:00:00Z', minReplicas: 2, scale: 2}\n",
			field: "spec.events[0]", reason: "set exactly one of minReplicas and scale"},
		{name: "floor above max", events: "    - {name: a, start: '2026-11-27T00:00:00Z', end: '2026-11-28T00:00:00Z', minReplicas: 51}\n",
			field: "spec.events[0].minReplicas", reason: "must be in [1, spec.capacity.max=50], got 51"},
		{name: "zero scale", events: "    - {name: a, start: '2026-11-27T00:00:00Z', end: '2026-11-28T00:00:00Z', scale: 0}\n",
			field: "spec.events[0].scale", reason: "must be in (0, 100]"},
		{name: "no window", events: "    - {name: a, scale: 2}\n",
			field: "spec.events[0]", reason: "needs a window"},
		{name: "end before start", events: "    - {name: a, start: '2026-11-28T00:00:00Z', end: '2026-11-27T00:00:00Z', scale: 2}\n",
			field: "spec.events[0].end", reason: "is not after start"},
		{name: "start not RFC 3339", events: "    - {name: a, start: '2026-11-27', end: '2026-11-28T00:00:00Z', scale: 2}\n",
			field: "spec.events[0].start", reason: "must be an RFC 3339 time"},
		{name: "schedule and start", events: "    - {name: a, start: '2026-11-27T00:00:00Z', end: '2026-11-28T00:00:00Z', schedule: '0 9 * * *', duration: 1h, scale: 2}\n",
			field: "spec.events[0]", reason: "not both"},
		{name: "schedule without duration", events: "    - {name: a, schedule: '0 9 * * *', scale: 2}\n",
			field: "spec.events[0].duration", reason: "must be positive"},
		{name: "bad cron", events: "    - {name: a, schedule: '0 25 * * *', duration: 1h, scale: 2}\n",
			field: "spec.events[0].schedule", reason: "invalid cron schedule"},
		{name: "six fields", events: "    - {name: a, schedule: '0 0 9 * * *', duration: 1h, scale: 2}\n",
			field: "spec.events[0].schedule", reason: "invalid cron schedule"},
		{name: "descriptor", events: "    - {name: a, schedule: '@daily', duration: 1h, scale: 2}\n",
			field: "spec.events[0].schedule", reason: "invalid cron schedule"},
		{name: "time zone in schedule", events: "    - {name: a, schedule: 'CRON_TZ=Europe/Paris 0 9 * * *', duration: 1h, scale: 2}\n",
			field: "spec.events[0].schedule", reason: "with timeZone"},
		{name: "unknown time zone", events: "    - {name: a, schedule: '0 9 * * *', duration: 1h, timeZone: Mars/Olympus, scale: 2}\n",
			field: "spec.events[0].timeZone", reason: `unknown time zone "Mars/Olympus"`},
		{name: "never fires", events: "    - {name: a, schedule: '0 9 30 2 *', duration: 1h, scale: 2}\n",
			field: "spec.events[0].schedule", reason: "never fires"},
		{name: "duplicate names", events: "    - {name: a, start: '2026-11-27T00:00:00Z', end: '2026-11-28T00:00:00Z', scale: 2}\n" +
			"    - {name: a, start: '2026-12-27T00:00:00Z', end: '2026-12-28T00:00:00Z', scale: 2}\n",
			field: "spec.events[1].name", reason: "duplicate event name"},
		{name: "duration with absolute window", events: "    - {name: a, start: '2026-11-27T00:00:00Z', end: '2026-11-28T00:00:00Z', duration: 1h, scale: 2}\n",
			field: "spec.events[0]", reason: "duration and timeZone go with schedule"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, errs := Parse([]byte(withEvents(t, c.events)), "p.yaml")
			if c.field == "" {
				if len(errs) > 0 {
					t.Fatalf("unexpected errors: %v", errs)
				}
				return
			}
			if len(errs) != 1 {
				t.Fatalf("got %d errors (%v), want 1", len(errs), errs)
			}
			var pe *Error
			if !errors.As(errs[0], &pe) || pe.Field != c.field || !strings.Contains(pe.Err.Error(), c.reason) {
				t.Errorf("got %v\nwant field %s and %q", errs[0], c.field, c.reason)
			}
		})
	}
}

func TestEventWindows(t *testing.T) {
	ev := func(t *testing.T, yaml string) *CompiledEvent {
		t.Helper()
		set, errs := Parse([]byte(withEvents(t, yaml)), "p.yaml")
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		cs, err := CompileEvents(set.Policies[0].Spec.Events)
		if err != nil {
			t.Fatal(err)
		}
		return cs[0]
	}
	at := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	cases := []struct {
		name     string
		event    string
		from, to string
		want     []string // start/end pairs, RFC 3339 UTC
	}{
		{"absolute inside", "    - {name: a, start: '2026-11-27T00:00:00+01:00', end: '2026-11-28T00:00:00+01:00', scale: 2}\n",
			"2026-11-26T00:00:00Z", "2026-11-30T00:00:00Z", []string{"2026-11-26T23:00:00Z", "2026-11-27T23:00:00Z"}},
		{"absolute ended before the range", "    - {name: a, start: '2026-11-27T00:00:00Z', end: '2026-11-28T00:00:00Z', scale: 2}\n",
			"2026-11-28T00:00:00Z", "2026-11-30T00:00:00Z", nil},
		{"absolute opens at the range's end", "    - {name: a, start: '2026-11-27T00:00:00Z', end: '2026-11-28T00:00:00Z', scale: 2}\n",
			"2026-11-26T00:00:00Z", "2026-11-27T00:00:00Z", nil},
		{"daily in a time zone, one already open", "    - {name: a, schedule: '0 9 * * *', duration: 2h, timeZone: Europe/Berlin, scale: 2}\n",
			"2026-07-01T07:30:00Z", "2026-07-02T12:00:00Z",
			[]string{"2026-07-01T07:00:00Z", "2026-07-01T09:00:00Z", "2026-07-02T07:00:00Z", "2026-07-02T09:00:00Z"}},
		{"winter time", "    - {name: a, schedule: '0 9 * * *', duration: 2h, timeZone: Europe/Berlin, scale: 2}\n",
			"2026-12-01T00:00:00Z", "2026-12-01T23:00:00Z", []string{"2026-12-01T08:00:00Z", "2026-12-01T10:00:00Z"}},
		{"UTC by default", "    - {name: a, schedule: '30 23 * * 5', duration: 1h, scale: 2}\n",
			"2026-11-27T00:00:00Z", "2026-11-28T00:00:00Z", []string{"2026-11-27T23:30:00Z", "2026-11-28T00:30:00Z"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got []string
			for _, w := range ev(t, c.event).Windows(at(c.from), at(c.to)) {
				got = append(got, w.Start.Format(time.RFC3339), w.End.Format(time.RFC3339))
			}
			if strings.Join(got, " ") != strings.Join(c.want, " ") {
				t.Errorf("windows %v, want %v", got, c.want)
			}
		})
	}

	// ActiveAt: open, within the lead time before opening, and not yet.
	e := ev(t, "    - {name: bf, start: '2026-11-27T00:00:00Z', end: '2026-11-28T00:00:00Z', minReplicas: 20}\n")
	for _, c := range []struct {
		at         string
		active     bool
		open       bool
		leadBefore time.Duration
	}{
		{"2026-11-26T23:49:59Z", false, false, 10 * time.Minute},
		{"2026-11-26T23:50:00Z", true, false, 10 * time.Minute},
		{"2026-11-27T00:00:00Z", true, true, 10 * time.Minute},
		{"2026-11-27T23:59:59Z", true, true, 10 * time.Minute},
		{"2026-11-28T00:00:00Z", false, false, 10 * time.Minute},
	} {
		got := ActiveAt([]*CompiledEvent{e}, at(c.at), c.leadBefore)
		if (len(got) == 1) != c.active || (c.active && got[0].Open != c.open) {
			t.Errorf("at %s: got %+v, want active %v open %v", c.at, got, c.active, c.open)
		}
	}
}
