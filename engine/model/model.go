// Package model holds Kedastral's forecasting models behind one interface and
// a registry, so that a policy selects a model by name and new models plug in
// without touching the forecast loop.
package model

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"
	"time"
)

// ErrInsufficientData is returned by a model that cannot forecast yet from the
// history it was given. It is expected (a new series) and logged at debug level.
var ErrInsufficientData = errors.New("insufficient data")

// History is a regularly spaced series: Values[i] is the value at
// Start + i*Step. Missing points are NaN. Start is aligned to Step.
type History struct {
	Start  time.Time
	Step   time.Duration
	Values []float64
}

// Len is the number of points, missing ones included.
func (h History) Len() int { return len(h.Values) }

// End is the timestamp of the last point (Start-Step for an empty history).
func (h History) End() time.Time {
	return h.Start.Add(time.Duration(len(h.Values)-1) * h.Step)
}

// At returns the value at t, or NaN when t is outside the history or not on a step.
func (h History) At(t time.Time) float64 {
	d := t.Sub(h.Start)
	if d < 0 || d%h.Step != 0 {
		return math.NaN()
	}
	i := int(d / h.Step)
	if i >= len(h.Values) {
		return math.NaN()
	}
	return h.Values[i]
}

// Config is what a model is built with: the policy's settings for one series.
type Config struct {
	// Step is the spacing of history and forecast.
	Step time.Duration
	// Quantile of the forecast distribution to return, in (0,1).
	Quantile float64
	// BYOM configures the byom model.
	BYOM BYOMConfig
}

// Model forecasts one series. A Model instance belongs to one series and may
// keep state between calls; it is not used concurrently.
type Model interface {
	// Forecast returns n values for Start+Step*len(Values), ... i.e. the n
	// steps that follow the last point of h, at the configured quantile. The
	// history passed on successive calls grows at the end (and may be trimmed
	// at the start); a stateful model may consume only what it has not seen.
	// It returns ErrInsufficientData (wrapped) when h is too short to forecast.
	Forecast(ctx context.Context, h History, n int) ([]float64, error)
}

// Chooser is a model that picks among others (auto): Chosen names the model
// answering at horizon h steps (1-based), for the status page and metrics.
type Chooser interface {
	Chosen(h int) string
}

// Factory builds a model for one series.
type Factory func(Config) (Model, error)

var (
	registryMu sync.RWMutex
	registry   = map[string]Factory{}
)

// Register makes a model available under name. It panics on a duplicate name,
// as it is called from init functions.
func Register(name string, f Factory) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[name]; dup {
		panic("model: Register called twice for " + name)
	}
	registry[name] = f
}

// New builds the model registered under name.
func New(name string, cfg Config) (Model, error) {
	registryMu.RLock()
	f, ok := registry[name]
	registryMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("unknown model %q (known: %v)", name, Names())
	}
	return f(cfg)
}

// Names lists the registered models, sorted.
func Names() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Leveled is a model whose quantile can change between forecasts: a policy
// with an objective calibrates it online (engine/capacity's Calibrator).
// Every built-in model is one.
type Leveled interface {
	// SetQuantile makes the following forecasts answer at quantile q, in (0,1).
	SetQuantile(q float64)
}

// SetQuantile sets m's quantile when m is Leveled, and reports whether it is.
func SetQuantile(m Model, q float64) bool {
	l, ok := m.(Leveled)
	if ok {
		l.SetQuantile(q)
	}
	return ok
}
