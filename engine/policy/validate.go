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

// Validate checks a policy and fills in defaults. The error is a *FieldError
// naming the first bad field.
func (p *ForecastPolicy) Validate() error {
	if err := validateMeta(p.Metadata); err != nil {
		return err
	}
	s := &p.Spec
	if s.TargetRef.Name == "" {
		return fieldErr("spec.targetRef.name", "is required")
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
		return fieldErr("spec.interval", "must be at least %s, got %s", MinInterval, s.Interval)
	}
	step := time.Duration(s.Step)
	if step < MinStep {
		return fieldErr("spec.step", "must be at least %s, got %s", MinStep, s.Step)
	}
	if time.Duration(s.Lookback) < step {
		return fieldErr("spec.lookback", "must be at least one step (%s), got %s", s.Step, s.Lookback)
	}
	if n := time.Duration(s.Lookback) / step; n > MaxHistorySteps {
		return fieldErr("spec.lookback", "%s at step %s is %d points, more than the limit of %d", s.Lookback, s.Step, n, MaxHistorySteps)
	}
	if s.Horizon <= 0 {
		return fieldErr("spec.horizon", "must be positive, got %s", s.Horizon)
	}
	if n := time.Duration(s.Horizon) / step; n > MaxHorizonSteps {
		return fieldErr("spec.horizon", "%s at step %s is %d points, more than the limit of %d", s.Horizon, s.Step, n, MaxHorizonSteps)
	}
	if s.LeadTime < 0 {
		return fieldErr("spec.leadTime", "must not be negative, got %s", s.LeadTime)
	}
	if s.LeadTime > s.Horizon {
		return fieldErr("spec.leadTime", "%s is beyond the horizon %s: the forecast must cover the lead time", s.LeadTime, s.Horizon)
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
		return fieldErr("spec.ahead", "at most %d offsets, got %d", MaxAhead, len(s.Ahead))
	}
	for i, a := range s.Ahead {
		f := fmt.Sprintf("spec.ahead[%d]", i)
		if a <= 0 || a > s.Horizon {
			return fieldErr(f, "must be in (0, horizon=%s], got %s", s.Horizon, a)
		}
		if time.Duration(a)%step != 0 {
			if defaultAhead {
				// The user wrote no ahead: name the field the offset came from.
				f = "spec.horizon"
				if a == s.LeadTime {
					f = "spec.leadTime"
				}
				return fieldErr(f, "%s is not a multiple of the step %s; set spec.ahead to publish other offsets", a, s.Step)
			}
			return fieldErr(f, "%s is not a multiple of the step %s", a, s.Step)
		}
		if slices.Contains(s.Ahead[:i], a) {
			return fieldErr(f, "duplicate offset %s", a)
		}
	}
	if err := s.Capacity.validate(); err != nil {
		return err
	}
	if s.Model.Type == "" {
		s.Model.Type = DefaultModel
	}
	if !slices.Contains(kmodel.Names(), s.Model.Type) {
		return fieldErr("spec.model.type", "unknown model %q (known: %v)", s.Model.Type, kmodel.Names())
	}
	if err := s.validateObjective(); err != nil {
		return err
	}
	if s.Model.Quantile == 0 {
		s.Model.Quantile = DefaultQuantile
	}
	if q := s.Model.Quantile; !(q > 0 && q < 1) {
		return fieldErr("spec.model.quantile", "must be in (0, 1), got %v", q)
	}
	switch b := s.Model.BYOM; {
	case s.Model.Type == kmodel.BYOM && b == nil:
		return fieldErr("spec.model.byom", "is required with type %s", kmodel.BYOM)
	case s.Model.Type != kmodel.BYOM && b != nil:
		return fieldErr("spec.model.byom", "is only allowed with type %s, got type %s", kmodel.BYOM, s.Model.Type)
	case b != nil:
		if err := ValidateURL(b.URL); err != nil {
			return &FieldError{Field: "spec.model.byom.url", Err: err}
		}
		if b.Timeout < 0 {
			return fieldErr("spec.model.byom.timeout", "must not be negative, got %s", b.Timeout)
		}
		if b.MaxResponseBytes < 0 {
			return fieldErr("spec.model.byom.maxResponseBytes", "must not be negative, got %d", b.MaxResponseBytes)
		}
	}
	if len(s.Sources) == 0 {
		return fieldErr("spec.sources", "at least one source is required")
	}
	if len(s.Sources) > MaxSources {
		return fieldErr("spec.sources", "at most %d sources, got %d", MaxSources, len(s.Sources))
	}
	grouped := -1 // the first source whose output labels are known
	var groupedBy []string
	for i := range s.Sources {
		src := &s.Sources[i]
		f := fmt.Sprintf("spec.sources[%d]", i)
		if src.Name == "" {
			return fieldErr(f+".name", "is required")
		}
		for j := range i {
			if s.Sources[j].Name == src.Name {
				return fieldErr(f+".name", "duplicate source name %q (also spec.sources[%d])", src.Name, j)
			}
		}
		if src.Type == "" {
			src.Type = SourceTypePrometheus
		}
		if src.Type != SourceTypePrometheus {
			return fieldErr(f+".type", "must be %q, got %q", SourceTypePrometheus, src.Type)
		}
		expr, err := ParseQuery(src.Query)
		if err != nil {
			return &FieldError{Field: f + ".query", Err: err}
		}
		if t := src.TargetPerPod; t != 0 && (!finite(t) || t < 0) {
			return fieldErr(f+".targetPerPod", "must be a positive number, got %v", t)
		}
		if q := src.Quantile; q != 0 && !(q > 0 && q < 1) {
			return fieldErr(f+".quantile", "must be in (0, 1), got %v", q)
		}
		if by, ok := OutputLabelNames(expr); ok && len(s.Sources) > 1 {
			if grouped < 0 {
				grouped, groupedBy = i, by
			} else if diff := LabelDiff(groupedBy, by); diff != "" {
				return fieldErr(f+".query", "returns series labelled by (%s) but sources[%d] (%q) by (%s): sources are joined on the same labels; %s",
					strings.Join(by, ", "), grouped, s.Sources[grouped].Name, strings.Join(groupedBy, ", "), diff)
			}
		}
	}
	if s.ReadyReplicasQuery == "" {
		s.ReadyReplicasQuery = DefaultReadyReplicasQuery(p.Metadata.Namespace, s.TargetRef)
	}
	if s.ReadyReplicasQuery != "" {
		if _, err := ParseQuery(s.ReadyReplicasQuery); err != nil {
			return &FieldError{Field: "spec.readyReplicasQuery", Err: err}
		}
	}
	if err := validateEvents(s); err != nil {
		return err
	}
	if s.DataSourceRef != nil && s.DataSourceRef.Name == "" {
		return fieldErr("spec.dataSourceRef.name", "is required when dataSourceRef is set")
	}
	if so := s.ScaledObject; so != nil {
		if err := so.validate(); err != nil {
			return err
		}
	}
	return nil
}

// scaledObjectOwnedKeys are the trigger metadata keys the forecaster sets.
var scaledObjectOwnedKeys = []string{"scalerAddress", "policy", "policyNamespace"}

func (so *ScaledObjectSpec) validate() error {
	if so.Name != "" && (len(so.Name) > 253 || !nameRE.MatchString(so.Name)) {
		return fieldErr("spec.scaledObject.name", "%q is not a valid object name (lowercase letters, digits, '-' and '.')", so.Name)
	}
	if so.ScalerAddress == "" {
		return fieldErr("spec.scaledObject.scalerAddress", "is required: the Kedastral scaler's host:port, e.g. kedastral-scaler.kedastral.svc:50051")
	}
	if host, port, err := net.SplitHostPort(so.ScalerAddress); err != nil || host == "" || port == "" {
		return fieldErr("spec.scaledObject.scalerAddress", "%q is not host:port", so.ScalerAddress)
	}
	if p := so.PollingInterval; p != nil && *p < 1 {
		return fieldErr("spec.scaledObject.pollingInterval", "must be at least 1 (seconds), got %d", *p)
	}
	for _, k := range scaledObjectOwnedKeys {
		if _, ok := so.TriggerMetadata[k]; ok {
			return fieldErr("spec.scaledObject.triggerMetadata."+k, "is set by the forecaster (%s)", strings.Join(scaledObjectOwnedKeys, ", "))
		}
	}
	return nil
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

func (c *Capacity) validate() error {
	if !finite(c.TargetPerPod) || c.TargetPerPod <= 0 {
		return fieldErr("spec.capacity.targetPerPod", "must be a positive number, got %v", c.TargetPerPod)
	}
	if c.Headroom == 0 {
		c.Headroom = DefaultHeadroom
	}
	if !finite(c.Headroom) || c.Headroom <= 0 || c.Headroom > 100 {
		return fieldErr("spec.capacity.headroom", "must be in (0, 100], got %v", c.Headroom)
	}
	if c.Min < 0 {
		return fieldErr("spec.capacity.min", "must not be negative, got %d", c.Min)
	}
	if c.Max < 1 || c.Max > MaxReplicas {
		return fieldErr("spec.capacity.max", "must be in [1, %d], got %d", MaxReplicas, c.Max)
	}
	if c.Min > c.Max {
		return fieldErr("spec.capacity.min", "min (%d) is greater than max (%d)", c.Min, c.Max)
	}
	if c.Tolerance == nil {
		c.Tolerance = new(DefaultTolerance)
	}
	if t := *c.Tolerance; !finite(t) || t < 0 || t >= 1 {
		return fieldErr("spec.capacity.tolerance", "must be in [0, 1), got %v", t)
	}
	if c.HPAScaleDownStabilization == nil {
		c.HPAScaleDownStabilization = new(DefaultHPAScaleDownStabilization)
	}
	if w := time.Duration(*c.HPAScaleDownStabilization); w < 0 || w > time.Hour {
		return fieldErr("spec.capacity.hpaScaleDownStabilization", "must be in [0s, 1h] (the HPA's limit of 3600 seconds), got %s", *c.HPAScaleDownStabilization)
	}
	if c.ClearTolerance == nil {
		c.ClearTolerance = new(true)
	}
	if c.NeverBelowReactive == nil {
		c.NeverBelowReactive = new(true)
	}
	if b := c.Behavior; b != nil {
		if err := b.ScaleUp.validate("spec.capacity.behavior.scaleUp"); err != nil {
			return err
		}
		if err := b.ScaleDown.validate("spec.capacity.behavior.scaleDown"); err != nil {
			return err
		}
	}
	return nil
}

func (r *ScalingRules) validate(field string) error {
	if r == nil {
		return nil
	}
	if w := r.StabilizationWindowSeconds; w != nil && (*w < 0 || *w > 3600) {
		return fieldErr(field+".stabilizationWindowSeconds", "must be in [0, 3600], got %d", *w)
	}
	if sp := r.SelectPolicy; sp != nil && *sp != SelectMax && *sp != SelectMin && *sp != SelectDisabled {
		return fieldErr(field+".selectPolicy", "must be Max, Min or Disabled, got %q", *sp)
	}
	for i, p := range r.Policies {
		f := fmt.Sprintf("%s.policies[%d]", field, i)
		if p.Type != PodsScalingPolicy && p.Type != PercentScalingPolicy {
			return fieldErr(f+".type", "must be Pods or Percent, got %q", p.Type)
		}
		if p.Value <= 0 {
			return fieldErr(f+".value", "must be positive, got %d", p.Value)
		}
		if p.PeriodSeconds <= 0 || p.PeriodSeconds > 1800 {
			return fieldErr(f+".periodSeconds", "must be in (0, 1800], got %d", p.PeriodSeconds)
		}
	}
	return nil
}

// Validate checks a DataSource.
func (d *DataSource) Validate() error {
	if err := validateMeta(d.Metadata); err != nil {
		return err
	}
	s := &d.Spec
	if s.Type == "" {
		s.Type = SourceTypePrometheus
	}
	if s.Type != SourceTypePrometheus {
		return fieldErr("spec.type", "must be %q, got %q", SourceTypePrometheus, s.Type)
	}
	if err := ValidateURL(s.URL); err != nil {
		return &FieldError{Field: "spec.url", Err: err}
	}
	if err := s.HTTPClientConfig.Validate(); err != nil {
		return &FieldError{Field: "spec", Err: err}
	}
	return nil
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
