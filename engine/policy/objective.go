package policy

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Objective is what a user states instead of a forecast quantile: the share
// of time the workload may run short of ready pods. The forecaster then
// calibrates, per series and per source, the forecast level it plans for so
// that the share of time short converges to it (see engine/capacity's
// Calibrator).
type Objective struct {
	// UnderprovisionedTime is the share of time with fewer ready pods than
	// the demand needs, as a percentage, e.g. 2%; from 0.1% to 50%.
	UnderprovisionedTime Percent `yaml:"underprovisionedTime" json:"underprovisionedTime"`
}

// Limits of Objective.UnderprovisionedTime: below 0.1% a week holds ten
// minutes short, too few intervals to calibrate on; above 50% the median
// forecast already serves more.
const (
	MinObjective = 0.001
	MaxObjective = 0.5
)

// Percent is a fraction written as a percentage: "2%" is 0.02.
type Percent float64

// ParsePercent reads "2%", "0.5%" or "2 %" as a fraction (0.02, 0.005).
func ParsePercent(s string) (Percent, error) {
	t := strings.TrimSpace(s)
	num, ok := strings.CutSuffix(t, "%")
	if !ok {
		return 0, fmt.Errorf("%q is not a percentage: write it with a %% sign, e.g. 2%%", s)
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%q is not a percentage: write it with a %% sign, e.g. 2%%", s)
	}
	return Percent(v / 100), nil
}

// String writes p as a percentage, e.g. 2%.
func (p Percent) String() string {
	return strconv.FormatFloat(float64(p)*100, 'f', -1, 64) + "%"
}

// UnmarshalYAML reads a percentage such as 2%.
func (p *Percent) UnmarshalYAML(unmarshal func(any) error) error {
	var s string
	if err := unmarshal(&s); err != nil {
		return fmt.Errorf("want a percentage such as 2%%: %w", err)
	}
	v, err := ParsePercent(s)
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// MarshalYAML writes p as a percentage.
func (p Percent) MarshalYAML() (any, error) { return p.String(), nil }

// MarshalJSON writes p as a percentage.
func (p Percent) MarshalJSON() ([]byte, error) { return json.Marshal(p.String()) }

// UnmarshalJSON reads a percentage such as "2%".
func (p *Percent) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a percentage such as \"2%%\": %w", err)
	}
	v, err := ParsePercent(s)
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// validateObjective checks spec.objective against the fields it excludes.
// It runs before the quantile defaults are filled in, so that it sees what
// the user wrote.
func (s *ForecastPolicySpec) validateObjective() error {
	o := s.Objective
	if o == nil {
		return nil
	}
	if s.Model.Quantile != 0 {
		return fieldErr("spec.objective", "and spec.model.quantile are exclusive: the objective calibrates the quantile online; remove one of them")
	}
	for i, src := range s.Sources {
		if src.Quantile != 0 {
			return fieldErr("spec.objective", "and spec.sources[%d].quantile are exclusive: the objective calibrates the quantile online; remove one of them", i)
		}
	}
	if v := float64(o.UnderprovisionedTime); !(v >= MinObjective && v <= MaxObjective) {
		return fieldErr("spec.objective.underprovisionedTime", "must be in [%v, %v], got %v", Percent(MinObjective), Percent(MaxObjective), o.UnderprovisionedTime)
	}
	return nil
}

// ObjectiveValue is the objective's share of time short, 0 without one.
func (s *ForecastPolicySpec) ObjectiveValue() float64 {
	if s.Objective == nil {
		return 0
	}
	return float64(s.Objective.UnderprovisionedTime)
}
