package policy

import (
	"fmt"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v2"
)

// explicitZeros finds the fields where zero means "unset, use the default"
// in the decoded types but a document wrote 0 or 0s: `quantile: 0` read as
// unset would silently plan for the default quantile, `headroom: 0` for
// headroom 1.0. It returns every such field, with its default, as
// FieldErrors, or nil.
func explicitZeros(doc []byte) error {
	var p struct {
		Spec struct {
			Interval *model.Duration `yaml:"interval"`
			Step     *model.Duration `yaml:"step"`
			Lookback *model.Duration `yaml:"lookback"`
			Model    struct {
				Quantile *float64 `yaml:"quantile"`
			} `yaml:"model"`
			Capacity struct {
				Headroom *float64 `yaml:"headroom"`
			} `yaml:"capacity"`
			Sources []struct {
				TargetPerPod *float64 `yaml:"targetPerPod"`
				Quantile     *float64 `yaml:"quantile"`
			} `yaml:"sources"`
		} `yaml:"spec"`
	}
	// The strict decode has already accepted the document; a field of the
	// wrong type there would have failed it.
	if err := yaml.Unmarshal(doc, &p); err != nil {
		return nil
	}
	s := &p.Spec
	var v fieldErrs
	for _, d := range []struct {
		field string
		v     *model.Duration
		def   model.Duration
	}{{"spec.interval", s.Interval, DefaultInterval}, {"spec.step", s.Step, DefaultStep}, {"spec.lookback", s.Lookback, DefaultLookback}} {
		if d.v != nil && *d.v == 0 {
			v.add(d.field, "must be positive, got 0 (leave it out for the default, %s)", d.def)
		}
	}
	if q := s.Model.Quantile; q != nil && *q == 0 {
		v.add("spec.model.quantile", "must be in (0, 1), got 0 (leave it out for the default, %v)", DefaultQuantile)
	}
	if h := s.Capacity.Headroom; h != nil && *h == 0 {
		v.add("spec.capacity.headroom", "must be in (0, 100], got 0 (a multiplier: 1 is no headroom, the default)")
	}
	for i, src := range s.Sources {
		if t := src.TargetPerPod; t != nil && *t == 0 {
			v.add(fmt.Sprintf("spec.sources[%d].targetPerPod", i), "must be positive, got 0 (leave it out for spec.capacity.targetPerPod)")
		}
		if q := src.Quantile; q != nil && *q == 0 {
			v.add(fmt.Sprintf("spec.sources[%d].quantile", i), "must be in (0, 1), got 0 (leave it out for spec.model.quantile)")
		}
	}
	return v.err()
}
