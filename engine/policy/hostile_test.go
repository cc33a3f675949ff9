package policy

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// hostileBase is a valid policy; each hostile case replaces one line.
const hostileBase = `apiVersion: kedastral.io/v1alpha1
kind: ForecastPolicy
metadata:
  name: api
spec:
  targetRef:
    name: my-api
  horizon: 30m
  leadTime: 5m
  capacity:
    targetPerPod: 200
    min: 2
    max: 50
  model:
    quantile: 0.85
  sources:
    - name: rps
      query: sum(rate(http_requests_total[1m]))
`

// TestHostilePolicies feeds policies meant to hurt: each is refused with a
// message that names the field, in bounded time and memory, and never
// panics.
func TestHostilePolicies(t *testing.T) {
	repl := func(old, new string) string {
		if !strings.Contains(hostileBase, old) {
			t.Fatalf("base lacks %q", old)
		}
		return strings.Replace(hostileBase, old, new, 1)
	}
	nested := strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000)
	bomb := "apiVersion: kedastral.io/v1alpha1\nkind: ForecastPolicy\nmetadata: {name: bomb}\nspec:\n  a: &a [x, x, x, x, x, x, x, x, x, x]\n"
	prev := "a"
	for i := range 9 {
		name := string(rune('b' + i))
		bomb += fmt.Sprintf("  %s: &%s [*%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s]\n", name, name, prev, prev, prev, prev, prev, prev, prev, prev, prev, prev)
		prev = name
	}
	manyAhead := "  ahead: [" + strings.TrimSuffix(strings.Repeat("5m, ", 1000), ", ") + "]\n  horizon: 30m"
	manySources := "  sources:\n" + strings.Repeat("    - {name: x, query: up}\n", 1000)
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"huge horizon", repl("horizon: 30m", "horizon: 100000d"), "spec.horizon"},
		// The duration decoder's message names neither line nor field.
		{"horizon overflowing a duration", repl("horizon: 30m", "horizon: 999999999999999y"), "duration out of range"},
		{"negative horizon", repl("horizon: 30m", "horizon: -5m"), `not a valid duration string: "-5m"`},
		{"huge lookback", repl("horizon: 30m", "horizon: 30m\n  lookback: 10000w"), "spec.lookback"},
		{"interval 1ms", repl("horizon: 30m", "horizon: 30m\n  interval: 1ms"), "spec.interval"},
		{"1000 ahead offsets", repl("  horizon: 30m", manyAhead), "spec.ahead"},
		{"zero capacity", repl("targetPerPod: 200", "targetPerPod: 0"), "spec.capacity.targetPerPod"},
		{"negative capacity", repl("targetPerPod: 200", "targetPerPod: -200"), "spec.capacity.targetPerPod"},
		{"NaN capacity", repl("targetPerPod: 200", "targetPerPod: .nan"), "spec.capacity.targetPerPod"},
		{"infinite capacity", repl("targetPerPod: 200", "targetPerPod: .inf"), "spec.capacity.targetPerPod"},
		{"min above max", repl("min: 2", "min: 60"), "min (60) is greater than max (50)"},
		{"negative min", repl("min: 2", "min: -1"), "spec.capacity.min"},
		{"max zero", repl("max: 50", "max: 0"), "spec.capacity.max"},
		{"max huge", repl("max: 50", "max: 1000000"), "spec.capacity.max"},
		{"max overflowing int32", repl("max: 50", "max: 2147483648"), "hostile.yaml:13:5: ForecastPolicy \"api\": spec.capacity.max: cannot unmarshal !!int `2147483648` into int32"},
		{"max overflowing int64", repl("max: 50", "max: 99999999999999999999999"), "hostile.yaml:13:5: ForecastPolicy \"api\": spec.capacity.max: cannot unmarshal"},
		{"headroom NaN", repl("max: 50", "max: 50\n    headroom: .nan"), "spec.capacity.headroom"},
		{"quantile 1", repl("quantile: 0.85", "quantile: 1"), "spec.model.quantile"},
		{"quantile above 1", repl("quantile: 0.85", "quantile: 1.5"), "spec.model.quantile"},
		{"quantile negative", repl("quantile: 0.85", "quantile: -0.1"), "spec.model.quantile"},
		{"quantile NaN", repl("quantile: 0.85", "quantile: .nan"), "spec.model.quantile"},
		// Zero is how the types spell "unset"; written out, it is refused
		// rather than read as the default.
		{"quantile 0", repl("quantile: 0.85", "quantile: 0"), "spec.model.quantile: must be in (0, 1), got 0"},
		{"interval 0s", repl("horizon: 30m", "horizon: 30m\n  interval: 0s"), "spec.interval: must be positive, got 0"},
		{"step 0", repl("horizon: 30m", "horizon: 30m\n  step: 0"), "spec.step: must be positive, got 0"},
		{"lookback 0s", repl("horizon: 30m", "horizon: 30m\n  lookback: 0s"), "spec.lookback: must be positive, got 0"},
		{"headroom 0", repl("max: 50", "max: 50\n    headroom: 0"), "spec.capacity.headroom: must be in (0, 100], got 0"},
		{"source targetPerPod 0", repl("      query: sum(rate(http_requests_total[1m]))", "      query: sum(rate(http_requests_total[1m]))\n      targetPerPod: 0"), "spec.sources[0].targetPerPod: must be positive, got 0"},
		{"source quantile 0.0", repl("      query: sum(rate(http_requests_total[1m]))", "      query: sum(rate(http_requests_total[1m]))\n      quantile: 0.0"), "spec.sources[0].quantile: must be in (0, 1), got 0"},
		{"unknown model", repl("quantile: 0.85", "type: gpt\n    quantile: 0.85"), "spec.model.type"},
		{"invalid PromQL", repl("query: sum(rate(http_requests_total[1m]))", "query: sum(rate(x[1m])"), "invalid PromQL"},
		{"PromQL returning a string", repl("query: sum(rate(http_requests_total[1m]))", `query: '"hello"'`), "returns a string"},
		{"PromQL returning a matrix", repl("query: sum(rate(http_requests_total[1m]))", "query: http_requests_total[5m]"), "returns a matrix"},
		{"empty PromQL", repl("query: sum(rate(http_requests_total[1m]))", "query: ''"), "spec.sources[0].query"},
		{"1000 sources", repl("  sources:\n    - name: rps\n      query: sum(rate(http_requests_total[1m]))\n", manySources), "spec.sources"},
		{"unknown field", repl("horizon: 30m", "horizon: 30m\n  replicas: 3"), "hostile.yaml:9:3: ForecastPolicy \"api\": spec.replicas: unknown field"},
		{"bad name", repl("name: api", "name: '"+strings.Repeat("A", 300)+"'"), "metadata.name"},
		{"wrong apiVersion", repl("kedastral.io/v1alpha1", "v1"), "apiVersion"},
		{"wrong kind", repl("kind: ForecastPolicy", "kind: Pod"), "kind"},
		{"deeply nested YAML", repl("  horizon: 30m", "  horizon: 30m\n  extra: "+nested), ""},
		{"YAML anchors bomb", bomb, ""},
		{"not YAML", "\x00\x01\x02{{{", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			begin := time.Now()
			set, errs := Parse([]byte(tc.yaml), "hostile.yaml")
			elapsed := time.Since(begin)
			runtime.ReadMemStats(&after)
			if set != nil && len(set.Policies) != 0 {
				t.Fatalf("accepted: %+v", set.Policies[0].Spec)
			}
			// Every error of the object is reported, up to a bound.
			if len(errs) < 1 || len(errs) > maxObjectErrors+1 {
				t.Fatalf("%d errors, want 1 to %d: %v", len(errs), maxObjectErrors+1, errs)
			}
			msg := errs[0].Error()
			if !strings.HasPrefix(msg, "hostile.yaml:") || !strings.Contains(msg, tc.want) {
				t.Errorf("error %q, want one naming the file and containing %q", msg, tc.want)
			}
			if len(msg) > 2000 {
				t.Errorf("error of %d bytes", len(msg))
			}
			if elapsed > 2*time.Second {
				t.Errorf("took %s", elapsed)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 512<<20 {
				t.Errorf("allocated %d MiB", alloc>>20)
			}
		})
	}
}

// TestManyPolicies loads 10 000 policies: all are accepted, in bounded time.
func TestManyPolicies(t *testing.T) {
	var b strings.Builder
	for i := range 10_000 {
		fmt.Fprintf(&b, "---\n%s", strings.Replace(hostileBase, "name: api", fmt.Sprintf("name: api-%d", i), 1))
	}
	begin := time.Now()
	set, errs := Parse([]byte(b.String()), "many.yaml")
	if len(errs) != 0 || len(set.Policies) != 10_000 {
		t.Fatalf("%d policies, errors %v", len(set.Policies), errs[:min(3, len(errs))])
	}
	if d := time.Since(begin); d > 20*time.Second {
		t.Errorf("10 000 policies took %s", d)
	}
	t.Logf("10 000 policies parsed in %s", time.Since(begin).Round(time.Millisecond))
}

// FuzzParse feeds arbitrary bytes to the policy decoder: it never panics,
// and whatever it accepts validates again.
func FuzzParse(f *testing.F) {
	f.Add([]byte(hostileBase))
	f.Add([]byte(seedExample))
	f.Add([]byte("apiVersion: kedastral.io/v1alpha1\nkind: DataSource\nmetadata: {name: p}\nspec: {url: 'http://p:9090', basic_auth: {username: u, password: p}}\n"))
	f.Add([]byte("---\n---\n"))
	f.Add([]byte("a: &a [*a]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		set, _ := Parse(data, "fuzz.yaml")
		if set == nil {
			return
		}
		for _, p := range set.Policies {
			if err := p.Validate(); err != nil {
				t.Fatalf("accepted policy %q does not validate: %v", p.Metadata.Name, err)
			}
		}
	})
}
