package promapi

import "context"

// Limiter bounds the query requests in flight across every Client that
// shares it: a forecaster's first full load asks for the whole lookback of
// every policy at once, and Prometheus (or a query frontend) should see at
// most a few of those requests at a time, not one per policy. It is safe
// for concurrent use.
type Limiter struct{ sem chan struct{} }

// NewLimiter returns a Limiter that lets n requests run at once; nil (no
// bound) when n <= 0.
func NewLimiter(n int) *Limiter {
	if n <= 0 {
		return nil
	}
	return &Limiter{sem: make(chan struct{}, n)}
}

// acquire waits for a free slot or for ctx to end. A nil Limiter never waits.
func (l *Limiter) acquire(ctx context.Context) error {
	if l == nil {
		return nil
	}
	select {
	case l.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l *Limiter) release() {
	if l != nil {
		<-l.sem
	}
}
