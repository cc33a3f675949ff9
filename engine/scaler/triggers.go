package scaler

import (
	"hash/maphash"
	"maps"
	"math/bits"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// trigger is a ScaledObject trigger's parsed metadata with what answering it
// needs besides: its metric name and its per-trigger gauges.
type trigger struct {
	meta    map[string]string // as received, to tell hash collisions apart
	ns      string            // the ScaledObject's namespace, as received
	m       Metadata
	name    string
	age     prometheus.Gauge // kedastral_scaler_forecast_age_seconds
	desired prometheus.Gauge // kedastral_scaler_desired_replicas
	match   atomic.Pointer[matchMemo]
}

// matchMemo is the series of a cached forecast read that a trigger selects.
type matchMemo struct {
	set *forecastSet
	out []*seriesSample
}

// triggerCache remembers the triggers polled, keyed by their metadata: KEDA
// sends the same map on every poll of a ScaledObject, and parsing it (keys,
// durations, match labels), naming its metric and looking up its gauges took
// more of a cached GetMetrics than answering it. It holds at most
// triggerCacheMax triggers and starts over when full.
type triggerCache struct {
	seed maphash.Seed
	mu   sync.RWMutex
	m    map[uint64]*trigger
}

const triggerCacheMax = 100_000

func newTriggerCache() *triggerCache {
	return &triggerCache{seed: maphash.MakeSeed(), m: map[uint64]*trigger{}}
}

// hash is independent of the map's iteration order; the ScaledObject's
// namespace is part of the key because it defaults the policy's namespace.
func (c *triggerCache) hash(meta map[string]string, ns string) uint64 {
	h := maphash.String(c.seed, ns)
	for k, v := range meta {
		h += maphash.String(c.seed, k) ^ bits.RotateLeft64(maphash.String(c.seed, v), 29)
	}
	return h
}

// trigger returns the trigger of meta polled for a ScaledObject in namespace
// ns, parsing it the first time; a metadata error is not cached (it is
// logged and answered every time).
func (s *Server) trigger(meta map[string]string, ns string) (*trigger, error) {
	c := s.triggers
	h := c.hash(meta, ns)
	c.mu.RLock()
	t, ok := c.m[h]
	c.mu.RUnlock()
	if ok && t.ns == ns && maps.Equal(t.meta, meta) {
		return t, nil
	}
	m, err := ParseMetadata(meta)
	if err != nil {
		return nil, err
	}
	m.SetDefaultNamespace(ns)
	name := m.MetricName()
	t = &trigger{meta: maps.Clone(meta), ns: ns, m: m, name: name,
		age:     s.metrics.forecastAge.WithLabelValues(m.PolicyNamespace, m.Policy, name),
		desired: s.metrics.desiredReplicas.WithLabelValues(m.PolicyNamespace, m.Policy, name)}
	c.mu.Lock()
	if len(c.m) >= triggerCacheMax {
		clear(c.m)
	}
	c.m[h] = t
	c.mu.Unlock()
	return t, nil
}
