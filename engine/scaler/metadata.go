package scaler

import (
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/kedastral/kedastral/engine/policy"
)

// Metadata keys of a ScaledObject trigger that the scaler reads.
const (
	KeyPolicy               = "policy"
	KeyMatchLabels          = "matchLabels"
	KeyReactiveQuery        = "reactiveQuery"
	KeyReactiveTargetPerPod = "reactiveTargetPerPod"
	KeyMaxForecastAge       = "maxForecastAge"
	KeyActivationReplicas   = "activationReplicas"
	// KeyPolicyNamespace selects the namespace of a policy read from the
	// Kubernetes API (the policy_namespace label); by default the
	// ScaledObject's own namespace.
	KeyPolicyNamespace = "policyNamespace"
)

// PolicyNamespaceLabel is the label the forecaster adds to the series of
// policies it reads from the Kubernetes API (forecast.PolicyNamespaceLabel).
const PolicyNamespaceLabel = "policy_namespace"

// DefaultMaxForecastAge is the age beyond which a forecast is stale when the
// trigger does not set maxForecastAge.
const DefaultMaxForecastAge = 2 * time.Minute

// DesiredReplicasMetric is the series the forecaster writes and the scaler reads.
const DesiredReplicasMetric = "kedastral_desired_replicas"

// fromEnvSuffix marks a key whose value KEDA resolved from the workload's
// environment (e.g. policyFromEnv).
const fromEnvSuffix = "FromEnv"

var ownKeys = []string{KeyPolicy, KeyPolicyNamespace, KeyMatchLabels, KeyReactiveQuery, KeyReactiveTargetPerPod, KeyMaxForecastAge, KeyActivationReplicas}

// kedaKeys are keys KEDA itself reads from (or adds to) the trigger metadata;
// they are accepted and ignored.
var kedaKeys = []string{"scalerAddress", "enableTLS", "unsafeSsl", "caCert", "tlsClientCert", "tlsClientKey"}

// Metadata is a parsed and validated trigger: which series to read and how to
// answer.
type Metadata struct {
	// Policy is the ForecastPolicy name (the policy label).
	Policy string
	// PolicyNamespace is the ForecastPolicy's namespace when the forecaster
	// reads policies from the Kubernetes API (the policy_namespace label).
	// Set by the policyNamespace key, it must match; defaulted to the
	// ScaledObject's namespace (SetDefaultNamespace), it excludes series of
	// other namespaces but not series without the label (policy files).
	PolicyNamespace string
	// strictNamespace: PolicyNamespace came from the policyNamespace key.
	strictNamespace bool
	// MatchLabels select one series of the policy; sorted by name, never
	// containing policy or __name__. A label with an empty value matches
	// series without that label, as in PromQL.
	MatchLabels labels.Labels
	// ReactiveQuery, when not empty, is the reactive signal: a PromQL
	// expression returning one sample.
	ReactiveQuery string
	// ReactiveTargetPerPod divides the reactive signal into replicas.
	ReactiveTargetPerPod float64
	// MaxForecastAge is the age beyond which the forecast is stale. The
	// scaler reads the newest sample with an instant selector, so a sample
	// older than the Prometheus server's lookback delta (5m by default) is
	// not seen at all: it counts as missing, whatever MaxForecastAge says.
	MaxForecastAge time.Duration
	// ActivationReplicas: the trigger is active when the desired replicas
	// exceed it.
	ActivationReplicas float64
}

// MetadataError is a bad trigger metadata key. The gRPC service answers it
// with codes.InvalidArgument.
type MetadataError struct {
	Key string
	Msg string
}

func (e *MetadataError) Error() string {
	return fmt.Sprintf("scalerMetadata key %q: %s", e.Key, e.Msg)
}

func metaErr(key, format string, args ...any) *MetadataError {
	return &MetadataError{Key: key, Msg: fmt.Sprintf(format, args...)}
}

// ParseMetadata validates a trigger's scalerMetadata and fills in defaults.
// Every key may also be given as <key>FromEnv (KEDA resolves its value from
// the workload's environment), but not both. The error is a *MetadataError.
func ParseMetadata(meta map[string]string) (Metadata, error) {
	vals := map[string]string{}
	keys := make([]string, 0, len(meta))
	for k := range meta {
		keys = append(keys, k)
	}
	slices.Sort(keys) // deterministic errors
	for _, k := range keys {
		v := meta[k]
		name := k
		if base, ok := strings.CutSuffix(k, fromEnvSuffix); ok && slices.Contains(ownKeys, base) {
			if _, dup := meta[base]; dup {
				return Metadata{}, metaErr(k, "conflicts with %q; set only one", base)
			}
			name = base
		}
		switch {
		case slices.Contains(ownKeys, name):
			vals[name] = strings.TrimSpace(v)
		case slices.Contains(kedaKeys, name):
		default:
			return Metadata{}, metaErr(k, "unknown key; known keys are %s (and KEDA's %s)",
				strings.Join(ownKeys, ", "), strings.Join(kedaKeys, ", "))
		}
	}

	m := Metadata{
		Policy:         vals[KeyPolicy],
		ReactiveQuery:  vals[KeyReactiveQuery],
		MaxForecastAge: DefaultMaxForecastAge,
		MatchLabels:    labels.EmptyLabels(),
	}
	if m.Policy == "" {
		return Metadata{}, metaErr(KeyPolicy, "is required: the name of the ForecastPolicy")
	}
	if v, ok := vals[KeyPolicyNamespace]; ok {
		if v == "" || !validValue(v) {
			return Metadata{}, metaErr(KeyPolicyNamespace, "%q is not a namespace name", v)
		}
		m.PolicyNamespace, m.strictNamespace = v, true
	}
	if !validValue(m.Policy) {
		return Metadata{}, metaErr(KeyPolicy, "%q is not valid UTF-8", m.Policy)
	}
	if v, ok := vals[KeyMatchLabels]; ok {
		ls, err := parseMatchLabels(v)
		if err != nil {
			return Metadata{}, metaErr(KeyMatchLabels, "%s", err)
		}
		m.MatchLabels = ls
	}
	if m.ReactiveQuery != "" {
		if _, err := policy.ParseQuery(m.ReactiveQuery); err != nil {
			return Metadata{}, metaErr(KeyReactiveQuery, "%s", err)
		}
	} else if _, ok := vals[KeyReactiveQuery]; ok {
		return Metadata{}, metaErr(KeyReactiveQuery, "is empty")
	}
	if v, ok := vals[KeyReactiveTargetPerPod]; ok {
		if m.ReactiveQuery == "" {
			return Metadata{}, metaErr(KeyReactiveTargetPerPod, "is set without %s", KeyReactiveQuery)
		}
		f, err := parsePositive(v)
		if err != nil {
			return Metadata{}, metaErr(KeyReactiveTargetPerPod, "%s", err)
		}
		m.ReactiveTargetPerPod = f
	} else if m.ReactiveQuery != "" {
		return Metadata{}, metaErr(KeyReactiveTargetPerPod, "is required with %s: the reactive signal one replica handles", KeyReactiveQuery)
	}
	if v, ok := vals[KeyMaxForecastAge]; ok {
		d, err := parseDuration(v)
		if err != nil {
			return Metadata{}, metaErr(KeyMaxForecastAge, "%s", err)
		}
		m.MaxForecastAge = d
	}
	if v, ok := vals[KeyActivationReplicas]; ok {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
			return Metadata{}, metaErr(KeyActivationReplicas, "%q is not a number >= 0", v)
		}
		m.ActivationReplicas = f
	}
	return m, nil
}

// parseMatchLabels parses "name=value,name=value". Names are UTF-8, as in
// Prometheus 3 (my.label=x); names and values may be quoted with double
// quotes (Go syntax) to contain commas or '=' ("my,label"="a=b").
func parseMatchLabels(s string) (labels.Labels, error) {
	if s == "" {
		return labels.EmptyLabels(), fmt.Errorf("is empty; use name=value[,name=value...]")
	}
	b := labels.NewScratchBuilder(4)
	seen := map[string]bool{}
	for rest := s; ; {
		var name, after string
		if r := strings.TrimLeft(rest, " \t"); strings.HasPrefix(r, `"`) {
			q, err := strconv.QuotedPrefix(r)
			if err != nil {
				return labels.EmptyLabels(), fmt.Errorf("bad quoted label name in %q: %v", strings.TrimSpace(rest), err)
			}
			name, _ = strconv.Unquote(q)
			after = strings.TrimLeft(r[len(q):], " \t")
			if !strings.HasPrefix(after, "=") {
				return labels.EmptyLabels(), fmt.Errorf("%q: want name=value", strings.TrimSpace(rest))
			}
			after = after[1:]
		} else {
			var ok bool
			name, after, ok = strings.Cut(rest, "=")
			name = strings.TrimSpace(name)
			if !ok {
				return labels.EmptyLabels(), fmt.Errorf("%q: want name=value", strings.TrimSpace(rest))
			}
		}
		if !model.UTF8Validation.IsValidLabelName(name) || !validValue(name) || strings.HasPrefix(name, "__") {
			return labels.EmptyLabels(), fmt.Errorf("%q is not a valid label name", name)
		}
		if name == "policy" {
			return labels.EmptyLabels(), fmt.Errorf("label \"policy\" is set by the %s key", KeyPolicy)
		}
		if name == PolicyNamespaceLabel {
			return labels.EmptyLabels(), fmt.Errorf("label %q is set by the %s key", PolicyNamespaceLabel, KeyPolicyNamespace)
		}
		if seen[name] {
			return labels.EmptyLabels(), fmt.Errorf("label %q given twice", name)
		}
		seen[name] = true
		after = strings.TrimLeft(after, " \t")
		var value string
		if strings.HasPrefix(after, `"`) {
			q, err := strconv.QuotedPrefix(after)
			if err != nil {
				return labels.EmptyLabels(), fmt.Errorf("label %q: bad quoted value: %v", name, err)
			}
			value, _ = strconv.Unquote(q)
			after = strings.TrimLeft(after[len(q):], " \t")
			if after != "" && after[0] != ',' {
				return labels.EmptyLabels(), fmt.Errorf("label %q: unexpected %q after the quoted value", name, after)
			}
		} else {
			end := strings.IndexByte(after, ',')
			if end < 0 {
				end = len(after)
			}
			value = strings.TrimSpace(after[:end])
			after = after[end:]
		}
		if !validValue(value) {
			return labels.EmptyLabels(), fmt.Errorf("label %q: value %q is not valid UTF-8", name, value)
		}
		b.Add(name, value)
		if after == "" {
			break
		}
		rest = after[1:] // skip ','
		if strings.TrimSpace(rest) == "" {
			break // trailing comma
		}
	}
	b.Sort()
	return b.Labels(), nil
}

// validValue reports whether a label value can be selected in PromQL: valid
// UTF-8 without U+FFFD, which the PromQL lexer refuses in a string (and which
// an unquoted invalid byte turns into).
func validValue(v string) bool {
	return utf8.ValidString(v) && !strings.ContainsRune(v, utf8.RuneError)
}

func parsePositive(v string) (float64, error) {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f <= 0 {
		return 0, fmt.Errorf("%q is not a number > 0", v)
	}
	return f, nil
}

// parseDuration accepts Prometheus durations (90s, 2m, 1h30m) and Go ones (1.5m).
func parseDuration(v string) (time.Duration, error) {
	d, err := model.ParseDuration(v)
	if err == nil && d > 0 {
		return time.Duration(d), nil
	}
	gd, gerr := time.ParseDuration(v)
	if gerr == nil && gd > 0 {
		return gd, nil
	}
	return 0, fmt.Errorf("%q is not a positive duration such as 90s, 2m or 1h30m", v)
}

// SetDefaultNamespace sets PolicyNamespace to ns, the ScaledObject's
// namespace, unless the policyNamespace key set it.
func (m *Metadata) SetDefaultNamespace(ns string) {
	if !m.strictNamespace && validValue(ns) {
		m.PolicyNamespace = ns
	}
}

// MetricName is the metric name of the trigger's metric spec: derived from the
// policy and the match labels only, deterministic, lower case letters, digits
// and '-', at most 128 characters, and distinct for distinct selections (a
// hash of the exact selection is appended, so sanitizing never collides).
func (m Metadata) MetricName() string {
	var canon strings.Builder
	canon.WriteString(m.Policy)
	m.MatchLabels.Range(func(l labels.Label) {
		canon.WriteString("\x00")
		canon.WriteString(l.Name)
		canon.WriteString("\x00")
		canon.WriteString(l.Value)
	})
	h := fnv.New64a()
	h.Write([]byte(canon.String()))

	readable := m.Policy
	m.MatchLabels.Range(func(l labels.Label) { readable += "-" + l.Value })
	var b strings.Builder
	b.WriteString("kedastral-")
	dash := true
	for _, r := range strings.ToLower(readable) {
		if b.Len() >= 128-17 {
			break
		}
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			dash = false
		} else if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	if !dash {
		b.WriteByte('-')
	}
	fmt.Fprintf(&b, "%016x", h.Sum64())
	return b.String()
}

// Selector is the PromQL selector of the trigger's series, e.g.
// kedastral_desired_replicas{policy="api",deployment="api"}.
func (m Metadata) Selector() string {
	ms := []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "policy", m.Policy)}
	if m.strictNamespace {
		// A defaulted namespace also lets series without the label match,
		// which a selector cannot say; it is left out.
		ms = append(ms, labels.MustNewMatcher(labels.MatchEqual, PolicyNamespaceLabel, m.PolicyNamespace))
	}
	m.MatchLabels.Range(func(l labels.Label) {
		ms = append(ms, labels.MustNewMatcher(labels.MatchEqual, l.Name, l.Value))
	})
	parts := make([]string, len(ms))
	for i, mt := range ms {
		parts[i] = mt.String()
	}
	return DesiredReplicasMetric + "{" + strings.Join(parts, ", ") + "}"
}

// matches reports whether a series' labels satisfy the match labels (PromQL
// equality: an empty value matches an absent label).
func (m Metadata) matches(ls labels.Labels) bool {
	if m.PolicyNamespace != "" {
		v := ls.Get(PolicyNamespaceLabel)
		if v != m.PolicyNamespace && (m.strictNamespace || v != "") {
			return false
		}
	}
	ok := true
	m.MatchLabels.Range(func(l labels.Label) {
		if ls.Get(l.Name) != l.Value {
			ok = false
		}
	})
	return ok
}
