package policy

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"

	kmodel "github.com/kedastral/kedastral/engine/model"
)

// Limits that keep one policy from exhausting the forecaster.
const (
	MinInterval     = time.Second
	MinStep         = time.Second
	MaxHistorySteps = 200_000 // lookback / step
	MaxHorizonSteps = 10_000  // horizon / step
	MaxAhead        = 32
	MaxReplicas     = 100_000
	MaxSources      = 16
	MaxEvents       = 64
)

// FieldError is a validation error for one field.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Err: fmt.Errorf(format, args...)}
}

// FieldErrors is every problem that validation found in one object, in the
// order of its fields. errors.As finds the first *FieldError in it.
type FieldErrors []*FieldError

func (e FieldErrors) Error() string {
	parts := make([]string, len(e))
	for i, fe := range e {
		parts[i] = fe.Error()
	}
	return strings.Join(parts, "; ")
}

func (e FieldErrors) Unwrap() []error {
	out := make([]error, len(e))
	for i, fe := range e {
		out[i] = fe
	}
	return out
}

// fieldErrs collects the errors of one object, so that validation reports
// all of them rather than the first.
type fieldErrs struct{ list FieldErrors }

func (v *fieldErrs) add(field, format string, args ...any) {
	v.list = append(v.list, &FieldError{Field: field, Err: fmt.Errorf(format, args...)})
}

// addErr adds err: a *FieldError, FieldErrors, or another error (for field).
func (v *fieldErrs) addErr(field string, err error) {
	var fes FieldErrors
	var fe *FieldError
	switch {
	case err == nil:
	case errors.As(err, &fes):
		v.list = append(v.list, fes...)
	case errors.As(err, &fe):
		v.list = append(v.list, fe)
	default:
		v.list = append(v.list, &FieldError{Field: field, Err: err})
	}
}

func (v *fieldErrs) err() error {
	if len(v.list) == 0 {
		return nil
	}
	return v.list
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`)

func validateMeta(m ObjectMeta) error {
	if m.Name == "" {
		return fieldErr("metadata.name", "is required")
	}
	if len(m.Name) > 253 || !nameRE.MatchString(m.Name) {
		return fieldErr("metadata.name", "%q is not a valid name: lower case letters, digits, '-' and '.', starting and ending with a letter or digit", m.Name)
	}
	return nil
}

var promqlParser = parser.NewParser(parser.Options{})

// ParseQuery parses a PromQL expression and checks that it yields an instant
// vector or a scalar, the only results a range query can return.
func ParseQuery(q string) (parser.Expr, error) {
	if q == "" {
		return nil, errors.New("is required")
	}
	expr, err := promqlParser.ParseExpr(q)
	if err != nil {
		return nil, fmt.Errorf("invalid PromQL %q: %w", q, err)
	}
	switch t := expr.Type(); t {
	case parser.ValueTypeVector, parser.ValueTypeScalar:
		return expr, nil
	default:
		return nil, fmt.Errorf("PromQL %q returns a %s; it must return an instant vector", q, t)
	}
}

// Validate checks a policy and fills in defaults. The error is FieldErrors,
// one *FieldError for every bad field.
func (p *ForecastPolicy) Validate() error {
	var v fieldErrs
	v.addErr("metadata.name", validateMeta(p.Metadata))
	s := &p.Spec
	if s.TargetRef.Name == "" {
		v.add("spec.targetRef.name", "is required")
	}
	if s.Interval == 0 {
		s.Interval = DefaultInterval
	}
	if s.Step == 0 {
		s.Step = DefaultStep
	}
	if s.Lookback == 0 {
		s.Lookback = DefaultLookback
	}
	if d := time.Duration(s.Interval); d < MinInterval {
		v.add("spec.interval", "must be at least %s, got %s", MinInterval, s.Interval)
	}
	step := time.Duration(s.Step)
	// The checks that divide by the step, or compare with the horizon, are
	// made only when those are valid.
	stepOK := step >= MinStep
	if !stepOK {
		v.add("spec.step", "must be at least %s, got %s", MinStep, s.Step)
	} else if time.Duration(s.Lookback) < step {
		v.add("spec.lookback", "must be at least one step (%s), got %s", s.Step, s.Lookback)
	} else if n := time.Duration(s.Lookback) / step; n > MaxHistorySteps {
		v.add("spec.lookback", "%s at step %s is %d points, more than the limit of %d", s.Lookback, s.Step, n, MaxHistorySteps)
	}
	horizonOK := s.Horizon > 0
	if !horizonOK {
		v.add("spec.horizon", "must be positive, got %s", s.Horizon)
	} else if n := time.Duration(s.Horizon) / step; stepOK && n > MaxHorizonSteps {
		v.add("spec.horizon", "%s at step %s is %d points, more than the limit of %d", s.Horizon, s.Step, n, MaxHorizonSteps)
	}
	if s.LeadTime < 0 {
		v.add("spec.leadTime", "must not be negative, got %s", s.LeadTime)
	} else if horizonOK && s.LeadTime > s.Horizon {
		v.add("spec.leadTime", "%s is beyond the horizon %s: the forecast must cover the lead time", s.LeadTime, s.Horizon)
	}
	defaultAhead := len(s.Ahead) == 0
	if defaultAhead {
		if s.LeadTime > 0 {
			s.Ahead = append(s.Ahead, s.LeadTime)
		}
		if s.Horizon != s.LeadTime {
			s.Ahead = append(s.Ahead, s.Horizon)
		}
	}
	if len(s.Ahead) > MaxAhead {
		v.add("spec.ahead", "at most %d offsets, got %d", MaxAhead, len(s.Ahead))
	} else if stepOK && horizonOK {
		for i, a := range s.Ahead {
			f := fmt.Sprintf("spec.ahead[%d]", i)
			switch {
			case defaultAhead && (a <= 0 || a > s.Horizon):
				// Reported at the lead time or the horizon already.
			case a <= 0 || a > s.Horizon:
				v.add(f, "must be in (0, horizon=%s], got %s", s.Horizon, a)
			case time.Duration(a)%step != 0 && defaultAhead:
				// The user wrote no ahead: name the field the offset came from.
				f = "spec.horizon"
				if a == s.LeadTime {
					f = "spec.leadTime"
				}
				v.add(f, "%s is not a multiple of the step %s; set spec.ahead to publish other offsets", a, s.Step)
			case time.Duration(a)%step != 0:
				v.add(f, "%s is not a multiple of the step %s", a, s.Step)
			case slices.Contains(s.Ahead[:i], a):
				v.add(f, "duplicate offset %s", a)
			}
		}
	}
	s.Capacity.validate(&v)
	if s.Model.Type == "" {
		s.Model.Type = DefaultModel
	}
	if !slices.Contains(kmodel.Names(), s.Model.Type) {
		v.add("spec.model.type", "unknown model %q (known: %v)", s.Model.Type, kmodel.Names())
	}
	if s.Model.Quantile == 0 {
		s.Model.Quantile = DefaultQuantile
	}
	if q := s.Model.Quantile; !(q > 0 && q < 1) {
		v.add("spec.model.quantile", "must be in (0, 1), got %v", q)
	}
	switch b := s.Model.BYOM; {
	case s.Model.Type == kmodel.BYOM && b == nil:
		v.add("spec.model.byom", "is required with type %s", kmodel.BYOM)
	case s.Model.Type != kmodel.BYOM && b != nil:
		v.add("spec.model.byom", "is only allowed with type %s, got type %s", kmodel.BYOM, s.Model.Type)
	case b != nil:
		v.addErr("spec.model.byom.url", ValidateURL(b.URL))
		if b.Timeout < 0 {
			v.add("spec.model.byom.timeout", "must not be negative, got %s", b.Timeout)
		}
		if b.MaxResponseBytes < 0 {
			v.add("spec.model.byom.maxResponseBytes", "must not be negative, got %d", b.MaxResponseBytes)
		}
	}
	if len(s.Sources) == 0 {
		v.add("spec.sources", "at least one source is required")
	}
	tooMany := len(s.Sources) > MaxSources
	if tooMany {
		v.add("spec.sources", "at most %d sources, got %d", MaxSources, len(s.Sources))
	}
	grouped := -1 // the first source whose output labels are known
	var groupedBy []string
	for i := range s.Sources {
		if tooMany {
			break
		}
		src := &s.Sources[i]
		f := fmt.Sprintf("spec.sources[%d]", i)
		if src.Name == "" {
			v.add(f+".name", "is required")
		}
		for j := range i {
			if src.Name != "" && s.Sources[j].Name == src.Name {
				v.add(f+".name", "duplicate source name %q (also spec.sources[%d])", src.Name, j)
				break
			}
		}
		if src.Type == "" {
			src.Type = SourceTypePrometheus
		}
		if src.Type != SourceTypePrometheus {
			v.add(f+".type", "must be %q, got %q", SourceTypePrometheus, src.Type)
		}
		expr, err := ParseQuery(src.Query)
		v.addErr(f+".query", err)
		if t := src.TargetPerPod; t != 0 && (!finite(t) || t < 0) {
			v.add(f+".targetPerPod", "must be a positive number, got %v", t)
		}
		if q := src.Quantile; q != 0 && !(q > 0 && q < 1) {
			v.add(f+".quantile", "must be in (0, 1), got %v", q)
		}
		if err != nil {
			continue
		}
		if by, ok := OutputLabelNames(expr); ok && len(s.Sources) > 1 {
			if grouped < 0 {
				grouped, groupedBy = i, by
			} else if diff := LabelDiff(groupedBy, by); diff != "" {
				v.add(f+".query", "returns series labelled by (%s) but sources[%d] (%q) by (%s): sources are joined on the same labels; %s",
					strings.Join(by, ", "), grouped, s.Sources[grouped].Name, strings.Join(groupedBy, ", "), diff)
			}
		}
	}
	if s.ReadyReplicasQuery == "" {
		s.ReadyReplicasQuery = DefaultReadyReplicasQuery(p.Metadata.Namespace, s.TargetRef)
	}
	if s.ReadyReplicasQuery != "" {
		if _, err := ParseQuery(s.ReadyReplicasQuery); err != nil {
			v.addErr("spec.readyReplicasQuery", err)
		}
	}
	v.addErr("spec.events", validateEvents(s))
	if s.DataSourceRef != nil && s.DataSourceRef.Name == "" {
		v.add("spec.dataSourceRef.name", "is required when dataSourceRef is set")
	}
	if so := s.ScaledObject; so != nil {
		so.validate(&v)
	}
	return v.err()
}

// scaledObjectOwnedKeys are the trigger metadata keys the forecaster sets.
var scaledObjectOwnedKeys = []string{"scalerAddress", "policy", "policyNamespace"}

func (so *ScaledObjectSpec) validate(v *fieldErrs) {
	if so.Name != "" && (len(so.Name) > 253 || !nameRE.MatchString(so.Name)) {
		v.add("spec.scaledObject.name", "%q is not a valid object name (lowercase letters, digits, '-' and '.')", so.Name)
	}
	if so.ScalerAddress == "" {
		v.add("spec.scaledObject.scalerAddress", "is required: the Kedastral scaler's host:port, e.g. kedastral-scaler.kedastral.svc:50051")
	} else if host, port, err := net.SplitHostPort(so.ScalerAddress); err != nil || host == "" || port == "" {
		v.add("spec.scaledObject.scalerAddress", "%q is not host:port", so.ScalerAddress)
	}
	if p := so.PollingInterval; p != nil && *p < 1 {
		v.add("spec.scaledObject.pollingInterval", "must be at least 1 (seconds), got %d", *p)
	}
	for _, k := range scaledObjectOwnedKeys {
		if _, ok := so.TriggerMetadata[k]; ok {
			v.add("spec.scaledObject.triggerMetadata."+k, "is set by the forecaster (%s)", strings.Join(scaledObjectOwnedKeys, ", "))
		}
	}
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

func (c *Capacity) validate(v *fieldErrs) {
	if !finite(c.TargetPerPod) || c.TargetPerPod <= 0 {
		v.add("spec.capacity.targetPerPod", "must be a positive number, got %v", c.TargetPerPod)
	}
	if c.Headroom == 0 {
		c.Headroom = DefaultHeadroom
	}
	if !finite(c.Headroom) || c.Headroom <= 0 || c.Headroom > 100 {
		v.add("spec.capacity.headroom", "must be in (0, 100], got %v", c.Headroom)
	}
	minOK, maxOK := c.Min >= 0, c.Max >= 1 && c.Max <= MaxReplicas
	if !minOK {
		v.add("spec.capacity.min", "must not be negative, got %d", c.Min)
	}
	if !maxOK {
		v.add("spec.capacity.max", "must be in [1, %d], got %d", MaxReplicas, c.Max)
	}
	if minOK && maxOK && c.Min > c.Max {
		v.add("spec.capacity.min", "min (%d) is greater than max (%d)", c.Min, c.Max)
	}
	if c.Tolerance == nil {
		c.Tolerance = new(DefaultTolerance)
	}
	if t := *c.Tolerance; !finite(t) || t < 0 || t >= 1 {
		v.add("spec.capacity.tolerance", "must be in [0, 1), got %v", t)
	}
	if c.HPAScaleDownStabilization == nil {
		c.HPAScaleDownStabilization = new(DefaultHPAScaleDownStabilization)
	}
	if w := time.Duration(*c.HPAScaleDownStabilization); w < 0 || w > time.Hour {
		v.add("spec.capacity.hpaScaleDownStabilization", "must be in [0s, 1h] (the HPA's limit of 3600 seconds), got %s", *c.HPAScaleDownStabilization)
	}
	if c.ClearTolerance == nil {
		c.ClearTolerance = new(true)
	}
	if c.NeverBelowReactive == nil {
		c.NeverBelowReactive = new(true)
	}
	if b := c.Behavior; b != nil {
		b.ScaleUp.validate(v, "spec.capacity.behavior.scaleUp")
		b.ScaleDown.validate(v, "spec.capacity.behavior.scaleDown")
	}
}

func (r *ScalingRules) validate(v *fieldErrs, field string) {
	if r == nil {
		return
	}
	if w := r.StabilizationWindowSeconds; w != nil && (*w < 0 || *w > 3600) {
		v.add(field+".stabilizationWindowSeconds", "must be in [0, 3600], got %d", *w)
	}
	if sp := r.SelectPolicy; sp != nil && *sp != SelectMax && *sp != SelectMin && *sp != SelectDisabled {
		v.add(field+".selectPolicy", "must be Max, Min or Disabled, got %q", *sp)
	}
	for i, p := range r.Policies {
		f := fmt.Sprintf("%s.policies[%d]", field, i)
		if p.Type != PodsScalingPolicy && p.Type != PercentScalingPolicy {
			v.add(f+".type", "must be Pods or Percent, got %q", p.Type)
		}
		if p.Value <= 0 {
			v.add(f+".value", "must be positive, got %d", p.Value)
		}
		if p.PeriodSeconds <= 0 || p.PeriodSeconds > 1800 {
			v.add(f+".periodSeconds", "must be in (0, 1800], got %d", p.PeriodSeconds)
		}
	}
}

// Validate checks a DataSource. The error is FieldErrors, one *FieldError
// for every bad field.
func (d *DataSource) Validate() error {
	var v fieldErrs
	v.addErr("metadata.name", validateMeta(d.Metadata))
	s := &d.Spec
	if s.Type == "" {
		s.Type = SourceTypePrometheus
	}
	if s.Type != SourceTypePrometheus {
		v.add("spec.type", "must be %q, got %q", SourceTypePrometheus, s.Type)
	}
	v.addErr("spec.url", ValidateURL(s.URL))
	v.addErr("spec", s.HTTPClientConfig.Validate())
	return v.err()
}

// ValidateURL checks that u is an absolute http(s) URL.
func ValidateURL(u string) error {
	if u == "" {
		return errors.New("is required")
	}
	pu, err := url.Parse(u)
	if err != nil {
		// *url.Error quotes the whole URL, password included.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("invalid URL: %w", err)
	}
	if (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
		return fmt.Errorf("%q must be an absolute http or https URL", RedactURL(u))
	}
	return nil
}

// RedactURL hides a password in a URL so it can be shown or logged.
func RedactURL(u string) string {
	pu, err := url.Parse(u)
	if err != nil {
		return "<unparsable URL>"
	}
	return pu.Redacted()
}

// HorizonSteps is the number of forecast steps a cycle needs.
func (s *ForecastPolicySpec) HorizonSteps() int {
	return int(math.Ceil(float64(s.Horizon) / float64(s.Step)))
}

// LeadSteps is the number of forecast steps the lead time covers (at least one).
func (s *ForecastPolicySpec) LeadSteps() int {
	return max(1, int(math.Ceil(float64(s.LeadTime)/float64(s.Step))))
}

// Duration formats d the way Prometheus does (5m, 1h30m), for labels.
func Duration(d model.Duration) string { return d.String() }

// CoverSteps is the number of forecast steps that desired replicas cover:
// the lead time plus one step. A pod requested now is ready at
// now+leadTime and must carry the load until the pods of the next answer are
// ready, one evaluation later; with the evaluation interval at most one step
// (the default 30s at step 1m), that is until now+leadTime+step.
func (s *ForecastPolicySpec) CoverSteps() int {
	return max(1, int(math.Ceil(float64(s.LeadTime+s.Step)/float64(s.Step)-1e-9)))
}

// ModelConfig is what the policy's model is built with for one series.
func (s *ForecastPolicySpec) ModelConfig() kmodel.Config {
	c := kmodel.Config{Step: time.Duration(s.Step), Quantile: s.Model.Quantile}
	if b := s.Model.BYOM; b != nil {
		c.BYOM = kmodel.BYOMConfig{URL: b.URL, Timeout: time.Duration(b.Timeout), MaxResponseBytes: b.MaxResponseBytes}
	}
	return c
}

// SourceCapacity is the capacity settings for one source: the policy's, with
// the source's targetPerPod when it sets one.
func (s *ForecastPolicySpec) SourceCapacity(i int) Capacity {
	c := s.Capacity
	if t := s.Sources[i].TargetPerPod; t > 0 {
		c.TargetPerPod = t
	}
	return c
}

// SourceQuantile is the quantile a source is forecast at: its own, or the model's.
func (s *ForecastPolicySpec) SourceQuantile(i int) float64 {
	if q := s.Sources[i].Quantile; q > 0 {
		return q
	}
	return s.Model.Quantile
}

// SourceModelConfig is ModelConfig with the source's quantile.
func (s *ForecastPolicySpec) SourceModelConfig(i int) kmodel.Config {
	c := s.ModelConfig()
	c.Quantile = s.SourceQuantile(i)
	return c
}

// DefaultReadyReplicasQuery is kube-state-metrics' available replicas of the
// target (a Deployment when the kind is empty), in namespace when it is set;
// empty for kinds kube-state-metrics has no such series for.
func DefaultReadyReplicasQuery(namespace string, t TargetRef) string {
	var metric, label string
	switch t.Kind {
	case "", "Deployment":
		metric, label = "kube_deployment_status_replicas_available", "deployment"
	case "StatefulSet":
		metric, label = "kube_statefulset_status_replicas_available", "statefulset"
	default:
		return ""
	}
	var ms []string
	if namespace != "" {
		ms = append(ms, "namespace="+strconv.Quote(namespace))
	}
	ms = append(ms, label+"="+strconv.Quote(t.Name))
	return metric + "{" + strings.Join(ms, ", ") + "}"
}

// OutputLabelNames returns the label names of the series a query returns,
// sorted, when the query says so: an aggregation with by (...) (or without
// grouping, no labels), possibly in parentheses or combined with a scalar.
// ok is false when the names are only known at run time.
func OutputLabelNames(expr parser.Expr) (names []string, ok bool) {
	switch e := expr.(type) {
	case *parser.ParenExpr:
		return OutputLabelNames(e.Expr)
	case *parser.StepInvariantExpr:
		return OutputLabelNames(e.Expr)
	case *parser.BinaryExpr:
		switch {
		case e.LHS.Type() == parser.ValueTypeScalar && e.RHS.Type() == parser.ValueTypeVector:
			return OutputLabelNames(e.RHS)
		case e.RHS.Type() == parser.ValueTypeScalar && e.LHS.Type() == parser.ValueTypeVector:
			return OutputLabelNames(e.LHS)
		}
	case *parser.AggregateExpr:
		switch e.Op {
		case parser.TOPK, parser.BOTTOMK, parser.LIMITK, parser.LIMIT_RATIO, parser.COUNT_VALUES:
			return nil, false
		}
		if e.Without {
			return nil, false
		}
		names = slices.Clone(e.Grouping)
		sort.Strings(names)
		return slices.Compact(names), true
	}
	return nil, false
}

// LabelDiff says how two sorted sets of label names differ, "" when they do not.
func LabelDiff(a, b []string) string {
	var onlyA, onlyB []string
	for _, n := range a {
		if !slices.Contains(b, n) {
			onlyA = append(onlyA, n)
		}
	}
	for _, n := range b {
		if !slices.Contains(a, n) {
			onlyB = append(onlyB, n)
		}
	}
	var parts []string
	if len(onlyB) > 0 {
		parts = append(parts, "only this one has "+strings.Join(onlyB, ", "))
	}
	if len(onlyA) > 0 {
		parts = append(parts, "only the other has "+strings.Join(onlyA, ", "))
	}
	return strings.Join(parts, "; ")
}
