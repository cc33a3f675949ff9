package forecast

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/kedastral/kedastral/promapi"
)

// The series a policy with an objective writes for every series of every
// source, with the labels of its observed series.
const (
	// ObjectiveLevelMetric is the calibrated quantile the series plans for.
	ObjectiveLevelMetric = "kedastral_objective_level"
	// ObjectiveShortMetric is 1 when the last interval ran short of ready
	// pods, 0 otherwise: avg_over_time of it is the share of time short.
	ObjectiveShortMetric = "kedastral_objective_short"
	// ObjectiveAchievedMetric is the share of time short over about the
	// last day and week (window="1d", "7d"), as the calibrator counts it.
	ObjectiveAchievedMetric = "kedastral_objective_achieved"
	// ObjectiveMetric is the objective, spec.objective.underprovisionedTime
	// as a share.
	ObjectiveMetric = "kedastral_objective_underprovisioned_time"

	WindowLabel   = "window"
	FeedbackLabel = "feedback"
)

// Feedback says where a series' calibration learns whether it ran short.
const (
	// FeedbackReady: readyReplicasQuery's ready replicas against the
	// observed demand.
	FeedbackReady = "ready_replicas"
	// FeedbackModel: the forecaster's model of the HPA (capacity.HPA, as
	// the planner replays it) applied to its own answers, with pods ready
	// leadTime after the HPA asks for them.
	FeedbackModel = "hpa_model"
)

// CalibrationQuantile is the quantile label of the predicted series of a
// policy with an objective: its quantile changes as it is calibrated.
const CalibrationQuantile = "calibrated"

// RestoreObjective makes the first Fetch read the calibration a previous run
// wrote (kedastral_objective_level and kedastral_objective_achieved, the
// newest sample within a week) from the policy's data source, so that a
// restart keeps the calibrated level. The forecaster does; a backtest does
// not.
func (e *Evaluator) RestoreObjective() {
	e.restoreObjective = e.policy.Spec.Objective != nil
}

// restored is what a previous run wrote for one series.
type restored struct{ level, day, week float64 }

// readRestore reads the calibration a previous run wrote, by the labels of
// the series (without __name__ and window).
func (e *Evaluator) readRestore(ctx context.Context, now time.Time) (map[uint64]restored, error) {
	sel := fmt.Sprintf("%s=%q", PolicyLabel, e.policy.Metadata.Name)
	if e.namespace != "" {
		sel += fmt.Sprintf(",%s=%q", PolicyNamespaceLabel, e.namespace)
	} else {
		sel += fmt.Sprintf(",%s=\"\"", PolicyNamespaceLabel)
	}
	out := map[uint64]restored{}
	get := func(h uint64) restored {
		r, ok := out[h]
		if !ok {
			r = restored{level: math.NaN(), day: math.NaN(), week: math.NaN()}
		}
		return r
	}
	step := time.Duration(e.policy.Spec.Step)
	for _, q := range []string{ObjectiveLevelMetric, ObjectiveAchievedMetric} {
		query := fmt.Sprintf("last_over_time(%s{%s}[7d])", q, sel)
		res, err := e.querier.QueryRange(ctx, query, now, now, step)
		if err != nil {
			return nil, fmt.Errorf("restore the objective's calibration: query %s: %w", query, err)
		}
		for _, s := range res {
			if len(s.Points) == 0 {
				continue
			}
			v := s.Points[len(s.Points)-1].V
			b := labels.NewBuilder(s.Labels)
			b.Del(labels.MetricName, WindowLabel)
			h := b.Labels().Hash()
			r := get(h)
			switch {
			case q == ObjectiveLevelMetric:
				r.level = v
			case s.Labels.Get(WindowLabel) == "1d":
				r.day = v
			case s.Labels.Get(WindowLabel) == "7d":
				r.week = v
			}
			out[h] = r
		}
	}
	return out, nil
}

// calibrate takes the outcome of the interval the sources' newest
// observations cover: short when a source's observed demand exceeded what
// the ready pods carried at its targetPerPod. The ready pods are r.Ready
// when readyReplicasQuery answered for the series, otherwise modelReady,
// what the forecaster's own answers had made ready by the start of that
// interval (NaN when unknown: no feedback).
func (e *Evaluator) calibrate(r *SeriesResult, g *groupState, modelReady float64, now time.Time) {
	s := &e.policy.Spec
	elapsed := time.Duration(0)
	if !g.lastCal.IsZero() && now.After(g.lastCal) {
		elapsed = min(now.Sub(g.lastCal), max(time.Duration(s.Interval), staleAfter))
	}
	g.lastCal = now
	ready, feedback := r.Ready, FeedbackReady
	if math.IsNaN(ready) {
		ready, feedback = modelReady, FeedbackModel
	}
	for i := range r.Sources {
		sr := &r.Sources[i]
		if sr.cal == nil {
			continue
		}
		sr.Feedback = feedback
		if !math.IsNaN(ready) && !math.IsNaN(sr.Observed) && elapsed > 0 {
			sr.Short = sr.Observed > ready*s.SourceCapacity(i).TargetPerPod*(1+1e-9)
			sr.cal.Observe(elapsed, sr.Short)
			sr.calibrated = true
		}
		sr.AchievedDay, sr.AchievedWeek = sr.cal.Achieved()
	}
}

// readyPods follows the pods the HPA is expected to hold: ready times,
// non-decreasing, one per pod.
type readyPods []time.Time

// take records the HPA's count after an answer at t, new pods ready lead
// later; a scale-down removes the pods not ready yet first.
func (p *readyPods) take(t time.Time, count int32, lead time.Duration) {
	for int32(len(*p)) < count {
		*p = append(*p, t.Add(lead))
	}
	*p = (*p)[:max(count, 0)]
}

// at is the number of pods ready at t; NaN before any answer.
func (p readyPods) at(t time.Time, started bool) float64 {
	if !started {
		return math.NaN()
	}
	n := 0
	for _, r := range p {
		if !r.After(t) {
			n++
		}
	}
	return float64(n)
}

// objectiveSamples are the objective's series of one source's series.
func objectiveSamples(sr *SourceResult, objective float64, ts int64) []promapi.Sample {
	if sr.cal == nil || sr.Labels.IsEmpty() {
		return nil
	}
	out := []promapi.Sample{
		{Labels: withName(sr.Labels, ObjectiveLevelMetric), T: ts, V: sr.cal.Level()},
		{Labels: withName(sr.Labels, ObjectiveMetric), T: ts, V: objective},
	}
	if sr.calibrated {
		short := 0.0
		if sr.Short {
			short = 1
		}
		out = append(out, promapi.Sample{Labels: withName(sr.Labels, ObjectiveShortMetric), T: ts, V: short})
	}
	for _, w := range []struct {
		name string
		v    float64
	}{{"1d", sr.AchievedDay}, {"7d", sr.AchievedWeek}} {
		if !math.IsNaN(w.v) {
			b := labels.NewBuilder(sr.Labels)
			b.Set(labels.MetricName, ObjectiveAchievedMetric)
			b.Set(WindowLabel, w.name)
			out = append(out, promapi.Sample{Labels: b.Labels(), T: ts, V: w.v})
		}
	}
	return out
}

// quantileLabel is the quantile label value of a source's predicted series.
func (e *Evaluator) quantileLabel(sr *SourceResult) string {
	if e.policy.Spec.Objective != nil {
		return CalibrationQuantile
	}
	return strconv.FormatFloat(sr.Quantile, 'f', -1, 64)
}

// ObjectiveStatus is a policy's objective on the status page and API: the
// objective and, per series and source, the calibration.
type ObjectiveStatus struct {
	// UnderprovisionedTime is spec.objective.underprovisionedTime, e.g. 2%.
	UnderprovisionedTime string                  `json:"underprovisionedTime"`
	Series               []ObjectiveSeriesStatus `json:"series,omitempty"`
}

// ObjectiveSeriesStatus is one series' (and source's) calibration.
type ObjectiveSeriesStatus struct {
	Labels map[string]string `json:"labels"`
	Source string            `json:"source,omitempty"`
	// Level is the calibrated quantile; Feedback where it learns whether
	// an interval ran short (ready_replicas, hpa_model); Short whether the
	// last one did; AchievedDay and AchievedWeek the share of time short
	// over about the last day and week (null before any feedback).
	Level        float64  `json:"level"`
	Feedback     string   `json:"feedback,omitempty"`
	Short        bool     `json:"short"`
	AchievedDay  *float64 `json:"achievedDay,omitempty"`
	AchievedWeek *float64 `json:"achievedWeek,omitempty"`
}

// objectiveStatus is the status of a cycle's calibrations, at most
// maxStatusSeries of them.
func objectiveStatus(p *policyObjective, c *Cycle) *ObjectiveStatus {
	if p == nil {
		return nil
	}
	st := &ObjectiveStatus{UnderprovisionedTime: p.text}
	for _, r := range c.Series {
		for _, sr := range r.Sources {
			if sr.cal == nil || len(st.Series) >= maxStatusSeries {
				continue
			}
			l := r.Labels.Map()
			delete(l, PolicyLabel)
			delete(l, PolicyNamespaceLabel)
			ss := ObjectiveSeriesStatus{Labels: l, Level: sr.Quantile, Feedback: sr.Feedback, Short: sr.Short}
			if len(r.Sources) > 1 {
				ss.Source = sr.Source
			}
			if !math.IsNaN(sr.AchievedDay) {
				ss.AchievedDay = &sr.AchievedDay
			}
			if !math.IsNaN(sr.AchievedWeek) {
				ss.AchievedWeek = &sr.AchievedWeek
			}
			st.Series = append(st.Series, ss)
		}
	}
	return st
}

// policyObjective is a policy's objective as the manager reports it.
type policyObjective struct {
	value float64
	text  string
}

// objectiveMetrics are the objective's gauges on the forecaster's /metrics.
type objectiveMetrics struct {
	objective *prometheus.GaugeVec
	series    *prometheus.GaugeVec
	level     *prometheus.GaugeVec
	achieved  *prometheus.GaugeVec
}

func newObjectiveMetrics(f promauto.Factory) objectiveMetrics {
	return objectiveMetrics{
		objective: f.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "kedastral", Subsystem: "forecaster", Name: "objective_underprovisioned_time_ratio",
			Help: "A policy's objective: the share of time its workload may run short of ready pods.",
		}, []string{"policy"}),
		series: f.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "kedastral", Subsystem: "forecaster", Name: "objective_series",
			Help: "Series (and sources) of a policy with an objective, by the feedback their calibration learns from: ready_replicas (readyReplicasQuery) or hpa_model (the forecaster's model of the HPA); none before any.",
		}, []string{"policy", "feedback"}),
		level: f.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "kedastral", Subsystem: "forecaster", Name: "objective_level",
			Help: "The lowest and highest calibrated quantile over a policy's series (stat=min, max).",
		}, []string{"policy", "stat"}),
		achieved: f.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "kedastral", Subsystem: "forecaster", Name: "objective_achieved_ratio",
			Help: "The highest share of time short over a policy's series, over about the last day and week (window=1d, 7d).",
		}, []string{"policy", "window"}),
	}
}

// set updates the gauges of policy name from a cycle.
func (m objectiveMetrics) set(name string, p *policyObjective, c *Cycle) {
	for _, g := range []*prometheus.GaugeVec{m.objective, m.series, m.level, m.achieved} {
		g.DeletePartialMatch(prometheus.Labels{"policy": name})
	}
	if p == nil {
		return
	}
	m.objective.WithLabelValues(name).Set(p.value)
	feedback := map[string]int{}
	lo, hi := math.Inf(1), math.Inf(-1)
	day, week := math.NaN(), math.NaN()
	for _, r := range c.Series {
		for _, sr := range r.Sources {
			if sr.cal == nil {
				continue
			}
			f := sr.Feedback
			if f == "" {
				f = "none"
			}
			feedback[f]++
			lo, hi = min(lo, sr.Quantile), max(hi, sr.Quantile)
			day, week = nanMax(day, sr.AchievedDay), nanMax(week, sr.AchievedWeek)
		}
	}
	for f, n := range feedback {
		m.series.WithLabelValues(name, f).Set(float64(n))
	}
	if lo <= hi {
		m.level.WithLabelValues(name, "min").Set(lo)
		m.level.WithLabelValues(name, "max").Set(hi)
	}
	if !math.IsNaN(day) {
		m.achieved.WithLabelValues(name, "1d").Set(day)
	}
	if !math.IsNaN(week) {
		m.achieved.WithLabelValues(name, "7d").Set(week)
	}
}

// nanMax is the larger of a and b, the other when one is NaN.
func nanMax(a, b float64) float64 {
	switch {
	case math.IsNaN(a):
		return b
	case math.IsNaN(b):
		return a
	}
	return max(a, b)
}
