package scaler

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kedastral/kedastral/promapi"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestCacheCoalescesAndExpires(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	c := newCache[[]promapi.Sample](context.Background(), time.Second, clock.Now)
	defer c.wait()
	var calls atomic.Int32
	release := make(chan struct{})
	fetch := func(ctx context.Context, ts time.Time) ([]promapi.Sample, error) {
		calls.Add(1)
		<-release
		return []promapi.Sample{{V: float64(calls.Load())}}, nil
	}

	ctx := t.Context()
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			s, _, err := c.get(ctx, "k", fetch)
			if err != nil || len(s) != 1 || s[0].V != 1 {
				t.Errorf("got %v, %v", s, err)
			}
		})
	}
	time.Sleep(10 * time.Millisecond) // let the callers pile up on the one fetch
	close(release)
	wg.Wait()
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d queries for 100 concurrent reads, want 1", n)
	}

	clock.Add(999 * time.Millisecond)
	if s, _, _ := c.get(ctx, "k", fetch); s[0].V != 1 || calls.Load() != 1 {
		t.Fatalf("within the TTL: got %v after %d queries, want the cached 1", s, calls.Load())
	}
	clock.Add(time.Millisecond)
	if s, _, _ := c.get(ctx, "k", fetch); s[0].V != 2 || calls.Load() != 2 {
		t.Fatalf("after the TTL: got %v after %d queries, want a new query", s, calls.Load())
	}
	if _, _, _ = c.get(ctx, "other", fetch); calls.Load() != 3 {
		t.Fatalf("another key must query: %d queries", calls.Load())
	}
}

func TestCacheKeepsErrorsForTTL(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	c := newCache[[]promapi.Sample](context.Background(), time.Second, clock.Now)
	defer c.wait()
	var calls int
	boom := errors.New("boom")
	fetch := func(context.Context, time.Time) ([]promapi.Sample, error) { calls++; return nil, boom }
	for range 3 {
		if _, _, err := c.get(t.Context(), "k", fetch); !errors.Is(err, boom) {
			t.Fatalf("err %v", err)
		}
	}
	if calls != 1 {
		t.Fatalf("%d queries, want 1: a failing Prometheus must not be hammered", calls)
	}
}

func TestCacheCallerGivesUp(t *testing.T) {
	c := newCache[[]promapi.Sample](context.Background(), time.Second, time.Now)
	release := make(chan struct{})
	var fetchCtxErr error
	fetch := func(ctx context.Context, _ time.Time) ([]promapi.Sample, error) {
		<-release
		fetchCtxErr = ctx.Err()
		return []promapi.Sample{{V: 1}}, nil
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, _, err := c.get(ctx, "k", fetch); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	close(release)
	s, _, err := c.get(t.Context(), "k", fetch)
	if err != nil || s[0].V != 1 {
		t.Fatalf("second caller got %v, %v", s, err)
	}
	c.wait()
	if fetchCtxErr != nil {
		t.Errorf("the query was canceled with its first caller: %v", fetchCtxErr)
	}
}
