package scaler

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/go-kit/log/level"
	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kedastral/kedastral/promapi"
	pb "github.com/kedastral/kedastral/proto"
)

// Querier runs instant PromQL queries; *promapi.Client is one.
type Querier interface {
	Query(ctx context.Context, query string, ts time.Time) ([]promapi.Sample, error)
}

// tsLabel marks the timestamp() half of the forecast query's result.
const tsLabel = "__kedastral_sample_time"

// maxCandidates bounds the series listed in an ambiguous-selection error.
const maxCandidates = 10

// invalidError is a request the scaler cannot answer however long it
// waits; the service maps it to codes.InvalidArgument.
type invalidError struct{ msg string }

func (e *invalidError) Error() string { return e.msg }

// queryError is a failed Prometheus query (its own timeout included, which
// must not pass for the caller's deadline); the service maps it to
// codes.Unavailable.
type queryError struct{ err error }

func (e *queryError) Error() string { return "query prometheus: " + e.err.Error() }

func (e *queryError) Unwrap() error { return e.err }

// service implements pb.ExternalScalerServer; Server runs it.
type service struct {
	pb.UnimplementedExternalScalerServer
	s *Server
}

// forecastQuery returns, in one query, the newest desired-replicas sample of
// every series of policy and its time stamp (timestamp() of an instant
// selector is the sample's time, not the evaluation time).
func forecastQuery(policy string) string {
	sel := DesiredReplicasMetric + "{" + labels.MustNewMatcher(labels.MatchEqual, "policy", policy).String() + "}"
	return fmt.Sprintf(`%s or label_replace(timestamp(%s), %q, "1", "", "")`, sel, sel, tsLabel)
}

// seriesSample is the newest sample of one desired-replicas series.
type seriesSample struct {
	labels labels.Labels
	value  float64
	t      time.Time
	hasT   bool
}

// parseForecast pairs the values and time stamps of forecastQuery's result:
// one entry per series, in the order of the (sorted) result.
func parseForecast(q string, samples []promapi.Sample) ([]seriesSample, error) {
	index := map[string]int{}
	var out []seriesSample
	for _, smp := range samples {
		ls := smp.Labels
		isT := ls.Has(tsLabel)
		if isT {
			ls = labels.NewBuilder(ls).Del(tsLabel).Labels()
		}
		k := ls.String()
		i, ok := index[k]
		if !ok {
			i = len(out)
			index[k] = i
			out = append(out, seriesSample{labels: ls})
		}
		if isT {
			out[i].t = time.UnixMilli(int64(math.Round(smp.V * 1000)))
			out[i].hasT = true
		} else {
			out[i].value = smp.V
		}
	}
	for _, ss := range out {
		if !ss.hasT {
			return nil, fmt.Errorf("query %q: no time stamp for series %s", q, ss.labels)
		}
	}
	return out, nil
}

// readForecast returns the selected series' newest sample (nil when there is
// none), through the cache: one query per policy and TTL, whatever the
// number of triggers and series.
func (s *Server) readForecast(ctx context.Context, t *trigger) (*seriesSample, error) {
	m := t.m
	set, _, err := s.forecasts.get(ctx, m.Policy, func(ctx context.Context, ts time.Time) (*forecastSet, error) {
		q := forecastQuery(m.Policy)
		samples, err := s.query(ctx, "forecast", q, ts)
		if err != nil {
			return nil, err
		}
		series, err := parseForecast(q, samples)
		if err != nil {
			return nil, err
		}
		return newForecastSet(series), nil
	})
	if err != nil {
		return nil, err
	}
	// The series a trigger selects change only with the cached read.
	var matched []*seriesSample
	if mm := t.match.Load(); mm != nil && mm.set == set {
		matched = mm.out
	} else {
		matched = set.match(m)
		t.match.Store(&matchMemo{set: set, out: matched})
	}
	switch len(matched) {
	case 0:
		return nil, nil
	case 1:
		ss := *matched[0]
		return &ss, nil
	}
	var cands []string
	for i, ss := range matched {
		if i == maxCandidates {
			cands = append(cands, fmt.Sprintf("… %d more", len(matched)-maxCandidates))
			break
		}
		cands = append(cands, ss.labels.String())
	}
	return nil, &invalidError{fmt.Sprintf("scalerMetadata key %q: %s matches %d series; add labels to tell them apart: %s",
		KeyMatchLabels, m.Selector(), len(matched), strings.Join(cands, ", "))}
}

// readReactive evaluates the reactive query through the cache.
func (s *Server) readReactive(ctx context.Context, m Metadata) reactiveInput {
	r := reactiveInput{Configured: m.ReactiveQuery != ""}
	if !r.Configured {
		return r
	}
	samples, _, err := s.reactive.get(ctx, m.ReactiveQuery, func(ctx context.Context, ts time.Time) ([]promapi.Sample, error) {
		return s.query(ctx, "reactive", m.ReactiveQuery, ts)
	})
	switch {
	case err != nil:
		r.Err = err
	case len(samples) == 1:
		r.Found, r.Value = true, samples[0].V
	case len(samples) > 1:
		var cands []string
		for i, smp := range samples {
			if i == maxCandidates {
				cands = append(cands, fmt.Sprintf("… %d more", len(samples)-maxCandidates))
				break
			}
			cands = append(cands, smp.Labels.String())
		}
		r.Err = &invalidError{fmt.Sprintf("scalerMetadata key %q: query returns %d series, want one (aggregate it, e.g. with sum()): %s",
			KeyReactiveQuery, len(samples), strings.Join(cands, ", "))}
	}
	return r
}

func (s *Server) query(ctx context.Context, kind, q string, ts time.Time) ([]promapi.Sample, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.QueryTimeout)
	defer cancel()
	s.metrics.queries.WithLabelValues(kind).Inc()
	samples, err := s.opts.Querier.Query(ctx, q, ts)
	if err != nil {
		s.metrics.queryErrors.WithLabelValues(kind).Inc()
		level.Warn(s.logger).Log("msg", "prometheus query failed", "kind", kind, "query", q, "err", err)
		return nil, &queryError{err}
	}
	return samples, nil
}

// answer decides the replica count for a trigger.
func (s *Server) answer(ctx context.Context, t *trigger) (decision, error) {
	m := t.m
	var (
		wg       sync.WaitGroup
		reactive reactiveInput
	)
	if m.ReactiveQuery != "" {
		wg.Go(func() { reactive = s.readReactive(ctx, m) })
	}
	ss, ferr := s.readForecast(ctx, t)
	wg.Wait()
	if ferr != nil {
		return decision{}, ferr
	}
	if ie, ok := errors.AsType[*invalidError](reactive.Err); ok {
		return decision{}, ie
	}
	if err := ctx.Err(); err != nil {
		return decision{}, err
	}
	if reactive.Err != nil {
		level.Warn(s.logger).Log("msg", "reactive query failed", "policy", m.Policy, "query", m.ReactiveQuery, "err", reactive.Err)
	}
	f := forecastInput{}
	if ss != nil {
		f = forecastInput{Found: true, Value: ss.value, Age: max(0, s.opts.Now().Sub(ss.t))}
		t.age.Set(f.Age.Seconds())
	}
	d, err := decide(m, f, reactive)
	d.Forecast, d.Age = f.Found, f.Age
	if err != nil {
		s.metrics.staleAnswers.WithLabelValues(m.PolicyNamespace, m.Policy, "unavailable").Inc()
		return decision{Forecast: f.Found, Age: f.Age}, err
	}
	if d.Stale {
		s.metrics.staleAnswers.WithLabelValues(m.PolicyNamespace, m.Policy, "reactive").Inc()
	}
	s.metrics.answers.WithLabelValues(m.PolicyNamespace, m.Policy, string(d.Source)).Inc()
	t.desired.Set(d.Replicas)
	return d, nil
}

// grpcError maps an error to the gRPC status KEDA gets.
func grpcError(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	if me, ok := errors.AsType[*MetadataError](err); ok {
		return status.Error(codes.InvalidArgument, me.Error())
	}
	if ie, ok := errors.AsType[*invalidError](err); ok {
		return status.Error(codes.InvalidArgument, ie.Error())
	}
	if qe, ok := errors.AsType[*queryError](err); ok {
		return status.Error(codes.Unavailable, qe.Error())
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return status.FromContextError(err).Err()
	}
	if ue, ok := errors.AsType[*unavailableError](err); ok {
		return status.Error(codes.Unavailable, ue.Error())
	}
	return status.Error(codes.Unavailable, err.Error())
}

func parseRef(ref *pb.ScaledObjectRef) (Metadata, error) {
	if ref == nil {
		return Metadata{}, status.Error(codes.InvalidArgument, "scaledObjectRef is required")
	}
	m, err := ParseMetadata(ref.GetScalerMetadata())
	if err == nil {
		m.SetDefaultNamespace(ref.GetNamespace())
	}
	return m, grpcError(err)
}

// triggerOf is parseRef through the server's trigger cache.
func (s *Server) triggerOf(ref *pb.ScaledObjectRef) (*trigger, error) {
	if ref == nil {
		return nil, status.Error(codes.InvalidArgument, "scaledObjectRef is required")
	}
	t, err := s.trigger(ref.GetScalerMetadata(), ref.GetNamespace())
	return t, grpcError(err)
}

func metricSpec(m Metadata) *pb.GetMetricSpecResponse {
	return &pb.GetMetricSpecResponse{MetricSpecs: []*pb.MetricSpec{{
		MetricName: m.MetricName(), TargetSize: 1, TargetSizeFloat: 1,
	}}}
}

// GetMetricSpec answers from the metadata alone, never from Prometheus, so
// the HPA always has a spec: target 1 per replica, so that with the
// AverageValue metric type the HPA lands on the desired replica count.
func (v *service) GetMetricSpec(_ context.Context, ref *pb.ScaledObjectRef) (*pb.GetMetricSpecResponse, error) {
	m, err := parseRef(ref)
	if err != nil {
		return nil, err
	}
	return metricSpec(m), nil
}

// StreamMetricSpec sends the metric spec once and keeps the stream open: the
// spec depends on the metadata only and never changes.
func (v *service) StreamMetricSpec(ref *pb.ScaledObjectRef, stream pb.ExternalScaler_StreamMetricSpecServer) error {
	m, err := parseRef(ref)
	if err != nil {
		return err
	}
	if err := stream.Send(metricSpec(m)); err != nil {
		return err
	}
	select {
	case <-stream.Context().Done():
		return grpcError(stream.Context().Err())
	case <-v.s.quit:
		return nil
	}
}

// GetMetrics returns the desired replica count, in both the integer and the
// float field.
func (v *service) GetMetrics(ctx context.Context, req *pb.GetMetricsRequest) (*pb.GetMetricsResponse, error) {
	t, err := v.s.triggerOf(req.GetScaledObjectRef())
	if err != nil {
		return nil, err
	}
	name := t.name
	if req.GetMetricName() != "" && req.GetMetricName() != name {
		return nil, status.Errorf(codes.InvalidArgument, "metricName %q: this trigger's metric is %q", req.GetMetricName(), name)
	}
	d, err := v.s.answer(ctx, t)
	v.s.answers.record(req.GetScaledObjectRef(), t, "GetMetrics", d, err, v.s.opts.Now())
	if err != nil {
		v.s.logAnswerError(t.m, "GetMetrics", err)
		return nil, grpcError(err)
	}
	return &pb.GetMetricsResponse{MetricValues: []*pb.MetricValue{{
		MetricName: name, MetricValue: int64(d.Replicas), MetricValueFloat: d.Replicas,
	}}}, nil
}

// IsActive is true when the desired replicas exceed activationReplicas.
func (v *service) IsActive(ctx context.Context, ref *pb.ScaledObjectRef) (*pb.IsActiveResponse, error) {
	t, err := v.s.triggerOf(ref)
	if err != nil {
		return nil, err
	}
	d, err := v.s.answer(ctx, t)
	v.s.answers.record(ref, t, "IsActive", d, err, v.s.opts.Now())
	if err != nil {
		v.s.logAnswerError(t.m, "IsActive", err)
		return nil, grpcError(err)
	}
	return &pb.IsActiveResponse{Result: d.Replicas > t.m.ActivationReplicas}, nil
}

// StreamIsActive re-evaluates every StreamCheckInterval and pushes the
// activity when it changes, and at least every StreamResendInterval. An
// error ends the stream with its status (KEDA reopens it); Stop ends it
// cleanly.
func (v *service) StreamIsActive(ref *pb.ScaledObjectRef, stream pb.ExternalScaler_StreamIsActiveServer) error {
	t, err := v.s.triggerOf(ref)
	if err != nil {
		return err
	}
	m := t.m
	ctx := stream.Context()
	tick := time.NewTicker(v.s.opts.StreamCheckInterval)
	defer tick.Stop()
	var (
		sent     bool
		last     bool
		lastSent time.Time
	)
	for {
		d, err := v.s.answer(ctx, t)
		v.s.answers.record(ref, t, "StreamIsActive", d, err, v.s.opts.Now())
		if err != nil {
			v.s.logAnswerError(m, "StreamIsActive", err)
			return grpcError(err)
		}
		active := d.Replicas > m.ActivationReplicas
		if now := v.s.opts.Now(); !sent || active != last || now.Sub(lastSent) >= v.s.opts.StreamResendInterval {
			if err := stream.Send(&pb.IsActiveResponse{Result: active}); err != nil {
				return err
			}
			sent, last, lastSent = true, active, now
		}
		select {
		case <-ctx.Done():
			return grpcError(ctx.Err())
		case <-v.s.quit:
			return nil
		case <-tick.C:
		}
	}
}

func (s *Server) logAnswerError(m Metadata, method string, err error) {
	l := level.Warn(s.logger)
	if _, ok := errors.AsType[*invalidError](err); ok || errors.Is(err, context.Canceled) {
		l = level.Debug(s.logger)
	}
	l.Log("msg", "no answer", "method", method, "policy", m.Policy, "series", m.Selector(), "err", err)
}
