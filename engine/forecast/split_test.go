package forecast

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/kedastral/kedastral/engine/policy"
	"github.com/kedastral/kedastral/promapi"
)

func TestSplittable(t *testing.T) {
	for _, tc := range []struct {
		name, query, label string
		want               bool
	}{
		{"selector", `x`, "d", true},
		{"selector with matchers, offset and @", `x{job="a"} offset 5m @ 1700000000`, "d", true},
		{"rate", `rate(x[5m])`, "d", true},
		{"sum by the label", `sum by (namespace, d) (rate(x[1m]))`, "d", true},
		{"sum by another label", `sum by (namespace) (rate(x[1m]))`, "d", false},
		{"sum without another label", `sum without (pod) (rate(x[1m]))`, "d", true},
		{"sum without the label", `sum without (d) (rate(x[1m]))`, "d", false},
		{"sum of everything", `sum(x)`, "d", false},
		{"count_values into the label", `count_values by (d) ("d", x)`, "d", false},
		{"count_values into another label", `count_values by (d) ("v", x)`, "d", true},
		{"topk by the label", `topk by (d) (3, x)`, "d", true},
		{"topk without grouping", `topk(3, x)`, "d", false},
		{"topk with a computed parameter", `topk by (d) (scalar(y), x)`, "d", false},
		{"quantile by the label", `quantile by (d) (0.9, rate(x[5m]))`, "d", true},
		{"histogram_quantile", `histogram_quantile(0.9, sum by (d, le) (rate(x_bucket[5m])))`, "d", true},
		{"histogram_quantile by le", `histogram_quantile(0.9, sum by (d, le) (rate(x_bucket[5m])))`, "le", false},
		{"histogram_quantile with a computed quantile", `histogram_quantile(scalar(q), sum by (d, le) (rate(x_bucket[5m])))`, "d", false},
		{"clamp with literals", `clamp(rate(x[5m]), 0, 100)`, "d", true},
		{"clamp_min with a computed bound", `clamp_min(x, scalar(y))`, "d", false},
		{"quantile_over_time", `quantile_over_time(0.5, x[10m])`, "d", true},
		{"avg_over_time of a subquery", `avg_over_time(rate(x[1m])[1h:5m])`, "d", true},
		{"absent", `absent(x)`, "d", false},
		{"absent_over_time", `absent_over_time(x[5m])`, "d", false},
		{"scalar", `scalar(x)`, "d", false},
		{"vector", `vector(1)`, "d", false},
		{"time", `time()`, "d", false},
		{"hour without argument", `hour()`, "d", false},
		{"hour of timestamps", `hour(timestamp(x))`, "d", true},
		{"label_replace onto the label", `label_replace(x, "d", "$1", "pod", "(.*)-.*")`, "d", false},
		{"label_replace onto another label", `label_replace(x, "svc", "$1", "d", "(.*)")`, "d", true},
		{"label_join onto the label", `label_join(x, "d", "-", "a", "b")`, "d", false},
		{"vector times number", `2 * sum by (d) (x)`, "d", true},
		{"vector divided by a computed scalar", `x / scalar(y)`, "d", false},
		{"number arithmetic", `(1 + 2) * -x`, "d", true},
		{"vector over vector", `rate(a[5m]) / rate(b[5m])`, "d", true},
		{"on the label", `a / on (d) b`, "d", true},
		{"on another label", `a / on (ns) b`, "d", false},
		{"ignoring the label", `a / ignoring (d) b`, "d", false},
		{"ignoring another label", `a / ignoring (pod) b`, "d", true},
		{"group_left the label", `a * on (ns) group_left (d) b`, "d", false},
		{"group_left another label, on the label", `a * on (d) group_left (team) b`, "d", true},
		{"and on the label", `a and on (d) b`, "d", true},
		{"unless on another label", `a unless on (ns) b`, "d", false},
		{"or", `a or b`, "d", true},
		{"unknown function side", `a + on (d) absent(b)`, "d", false},
		{"comparison with bool", `a > bool 3`, "d", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			expr, err := parser.NewParser(parser.Options{}).ParseExpr(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			if got := splittable(expr, tc.label); got != tc.want {
				t.Errorf("splittable(%s, %s) = %v, want %v", tc.query, tc.label, got, tc.want)
			}
		})
	}
}

func TestWithMatcher(t *testing.T) {
	m := labels.MustNewMatcher(labels.MatchRegexp, "d", alternation([]string{"a.b", "c"}))
	got, err := withMatcher(`sum by (d) (rate(x{job="j"}[5m] offset 1m)) / on (d) group_left sum by (d) (y)`, m)
	if err != nil {
		t.Fatal(err)
	}
	want := `sum by (d) (rate(x{d=~"a\\.b|c",job="j"}[5m] offset 1m)) / on (d) group_left () sum by (d) (y{d=~"a\\.b|c"})`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// splitPolicy is a one-day policy with the given sources (a YAML list).
func splitPolicy(t *testing.T, sources string) *policy.ForecastPolicy {
	t.Helper()
	set, errs := policy.Parse([]byte(fmt.Sprintf(`
apiVersion: kedastral.io/v1alpha1
kind: ForecastPolicy
metadata: {name: split}
spec:
  targetRef: {name: api}
  horizon: 30m
  leadTime: 5m
  interval: 1s
  lookback: 1d
  capacity: {targetPerPod: 10, min: 1, max: 20}
  model: {type: baseline}
  sources: %s
`, sources)), "test.yaml")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return set.Policies[0]
}

// splitSeries are 50 series labelled svc="s00".."s49" (and zone="a" or
// "b"), varying over time, plus three that appear after the first chunk of
// a first fetch (svc="s50", "s51" and "s05x", a value among the others) and
// one that stops in the middle of the lookback.
func splitSeries(now time.Time) []promapi.Series {
	var out []promapi.Series
	add := func(svc string, i int, from, to time.Time) {
		s := promapi.Series{Labels: labels.FromStrings("svc", svc, "zone", string(rune('a'+i%2)))}
		for t := from.Truncate(time.Minute); !t.After(to); t = t.Add(time.Minute) {
			s.Points = append(s.Points, promapi.Point{T: t.UnixMilli(), V: float64(i) + float64(t.Unix()/60%97)})
		}
		out = append(out, s)
	}
	for i := range 50 {
		to := now.Add(time.Hour)
		if i == 17 {
			to = now.Add(-12 * time.Hour)
		}
		add(fmt.Sprintf("s%02d", i), i, now.Add(-48*time.Hour), to)
	}
	add("s50", 50, now.Add(-10*time.Hour), now.Add(time.Hour))
	add("s51", 51, now.Add(-2*time.Hour), now.Add(time.Hour))
	add("s05x", 52, now.Add(-15*time.Hour), now.Add(time.Hour))
	return out
}

// histories are the evaluator's histories, printed, by series.
func histories(e *Evaluator) map[string]string {
	out := map[string]string{}
	for _, st := range e.series {
		v := st.hist.view(new([]float64))
		out[st.labels.String()] = fmt.Sprint(v.Start.Unix(), v.Values)
	}
	return out
}

// queryMatchers are the regular-expression matchers of a query's selectors.
func queryMatchers(t *testing.T, q string) []*labels.Matcher {
	t.Helper()
	ms, err := regexpMatchers(q)
	if err != nil {
		t.Fatalf("query %s: %v", q, err)
	}
	return ms
}

// regexpMatchers are the regular-expression matchers of q's selectors.
func regexpMatchers(q string) ([]*labels.Matcher, error) {
	expr, err := parser.NewParser(parser.Options{}).ParseExpr(q)
	if err != nil {
		return nil, err
	}
	var ms []*labels.Matcher
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			for _, m := range vs.LabelMatchers {
				if m.Type == labels.MatchRegexp || m.Type == labels.MatchNotRegexp {
					ms = append(ms, m)
				}
			}
		}
		return nil
	})
	return ms, nil
}

// TestEvaluatorFetchSplitsBySeries: when the first chunk of a first fetch
// shows more than maxFetchSeries series and the query passes a label through,
// the rest of the lookback is read in groups of series by that label, each
// group over the whole rest once, and the histories are those of a fetch in
// chunks of time only; series that start after the first chunk are found by
// a one-step read at the end and read with their group.
func TestEvaluatorFetchSplitsBySeries(t *testing.T) {
	now := time.Date(2026, 3, 2, 12, 0, 30, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		sources string
	}{
		{"one source", `[{name: rps, query: 'sum by (svc, zone) (rate(http_requests_total[1m]))'}]`},
		{"two sources", `[{name: rps, query: 'sum by (svc, zone) (rate(http_requests_total[1m]))'},
    {name: lat, query: 'max by (svc, zone) (lat_seconds) * 1000'}]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := splitPolicy(t, tc.sources)
			q := &recorded{series: splitSeries(now)}
			e := NewEvaluator(p, q)
			e.maxFetchSeries = 12
			e.maxFetchPoints = 12 * 100 // 100 steps a query in groups of 12 series
			if _, err := e.Fetch(t.Context(), now); err != nil {
				t.Fatal(err)
			}
			// The reference: the same fetch in chunks of time only.
			ref := &recorded{series: q.series}
			er := NewEvaluator(p, ref)
			er.maxFetchPoints = e.maxFetchPoints
			er.maxFetchSeries = 1000
			if _, err := er.Fetch(t.Context(), now); err != nil {
				t.Fatal(err)
			}
			for _, rq := range ref.queries {
				if len(queryMatchers(t, rq)) > 0 {
					t.Fatalf("reference fetch split: %s", rq)
				}
			}
			got, want := histories(e), histories(er)
			if n := 53 * len(p.Spec.Sources); len(want) != n {
				t.Fatalf("reference has %d series, want %d", len(want), n)
			}
			if len(got) != len(want) {
				t.Errorf("%d series, want %d", len(got), len(want))
			}
			for k, w := range want {
				if got[k] != w {
					t.Errorf("%s: history differs from the fetch in chunks of time", k)
				}
			}

			nsrc := len(p.Spec.Sources)
			end := now.Truncate(time.Minute)
			start := end.Add(-24*time.Hour - historyMargin + time.Minute)
			rest := start.Add(fetchChunkSteps * time.Minute)
			// The first chunk: every source, unsplit.
			for i := range nsrc {
				if q.queries[i] != p.Spec.Sources[i].Query || !q.calls[i][0].Equal(start) || !q.calls[i][1].Equal(rest.Add(-time.Minute)) {
					t.Errorf("first chunk query %d: %s over %v", i, q.queries[i], q.calls[i])
				}
			}
			// Then groups: per query, contiguous chunks over [rest, end].
			type span struct {
				from, to time.Time
				series   int
			}
			// Then the series live at the end: one step, unsplit.
			for i := nsrc; i < 2*nsrc; i++ {
				if q.queries[i] != p.Spec.Sources[i-nsrc].Query || !q.calls[i][0].Equal(end) || !q.calls[i][1].Equal(end) {
					t.Errorf("query %d: %s over %v, want the source's query at the end only", i, q.queries[i], q.calls[i])
				}
			}
			reads := map[string][]span{}
			var order []string
			for i := 2 * nsrc; i < len(q.queries); i++ {
				qs := q.queries[i]
				if len(queryMatchers(t, qs)) == 0 {
					t.Errorf("query %d not split: %s", i, qs)
				}
				if q.counts[i] > e.maxFetchSeries {
					t.Errorf("query %d returned %d series, want at most %d", i, q.counts[i], e.maxFetchSeries)
				}
				if _, ok := reads[qs]; !ok {
					order = append(order, qs)
				}
				reads[qs] = append(reads[qs], span{q.calls[i][0], q.calls[i][1], q.counts[i]})
			}
			// 50 series in groups of 12 by svc: 5 groups of every source.
			if len(reads) != 5*nsrc {
				t.Errorf("%d distinct split queries, want %d", len(reads), 5*nsrc)
			}
			for _, qs := range order {
				sp := reads[qs]
				next := rest
				for k, s := range sp {
					if !s.from.Equal(next) {
						t.Errorf("%s: chunk from %v, want %v", qs, s.from, next)
					}
					// Chunks sized for the group's series: 100 steps for 12.
					steps := int(s.to.Sub(s.from)/time.Minute) + 1
					if steps*s.series > e.maxFetchPoints {
						t.Errorf("%s: chunk of %d steps and %d series, want at most %d points", qs, steps, s.series, e.maxFetchPoints)
					}
					if k > 0 && steps*sp[k-1].series > e.maxFetchPoints {
						t.Errorf("%s: chunk of %d steps after one of %d series", qs, steps, sp[k-1].series)
					}
					next = s.to.Add(time.Minute)
				}
				if !next.Equal(end.Add(time.Minute)) {
					t.Errorf("%s: read up to %v, want %v", qs, next.Add(-time.Minute), end)
				}
			}
			// Every series is in exactly one group of each source.
			for _, s := range q.series {
				n := 0
				for _, qs := range order {
					if labels.Selector(queryMatchers(t, qs)).Matches(s.Labels) {
						n++
					}
				}
				if n != nsrc {
					t.Errorf("%s is in %d groups, want %d", s.Labels, n, nsrc)
				}
			}
		})
	}
}

// TestEvaluatorFetchSplitFallsBack: a query that no label passes through
// unchanged is read in chunks of time only, and the evaluator logs why, once.
func TestEvaluatorFetchSplitFallsBack(t *testing.T) {
	now := time.Date(2026, 3, 2, 12, 0, 30, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		sources string
	}{
		{"sum of everything", `[{name: rps, query: 'sum(rate(http_requests_total[1m]))'}]`},
		{"label_replace onto the labels", `[{name: rps, query: 'label_replace(label_replace(x, "svc", "$1", "pod", "(.*)"), "zone", "z", "", "")'}]`},
		{"one source of two unsplittable", `[{name: rps, query: 'sum by (svc, zone) (rate(http_requests_total[1m]))'},
    {name: lat, query: 'max by (svc, zone) (lat_seconds) / scalar(sum(up))'}]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := &recorded{series: splitSeries(now)}
			e := NewEvaluator(splitPolicy(t, tc.sources), q)
			var buf bytes.Buffer
			e.SetLogger(log.NewLogfmtLogger(&buf))
			e.maxFetchSeries = 12
			e.maxFetchPoints = 50 * 60
			nsrc := len(e.policy.Spec.Sources)
			for range 2 {
				e.fetchedUntil = time.Time{} // a first fetch again
				first := len(q.calls)
				if _, err := e.Fetch(t.Context(), now); err != nil {
					t.Fatal(err)
				}
				for i := first; i < len(q.calls); i++ {
					if !slices.Contains(strings.Split(tc.sources, "'"), q.queries[i]) {
						t.Errorf("query %d split: %s", i, q.queries[i])
					}
					steps := int(q.calls[i][1].Sub(q.calls[i][0])/time.Minute) + 1
					if i >= first+nsrc && steps > 60 {
						t.Errorf("query %d: %d steps, want at most 60 (50 series, 3000 points)", i, steps)
					}
					if i >= first+nsrc && !q.calls[i][0].Equal(q.calls[i-nsrc][1].Add(time.Minute)) {
						t.Errorf("query %d starts at %v, want the minute after %v", i, q.calls[i][0], q.calls[i-nsrc][1])
					}
				}
				if last := q.calls[len(q.calls)-1][1]; !last.Equal(now.Truncate(time.Minute)) {
					t.Errorf("last chunk ends at %v", last)
				}
			}
			if n := strings.Count(buf.String(), "not by series"); n != 1 {
				t.Errorf("logged %d times, want once:\n%s", n, buf.String())
			}
		})
	}
}

// TestEvaluatorFetchSmallNotSplit: a query with few series is not split and
// logs nothing.
func TestEvaluatorFetchSmallNotSplit(t *testing.T) {
	now := time.Date(2026, 3, 2, 12, 0, 30, 0, time.UTC)
	q := &recorded{series: splitSeries(now)}
	e := NewEvaluator(splitPolicy(t, `[{name: rps, query: 'sum by (svc, zone) (rate(x[1m]))'}]`), q)
	var buf bytes.Buffer
	e.SetLogger(log.NewLogfmtLogger(&buf))
	if _, err := e.Fetch(t.Context(), now); err != nil {
		t.Fatal(err)
	}
	for _, qs := range q.queries {
		if len(queryMatchers(t, qs)) > 0 {
			t.Errorf("split with %d series: %s", len(q.series), qs)
		}
	}
	if buf.Len() > 0 {
		t.Errorf("logged %s", buf.String())
	}
}

// TestSplitBySeriesCapsValues: a group holds at most maxGroupValues label
// values, the alternation Prometheus still looks up in a set, even when its
// series would allow more.
func TestSplitBySeriesCapsValues(t *testing.T) {
	var res []promapi.Series
	for i := range 600 {
		res = append(res, promapi.Series{Labels: labels.FromStrings("svc", fmt.Sprintf("s%03d", i))})
	}
	src := []policy.Source{{Name: "rps", Query: `sum by (svc) (rate(x[1m]))`}}
	groups, why := splitBySeries(src, [][]promapi.Series{res}, 500)
	if len(groups) != 3 || why != "" {
		t.Fatalf("%d groups (%s), want 3", len(groups), why)
	}
	total := 0
	for _, g := range groups {
		m := queryMatchers(t, g.queries[0])
		n := strings.Count(m[0].Value, "|") + 1
		if n > maxGroupValues || n != g.series {
			t.Errorf("group of %d values and %d series, want at most %d", n, g.series, maxGroupValues)
		}
		total += n
	}
	if total != 600 {
		t.Errorf("groups hold %d values, want 600", total)
	}
}
