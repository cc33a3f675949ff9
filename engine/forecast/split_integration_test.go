package forecast_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/kedastral/kedastral/engine/forecast"
	"github.com/kedastral/kedastral/engine/policy"
	"github.com/kedastral/kedastral/promapi"
	"github.com/kedastral/kedastral/promapi/promtest"
)

// countingQuerier records the queries it passes on.
type countingQuerier struct {
	q       forecast.Querier
	mu      sync.Mutex
	queries []string
}

func (c *countingQuerier) QueryRange(ctx context.Context, query string, start, end time.Time, step time.Duration) ([]promapi.Series, error) {
	c.mu.Lock()
	c.queries = append(c.queries, query)
	c.mu.Unlock()
	return c.q.QueryRange(ctx, query, start, end, step)
}

// TestFetchSplitBySeriesPrometheus loads 60 counters (30 deployments of two
// pods, named with regexp metacharacters) over two days into a real
// Prometheus, 4 of them starting after the first chunk of a first fetch, and
// checks that a first fetch split into groups of 8 series reads exactly the
// history and forecasts of an unsplit one, in split queries.
func TestFetchSplitBySeriesPrometheus(t *testing.T) {
	promtest.RequireBinaries(t)
	end := time.Now().Truncate(time.Minute)
	var series []promtest.Series
	for d := range 30 {
		from := end.Add(-48 * time.Hour)
		if d >= 28 {
			from = end.Add(-(8 + time.Duration(d-28)*4) * time.Hour) // new after the first chunk
		}
		for pod := range 2 {
			s := promtest.Series{Name: "http_requests_total",
				Labels: labels.FromStrings("deployment", fmt.Sprintf("d%02d.api+v1", d), "pod", fmt.Sprintf("d%02d-%d", d, pod))}
			v := 0.0
			for ts := from; !ts.After(end); ts = ts.Add(time.Minute) {
				v += float64(1 + (d*7+pod*3+int(ts.Unix()/60))%13)
				s.Points = append(s.Points, promtest.Point{T: ts.UnixMilli(), V: v})
			}
			series = append(series, s)
		}
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := promtest.CreateBlocks(ctx, dir, series); err != nil {
		t.Fatal(err)
	}
	srv := promtest.StartInT(t, dir, promtest.Options{})
	q, _ := newClients(t, srv)

	set, errs := policy.Parse([]byte(`
apiVersion: kedastral.io/v1alpha1
kind: ForecastPolicy
metadata: {name: split}
spec:
  targetRef: {name: api}
  horizon: 30m
  leadTime: 5m
  interval: 1m
  lookback: 1d
  capacity: {targetPerPod: 50, min: 1, max: 100}
  model: {type: baseline}
  sources: [{name: rps, query: 'sum by (deployment) (rate(http_requests_total[5m]))'}]
`), "test.yaml")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	p := set.Policies[0]
	now := end.Add(30 * time.Second)

	fetch := func(maxSeries int) (*forecast.Evaluator, *countingQuerier, int) {
		cq := &countingQuerier{q: q}
		e := forecast.NewEvaluator(p, cq)
		forecast.SetMaxFetchSeries(e, maxSeries)
		n, err := e.Fetch(ctx, now)
		if err != nil {
			t.Fatal(err)
		}
		return e, cq, n
	}
	split, sq, sn := fetch(8)
	whole, wq, wn := fetch(1000)

	if sn != wn || sn == 0 {
		t.Errorf("split fetch read %d points, unsplit %d", sn, wn)
	}
	got, want := forecast.Histories(split), forecast.Histories(whole)
	if len(want) != 30 || len(got) != len(want) {
		t.Fatalf("split fetch has %d series, unsplit %d, want 30", len(got), len(want))
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: split history differs", k)
		}
	}
	// 25 hours: one unsplit chunk of 6 hours, one unsplit step at the end
	// (the new deployments), then 4 groups of 8 deployments (6 in the last)
	// over the other 19.
	groups := map[string]bool{}
	for i, qs := range sq.queries {
		split := strings.Contains(qs, `deployment=~"`)
		if i < 2 && split || i >= 2 && !split {
			t.Errorf("query %d: %s", i, qs)
		}
		if i >= 2 {
			groups[qs] = true
		}
	}
	if len(groups) != 4 || len(sq.queries) != 2+4*4 {
		t.Errorf("split fetch ran %d queries in %d groups, want 18 in 4: %q", len(sq.queries), len(groups), sq.queries)
	}
	if len(wq.queries) != 5 {
		t.Errorf("unsplit fetch ran %d queries, want 5", len(wq.queries))
	}

	sc, wc := split.Evaluate(ctx, now), whole.Evaluate(ctx, now)
	if len(sc.Series) != 30 || len(sc.Series) != len(wc.Series) {
		t.Fatalf("split forecast %d series, unsplit %d", len(sc.Series), len(wc.Series))
	}
	for i, r := range sc.Series {
		w := wc.Series[i]
		if r.Err != nil || w.Err != nil || !labels.Equal(r.Labels, w.Labels) || r.Desired != w.Desired ||
			fmt.Sprint(r.Forecast) != fmt.Sprint(w.Forecast) {
			t.Errorf("%s: split %d %v (%v), unsplit %s %d %v (%v)", r.Labels, r.Desired, r.Forecast, r.Err, w.Labels, w.Desired, w.Forecast, w.Err)
		}
	}
}
