package model

import "time"

// Exported for the tests in package model_test, which cannot be in package
// model because they use engine/trace, which imports model.

// BaselineKnobs mirrors baselineParams with exported fields.
type BaselineKnobs struct {
	Days, Weeks, WeekWeight int
	Window                  time.Duration
	MinWindow               int
	RatioMin, RatioMax      float64
	Recent                  int
}

// DefaultBaselineKnobs returns the knobs of the registered baseline model.
func DefaultBaselineKnobs() BaselineKnobs {
	p := defaultBaselineParams
	return BaselineKnobs{
		Days: p.days, Weeks: p.weeks, WeekWeight: p.weekWeight,
		Window: p.window, MinWindow: p.minWindow,
		RatioMin: p.ratioMin, RatioMax: p.ratioMax, Recent: p.recent,
	}
}

// NewBaselineWith builds a baseline model with other knobs.
func NewBaselineWith(cfg Config, k BaselineKnobs) (Model, error) {
	return newBaseline(cfg, baselineParams{
		days: k.Days, weeks: k.Weeks, weekWeight: k.WeekWeight,
		window: k.Window, minWindow: k.MinWindow,
		ratioMin: k.RatioMin, ratioMax: k.RatioMax, recent: k.Recent,
	})
}

// AutoParts builds auto and returns its components, by name, for tests
// that score them one by one.
func AutoParts(cfg Config) (map[string]Model, error) {
	m, err := New(Auto, cfg)
	if err != nil {
		return nil, err
	}
	out := map[string]Model{}
	for i, c := range m.(*auto).models {
		out[autoModels[i]] = c
	}
	return out, nil
}

// DecodeBYOMResponse exports decodeBYOMResponse for the fuzz test.
var DecodeBYOMResponse = decodeBYOMResponse
