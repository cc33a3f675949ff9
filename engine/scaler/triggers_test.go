package scaler

import (
	"testing"
)

// TestTriggerCache: the same metadata, in another map, is parsed once; a
// different value is another trigger; a bad one is an error every time.
func TestTriggerCache(t *testing.T) {
	ts := startServer(t, Options{Querier: &fakeQuerier{}})
	s := ts.Server
	meta := func(sel string) map[string]string {
		return map[string]string{"policy": "fleet", "matchLabels": sel, "maxForecastAge": "5m"}
	}
	a, err := s.trigger(meta("deployment=a"), "")
	if err != nil {
		t.Fatal(err)
	}
	again, err := s.trigger(meta("deployment=a"), "")
	if err != nil || again != a {
		t.Errorf("same metadata: %p, %v; want the cached %p", again, err, a)
	}
	b, err := s.trigger(meta("deployment=b"), "")
	if err != nil || b == a || b.m.MatchLabels.Get("deployment") != "b" || b.name == a.name {
		t.Errorf("other selection: %+v, %v", b, err)
	}
	if a.name != a.m.MetricName() || a.m.Policy != "fleet" {
		t.Errorf("cached trigger %+v", a)
	}
	// Swapped keys and values hash alike in a naive order-independent
	// hash; the stored map tells them apart.
	x, _ := s.trigger(map[string]string{"policy": "p", "matchLabels": "a=b"}, "")
	y, err := s.trigger(map[string]string{"policy": "p", "matchLabels": "a=c"}, "")
	if err != nil || x == y {
		t.Errorf("two selections, one trigger")
	}
	for range 2 {
		if _, err := s.trigger(map[string]string{"policy": "fleet", "bogus": "1"}, ""); err == nil {
			t.Error("unknown key: no error")
		}
	}
	// The same metadata polled for ScaledObjects of two namespaces: two
	// triggers, each defaulting the policy's namespace to its own.
	na, err := s.trigger(meta("deployment=a"), "team-a")
	if err != nil || na == a || na.m.PolicyNamespace != "team-a" {
		t.Errorf("namespace team-a: %+v, %v; want its own trigger for team-a", na, err)
	}
	nb, err := s.trigger(meta("deployment=a"), "team-b")
	if err != nil || nb == na || nb.m.PolicyNamespace != "team-b" {
		t.Errorf("namespace team-b: %+v, %v; want its own trigger for team-b", nb, err)
	}
	if n := len(s.triggers.m); n != 6 {
		t.Errorf("%d cached triggers, want 6", n)
	}
}
