// Package forecast is Kedastral's evaluation loop: for each policy, every
// interval, it fetches the new history of each series its query returns,
// forecasts it with the policy's model, turns the forecast into desired
// replicas with the capacity model, and writes the kedastral_* series.
package forecast

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/kedastral/kedastral/engine/capacity"
	"github.com/kedastral/kedastral/engine/model"
	"github.com/kedastral/kedastral/engine/policy"
	"github.com/kedastral/kedastral/promapi"
)

// Names of the series Kedastral writes (the series contract in DESIGN.md).
const (
	ObservedMetric  = "kedastral_observed_value"
	PredictedMetric = "kedastral_predicted_value"
	DesiredMetric   = "kedastral_desired_replicas"
	// CapacityMetric is the policy's targetPerPod, one series per policy
	// (per source, with the source label, when it has several), so PromQL
	// can compare demand with what the desired replicas can serve:
	// kedastral_observed_value / on (policy, source) group_left
	// kedastral_capacity_per_replica > ignoring (source) group_left
	// kedastral_desired_replicas.
	CapacityMetric = "kedastral_capacity_per_replica"
	// UnderprovisionMetric counts the seconds the observed demand exceeded
	// what the workload's ready replicas carry, per desired-replicas series.
	UnderprovisionMetric = "kedastral_underprovision_seconds_total"

	PolicyLabel = "policy"
	// PolicyNamespaceLabel is the namespace of a policy read from the
	// Kubernetes API (forecaster --policies.source=kubernetes); policies read
	// from files have none. It is not "namespace", which fan-out queries
	// such as sum by (namespace, deployment) use for their own series.
	PolicyNamespaceLabel = "policy_namespace"
	AheadLabel           = "ahead"
	QuantileLabel        = "quantile"
	// SourceLabel names the source of observed and predicted series when a
	// policy has several.
	SourceLabel = "source"
)

// Querier runs range queries; promapi.Client is one.
type Querier interface {
	QueryRange(ctx context.Context, query string, start, end time.Time, step time.Duration) ([]promapi.Series, error)
}

// staleAfter is how long a series may go without a value and still get a
// forecast: Prometheus' own lookback delta.
const staleAfter = 5 * time.Minute

// historyMargin is read beyond the lookback so that a seasonal lag of
// exactly the lookback (same time last week, with a 7d lookback) still has the
// recent window before it that models compare levels over.
const historyMargin = time.Hour

// refetchSteps is how many of the newest steps each incremental fetch reads
// again, since the newest points of a rate may still change as scrapes land.
const refetchSteps = 3

// fetchChunkSteps is the most steps one range query of a fetch spans (6h
// at a 1m step): the first fetch of a two-week lookback is 56 of them.
const fetchChunkSteps = 360

// fetchMaxPoints bounds the points one range query of a fetch returns: once
// the first chunk shows how many series a query has, a query with thousands
// of them is read in shorter chunks (10 000 series: 100 steps; a group of
// fetchMaxSeries series: fetchChunkSteps), so that no response is too large
// for the server or this process.
const fetchMaxPoints = 1_000_000

// DefaultFullResolution is how much of a series' newest history is kept at
// the policy's step by default; older history is kept at compactStep (the
// mean of each 5 minutes) when the policy's step is finer and its lookback
// longer (see history). Eight days keep every day lag of the seasonal models
// (one to seven days) at full resolution: on the MongoDB trace at 1m, a
// 2-day window made auto's unserved demand 1.8 times as large (0.036 of
// reactive's instead of 0.020), as minute-precise daily spikes blur.
const DefaultFullResolution = 8 * 24 * time.Hour

// compactStep is the step of the history older than the full-resolution window.
const compactStep = 5 * time.Minute

// Cycle is what one evaluation of a policy produced.
type Cycle struct {
	Time     time.Time
	Samples  []promapi.Sample
	Series   []SeriesResult
	Fetched  int // points read from the query
	Duration time.Duration
	// Events are the policy's events that apply now: open, or opening
	// within the lead time.
	Events []policy.ActiveEvent
}

// SeriesResult is the outcome for one series of a cycle: one
// kedastral_desired_replicas series, the join of the series of every source
// with the same labels.
type SeriesResult struct {
	Labels labels.Labels // the query's labels plus policy
	// Observed, Forecast, Predicted and Model are those of Source, the
	// source that drives the count (the only one of a single-source policy).
	Observed  float64
	Forecast  []float64 // Forecast[i] is for HistoryEnd + (i+1)*step, events applied
	Predicted map[time.Duration]float64
	Raw       int32 // replicas the forecast needs, before behavior limits
	Desired   int32
	// HPA is the count the HPA is expected to hold once it sees Desired
	// (capacity.Planner.AssumedHPA): Desired itself, or the count it keeps
	// when Desired is within its tolerance or its scale-down window.
	HPA int32
	// Model names the model answering over the lead time: the policy's, or
	// the one auto chose for this series.
	Model string
	// Source names the source whose need is the count (the first of equal ones).
	Source string
	// Sources has one entry per source of the policy, in the policy's order.
	Sources []SourceResult
	Err     error // set when the series could not be forecast

	// Ready is the workload's ready replicas (NaN when unknown, with
	// ReadyNote saying why); Underprovisioned says whether the observed
	// demand of a source exceeded Ready × its targetPerPod, and
	// UnderprovisionSeconds is the running total written as
	// kedastral_underprovision_seconds_total.
	Ready     float64
	ReadyNote string
	// ModelReady is, with an objective, the fewest pods the forecaster's
	// model of the HPA had ready over the interval of the newest
	// observation (NaN when unknown): its feedback without ready replicas.
	ModelReady            float64
	Underprovisioned      bool
	UnderprovisionSeconds float64
	accounted             bool // the underprovision counter is written
}

// SourceResult is one source's part of a series.
type SourceResult struct {
	Source    string
	Labels    labels.Labels // the labels of its observed and predicted series
	Observed  float64
	Forecast  []float64
	Predicted map[time.Duration]float64
	Quantile  float64
	Model     string
	Need      int32 // replicas this source needs, before behavior limits
	Err       error

	// With an objective (spec.objective): Quantile is the calibrated
	// level; Feedback says where the calibration learnt whether the last
	// interval ran short (FeedbackReady, FeedbackModel; empty before any),
	// Short whether it did, AchievedDay and AchievedWeek the share of time
	// short over about the last day and week (NaN before any feedback).
	Objective    float64
	Feedback     string
	Short        bool
	AchievedDay  float64
	AchievedWeek float64
	cal          *capacity.Calibrator
	calibrated   bool // Short is this cycle's outcome
}

// seriesState is what the evaluator keeps for one series of one source
// between cycles.
type seriesState struct {
	source int
	labels labels.Labels // output labels: the query's plus policy (plus source with several)
	join   labels.Labels // the query's labels plus policy
	hist   history
	model  model.Model
	// cal calibrates the quantile to the policy's objective; nil without one.
	cal *capacity.Calibrator
}

// groupState is what the evaluator keeps for one desired-replicas series.
type groupState struct {
	planner *capacity.Planner
	// under is the underprovision total; lastAccount the time it was last
	// brought up to date (zero before the first account).
	under       float64
	lastAccount time.Time
	// pods and lastCal are the objective's: the pods the HPA is expected
	// to hold (with the times they are ready) and the last calibration.
	pods    readyPods
	lastCal time.Time
}

// Evaluator runs the cycles of one policy and keeps its per-series state.
// Cycles of one Evaluator must not run concurrently.
type Evaluator struct {
	policy  *policy.ForecastPolicy
	querier Querier
	series  map[uint64]*seriesState
	groups  map[uint64]*groupState
	events  []*policy.CompiledEvent
	// fetchedUntil is the end of the last successful fetch; zero before the
	// first one, which then reads the whole lookback.
	fetchedUntil time.Time
	parallelism  int
	shard        Shard
	// namespace is the policy_namespace label value; empty for none.
	namespace string
	fullRes   time.Duration // <= 0: no compaction
	// warmBudget bounds the time a cycle spends on series whose model has
	// not forecast yet (zero: no bound); see SetWarmupBudget.
	warmBudget time.Duration
	// maxFetchPoints and maxFetchSeries are fetchMaxPoints and
	// fetchMaxSeries; tests make them smaller.
	maxFetchPoints int
	maxFetchSeries int
	logger         log.Logger
	// splitLogged is set once Fetch has logged why it could not read a
	// first fetch by series.
	splitLogged bool
	// scratch holds one buffer per evaluation worker for the history at
	// the full step that the models read.
	scratch [][]float64

	// The underprovision account (AccountUnderprovision): the last result
	// of the ready-replicas query, or why there is none.
	account  bool
	ready    []promapi.Series
	readyErr error

	// restoreObjective makes the first Fetch read the calibration a
	// previous run wrote (RestoreObjective); restore holds it by series.
	restoreObjective bool
	restore          map[uint64]restored
}

// NewEvaluator returns an evaluator for a validated policy.
func NewEvaluator(p *policy.ForecastPolicy, q Querier) *Evaluator {
	// A validated policy's events compile; an error here means the policy
	// skipped validation, and the evaluator then applies no event.
	events, _ := policy.CompileEvents(p.Spec.Events)
	return &Evaluator{policy: p, querier: q, series: map[uint64]*seriesState{}, groups: map[uint64]*groupState{},
		events: events, parallelism: runtime.GOMAXPROCS(0), fullRes: DefaultFullResolution, maxFetchPoints: fetchMaxPoints,
		maxFetchSeries: fetchMaxSeries, logger: log.NewNopLogger()}
}

// AccountUnderprovision makes Fetch read the policy's readyReplicasQuery and
// Evaluate keep kedastral_underprovision_seconds_total. The forecaster does;
// a backtest, which has no ready replicas to read, does not.
func (e *Evaluator) AccountUnderprovision() {
	e.account = e.policy.Spec.ReadyReplicasQuery != ""
}

// SetLogger sets the logger of the evaluator (none by default).
func (e *Evaluator) SetLogger(l log.Logger) { e.logger = l }

// SetShard makes the evaluator forecast only the series that shard owns.
// Call it before the first Fetch.
func (e *Evaluator) SetShard(s Shard) { e.shard = s }

// SetPolicyNamespace adds policy_namespace=ns to every output series, so that
// policies of the same name in different namespaces write different series.
// Call it before the first Fetch.
func (e *Evaluator) SetPolicyNamespace(ns string) { e.namespace = ns }

// SetFullResolution sets how much of the newest history is kept at the
// policy's step (DefaultFullResolution by default); older history is kept at
// 5-minute steps. Zero or less keeps all of it at the policy's step. Call it
// before the first Fetch.
func (e *Evaluator) SetFullResolution(d time.Duration) { e.fullRes = d }

// SetWarmupBudget bounds the time one Evaluate spends starting the models of
// series that have none yet: the first forecast of a model fits it on the
// whole lookback (tens of milliseconds a series with auto), so after a
// (re)start of a forecaster with thousands of series the first cycle would
// write nothing for minutes. With a budget, a cycle starts new models until
// the budget is spent and reports the other new series as warming up
// (ErrInsufficientData); later cycles take them on. Series with a model are
// always forecast. Zero (the default, and what a backtest wants) means no
// bound.
func (e *Evaluator) SetWarmupBudget(d time.Duration) { e.warmBudget = d }

// errWarmingUp is the error of a series whose model a cycle had no time to start.
var errWarmingUp = fmt.Errorf("model warming up after a start, forecast in a later cycle: %w", model.ErrInsufficientData)

// narrowAfter is the age beyond which full-step history may be kept at 8
// bits (see packed): the one-day lag and the level window and horizon
// around it stay at 16 bits or more.
const narrowAfter = 2 * 24 * time.Hour

// compaction returns how many steps a history keeps at the policy's step,
// how many of those at 16 bits or more, and how many steps an older point
// covers (below 2: no compaction).
func (e *Evaluator) compaction() (keepFine, keepWide, factor int) {
	s := &e.policy.Spec
	step := time.Duration(s.Step)
	if e.fullRes <= 0 || step <= 0 || step >= compactStep || compactStep%step != 0 ||
		time.Duration(s.Lookback)+historyMargin <= e.fullRes+compactStep {
		return 0, 0, 0
	}
	// Keep the full step over the horizon behind the one-day lag too.
	horizon := max(s.HorizonSteps(), s.CoverSteps())
	keepFine = int(e.fullRes/step) + horizon
	keepWide = int(narrowAfter/step) + horizon
	return keepFine, keepWide, int(compactStep / step)
}

// HistoryBytes is the memory the per-series histories hold.
func (e *Evaluator) HistoryBytes() int {
	n := 0
	for _, st := range e.series {
		n += st.hist.bytes()
	}
	return n
}

// ModelBytes is the memory the per-series models hold (see model.Sizer).
func (e *Evaluator) ModelBytes() int {
	n := 0
	for _, st := range e.series {
		if st.model != nil {
			n += model.StateBytes(st.model)
		}
	}
	return n
}

// Policy returns the evaluated policy.
func (e *Evaluator) Policy() *policy.ForecastPolicy { return e.policy }

// SeriesCount is the number of series with state.
func (e *Evaluator) SeriesCount() int { return len(e.series) }

// alignDown rounds t down to a multiple of d since the Unix epoch.
func alignDown(t time.Time, d time.Duration) time.Time {
	ms := t.UnixMilli()
	dm := d.Milliseconds()
	return time.UnixMilli(ms - ((ms%dm)+dm)%dm).UTC()
}

// Fetch reads the history new since the last fetch (the whole lookback the
// first time or after a long gap) of every source into the per-series state.
// Sources whose series carry different label names cannot be joined: Fetch
// then fails and keeps the state.
//
// A fetch longer than fetchChunkSteps is read in chunks. The first chunk
// runs the sources' queries as they are; if one of them returns more than
// fetchMaxSeries series, the rest is read in groups of about fetchMaxSeries
// series: every selector of every source's query gets a matcher on one label
// that all the series carry and that every query passes through unchanged
// (label=~"v1|v2|...", at most maxGroupValues values in sorted order: those
// of the first chunk and of the series live at its end, read with one step,
// so that series that start after the first chunk are read too). Each group
// reads the rest of the fetch
// once, in chunks of at most fetchMaxPoints points a query. The histories are
// those an unsplit fetch reads. When no label qualifies (sum(x), a
// label_replace onto the label, sources that differ), the rest is read in
// chunks of time only, with at most fetchMaxPoints points a query, and the
// first such fetch logs why at info level.
func (e *Evaluator) Fetch(ctx context.Context, now time.Time) (int, error) {
	s := &e.policy.Spec
	step := time.Duration(s.Step)
	end := alignDown(now, step)
	windowStart := end.Add(-time.Duration(s.Lookback) - historyMargin).Add(step)
	start := windowStart
	if !e.fetchedUntil.IsZero() {
		if inc := e.fetchedUntil.Add(-refetchSteps * step); inc.After(start) {
			start = inc
		}
	}
	if start.After(end) {
		start = end
	}
	if e.restoreObjective {
		res, err := e.readRestore(ctx, now)
		if err != nil {
			return 0, err
		}
		e.restore, e.restoreObjective = res, false
	}
	multi := len(s.Sources) > 1
	points := 0
	seen := map[uint64]bool{}
	keepFine, keepWide, factor := e.compaction()
	ingest := func(results [][]promapi.Series) {
		for i, res := range results {
			for _, r := range res {
				join := outputLabels(r.Labels, e.policy.Metadata.Name, e.namespace)
				if !e.shard.Owns(join) {
					continue
				}
				lbls := join
				if multi {
					lbls = labels.NewBuilder(join).Set(SourceLabel, s.Sources[i].Name).Labels()
				}
				h := lbls.Hash()
				seen[h] = true
				st, ok := e.series[h]
				if !ok {
					st = &seriesState{source: i, labels: lbls, join: join, hist: history{step: step}}
					if s.Objective != nil {
						st.cal = capacity.NewCalibrator(s.ObjectiveValue())
						if r, ok := e.restore[h]; ok {
							st.cal.Restore(r.level, r.day, r.week)
						}
					}
					st.hist.compactTo(keepFine, keepWide, factor)
					e.series[h] = st
				}
				st.hist.trimBefore(windowStart)
				for _, p := range r.Points {
					st.hist.set(time.UnixMilli(p.T).UTC(), p.V)
				}
				st.hist.compact()
				points += len(r.Points)
			}
		}
	}
	// read runs the queries (one per source) over [from, to] and ingests
	// their results.
	read := func(queries []string, from, to time.Time) ([][]promapi.Series, error) {
		results := make([][]promapi.Series, len(s.Sources))
		for i, q := range queries {
			res, err := e.querier.QueryRange(ctx, q, from, to, step)
			if err != nil {
				if len(s.Sources) > 1 {
					return nil, fmt.Errorf("source %q: %w", s.Sources[i].Name, err)
				}
				return nil, err
			}
			results[i] = res
		}
		if err := checkJoin(s.Sources, results); err != nil {
			return nil, err
		}
		ingest(results)
		return results, nil
	}
	// chunkFor is the steps of a chunk whose queries return results: at
	// most maxFetchPoints points a query.
	maxPoints := cmp.Or(e.maxFetchPoints, fetchMaxPoints)
	chunkFor := func(steps int, results [][]promapi.Series) int {
		for _, res := range results {
			if len(res) > 0 {
				steps = max(1, min(steps, maxPoints/len(res)))
			}
		}
		return steps
	}
	chunkEnd := func(from time.Time, steps int) time.Time {
		if to := from.Add(time.Duration(steps-1) * step); to.Before(end) {
			return to
		}
		return end
	}

	// The first fetch of a long lookback is read a chunk of time at a time,
	// so that the points of thousands of series are never all in memory at
	// once and each query stays small for the server: fetchChunkSteps, and
	// after the first chunk at most maxFetchPoints points a query. When the
	// first chunk shows more than fetchMaxSeries series, the rest is read in
	// groups of series too (see splitBySeries), so that no query evaluates
	// many more than fetchMaxSeries series; otherwise in chunks of time only.
	queries := make([]string, len(s.Sources))
	for i, src := range s.Sources {
		queries[i] = src.Query
	}
	to := chunkEnd(start, fetchChunkSteps)
	results, err := read(queries, start, to)
	if err != nil {
		return 0, err
	}
	if rest := to.Add(step); !rest.After(end) {
		maxSeries := cmp.Or(e.maxFetchSeries, fetchMaxSeries)
		groups, why := splitBySeries(s.Sources, results, maxSeries)
		if groups != nil {
			// The series live now, too: those that started after the
			// first chunk need a group (one step, cheap to evaluate).
			known := make([][]promapi.Series, len(results))
			for i, q := range queries {
				now, err := e.querier.QueryRange(ctx, q, end, end, step)
				if err != nil {
					if len(s.Sources) > 1 {
						return 0, fmt.Errorf("source %q: %w", s.Sources[i].Name, err)
					}
					return 0, err
				}
				known[i] = unionSeries(results[i], now)
			}
			groups, why = splitBySeries(s.Sources, known, maxSeries)
		}
		switch {
		case groups != nil:
			level.Debug(e.logger).Log("msg", "reading the first fetch by series", "label", groups[0].label, "groups", len(groups))
		case why != "" && !e.splitLogged:
			e.splitLogged = true
			level.Info(e.logger).Log("msg", "reading the first fetch in chunks of time only, not by series", "reason", why)
		}
		if groups == nil {
			groups = []seriesGroup{{queries: queries}}
		}
		for _, g := range groups {
			steps := fetchChunkSteps
			if g.series > 0 {
				steps = max(1, min(steps, maxPoints/g.series))
			} else {
				steps = chunkFor(steps, results)
			}
			for from := rest; !from.After(end); {
				to := chunkEnd(from, steps)
				res, err := read(g.queries, from, to)
				if err != nil {
					return 0, err
				}
				steps = chunkFor(steps, res)
				from = to.Add(step)
			}
		}
	}
	for h, st := range e.series {
		st.hist.trimBefore(windowStart)
		if !seen[h] {
			st.hist.extendTo(end)
			st.hist.compact()
		}
		if _, _, ok := st.hist.last(); !ok {
			// Nothing left in the lookback: forget the series.
			delete(e.series, h)
		}
	}
	e.fetchedUntil = end
	e.restore = nil
	if e.account {
		// The ready replicas now; a failure only stops the account.
		e.ready, e.readyErr = e.querier.QueryRange(ctx, s.ReadyReplicasQuery, now, now, step)
	}
	return points, nil
}

// largest is the most series of any of results.
func largest(results [][]promapi.Series) int {
	n := 0
	for _, res := range results {
		n = max(n, len(res))
	}
	return n
}

// unionSeries is the series of a and those of b with labels a lacks.
func unionSeries(a, b []promapi.Series) []promapi.Series {
	seen := make(map[uint64]bool, len(a))
	for _, s := range a {
		seen[s.Labels.Hash()] = true
	}
	out := a[:len(a):len(a)]
	for _, s := range b {
		if !seen[s.Labels.Hash()] {
			out = append(out, s)
		}
	}
	return out
}

// checkJoin fails when two sources return series with different label names:
// their series could not be joined into one replica count.
func checkJoin(sources []policy.Source, results [][]promapi.Series) error {
	first := -1
	var firstNames []string
	for i, res := range results {
		if len(res) == 0 {
			continue
		}
		names := labelNames(res)
		if first < 0 {
			first, firstNames = i, names
			continue
		}
		if diff := policy.LabelDiff(firstNames, names); diff != "" {
			return fmt.Errorf("source %q returns series labelled by (%s) but source %q by (%s): sources are joined on the same labels; %s",
				sources[i].Name, strings.Join(names, ", "), sources[first].Name, strings.Join(firstNames, ", "), diff)
		}
	}
	return nil
}

// labelNames is the sorted union of the label names of series, without
// __name__ and policy (which the output labels replace).
func labelNames(series []promapi.Series) []string {
	var names []string
	for _, s := range series {
		s.Labels.Range(func(l labels.Label) {
			if l.Name != labels.MetricName && l.Name != PolicyLabel && l.Name != PolicyNamespaceLabel && !slices.Contains(names, l.Name) {
				names = append(names, l.Name)
			}
		})
	}
	slices.Sort(names)
	return names
}

// outputLabels are the query's labels (without __name__) plus policy, which
// overrides a policy label of the query's own, and policy_namespace when
// namespace is not empty (likewise).
func outputLabels(l labels.Labels, policyName, namespace string) labels.Labels {
	b := labels.NewBuilder(l)
	b.Del(labels.MetricName)
	b.Set(PolicyLabel, policyName)
	if namespace != "" {
		b.Set(PolicyNamespaceLabel, namespace)
	}
	return b.Labels()
}

// policyLabels are the labels of the policy's own series
// (kedastral_capacity_per_replica): policy, and policy_namespace if set.
func (e *Evaluator) policyLabels(metric string) labels.Labels {
	if e.namespace == "" {
		return labels.FromStrings(labels.MetricName, metric, PolicyLabel, e.policy.Metadata.Name)
	}
	return labels.FromStrings(labels.MetricName, metric, PolicyLabel, e.policy.Metadata.Name, PolicyNamespaceLabel, e.namespace)
}

// Evaluate forecasts every live series and computes desired replicas and the
// samples to write, all stamped with now. It does not fetch.
func (e *Evaluator) Evaluate(ctx context.Context, now time.Time) *Cycle {
	s := &e.policy.Spec
	step := time.Duration(s.Step)
	end := alignDown(now, step)
	n := max(s.HorizonSteps(), s.CoverSteps())
	for _, a := range s.Ahead {
		n = max(n, int(time.Duration(a)/step))
	}

	live := make([]*seriesState, 0, len(e.series))
	for _, st := range e.series {
		if t, _, ok := st.hist.last(); ok && end.Sub(t) <= max(staleAfter, 2*step) {
			live = append(live, st)
		}
	}
	slices.SortFunc(live, func(a, b *seriesState) int { return labels.Compare(a.labels, b.labels) })

	perSource := make([]SourceResult, len(live))
	workers := max(1, min(e.parallelism, len(live)))
	for len(e.scratch) < workers {
		e.scratch = append(e.scratch, nil)
	}
	var (
		wg   sync.WaitGroup
		next atomic.Int64
	)
	started := time.Now()
	for w := range workers {
		wg.Go(func() {
			buf := &e.scratch[w]
			warmed := false // a worker starts at least one model a cycle
			for {
				i := int(next.Add(1) - 1)
				if i >= len(live) {
					return
				}
				st := live[i]
				if st.model == nil && e.warmBudget > 0 && warmed && time.Since(started) > e.warmBudget {
					_, obs, _ := st.hist.last()
					perSource[i] = SourceResult{Source: s.Sources[st.source].Name, Labels: st.labels, Observed: obs,
						Quantile: s.SourceQuantile(st.source), Err: errWarmingUp}
					continue
				}
				warmed = warmed || st.model == nil
				perSource[i] = e.evaluateSeries(ctx, st, n, buf)
			}
		})
	}
	wg.Wait()

	// Join the sources' series into one result per label set.
	type group struct {
		join    labels.Labels
		sources []*SourceResult
	}
	var groups []*group
	byJoin := map[uint64]*group{}
	for i, st := range live {
		h := st.join.Hash()
		g, ok := byJoin[h]
		if !ok {
			g = &group{join: st.join, sources: make([]*SourceResult, len(s.Sources))}
			byJoin[h] = g
			groups = append(groups, g)
		}
		g.sources[st.source] = &perSource[i]
	}
	slices.SortFunc(groups, func(a, b *group) int { return labels.Compare(a.join, b.join) })

	c := &Cycle{Time: now, Series: make([]SeriesResult, 0, len(groups)), Events: policy.ActiveAt(e.events, now, time.Duration(s.LeadTime))}
	for _, g := range groups {
		c.Series = append(c.Series, e.join(g.join, g.sources, now))
	}
	// Forget the state of series whose every source is gone.
	known := make(map[uint64]bool, len(e.series))
	for _, st := range e.series {
		known[st.join.Hash()] = true
	}
	for h := range e.groups {
		if !known[h] {
			delete(e.groups, h)
		}
	}

	ts := now.UnixMilli()
	for _, r := range c.Series {
		for _, sr := range r.Sources {
			if sr.Labels.IsEmpty() {
				continue // the source has no series with these labels
			}
			c.Samples = append(c.Samples, promapi.Sample{Labels: withName(sr.Labels, ObservedMetric), T: ts, V: sr.Observed})
			c.Samples = append(c.Samples, objectiveSamples(&sr, sr.Objective, ts)...)
			if sr.Err != nil {
				continue
			}
			q := e.quantileLabel(&sr)
			for _, a := range s.Ahead {
				b := labels.NewBuilder(sr.Labels)
				b.Set(labels.MetricName, PredictedMetric)
				b.Set(AheadLabel, a.String())
				b.Set(QuantileLabel, q)
				c.Samples = append(c.Samples, promapi.Sample{Labels: b.Labels(), T: ts, V: sr.Predicted[time.Duration(a)]})
			}
		}
		if r.Err == nil {
			c.Samples = append(c.Samples, promapi.Sample{Labels: withName(r.Labels, DesiredMetric), T: ts, V: float64(r.Desired)})
		}
		if r.accounted {
			c.Samples = append(c.Samples, promapi.Sample{Labels: withName(r.Labels, UnderprovisionMetric), T: ts, V: r.UnderprovisionSeconds})
		}
	}
	// With shards, the replica owning the policy's own key writes it,
	// whether or not it forecasts a series of the policy.
	if (len(c.Samples) > 0 || e.shard.Count > 1) && e.shard.Owns(e.policyKeyLabels()) {
		// One series per policy, or per source (with its source label and
		// its own targetPerPod) when there are several, as the observed
		// series: the mixin joins them on policy and source.
		if len(s.Sources) == 1 {
			c.Samples = append(c.Samples, promapi.Sample{
				Labels: e.policyLabels(CapacityMetric),
				T:      ts, V: s.Capacity.TargetPerPod,
			})
		} else {
			for i, src := range s.Sources {
				c.Samples = append(c.Samples, promapi.Sample{
					Labels: labels.NewBuilder(e.policyLabels(CapacityMetric)).Set(SourceLabel, src.Name).Labels(),
					T:      ts, V: s.SourceCapacity(i).TargetPerPod,
				})
			}
		}
	}
	return c
}

// join turns the results of every source for one label set into the
// series' result: the largest need, through the behavior limits, and the
// underprovision account.
func (e *Evaluator) join(join labels.Labels, sources []*SourceResult, now time.Time) SeriesResult {
	s := &e.policy.Spec
	r := SeriesResult{Labels: join, Sources: make([]SourceResult, len(sources)), Ready: math.NaN(), ModelReady: math.NaN()}
	driver := -1
	for i, sr := range sources {
		if sr == nil {
			r.Sources[i] = SourceResult{Source: s.Sources[i].Name, Quantile: s.SourceQuantile(i),
				Err: fmt.Errorf("source %q has no recent series with these labels", s.Sources[i].Name)}
		} else {
			r.Sources[i] = *sr
		}
		sr := &r.Sources[i]
		if sr.Err != nil {
			if r.Err == nil {
				r.Err = sr.Err
				if len(sources) > 1 && !sr.Labels.IsEmpty() {
					r.Err = fmt.Errorf("source %q: %w", sr.Source, sr.Err)
				}
			}
			continue
		}
		if driver < 0 || sr.Need > r.Sources[driver].Need {
			driver = i
		}
	}
	if driver < 0 {
		// No source could be forecast: show the first one's values.
		driver = 0
	}
	d := r.Sources[driver]
	r.Observed, r.Forecast, r.Predicted, r.Model = d.Observed, d.Forecast, d.Predicted, d.Model
	h := join.Hash()
	g, ok := e.groups[h]
	if !ok {
		g = &groupState{planner: capacity.NewPlanner(s.Capacity)}
		e.groups[h] = g
	}
	// The fewest pods ready over the interval the newest observations
	// cover, as the forecaster's answers so far made them ready: those
	// ready at its start, or fewer when the HPA scaled down within it.
	modelReady := math.NaN()
	if s.Objective != nil {
		_, started := g.planner.Current()
		modelReady = g.pods.at(now.Add(-time.Duration(s.Step)), started)
	}
	if r.Err == nil {
		r.Source = d.Source
		r.Raw = d.Need
		r.Desired = g.planner.Next(now, r.Raw)
		r.HPA = g.planner.AssumedHPA()
		if s.Objective != nil {
			before := g.planner.HPABeforeAnswer()
			modelReady = min(modelReady, float64(before))
			// Pods the HPA removed since the last answer are gone; those
			// it adds now are ready leadTime later.
			g.pods.take(now, before, time.Duration(s.LeadTime))
			g.pods.take(now, r.HPA, time.Duration(s.LeadTime))
		}
	}
	if e.account {
		e.accountUnder(&r, g, now)
	}
	if s.Objective != nil {
		r.ModelReady = modelReady
		e.calibrate(&r, g, modelReady, now)
	}
	return r
}

// accountUnder brings the underprovision total of one series up to now:
// the time since the last account is added when the observed demand of a
// source exceeded what the ready replicas carry at its targetPerPod.
func (e *Evaluator) accountUnder(r *SeriesResult, g *groupState, now time.Time) {
	s := &e.policy.Spec
	r.accounted = true
	elapsed := time.Duration(0)
	if !g.lastAccount.IsZero() && now.After(g.lastAccount) {
		// One evaluation stands for at most the time Prometheus would
		// consider its samples current.
		elapsed = min(now.Sub(g.lastAccount), max(time.Duration(s.Interval), staleAfter))
	}
	g.lastAccount = now
	defer func() { r.UnderprovisionSeconds = g.under }()
	ready, note := e.readyFor(r.Labels)
	if note != "" {
		r.ReadyNote = note
		return
	}
	r.Ready = ready
	for i, sr := range r.Sources {
		if sr.Labels.IsEmpty() || math.IsNaN(sr.Observed) {
			continue
		}
		if sr.Observed > ready*s.SourceCapacity(i).TargetPerPod*(1+1e-9) {
			r.Underprovisioned = true
		}
	}
	if r.Underprovisioned {
		g.under += elapsed.Seconds()
	}
}

// readyFor returns the ready replicas of the series with labels l: the one
// series of the ready-replicas query whose labels agree with l on every
// label both have, or a note saying why there is none.
func (e *Evaluator) readyFor(l labels.Labels) (float64, string) {
	q := e.policy.Spec.ReadyReplicasQuery
	if e.readyErr != nil {
		return 0, fmt.Sprintf("readyReplicasQuery %s failed: %v; not counted", q, e.readyErr)
	}
	if len(e.ready) == 0 {
		return 0, fmt.Sprintf("readyReplicasQuery %s returned nothing (is kube-state-metrics scraped?); not counted", q)
	}
	var match []promapi.Series
	for _, rs := range e.ready {
		agree := true
		rs.Labels.Range(func(lb labels.Label) {
			if lb.Name == labels.MetricName || lb.Name == PolicyLabel || lb.Name == PolicyNamespaceLabel {
				return
			}
			if l.Has(lb.Name) && l.Get(lb.Name) != lb.Value {
				agree = false
			}
		})
		if agree {
			match = append(match, rs)
		}
	}
	switch {
	case len(match) == 0:
		return 0, fmt.Sprintf("no series of readyReplicasQuery %s has these labels; not counted", q)
	case len(match) > 1:
		return 0, fmt.Sprintf("readyReplicasQuery %s returned %d series for these labels, want one (aggregate it by the policy's labels); not counted", q, len(match))
	case len(match[0].Points) == 0:
		return 0, fmt.Sprintf("readyReplicasQuery %s returned no sample; not counted", q)
	}
	v := match[0].Points[len(match[0].Points)-1].V
	if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return 0, fmt.Sprintf("readyReplicasQuery %s returned %v; not counted", q, v)
	}
	return v, ""
}

func withName(l labels.Labels, name string) labels.Labels {
	b := labels.NewBuilder(l)
	b.Set(labels.MetricName, name)
	return b.Labels()
}

func (e *Evaluator) evaluateSeries(ctx context.Context, st *seriesState, n int, buf *[]float64) SourceResult {
	s := &e.policy.Spec
	step := time.Duration(s.Step)
	src := s.Sources[st.source]
	r := SourceResult{Source: src.Name, Labels: st.labels, Quantile: s.SourceQuantile(st.source),
		AchievedDay: math.NaN(), AchievedWeek: math.NaN()}
	_, obs, _ := st.hist.last()
	r.Observed = obs
	if st.model == nil {
		m, err := model.New(s.Model.Type, s.SourceModelConfig(st.source))
		if err != nil {
			r.Err = fmt.Errorf("build model %q: %w", s.Model.Type, err)
			return r
		}
		// Each series refits at its own time of day, so that the series
		// started together do not all refit in one cycle a day later.
		model.Stagger(m, float64(st.labels.Hash()>>11)/(1<<53))
		st.model = m
	}
	if st.cal != nil {
		r.cal, r.Objective = st.cal, st.cal.Objective()
		r.Quantile = st.cal.Level()
		model.SetQuantile(st.model, r.Quantile)
	}
	fc, err := st.model.Forecast(ctx, st.hist.view(buf), n)
	if err == nil && len(fc) < n {
		err = fmt.Errorf("model %q returned %d points, want %d", s.Model.Type, len(fc), n)
	}
	if err != nil {
		r.Err = fmt.Errorf("forecast: %w", err)
		return r
	}
	// A forecast is demand: never negative, never NaN. The model may reuse
	// its slice, so the series keeps a copy.
	fc = slices.Clone(fc[:n])
	for i, v := range fc {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			r.Err = fmt.Errorf("forecast: model %q returned %v at step %d", s.Model.Type, v, i+1)
			return r
		}
		fc[i] = max(v, 0)
	}
	c := s.SourceCapacity(st.source)
	applyEvents(fc, st.hist.end(), step, e.events, c)
	r.Forecast = fc
	r.Predicted = make(map[time.Duration]float64, len(s.Ahead))
	for _, a := range s.Ahead {
		r.Predicted[time.Duration(a)] = fc[int(time.Duration(a)/step)-1]
	}
	r.Model = s.Model.Type
	if ch, ok := st.model.(model.Chooser); ok {
		r.Model = ch.Chosen(s.CoverSteps())
	}
	r.Need = capacity.Recommend(fc, s.CoverSteps(), obs, c)
	return r
}

// applyEvents adjusts a forecast for the events: fc[i], the demand over
// [t-step, t) with t = base + (i+1)·step, is multiplied by the scale of an
// event whose window overlaps that interval, then raised to the load that an
// event's minReplicas carry at c's targetPerPod and headroom. As desired
// replicas cover the forecast up to leadTime (plus one step) ahead, an event
// raises them from leadTime before its window opens until it closes.
func applyEvents(fc []float64, base time.Time, step time.Duration, events []*policy.CompiledEvent, c policy.Capacity) {
	if len(events) == 0 || len(fc) == 0 {
		return
	}
	from, to := base, base.Add(time.Duration(len(fc))*step)
	headroom := c.Headroom
	if headroom <= 0 {
		headroom = 1
	}
	for _, ev := range events {
		for _, w := range ev.Windows(from, to) {
			for i := range fc {
				t := base.Add(time.Duration(i+1) * step)
				if !t.After(w.Start) || !t.Add(-step).Before(w.End) {
					continue
				}
				if ev.Scale != nil {
					fc[i] *= *ev.Scale
				}
			}
		}
	}
	// Floors after every scale, so a floor holds whatever the multiplier.
	for _, ev := range events {
		if ev.MinReplicas == nil {
			continue
		}
		load := float64(*ev.MinReplicas) * c.TargetPerPod / headroom
		for _, w := range ev.Windows(from, to) {
			for i := range fc {
				t := base.Add(time.Duration(i+1) * step)
				if t.After(w.Start) && t.Add(-step).Before(w.End) {
					fc[i] = max(fc[i], load)
				}
			}
		}
	}
}

// IsInsufficientData tells whether a series error only means it is too new.
func IsInsufficientData(err error) bool { return errors.Is(err, model.ErrInsufficientData) }

// policyKeyLabels decide which shard writes the policy's own series; without
// a namespace they are the same as before namespaces existed, so file
// policies keep their shard.
func (e *Evaluator) policyKeyLabels() labels.Labels {
	if e.namespace == "" {
		return labels.FromStrings(PolicyLabel, e.policy.Metadata.Name)
	}
	return labels.FromStrings(PolicyLabel, e.policy.Metadata.Name, PolicyNamespaceLabel, e.namespace)
}
