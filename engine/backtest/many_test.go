package backtest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/kedastral/kedastral/engine/backtest"
	"github.com/kedastral/kedastral/engine/model"
)

// TestRunMany backtests three series of one policy: two windows of the NYC
// taxi trace (the second at three times the demand) and one too short. Each
// backtested series scores as a run of its own; the total sums demand,
// unserved demand and replica-hours over them; the short one is reported
// and takes nothing down.
func TestRunMany(t *testing.T) {
	h := loadTrace(t, "nab_nyc_taxi_passengers_30min.csv")
	a := model.History{Start: h.Start, Step: h.Step, Values: h.Values[:21*48]}
	b := model.History{Start: h.Start.Add(40 * 48 * h.Step), Step: h.Step, Values: make([]float64, 18*48)}
	for i := range b.Values {
		b.Values[i] = 3 * h.Values[40*48+i]
	}
	short := model.History{Start: h.Start, Step: h.Step, Values: h.Values[:1]}
	series := []backtest.Series{
		{Labels: labels.FromStrings("city", "a"), Trace: a},
		{Labels: labels.FromStrings("city", "short"), Trace: short},
		{Labels: labels.FromStrings("city", "b"), Trace: b},
	}
	p := tracePolicy(t, h, "auto", 0.8, "")
	o := backtest.Options{Policy: p, Tolerance: -1, ScaleDownStabilization: -1}
	var last int
	o.Progress = func(done, total int) {
		if done < last || total != len(a.Values)+len(b.Values)+1 {
			t.Errorf("progress %d/%d after %d", done, total, last)
		}
		last = done
	}
	m, err := backtest.RunMany(context.Background(), o, series)
	if err != nil {
		t.Fatal(err)
	}
	if last != len(a.Values)+len(b.Values)+1 {
		t.Errorf("progress ended at %d", last)
	}
	if len(m.Series) != 3 {
		t.Fatalf("%d outcomes", len(m.Series))
	}
	if s := m.Series[1]; s.Err == nil || !strings.Contains(s.Err.Error(), "need at least 2") || s.Labels.Get("city") != "short" {
		t.Errorf("the short series: %v %v", s.Labels, s.Err)
	}
	var demand, unserved, replicaHours, oracleHours, reactiveUnserved float64
	for _, k := range []int{0, 2} {
		s, tr := m.Series[k], series[k].Trace
		if s.Err != nil || !labels.Equal(s.Labels, series[k].Labels) {
			t.Fatalf("series %d: %v %v", k, s.Labels, s.Err)
		}
		one := run(t, tr, p)
		if len(s.Scaling) != len(one.Scaling) {
			t.Fatalf("series %d: %d scores, a run of its own %d", k, len(s.Scaling), len(one.Scaling))
		}
		for i := range one.Scaling {
			if s.Scaling[i] != one.Scaling[i] {
				t.Errorf("series %d: %+v, a run of its own %+v", k, s.Scaling[i], one.Scaling[i])
			}
		}
		if s.Coverage != one.Forecast[0].Coverage || s.Scored != len(one.Rows)-one.ScoredFrom ||
			!s.Start.Equal(tr.Start) || !s.End.Equal(tr.Start.Add(time.Duration(len(tr.Values)-1)*tr.Step)) {
			t.Errorf("series %d: coverage %v scored %d %s–%s; a run of its own: %v %d", k, s.Coverage, s.Scored, s.Start, s.End,
				one.Forecast[0].Coverage, len(one.Rows)-one.ScoredFrom)
		}
		var d float64
		for _, v := range tr.Values[one.ScoredFrom:] {
			if !math.IsNaN(v) {
				d += v
			}
		}
		demand += d
		unserved += scaling(one, backtest.Kedastral).Unserved * d
		reactiveUnserved += scaling(one, backtest.Reactive).Unserved * d
		replicaHours += scaling(one, backtest.Kedastral).ReplicaHours
		oracleHours += scaling(one, backtest.Oracle).ReplicaHours
	}
	var tot backtest.ScalingScore
	for _, s := range m.Total {
		if s.Method == backtest.Kedastral {
			tot = s
		}
	}
	near := func(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Abs(b) }
	if !near(tot.Unserved, unserved/demand) || !near(tot.UnservedVsReactive, unserved/reactiveUnserved) ||
		!near(tot.ReplicaHours, replicaHours) || !near(tot.VsOracle, replicaHours/oracleHours) {
		t.Errorf("total %+v; want unserved %v (%v of reactive's), replica-hours %v (%v of the oracle's)",
			tot, unserved/demand, unserved/reactiveUnserved, replicaHours, replicaHours/oracleHours)
	}
	// b has three times a's demand: the total is not the mean of the two.
	ka, kb := scaling2(m.Series[0].Scaling), scaling2(m.Series[2].Scaling)
	if mean := (ka.Unserved + kb.Unserved) / 2; near(tot.Unserved, mean) {
		t.Errorf("total unserved %v is the plain mean of the series'", tot.Unserved)
	}

	var buf bytes.Buffer
	if err := backtest.WriteManyText(&buf, m); err != nil {
		t.Fatal(err)
	}
	text := buf.String()
	for _, want := range []string{`{city="a"}`, `{city="b"}`, "not backtested (1):", `{city="short"}: backtest: the trace has 1 steps`,
		"all series together (2 of 3 backtested)", "3 series, from " + a.Start.Format(time.RFC3339)} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q:\n%s", want, text)
		}
	}
	buf.Reset()
	if err := backtest.WriteManyJSON(&buf, m); err != nil {
		t.Fatal(err)
	}
	var j struct {
		Policy string `json:"policy"`
		Series []struct {
			Labels  map[string]string `json:"labels"`
			Error   string            `json:"error"`
			Scaling []struct {
				Method       string  `json:"method"`
				ReplicaHours float64 `json:"replicaHours"`
			} `json:"scaling"`
		} `json:"series"`
		Total []struct {
			Method       string  `json:"method"`
			ReplicaHours float64 `json:"replicaHours"`
		} `json:"total"`
	}
	if err := json.Unmarshal(buf.Bytes(), &j); err != nil {
		t.Fatal(err)
	}
	if j.Policy != p.Metadata.Name || len(j.Series) != 3 || j.Series[1].Error == "" || j.Series[2].Labels["city"] != "b" ||
		len(j.Total) != len(m.Total) || j.Total[0].Method != backtest.Kedastral || !near(j.Total[0].ReplicaHours, replicaHours) {
		t.Errorf("json: %s", buf.String())
	}

	// Nothing to backtest at all is an error that names a series.
	o.Progress = nil
	_, err = backtest.RunMany(context.Background(), o, series[1:2])
	if err == nil || !strings.Contains(err.Error(), `no series could be backtested; {city="short"}`) {
		t.Errorf("only a short series: %v", err)
	}
}

func scaling2(scores []backtest.ScalingScore) backtest.ScalingScore {
	for _, s := range scores {
		if s.Method == backtest.Kedastral {
			return s
		}
	}
	return backtest.ScalingScore{}
}

// TestCurveMany: the trade-off curve over several series is, at each
// quantile, the total of RunMany at that quantile, with the coverage over
// all their scored forecasts; a short series is reported and left out.
func TestCurveMany(t *testing.T) {
	h := loadTrace(t, "nab_nyc_taxi_passengers_30min.csv")
	a := model.History{Start: h.Start, Step: h.Step, Values: h.Values[:21*48]}
	b := model.History{Start: h.Start.Add(40 * 48 * h.Step), Step: h.Step, Values: slicesScale(h.Values[40*48:58*48], 3)}
	series := []backtest.Series{
		{Labels: labels.FromStrings("city", "a"), Trace: a},
		{Labels: labels.FromStrings("city", "b"), Trace: b},
		{Labels: labels.FromStrings("city", "short"), Trace: model.History{Start: h.Start, Step: h.Step, Values: h.Values[:1]}},
	}
	o := backtest.Options{Policy: tracePolicy(t, h, "auto", 0.85, ""), Tolerance: -1, ScaleDownStabilization: -1}
	qs := []float64{0.6, 0.8}
	c, err := backtest.CurveMany(context.Background(), o, series, qs)
	if err != nil {
		t.Fatal(err)
	}
	if c.Series != 3 || len(c.Failed) != 1 || c.Failed[0].Labels.Get("city") != "short" || len(c.Points) != 2 {
		t.Fatalf("series %d, failed %v, %d points", c.Series, c.Failed, len(c.Points))
	}
	for i, q := range qs {
		oq := o
		oq.Policy = tracePolicy(t, h, "auto", q, "")
		m, err := backtest.RunMany(context.Background(), oq, series)
		if err != nil {
			t.Fatal(err)
		}
		var covered, n float64
		for _, s := range series[:2] {
			one := run(t, s.Trace, oq.Policy)
			covered += one.Forecast[0].Coverage * float64(one.Forecast[0].N)
			n += float64(one.Forecast[0].N)
		}
		pt := c.Points[i]
		if pt.Quantile != q || pt.Scaling != scaling2(m.Total) || math.Abs(pt.Coverage-covered/n) > 1e-12 {
			t.Errorf("q %v: %+v coverage %v; RunMany's total %+v, coverage %v", q, pt.Scaling, pt.Coverage, scaling2(m.Total), covered/n)
		}
		if i == 0 {
			for k, s := range c.Others() {
				if want := m.Total[k+1]; s != want {
					t.Errorf("other method %s: %+v, RunMany's total %+v", s.Method, s, want)
				}
			}
		}
	}
	if c.Points[1].Scaling.ReplicaHours <= c.Points[0].Scaling.ReplicaHours {
		t.Errorf("q 0.8 costs %v replica-hours, no more than q 0.6's %v", c.Points[1].Scaling.ReplicaHours, c.Points[0].Scaling.ReplicaHours)
	}
	var buf bytes.Buffer
	if err := backtest.WriteCurveText(&buf, c); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"3 series from " + a.Start.Format(time.RFC3339) + " to " + b.Start.Add(time.Duration(len(b.Values)-1)*b.Step).Format(time.RFC3339) + ", each backtested on its own and summed up (2 of 3 backtested)", `not backtested: {city="short"}: backtest: the trace has 1 steps`} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("curve text lacks %q:\n%s", want, buf.String())
		}
	}
	buf.Reset()
	if err := backtest.WriteCurveHTML(&buf, c); err != nil || !strings.Contains(buf.String(), "each backtested on its own and summed up (2 of 3 backtested)") {
		t.Errorf("curve html: %v", err)
	}
}

func slicesScale(v []float64, f float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = f * x
	}
	return out
}

// TestSeriesLabelsInReports: a series picked from a query is named in the
// text, JSON and HTML reports; a trace file is not.
func TestSeriesLabelsInReports(t *testing.T) {
	h := loadTrace(t, "nab_nyc_taxi_passengers_30min.csv")
	h.Values = h.Values[:10*48]
	for _, l := range []labels.Labels{labels.FromStrings("job", "api"), labels.EmptyLabels()} {
		r, err := backtest.Run(context.Background(), backtest.Options{Policy: tracePolicy(t, h, "linear", 0.5, ""), Trace: h,
			Tolerance: -1, ScaleDownStabilization: -1, Labels: l})
		if err != nil {
			t.Fatal(err)
		}
		var text, js, html bytes.Buffer
		if err := backtest.WriteText(&text, r); err != nil {
			t.Fatal(err)
		}
		if err := backtest.WriteJSON(&js, r, false); err != nil {
			t.Fatal(err)
		}
		if err := backtest.WriteHTML(&html, r); err != nil {
			t.Fatal(err)
		}
		named := !l.IsEmpty()
		if got := strings.HasPrefix(text.String(), `policy trace {job="api"}: `); got != named {
			t.Errorf("labels %s: text starts %.60q", l, text.String())
		}
		if got := strings.Contains(js.String(), `"labels": {`); got != named {
			t.Errorf("labels %s: json %.200s", l, js.String())
		}
		if got := strings.Contains(html.String(), `<title>Kedastral backtest: trace {job=&#34;api&#34;}</title>`); got != named {
			t.Errorf("labels %s: html title missing or unexpected", l)
		}
	}
}
