package scaler

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

// cache holds query results for a short TTL and coalesces concurrent reads of
// the same key into one query (singleflight): while a query runs, every
// caller of that key waits for it; afterwards its result, error included, is
// reused until the TTL has passed.
type cache[T any] struct {
	ttl  time.Duration
	now  func() time.Time
	base context.Context // canceled on Stop; bounds detached queries

	mu        sync.Mutex
	entries   map[string]*cacheEntry[T]
	lastSweep time.Time
	wg        sync.WaitGroup
}

type cacheEntry[T any] struct {
	done    chan struct{} // closed when the query finished
	fetched time.Time     // when it finished
	val     T
	evalT   time.Time
	err     error
}

func newCache[T any](base context.Context, ttl time.Duration, now func() time.Time) *cache[T] {
	return &cache[T]{ttl: ttl, now: now, base: base, entries: map[string]*cacheEntry[T]{}}
}

// get returns the cached result of key, or runs fetch once for all concurrent
// callers. fetch gets a context that does not end when one caller gives up,
// and the time to evaluate at; get returns that time with the value. The
// value is shared by all callers: they must not modify it.
func (c *cache[T]) get(ctx context.Context, key string, fetch func(ctx context.Context, ts time.Time) (T, error)) (T, time.Time, error) {
	c.mu.Lock()
	now := c.now()
	e := c.entries[key]
	if e == nil || (isClosed(e.done) && now.Sub(e.fetched) >= c.ttl) {
		e = &cacheEntry[T]{done: make(chan struct{}), evalT: now}
		c.entries[key] = e
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			val, err := fetch(c.base, e.evalT)
			c.mu.Lock()
			e.val, e.err, e.fetched = val, err, c.now()
			close(e.done)
			c.mu.Unlock()
		}()
	}
	c.sweepLocked(now)
	c.mu.Unlock()
	select {
	case <-e.done:
		return e.val, e.evalT, e.err
	case <-ctx.Done():
		var zero T
		return zero, time.Time{}, ctx.Err()
	}
}

// sweepLocked drops entries unused for a minute, at most once a minute.
func (c *cache[T]) sweepLocked(now time.Time) {
	if now.Sub(c.lastSweep) < time.Minute {
		return
	}
	c.lastSweep = now
	for k, e := range c.entries {
		if isClosed(e.done) && now.Sub(e.fetched) > max(time.Minute, c.ttl) {
			delete(c.entries, k)
		}
	}
}

// wait blocks until every running query has returned.
func (c *cache[T]) wait() { c.wg.Wait() }

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// forecastSet is one read of a policy's desired-replicas series, indexed
// by label so that a trigger's series is found without scanning all of them:
// with thousands of series per policy and thousands of triggers, a scan per
// GetMetrics would cost more than the whole gRPC call.
type forecastSet struct {
	series []seriesSample
	// postings lists, per "name\xffvalue", the series with that label.
	postings map[string][]int32
}

func newForecastSet(series []seriesSample) *forecastSet {
	fs := &forecastSet{series: series, postings: map[string][]int32{}}
	for i, ss := range series {
		ss.labels.Range(func(l labels.Label) {
			k := l.Name + "\xff" + l.Value
			fs.postings[k] = append(fs.postings[k], int32(i))
		})
	}
	return fs
}

// match returns the series whose labels match m's matchLabels, in the
// order of the read.
func (fs *forecastSet) match(m Metadata) []*seriesSample {
	var (
		cand []int32
		have bool
	)
	m.MatchLabels.Range(func(l labels.Label) {
		if l.Value == "" {
			return // matches the series without the label: no posting
		}
		p := fs.postings[l.Name+"\xff"+l.Value]
		if !have || len(p) < len(cand) {
			cand, have = p, true
		}
	})
	var out []*seriesSample
	if !have {
		for i := range fs.series {
			if m.matches(fs.series[i].labels) {
				out = append(out, &fs.series[i])
			}
		}
		return out
	}
	for _, i := range cand {
		if m.matches(fs.series[i].labels) {
			out = append(out, &fs.series[i])
		}
	}
	return out
}
