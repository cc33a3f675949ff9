// Package policy holds Kedastral's configuration objects, ForecastPolicy and
// DataSource, in the Kubernetes shape shared by policy files, ConfigMaps and
// the custom resources in deploy/crds, and decodes and validates them.
package policy

import (
	"time"

	"github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
)

// APIVersion is the only apiVersion this version of Kedastral reads.
const APIVersion = "kedastral.io/v1alpha1"

// Kinds of objects in a policy file.
const (
	KindForecastPolicy = "ForecastPolicy"
	KindDataSource     = "DataSource"
)

// Defaults filled in by Validate for fields left empty.
const (
	DefaultInterval = model.Duration(30 * time.Second)
	DefaultLookback = model.Duration(7 * 24 * time.Hour)
	DefaultStep     = model.Duration(time.Minute)
	DefaultModel    = "auto"
	DefaultQuantile = 0.5
	DefaultHeadroom = 1.0
	// DefaultTolerance is the HorizontalPodAutoscaler's default tolerance
	// (the controller's --horizontal-pod-autoscaler-tolerance).
	DefaultTolerance = 0.1
	// DefaultHPAScaleDownStabilization is the HorizontalPodAutoscaler's
	// default scale-down stabilization window.
	DefaultHPAScaleDownStabilization = model.Duration(5 * time.Minute)
)

// ObjectMeta is the part of Kubernetes' metadata that Kedastral uses.
type ObjectMeta struct {
	Name        string            `yaml:"name" json:"name"`
	Namespace   string            `yaml:"namespace,omitempty" json:"namespace,omitempty"`
	Labels      map[string]string `yaml:"labels,omitempty" json:"labels,omitempty"`
	Annotations map[string]string `yaml:"annotations,omitempty" json:"annotations,omitempty"`
}

// TypeMeta is the apiVersion and kind of an object.
type TypeMeta struct {
	APIVersion string `yaml:"apiVersion" json:"apiVersion"`
	Kind       string `yaml:"kind" json:"kind"`
}

// ForecastPolicy says what to forecast, from which query, with which model,
// and how a forecast becomes a replica count.
type ForecastPolicy struct {
	TypeMeta `yaml:",inline" json:",inline"`
	Metadata ObjectMeta         `yaml:"metadata" json:"metadata"`
	Spec     ForecastPolicySpec `yaml:"spec" json:"spec"`
}

// ForecastPolicySpec is the desired behaviour of a ForecastPolicy.
type ForecastPolicySpec struct {
	// TargetRef names the workload the policy scales: the scaleTargetRef of
	// the ScaledObject generated for spec.scaledObject; otherwise
	// informational (the ScaledObject that uses the policy is what KEDA
	// scales).
	TargetRef TargetRef `yaml:"targetRef" json:"targetRef"`
	// Metric is a short name for the forecast signal, e.g. http_rps.
	Metric string `yaml:"metric,omitempty" json:"metric,omitempty"`
	// Horizon is how far ahead the model forecasts.
	Horizon model.Duration `yaml:"horizon" json:"horizon"`
	// LeadTime is how long a new pod takes to be ready: desired replicas
	// cover the forecast from now to now+LeadTime.
	LeadTime model.Duration `yaml:"leadTime" json:"leadTime"`
	// Interval is how often the policy is evaluated.
	Interval model.Duration `yaml:"interval,omitempty" json:"interval,omitempty"`
	// Lookback is how much history the model sees (the forecaster reads one
	// hour more, so that a lag of exactly the lookback, e.g. the same time last
	// week with 7d, still has the recent window models compare levels over).
	Lookback model.Duration `yaml:"lookback,omitempty" json:"lookback,omitempty"`
	// Step is the resolution of the history and of the forecast.
	Step model.Duration `yaml:"step,omitempty" json:"step,omitempty"`
	// Ahead lists the offsets published as kedastral_predicted_value{ahead};
	// by default LeadTime and Horizon.
	Ahead []model.Duration `yaml:"ahead,omitempty" json:"ahead,omitempty"`
	// Capacity turns a forecast into replicas.
	Capacity Capacity `yaml:"capacity" json:"capacity"`
	// Model selects and configures the forecasting model.
	Model ModelSpec `yaml:"model,omitempty" json:"model,omitempty"`
	// Objective states the share of time the workload may run short of
	// ready pods; the forecaster then calibrates the forecast quantile
	// online, per series and source, to hold it. Exclusive with
	// model.quantile and the sources' quantile.
	Objective *Objective `yaml:"objective,omitempty" json:"objective,omitempty"`
	// Sources are the signals to forecast. With several, each is forecast on
	// its own and desired replicas are the maximum of what each needs, as the
	// HPA does with several metrics.
	Sources []Source `yaml:"sources" json:"sources"`
	// Events are known peaks: time windows with a replica floor or a
	// multiplier on the forecast, applied from LeadTime before they open.
	Events []Event `yaml:"events,omitempty" json:"events,omitempty"`
	// ReadyReplicasQuery returns the workload's ready replicas, for
	// kedastral_underprovision_seconds_total. By default kube-state-metrics'
	// available replicas of TargetRef (a Deployment or StatefulSet); empty
	// for other kinds, which disables the account.
	ReadyReplicasQuery string `yaml:"readyReplicasQuery,omitempty" json:"readyReplicasQuery,omitempty"`
	// DataSourceRef names the DataSource the queries run against; by default
	// the forecaster's --prometheus.url.
	DataSourceRef *LocalObjectReference `yaml:"dataSourceRef,omitempty" json:"dataSourceRef,omitempty"`
	// ScaledObject asks the forecaster, in Kubernetes mode, to create and
	// keep the KEDA ScaledObject that scales TargetRef with this policy
	// (owned by the policy; triggers added to it by hand are kept). Policy
	// files outside Kubernetes mode ignore it.
	ScaledObject *ScaledObjectSpec `yaml:"scaledObject,omitempty" json:"scaledObject,omitempty"`
}

// ScaledObjectSpec is the KEDA ScaledObject the forecaster keeps for a
// policy: scaleTargetRef from targetRef, min and max replicas from
// capacity, the HPA's scale-down window from
// capacity.hpaScaleDownStabilization, and an external trigger named
// "kedastral" that asks the scaler for this policy.
type ScaledObjectSpec struct {
	// Name of the ScaledObject, in the policy's namespace; by default the
	// policy's name.
	Name string `yaml:"name,omitempty" json:"name,omitempty"`
	// ScalerAddress is the Kedastral scaler's gRPC address (host:port),
	// e.g. kedastral-scaler.kedastral.svc:50051.
	ScalerAddress string `yaml:"scalerAddress" json:"scalerAddress"`
	// PollingInterval is KEDA's polling interval in seconds (KEDA's
	// default, 30, when unset).
	PollingInterval *int32 `yaml:"pollingInterval,omitempty" json:"pollingInterval,omitempty"`
	// TriggerMetadata is added to the trigger's metadata: the scaler's keys
	// such as matchLabels, maxForecastAge or reactiveQuery. scalerAddress,
	// policy and policyNamespace are set by the forecaster.
	TriggerMetadata map[string]string `yaml:"triggerMetadata,omitempty" json:"triggerMetadata,omitempty"`
}

// TargetRef identifies the scaled workload.
type TargetRef struct {
	APIVersion string `yaml:"apiVersion,omitempty" json:"apiVersion,omitempty"`
	Kind       string `yaml:"kind,omitempty" json:"kind,omitempty"`
	Name       string `yaml:"name" json:"name"`
}

// LocalObjectReference names another object in the same namespace.
type LocalObjectReference struct {
	Name string `yaml:"name" json:"name"`
}

// Capacity is the capacity model: how much load one pod serves, the safety
// margin, the replica bounds and how fast replicas may change.
type Capacity struct {
	// TargetPerPod is the load one pod should carry, in the signal's unit.
	TargetPerPod float64 `yaml:"targetPerPod" json:"targetPerPod"`
	// Headroom multiplies the forecast before dividing by TargetPerPod (1.2 = 20% spare).
	Headroom float64 `yaml:"headroom,omitempty" json:"headroom,omitempty"`
	// Min and Max bound the desired replicas.
	Min int32 `yaml:"min,omitempty" json:"min,omitempty"`
	Max int32 `yaml:"max" json:"max"`
	// Behavior limits how fast desired replicas change, in the shape of the
	// HorizontalPodAutoscaler v2 behavior field.
	Behavior *Behavior `yaml:"behavior,omitempty" json:"behavior,omitempty"`
	// Tolerance is the HPA's tolerance: it ignores a change of the replica
	// count within this fraction of the current count (0.1: 10 → 11 is
	// skipped). Set it to the cluster's value (the controller flag
	// --horizontal-pod-autoscaler-tolerance, or the ScaledObject's
	// behavior.scaleUp.tolerance where HPA configurable tolerance is
	// enabled). Default 0.1.
	Tolerance *float64 `yaml:"tolerance,omitempty" json:"tolerance,omitempty"`
	// HPAScaleDownStabilization is the HPA's scale-down stabilization
	// window: it scales down no lower than the highest count it recommended
	// within it. Set it to the ScaledObject's
	// advanced.horizontalPodAutoscalerConfig.behavior.scaleDown.stabilizationWindowSeconds
	// when that is set. The planner uses it to know the count the HPA
	// holds, which ClearTolerance lifts from. Default 5m, the HPA's default.
	HPAScaleDownStabilization *model.Duration `yaml:"hpaScaleDownStabilization,omitempty" json:"hpaScaleDownStabilization,omitempty"`
	// ClearTolerance lifts an upward change that the HPA would ignore just
	// enough to clear Tolerance. Default true.
	ClearTolerance *bool `yaml:"clearTolerance,omitempty" json:"clearTolerance,omitempty"`
	// NeverBelowReactive keeps desired replicas at least at what reactive
	// scaling asks for the current observed value,
	// ceil(observed / targetPerPod), so that a bad forecast cannot scale
	// below reactive scaling. Default true.
	NeverBelowReactive *bool `yaml:"neverBelowReactive,omitempty" json:"neverBelowReactive,omitempty"`
}

// ToleranceValue is Tolerance, or its default when unset.
func (c Capacity) ToleranceValue() float64 {
	if c.Tolerance == nil {
		return DefaultTolerance
	}
	return *c.Tolerance
}

// HPAScaleDownWindow is HPAScaleDownStabilization, or its default when
// unset.
func (c Capacity) HPAScaleDownWindow() time.Duration {
	if c.HPAScaleDownStabilization == nil {
		return time.Duration(DefaultHPAScaleDownStabilization)
	}
	return time.Duration(*c.HPAScaleDownStabilization)
}

// ClearsTolerance is ClearTolerance, true when unset.
func (c Capacity) ClearsTolerance() bool { return c.ClearTolerance == nil || *c.ClearTolerance }

// FloorsAtReactive is NeverBelowReactive, true when unset.
func (c Capacity) FloorsAtReactive() bool {
	return c.NeverBelowReactive == nil || *c.NeverBelowReactive
}

// Behavior configures scale-up and scale-down limits separately, like
// autoscaling/v2 HorizontalPodAutoscalerBehavior.
type Behavior struct {
	ScaleUp   *ScalingRules `yaml:"scaleUp,omitempty" json:"scaleUp,omitempty"`
	ScaleDown *ScalingRules `yaml:"scaleDown,omitempty" json:"scaleDown,omitempty"`
}

// SelectPolicy says which of several scaling policies applies.
type SelectPolicy string

// Values of SelectPolicy, as in autoscaling/v2.
const (
	SelectMax      SelectPolicy = "Max"
	SelectMin      SelectPolicy = "Min"
	SelectDisabled SelectPolicy = "Disabled"
)

// ScalingRules is autoscaling/v2 HPAScalingRules.
type ScalingRules struct {
	// StabilizationWindowSeconds: while scaling down, the highest
	// recommendation of this window is used; while scaling up, the lowest.
	StabilizationWindowSeconds *int32          `yaml:"stabilizationWindowSeconds,omitempty" json:"stabilizationWindowSeconds,omitempty"`
	SelectPolicy               *SelectPolicy   `yaml:"selectPolicy,omitempty" json:"selectPolicy,omitempty"`
	Policies                   []ScalingPolicy `yaml:"policies,omitempty" json:"policies,omitempty"`
}

// ScalingPolicyType is Pods or Percent.
type ScalingPolicyType string

// Values of ScalingPolicyType, as in autoscaling/v2.
const (
	PodsScalingPolicy    ScalingPolicyType = "Pods"
	PercentScalingPolicy ScalingPolicyType = "Percent"
)

// ScalingPolicy allows a change of Value pods (or percent) per PeriodSeconds.
type ScalingPolicy struct {
	Type          ScalingPolicyType `yaml:"type" json:"type"`
	Value         int32             `yaml:"value" json:"value"`
	PeriodSeconds int32             `yaml:"periodSeconds" json:"periodSeconds"`
}

// ModelSpec selects the forecasting model.
type ModelSpec struct {
	// Type is a registered model name (see engine/model).
	Type string `yaml:"type,omitempty" json:"type,omitempty"`
	// Quantile of the forecast distribution that capacity plans for, in (0,1).
	Quantile float64 `yaml:"quantile,omitempty" json:"quantile,omitempty"`
	// BYOM configures the byom model (bring your own model over HTTP);
	// required with type byom, not allowed with the others.
	BYOM *BYOMSpec `yaml:"byom,omitempty" json:"byom,omitempty"`
}

// BYOMSpec says where the byom model POSTs the history (see docs/backtest.md
// for the request and response).
type BYOMSpec struct {
	// URL receives the POST, http or https.
	URL string `yaml:"url" json:"url"`
	// Timeout of one request; default 5s.
	Timeout model.Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	// MaxResponseBytes bounds the response body; default 4 MiB.
	MaxResponseBytes int64 `yaml:"maxResponseBytes,omitempty" json:"maxResponseBytes,omitempty"`
}

// SourceTypePrometheus is the only source type so far.
const SourceTypePrometheus = "prometheus"

// Source is one signal to forecast.
type Source struct {
	Name string `yaml:"name" json:"name"`
	Type string `yaml:"type,omitempty" json:"type,omitempty"`
	// Query is a PromQL expression returning an instant vector; each series it
	// returns is forecast on its own.
	Query string `yaml:"query" json:"query"`
	// TargetPerPod is the load one pod carries in this source's unit; by
	// default spec.capacity.targetPerPod.
	TargetPerPod float64 `yaml:"targetPerPod,omitempty" json:"targetPerPod,omitempty"`
	// Quantile is the forecast quantile planned for; by default
	// spec.model.quantile.
	Quantile float64 `yaml:"quantile,omitempty" json:"quantile,omitempty"`
}

// Event is a known peak: a window, absolute (Start and End) or recurring
// (Schedule, Duration, TimeZone), with either a replica floor (MinReplicas)
// or a multiplier on the forecast (Scale).
type Event struct {
	Name string `yaml:"name" json:"name"`
	// Start and End are RFC 3339 times; the window is [Start, End).
	Start string `yaml:"start,omitempty" json:"start,omitempty"`
	End   string `yaml:"end,omitempty" json:"end,omitempty"`
	// Schedule is a 5-field cron expression (minute hour day-of-month month
	// day-of-week, as KEDA's cron scaler reads it) at which a window of
	// Duration opens, in TimeZone (an IANA name, default UTC).
	Schedule string         `yaml:"schedule,omitempty" json:"schedule,omitempty"`
	Duration model.Duration `yaml:"duration,omitempty" json:"duration,omitempty"`
	TimeZone string         `yaml:"timeZone,omitempty" json:"timeZone,omitempty"`
	// MinReplicas raises the forecast over the window to the load this many
	// replicas carry, so desired replicas are at least MinReplicas.
	MinReplicas *int32 `yaml:"minReplicas,omitempty" json:"minReplicas,omitempty"`
	// Scale multiplies the forecast over the window.
	Scale *float64 `yaml:"scale,omitempty" json:"scale,omitempty"`
}

// DataSource says where a Prometheus-compatible API is and how to reach it.
type DataSource struct {
	TypeMeta `yaml:",inline" json:",inline"`
	Metadata ObjectMeta     `yaml:"metadata" json:"metadata"`
	Spec     DataSourceSpec `yaml:"spec" json:"spec"`
}

// DataSourceSpec is a Prometheus URL and its HTTP client settings, in the same
// shape as a Prometheus remote_write entry so users can paste theirs.
type DataSourceSpec struct {
	Type string `yaml:"type,omitempty" json:"type,omitempty"`
	// URL is the base URL of the Prometheus HTTP API, e.g. http://prometheus:9090.
	URL string `yaml:"url" json:"url"`
	// HTTPClientConfig holds basic_auth, authorization, oauth2,
	// tls_config, proxy_url, http_headers, ... as Prometheus reads them.
	HTTPClientConfig config.HTTPClientConfig `yaml:",inline" json:",inline"`
}

// UnmarshalYAML starts from Prometheus' default HTTP client settings, as a
// Prometheus configuration file does.
func (s *DataSourceSpec) UnmarshalYAML(unmarshal func(any) error) error {
	*s = DataSourceSpec{HTTPClientConfig: config.DefaultHTTPClientConfig}
	type plain DataSourceSpec
	return unmarshal((*plain)(s))
}

// ForecastPolicyStatus is what the forecaster reports of a ForecastPolicy it
// reads from the Kubernetes API (--policies.source=kubernetes), in the
// object's status subresource. Policy files have no status.
type ForecastPolicyStatus struct {
	// ObservedGeneration is the metadata.generation this status describes.
	ObservedGeneration int64 `yaml:"observedGeneration,omitempty" json:"observedGeneration,omitempty"`
	// Conditions are Ready (the policy is valid and its last cycle wrote its
	// forecasts) and Degraded (it runs but its last cycle failed, e.g. a
	// PromQL error or an unreachable data source); the reason names the
	// problem.
	Conditions []Condition `yaml:"conditions,omitempty" json:"conditions,omitempty"`
	// SeriesCount is the number of series the last cycle forecast.
	SeriesCount int32 `yaml:"seriesCount,omitempty" json:"seriesCount,omitempty"`
	// LastEvaluationTime is the time stamp of the last cycle, RFC 3339.
	LastEvaluationTime string `yaml:"lastEvaluationTime,omitempty" json:"lastEvaluationTime,omitempty"`
	// DesiredReplicas is the desired replica count of the last successful
	// cycle, or its range "min-max" over the series of a fan-out.
	DesiredReplicas string `yaml:"desiredReplicas,omitempty" json:"desiredReplicas,omitempty"`
	// DesiredReplicasMin and DesiredReplicasMax are that range as numbers.
	DesiredReplicasMin *int32 `yaml:"desiredReplicasMin,omitempty" json:"desiredReplicasMin,omitempty"`
	DesiredReplicasMax *int32 `yaml:"desiredReplicasMax,omitempty" json:"desiredReplicasMax,omitempty"`
	// Model is the model in use: the one answering for every series, or
	// "name: count" per model when they differ (auto picks per series).
	Model string `yaml:"model,omitempty" json:"model,omitempty"`
	// ScaledObject names the KEDA ScaledObject kept for spec.scaledObject;
	// ScaledObjectError says why it could not be created or updated.
	ScaledObject      string `yaml:"scaledObject,omitempty" json:"scaledObject,omitempty"`
	ScaledObjectError string `yaml:"scaledObjectError,omitempty" json:"scaledObjectError,omitempty"`
}

// Condition is a metav1.Condition: one aspect of an object's state.
type Condition struct {
	// Type is Ready or Degraded.
	Type string `yaml:"type" json:"type"`
	// Status is True, False or Unknown.
	Status string `yaml:"status" json:"status"`
	// ObservedGeneration is the metadata.generation the condition was set for.
	ObservedGeneration int64 `yaml:"observedGeneration,omitempty" json:"observedGeneration,omitempty"`
	// LastTransitionTime is when Status last changed, RFC 3339.
	LastTransitionTime string `yaml:"lastTransitionTime" json:"lastTransitionTime"`
	// Reason is a CamelCase word for the cause, e.g. InvalidField, QueryFailed.
	Reason string `yaml:"reason" json:"reason"`
	// Message says what is wrong in words, naming the field or the query.
	Message string `yaml:"message" json:"message"`
}

// DataSourceStatus is what the forecaster reports of a DataSource it reads
// from the Kubernetes API.
type DataSourceStatus struct {
	// ObservedGeneration is the metadata.generation this status describes.
	ObservedGeneration int64 `yaml:"observedGeneration,omitempty" json:"observedGeneration,omitempty"`
	// Conditions holds Ready: whether the DataSource is valid.
	Conditions []Condition `yaml:"conditions,omitempty" json:"conditions,omitempty"`
}
