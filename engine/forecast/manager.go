package forecast

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"reflect"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/kedastral/kedastral/engine/policy"
	"github.com/kedastral/kedastral/promapi"
)

// Writer sends samples to a Prometheus-compatible store; promapi.Writer is one.
type Writer interface {
	Write(ctx context.Context, samples []promapi.Sample) (promapi.WriteStats, error)
}

// QuerierFunc returns the querier for a policy: the DataSource it names, or
// the default Prometheus when ds is nil.
type QuerierFunc func(ds *policy.DataSource) (Querier, error)

// Options configure a Manager.
type Options struct {
	Logger     log.Logger
	Registerer prometheus.Registerer
	Writer     Writer
	Queriers   QuerierFunc
	// Now is the clock; time.Now by default.
	Now func() time.Time
	// WriteTimeout bounds one remote write, retries included; by default the
	// policy's interval, so a slow store never delays the next cycle for long.
	WriteTimeout time.Duration
	// Shard is the part of every policy's series this forecaster forecasts
	// when several replicas share the policies; all of them by default.
	Shard Shard
	// HistoryFullResolution is how much of each series' newest history is
	// kept at the policy's step, older history at 5-minute steps:
	// DefaultFullResolution when zero, all of it when negative.
	HistoryFullResolution time.Duration
	// PolicyNamespaces makes a policy's namespace part of its identity, for
	// policies read from the Kubernetes API: its output series carry
	// policy_namespace, and the manager, its status and its own metrics name
	// it "namespace/name". Policies from files keep their plain name.
	PolicyNamespaces bool
	// RecentSpacing is the least time between two points of a series that
	// the status page draws: a minute by default, so that the 360 points
	// kept per series span six hours.
	RecentSpacing time.Duration
}

// Manager runs the evaluation loop of every policy, applies configuration
// reloads without dropping running policies, and reports their status.
type Manager struct {
	opts    Options
	logger  log.Logger
	metrics *Metrics

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	runners map[string]*runner
	invalid map[string]string // name -> load error, for names not running
	stopped bool
}

// NewManager returns a manager with no policies; add them with Apply.
func NewManager(opts Options) (*Manager, error) {
	if opts.Writer == nil || opts.Queriers == nil {
		return nil, errors.New("forecast: Writer and Queriers are required")
	}
	if opts.Logger == nil {
		opts.Logger = log.NewNopLogger()
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Manager{
		opts:    opts,
		logger:  opts.Logger,
		metrics: NewMetrics(opts.Registerer),
		ctx:     ctx,
		cancel:  cancel,
		runners: map[string]*runner{},
		invalid: map[string]string{},
	}
	opts.Registerer.MustRegister(&ageCollector{m: m, desc: prometheus.NewDesc(
		"kedastral_forecast_age_seconds",
		"Seconds since the policy's last successful cycle (since its start while it has had none).",
		[]string{"policy"}, nil)})
	opts.Registerer.MustRegister(&underCollector{m: m})
	return m, nil
}

func (m *Manager) now() time.Time { return m.opts.Now() }

// Run blocks until ctx is done, then stops every policy.
func (m *Manager) Run(ctx context.Context) error {
	select {
	case <-ctx.Done():
	case <-m.ctx.Done():
	}
	m.Stop()
	return nil
}

// Stop stops every policy and waits for their loops to end. It is idempotent.
func (m *Manager) Stop() {
	m.mu.Lock()
	m.stopped = true
	m.mu.Unlock()
	m.cancel()
	m.wg.Wait()
}

// Apply makes the running policies those of set. A policy whose spec (or
// DataSource) did not change keeps running with its state; a changed one is
// restarted; one absent from set stops, unless loadErrs reports it invalid,
// in which case the running version is kept and the error shown in its
// status. loadErrs are the errors of the load that produced set.
func (m *Manager) Apply(set *policy.Set, loadErrs []error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		return errors.New("forecast: manager stopped")
	}
	invalid := map[string]string{}
	var unnamed []string
	for _, err := range loadErrs {
		var pe *policy.Error
		if errors.As(err, &pe) && pe.Kind == policy.KindForecastPolicy && pe.Name != "" {
			invalid[pe.Name] = err.Error()
			continue
		}
		unnamed = append(unnamed, err.Error())
	}
	want := map[string]*policy.ForecastPolicy{}
	for _, p := range set.Policies {
		want[m.Key(p)] = p
	}
	var errs []error
	for name, r := range m.runners {
		p, ok := want[name]
		switch {
		case !ok && invalid[name] != "":
			r.setLoadError(invalid[name])
			delete(invalid, name)
		case !ok:
			level.Info(m.logger).Log("msg", "stopping removed policy", "policy", name)
			r.stop()
			delete(m.runners, name)
			m.metrics.forget(name)
		case r.same(p, dataSourceOf(set, p)):
			r.setLoadError("")
		default:
			level.Info(m.logger).Log("msg", "restarting changed policy", "policy", name)
			r.stop()
			delete(m.runners, name)
		}
	}
	for name, p := range want {
		if _, running := m.runners[name]; running {
			continue
		}
		ds := dataSourceOf(set, p)
		q, err := m.opts.Queriers(ds)
		if err != nil {
			err = fmt.Errorf("policy %q: data source: %w", name, err)
			invalid[name] = err.Error()
			errs = append(errs, err)
			continue
		}
		r := m.newRunner(p, ds, q)
		m.runners[name] = r
		m.metrics.policyInfo.DeletePartialMatch(prometheus.Labels{"policy": name})
		m.metrics.policyInfo.WithLabelValues(name, p.Spec.Model.Type, strconv.FormatFloat(p.Spec.Model.Quantile, 'f', -1, 64),
			p.Spec.TargetRef.Kind, p.Spec.TargetRef.Name, p.Spec.Metric).Set(1)
		ctx, cancel := context.WithCancel(m.ctx)
		r.cancel = cancel
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			r.run(ctx)
		}()
	}
	m.invalid = invalid
	for i, u := range unnamed {
		m.invalid[fmt.Sprintf("(file error %d)", i+1)] = u
	}
	m.metrics.policies.Set(float64(len(m.runners)))
	m.metrics.policiesInvalid.Set(float64(len(loadErrs)))
	if len(loadErrs) == 0 && len(errs) == 0 {
		m.metrics.reloadSuccess.Set(1)
		m.metrics.reloadTime.Set(float64(m.now().Unix()))
	} else {
		m.metrics.reloadSuccess.Set(0)
	}
	return errors.Join(errs...)
}

// ReloadFailed records a configuration load that produced nothing usable
// (e.g. an unreadable file): every running policy keeps running.
func (m *Manager) ReloadFailed() {
	m.metrics.reloadSuccess.Set(0)
}

// Key is the name the manager, its status and its metrics use for p:
// "namespace/name" with Options.PolicyNamespaces, the name otherwise.
func (m *Manager) Key(p *policy.ForecastPolicy) string {
	if m.opts.PolicyNamespaces {
		return p.Metadata.Namespace + "/" + p.Metadata.Name
	}
	return p.Metadata.Name
}

func dataSourceOf(set *policy.Set, p *policy.ForecastPolicy) *policy.DataSource {
	if p.Spec.DataSourceRef == nil {
		return nil
	}
	return set.DataSources[p.Spec.DataSourceRef.Name]
}

func (mt *Metrics) forget(name string) {
	l := prometheus.Labels{"policy": name}
	mt.cycleDuration.DeletePartialMatch(l)
	mt.cycles.DeletePartialMatch(l)
	mt.cycleFailures.DeletePartialMatch(l)
	mt.missed.DeletePartialMatch(l)
	mt.series.DeletePartialMatch(l)
	mt.historyBytes.DeletePartialMatch(l)
	mt.modelBytes.DeletePartialMatch(l)
	mt.seriesFailures.DeletePartialMatch(l)
	mt.queryDuration.DeletePartialMatch(l)
	mt.lastSuccess.DeletePartialMatch(l)
	mt.seriesByModel.DeletePartialMatch(l)
	mt.seriesBySource.DeletePartialMatch(l)
	mt.policyInfo.DeletePartialMatch(l)
}

// PolicyStatus is what the status page and /api/v1/policies show of a policy.
type PolicyStatus struct {
	Name         string    `json:"name"`
	Model        string    `json:"model"`
	Query        string    `json:"query"`
	DataSource   string    `json:"dataSource,omitempty"`
	Interval     string    `json:"interval"`
	Started      time.Time `json:"started"`
	Cycles       int       `json:"cycles"`
	LastCycle    time.Time `json:"lastCycle,omitzero"`
	LastDuration float64   `json:"lastDurationSeconds"`
	LastSuccess  time.Time `json:"lastSuccess,omitzero"`
	LastError    string    `json:"lastError,omitempty"`
	LoadError    string    `json:"loadError,omitempty"`
	SeriesCount  int       `json:"seriesCount"`
	// Models counts the series per model answering over the lead time.
	Models map[string]int `json:"models,omitempty"`
	// Sources are the policy's signals; DrivenBy counts the series whose
	// replica count each source drives.
	Sources  []SourceInfo   `json:"sources"`
	DrivenBy map[string]int `json:"drivenBy,omitempty"`
	// Events are the events that apply now, e.g. "event 'black-friday'
	// active until 2026-11-28T00:00:00Z (minReplicas 20)".
	Events []EventStatus `json:"events,omitempty"`
	// ReadyReplicasQuery reads the ready replicas for the underprovision
	// account; empty when there is none.
	ReadyReplicasQuery string `json:"readyReplicasQuery,omitempty"`

	Series       []SeriesStatus `json:"series,omitempty"`
	DesiredRange [2]int32       `json:"desiredRange"`
	Ready        bool           `json:"ready"`
}

// SeriesStatus is one series of a policy on the status page.
type SeriesStatus struct {
	Labels    map[string]string  `json:"labels"`
	Observed  float64            `json:"observed"`
	Predicted map[string]float64 `json:"predicted"`
	Desired   int32              `json:"desired"`
	// Need is what the forecast needs before the capacity planner (rate
	// limits, the lift past the HPA's tolerance); HPA the count the HPA is
	// expected to hold once it sees Desired.
	Need  int32  `json:"need"`
	HPA   int32  `json:"hpa"`
	Model string `json:"model,omitempty"`
	Error string `json:"error,omitempty"`
	// Source drives Desired; Sources details each source when there are several.
	Source  string             `json:"source,omitempty"`
	Sources []SourceSeriesInfo `json:"sources,omitempty"`
	// Ready replicas and the underprovision account (see SeriesResult);
	// ReadyNote says why the account did not advance.
	Ready                 *float64 `json:"ready,omitempty"`
	ReadyNote             string   `json:"readyNote,omitempty"`
	Underprovisioned      bool     `json:"underprovisioned,omitempty"`
	UnderprovisionSeconds *float64 `json:"underprovisionSeconds,omitempty"`
}

// SourceInfo is one source of a policy on the status page.
type SourceInfo struct {
	Name         string  `json:"name"`
	Query        string  `json:"query"`
	TargetPerPod float64 `json:"targetPerPod"`
	Quantile     float64 `json:"quantile"`
}

// SourceSeriesInfo is one source's part of a series on the status page.
type SourceSeriesInfo struct {
	Source    string             `json:"source"`
	Observed  float64            `json:"observed"`
	Predicted map[string]float64 `json:"predicted,omitempty"`
	Need      int32              `json:"need"`
	Model     string             `json:"model,omitempty"`
	Error     string             `json:"error,omitempty"`
}

// EventStatus is an event that applies now.
type EventStatus struct {
	Name    string    `json:"name"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	Open    bool      `json:"open"`
	Effect  string    `json:"effect"`
	Message string    `json:"message"`
}

// maxStatusSeries bounds the series listed per policy on the status page.
const maxStatusSeries = 50

// Status returns every policy's status, by name, then the invalid ones.
func (m *Manager) Status() []PolicyStatus {
	m.mu.Lock()
	out := make([]PolicyStatus, 0, len(m.runners)+len(m.invalid))
	for _, r := range m.runners {
		out = append(out, r.status())
	}
	for name, msg := range m.invalid {
		out = append(out, PolicyStatus{Name: name, LoadError: msg, Ready: true})
	}
	m.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Ready reports whether every policy has completed a cycle or reported why
// not; the reason names the first that has not.
func (m *Manager) Ready() (bool, string) {
	for _, st := range m.Status() {
		if !st.Ready {
			return false, fmt.Sprintf("policy %q has not completed its first cycle", st.Name)
		}
	}
	return true, ""
}

// runner is one policy's loop.
type runner struct {
	m       *Manager
	policy  *policy.ForecastPolicy
	ds      *policy.DataSource
	eval    *Evaluator
	offset  time.Duration
	cancel  context.CancelFunc
	done    chan struct{}
	started time.Time
	logger  log.Logger
	// name is the policy's key (Manager.Key).
	name string

	mu sync.Mutex
	st PolicyStatus
	// recent holds the last hours of the series the status page lists,
	// by statusKey; recentAhead is the offset of their forecasts.
	recent      map[string]*recent
	recentAhead time.Duration
	// under is the last cycle's kedastral_underprovision_seconds_total
	// samples, for /metrics.
	under []promapi.Sample
}

func (m *Manager) newRunner(p *policy.ForecastPolicy, ds *policy.DataSource, q Querier) *runner {
	name := m.Key(p)
	h := fnv.New64a()
	h.Write([]byte(name))
	interval := time.Duration(p.Spec.Interval)
	r := &runner{
		m:       m,
		policy:  p,
		ds:      ds,
		eval:    NewEvaluator(p, q),
		offset:  time.Duration(h.Sum64() % uint64(interval)).Truncate(time.Millisecond),
		done:    make(chan struct{}),
		started: m.now(),
		logger:  log.With(m.logger, "policy", name),
		name:    name,
	}
	if m.opts.PolicyNamespaces {
		r.eval.SetPolicyNamespace(p.Metadata.Namespace)
	}
	r.eval.AccountUnderprovision()
	r.eval.SetLogger(r.logger)
	r.eval.SetShard(m.opts.Shard)
	// After a start, fit new series' models for at most half an interval
	// a cycle, so that the forecasts of the others are written meanwhile.
	r.eval.SetWarmupBudget(interval / 2)
	if fr := m.opts.HistoryFullResolution; fr != 0 {
		r.eval.SetFullResolution(fr)
	}
	r.st = PolicyStatus{
		Name:               name,
		Model:              p.Spec.Model.Type,
		Query:              p.Spec.Sources[0].Query,
		Interval:           p.Spec.Interval.String(),
		Started:            r.started,
		ReadyReplicasQuery: p.Spec.ReadyReplicasQuery,
	}
	for i, src := range p.Spec.Sources {
		r.st.Sources = append(r.st.Sources, SourceInfo{Name: src.Name, Query: src.Query,
			TargetPerPod: p.Spec.SourceCapacity(i).TargetPerPod, Quantile: p.Spec.SourceQuantile(i)})
	}
	if ds != nil {
		r.st.DataSource = ds.Metadata.Name
	}
	return r
}

func (r *runner) same(p *policy.ForecastPolicy, ds *policy.DataSource) bool {
	return reflect.DeepEqual(r.policy, p) && reflect.DeepEqual(r.ds, ds)
}

func (r *runner) setLoadError(msg string) {
	r.mu.Lock()
	r.st.LoadError = msg
	r.mu.Unlock()
}

func (r *runner) stop() {
	r.cancel()
	<-r.done
}

func (r *runner) status() PolicyStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.st
	st.Series = append([]SeriesStatus(nil), r.st.Series...)
	st.Events = append([]EventStatus(nil), r.st.Events...)
	return st
}

// slot returns the evaluation time of the interval that contains t: a
// multiple of the interval plus the policy's offset, as Prometheus aligns rule
// groups, so restarts and replicas stamp the same times.
func (r *runner) slot(t time.Time) time.Time {
	interval := time.Duration(r.policy.Spec.Interval)
	adj := t.Add(-r.offset)
	base := adj.Add(-time.Duration(adj.UnixNano() % int64(interval)))
	return base.Add(r.offset)
}

func (r *runner) run(ctx context.Context) {
	defer close(r.done)
	interval := time.Duration(r.policy.Spec.Interval)
	level.Info(r.logger).Log("msg", "starting policy", "interval", interval, "model", r.policy.Spec.Model.Type)

	// Read the whole lookback right away; evaluation waits for the next slot,
	// so a restart never stamps a time the previous process may have written.
	r.fetch(ctx, r.m.now())
	next := r.slot(r.m.now()).Add(interval)
	for {
		wait := next.Sub(r.m.now())
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		if ctx.Err() != nil {
			return
		}
		r.cycle(ctx, next)
		next = next.Add(interval)
		if now := r.m.now(); now.Sub(next) >= interval {
			missed := int(now.Sub(next) / interval)
			r.m.metrics.missed.WithLabelValues(r.name).Add(float64(missed))
			level.Warn(r.logger).Log("msg", "cycle ran past its slot, skipping", "missed", missed)
			next = next.Add(time.Duration(missed) * interval)
		}
	}
}

func (r *runner) fetch(ctx context.Context, now time.Time) error {
	name := r.name
	start := time.Now()
	fctx, cancel := context.WithTimeout(ctx, max(time.Duration(r.policy.Spec.Interval), time.Minute))
	defer cancel()
	n, err := r.eval.Fetch(fctx, now)
	r.m.metrics.queryDuration.WithLabelValues(name).Observe(time.Since(start).Seconds())
	if err != nil {
		return err
	}
	level.Debug(r.logger).Log("msg", "fetched history", "points", n, "series", r.eval.SeriesCount(), "duration", time.Since(start))
	return nil
}

// cycle runs one evaluation stamped at ts.
func (r *runner) cycle(ctx context.Context, ts time.Time) {
	name := r.name
	start := time.Now()
	mt := r.m.metrics
	mt.cycles.WithLabelValues(name).Inc()

	finish := func(c *Cycle, err error) {
		d := time.Since(start)
		mt.cycleDuration.WithLabelValues(name).Observe(d.Seconds())
		r.mu.Lock()
		defer r.mu.Unlock()
		r.st.Cycles++
		r.st.Ready = true
		r.st.LastCycle = ts
		r.st.LastDuration = d.Seconds()
		if c != nil {
			r.setSignalStatus(c)
		}
		if err != nil {
			r.st.LastError = err.Error()
			// A forecast that could not be written is still the forecast:
			// show it. Without one (the query failed, nothing to write)
			// the last good state stays.
			if c == nil || len(c.Samples) == 0 {
				return
			}
		} else {
			r.st.LastError = ""
			r.st.LastSuccess = ts
		}
		r.st.SeriesCount = len(c.Series)
		r.recordRecent(ts, c)
		r.st.Series = r.st.Series[:0]
		r.st.DesiredRange = [2]int32{}
		r.st.Models = map[string]int{}
		first := true
		for _, s := range c.Series {
			if s.Err == nil {
				r.st.Models[s.Model]++
				if first || s.Desired < r.st.DesiredRange[0] {
					r.st.DesiredRange[0] = s.Desired
				}
				if first || s.Desired > r.st.DesiredRange[1] {
					r.st.DesiredRange[1] = s.Desired
				}
				first = false
			}
			if len(r.st.Series) >= maxStatusSeries {
				continue
			}
			ss := SeriesStatus{Labels: s.Labels.Map(), Observed: s.Observed, Desired: s.Desired, Need: s.Raw, HPA: s.HPA, Model: s.Model, Predicted: map[string]float64{}}
			delete(ss.Labels, PolicyLabel)
			delete(ss.Labels, PolicyNamespaceLabel)
			for a, v := range s.Predicted {
				ss.Predicted[model.Duration(a).String()] = v
			}
			if s.Err != nil {
				ss.Error = s.Err.Error()
			}
			seriesSignalStatus(&ss, s)
			r.st.Series = append(r.st.Series, ss)
		}
	}

	if err := r.fetch(ctx, ts); err != nil {
		mt.cycleFailures.WithLabelValues(name, "query").Inc()
		level.Error(r.logger).Log("msg", "fetching history failed, keeping last state", "err", err)
		finish(nil, fmt.Errorf("query: %w", err))
		return
	}
	c := r.eval.Evaluate(ctx, ts)
	forecast := 0
	for _, s := range c.Series {
		switch {
		case s.Err == nil:
			forecast++
		case IsInsufficientData(s.Err):
			mt.seriesFailures.WithLabelValues(name, "insufficient_data").Inc()
			level.Debug(r.logger).Log("msg", "series not forecast yet", "series", seriesString(s.Labels), "err", s.Err)
		default:
			mt.seriesFailures.WithLabelValues(name, "model").Inc()
			level.Warn(r.logger).Log("msg", "series not forecast", "series", seriesString(s.Labels), "err", s.Err)
		}
	}
	mt.series.WithLabelValues(name).Set(float64(forecast))
	mt.historyBytes.WithLabelValues(name).Set(float64(r.eval.HistoryBytes()))
	mt.modelBytes.WithLabelValues(name).Set(float64(r.eval.ModelBytes()))
	byModel := map[string]int{}
	for _, s := range c.Series {
		if s.Err == nil {
			byModel[s.Model]++
		}
	}
	mt.seriesByModel.DeletePartialMatch(prometheus.Labels{"policy": name})
	for m, n := range byModel {
		mt.seriesByModel.WithLabelValues(name, m).Set(float64(n))
	}
	mt.setSeriesBySource(name, r.policy, c)
	if len(c.Samples) == 0 {
		var err error
		if len(c.Series) == 0 {
			err = errors.New("the query returned no series with recent data")
		} else {
			err = fmt.Errorf("none of %d series could be forecast: %v", len(c.Series), c.Series[0].Err)
		}
		level.Warn(r.logger).Log("msg", "nothing to write", "err", err)
		finish(c, err)
		return
	}
	timeout := r.m.opts.WriteTimeout
	if timeout <= 0 {
		timeout = time.Duration(r.policy.Spec.Interval)
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	wstart := time.Now()
	_, err := r.m.opts.Writer.Write(wctx, c.Samples)
	mt.writeDuration.Observe(time.Since(wstart).Seconds())
	if err != nil {
		mt.samplesFailed.Add(float64(len(c.Samples)))
		mt.cycleFailures.WithLabelValues(name, "write").Inc()
		level.Error(r.logger).Log("msg", "remote write failed", "samples", len(c.Samples), "err", err)
		finish(c, fmt.Errorf("remote write: %w", err))
		return
	}
	mt.samplesSent.Add(float64(len(c.Samples)))
	mt.lastSuccess.WithLabelValues(name).Set(float64(ts.UnixMilli()) / 1000)
	level.Debug(r.logger).Log("msg", "cycle done", "series", forecast, "samples", len(c.Samples), "duration", time.Since(start))
	finish(c, nil)
}

func seriesString(l labels.Labels) string { return l.String() }
