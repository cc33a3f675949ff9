package promapi

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
)

// ErrQueued is wrapped by the error Queue.Write returns when its samples were
// not sent yet but are kept for a later attempt.
var ErrQueued = errors.New("queued for retry")

// Defaults of QueueConfig.
const (
	DefaultQueueMaxSamples   = 100_000
	DefaultQueueMinBackoff   = time.Second
	DefaultQueueMaxBackoff   = 30 * time.Second
	DefaultQueueFlushTimeout = 5 * time.Second
)

// BatchWriter sends one batch of samples; *Writer is one.
type BatchWriter interface {
	Write(ctx context.Context, samples []Sample) (WriteStats, error)
}

// QueueConfig configures a Queue.
type QueueConfig struct {
	// Writer sends the batches; required. Its own timeout and retries bound
	// each attempt.
	Writer BatchWriter
	// MaxSamples bounds the samples kept for retry. When a new batch would
	// exceed it, the oldest batches are dropped (and counted); the newest
	// batch is always kept. Default DefaultQueueMaxSamples.
	MaxSamples int
	// MinBackoff and MaxBackoff bound the exponential backoff (with jitter)
	// between attempts after a retryable failure; a longer Retry-After of
	// the store's answer is honoured up to MaxBackoff. Defaults
	// DefaultQueueMinBackoff, DefaultQueueMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// FlushTimeout bounds the last attempt to send what is queued when Run
	// returns. Default DefaultQueueFlushTimeout.
	FlushTimeout time.Duration
	// Registerer receives the queue's metrics; none by default.
	Registerer prometheus.Registerer
	Logger     log.Logger
}

// Queue is a bounded retry buffer in front of a remote-write client. Write
// hands a batch to a background sender that sends batches one at a time in
// the order they came, so the samples of a series reach the store in time
// order (Prometheus refuses out-of-order samples). A batch that fails with a
// retryable error (connection error, timeout, 5xx, 429) stays at the head of
// the queue and is sent again after a backoff, or sooner when the next batch
// arrives (unless the store's Retry-After asked for longer), so that writing
// resumes within one cycle of the store's return; one that is refused otherwise
// (another 4xx, an invalid sample) is dropped and counted. Write never waits
// while the store is failing: it returns at once with an error wrapping
// ErrQueued. Resending a batch the store did store (e.g. the answer was lost)
// is harmless: Prometheus accepts an identical sample twice.
type Queue struct {
	cfg     QueueConfig
	logger  log.Logger
	metrics *queueMetrics

	mu       sync.Mutex
	batches  []*batch
	samples  int  // samples in batches
	inflight bool // batches[0] is being sent
	failing  bool // the last attempt failed with a retryable error
	closed   bool // flushed on stop: nothing is sent any more
	wake     chan struct{}

	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
	started  bool
}

type batch struct {
	samples  []Sample
	attempts int
	done     chan struct{} // closed when the batch left the queue
	// err is why it left without being sent, or why part of it was
	// refused; sent is how many of its samples were stored. Both are set
	// before done closes.
	err  error
	sent int
}

type queueMetrics struct {
	pending prometheus.Gauge
	retried prometheus.Counter
	dropped *prometheus.CounterVec
	sent    prometheus.Counter
}

// NewQueue returns a queue for cfg with defaults filled in. Start its sender
// with Run.
func NewQueue(cfg QueueConfig) (*Queue, error) {
	if cfg.Writer == nil {
		return nil, errors.New("remote write queue: Writer is required")
	}
	if cfg.MaxSamples < 0 || cfg.MinBackoff < 0 || cfg.MaxBackoff < 0 || cfg.FlushTimeout < 0 {
		return nil, errors.New("remote write queue: size, backoffs and timeout must not be negative")
	}
	if cfg.MaxSamples == 0 {
		cfg.MaxSamples = DefaultQueueMaxSamples
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = DefaultQueueMinBackoff
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = DefaultQueueMaxBackoff
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		return nil, fmt.Errorf("remote write queue: max backoff %s below min backoff %s", cfg.MaxBackoff, cfg.MinBackoff)
	}
	if cfg.FlushTimeout == 0 {
		cfg.FlushTimeout = DefaultQueueFlushTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = log.NewNopLogger()
	}
	m := &queueMetrics{
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "kedastral", Subsystem: "remote_write", Name: "queue_samples",
			Help: "Samples waiting in the remote-write retry queue.",
		}),
		retried: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "kedastral", Subsystem: "remote_write", Name: "samples_retried_total",
			Help: "Samples sent again after a retryable remote-write failure.",
		}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kedastral", Subsystem: "remote_write", Name: "samples_dropped_total",
			Help: "Samples the remote-write queue gave up on: rejected by the store (4xx, invalid), pushed out of the full queue (overflow), or not sent by shutdown.",
		}, []string{"reason"}),
		sent: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "kedastral", Subsystem: "remote_write", Name: "queue_samples_sent_total",
			Help: "Samples the remote-write queue delivered, retried ones included.",
		}),
	}
	m.dropped.WithLabelValues("rejected")
	m.dropped.WithLabelValues("overflow")
	m.dropped.WithLabelValues("shutdown")
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(m.pending, m.retried, m.dropped, m.sent)
	}
	return &Queue{
		cfg:     cfg,
		logger:  cfg.Logger,
		metrics: m,
		wake:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}, nil
}

// Write queues samples as one batch and waits until it is sent, refused, or
// ctx ends, whichever is first; while the queue is failing it does not wait.
// A nil error means the store accepted the batch. An error wrapping ErrQueued
// means the batch is kept and will be sent later (IsRetryable reports true);
// any other error means it was dropped.
func (q *Queue) Write(ctx context.Context, samples []Sample) (WriteStats, error) {
	if len(samples) == 0 {
		return WriteStats{}, nil
	}
	b := &batch{samples: samples, done: make(chan struct{})}
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return WriteStats{Failed: len(samples)}, &WriteError{Err: errors.New("remote write queue stopped")}
	}
	q.batches = append(q.batches, b)
	q.samples += len(samples)
	q.trimLocked()
	failing, pending := q.failing, len(q.batches)
	q.metrics.pending.Set(float64(q.samples))
	q.mu.Unlock()
	q.signal()

	queued := func(reason string) (WriteStats, error) {
		return WriteStats{Failed: len(samples)}, &WriteError{Retryable: true,
			Err: fmt.Errorf("%w behind %d batch(es): %s", ErrQueued, pending-1, reason)}
	}
	if failing {
		return queued("remote write is failing")
	}
	select {
	case <-b.done:
		if b.err != nil {
			// A batch split into several requests may be stored in part.
			return WriteStats{Sent: b.sent, Failed: len(samples) - b.sent, Attempts: b.attempts}, b.err
		}
		return WriteStats{Sent: len(samples), Attempts: b.attempts}, nil
	case <-ctx.Done():
		return queued(ctx.Err().Error())
	}
}

// trimLocked drops the oldest batches, never the one being sent nor the
// newest, while the queue holds more than MaxSamples.
func (q *Queue) trimLocked() {
	first := 0
	if q.inflight {
		first = 1
	}
	for q.samples > q.cfg.MaxSamples && len(q.batches)-first > 1 {
		b := q.batches[first]
		q.batches = append(q.batches[:first], q.batches[first+1:]...)
		q.samples -= len(b.samples)
		q.metrics.dropped.WithLabelValues("overflow").Add(float64(len(b.samples)))
		level.Warn(q.logger).Log("msg", "remote write queue full, dropping oldest batch", "samples", len(b.samples), "max_samples", q.cfg.MaxSamples)
		b.err = &WriteError{Err: errors.New("dropped from the full remote write queue")}
		close(b.done)
	}
}

func (q *Queue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Pending returns the number of batches and samples waiting.
func (q *Queue) Pending() (batches, samples int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.batches), q.samples
}

// Run sends queued batches until ctx ends or Stop is called, then tries once
// more, bounded by FlushTimeout, to send what is left.
func (q *Queue) Run(ctx context.Context) error {
	q.mu.Lock()
	if q.started {
		q.mu.Unlock()
		return errors.New("remote write queue: Run called twice")
	}
	q.started = true
	q.mu.Unlock()
	defer close(q.done)

	sendCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-ctx.Done():
		case <-q.stop:
		}
		// Let an attempt in progress finish within the flush timeout.
		t := time.NewTimer(q.cfg.FlushTimeout)
		defer t.Stop()
		select {
		case <-t.C:
			cancel()
		case <-sendCtx.Done():
		}
	}()
	stopping := func() bool {
		select {
		case <-ctx.Done():
			return true
		case <-q.stop:
			return true
		default:
			return false
		}
	}
	var exp, wait time.Duration
	var notBefore time.Time // what the store's Retry-After asked for
	for {
		if wait > 0 {
			t := time.NewTimer(wait)
		backoff:
			for {
				select {
				case <-t.C:
					break backoff
				case <-q.wake:
					// A new batch (one per cycle) ends the backoff, unless the
					// store asked for a longer pause: writing resumes within
					// one cycle of the store's return.
					if !time.Now().Before(notBefore) {
						break backoff
					}
				case <-ctx.Done():
					break backoff
				case <-q.stop:
					break backoff
				}
			}
			t.Stop()
		}
		if stopping() {
			q.flush(sendCtx)
			return nil
		}
		// Wakes from here on are for batches queued after this attempt.
		select {
		case <-q.wake:
		default:
		}
		res, retryAfter := q.sendHead(sendCtx)
		switch res {
		case headEmpty:
			exp, wait = 0, 0
			select {
			case <-q.wake:
			case <-ctx.Done():
			case <-q.stop:
			}
		case headDone:
			exp, wait = 0, 0
		case headRetry:
			if exp == 0 {
				exp = q.cfg.MinBackoff
			} else {
				exp = min(2*exp, q.cfg.MaxBackoff)
			}
			// Jitter in [exp/2, exp], then at least what the store asked for.
			wait = exp/2 + rand.N(exp/2+1)
			ra := min(retryAfter, q.cfg.MaxBackoff)
			wait = max(wait, ra)
			notBefore = time.Now().Add(ra)
		}
	}
}

// flush sends what is queued until it is empty or an attempt fails; the rest
// is dropped and counted.
func (q *Queue) flush(ctx context.Context) {
	for ctx.Err() == nil {
		if r, _ := q.sendHead(ctx); r != headDone {
			break
		}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	if q.samples > 0 {
		level.Warn(q.logger).Log("msg", "remote write queue stopped with samples not sent", "samples", q.samples)
		q.metrics.dropped.WithLabelValues("shutdown").Add(float64(q.samples))
	}
	for _, b := range q.batches {
		b.err = &WriteError{Err: errors.New("remote write queue stopped before the batch was sent")}
		close(b.done)
	}
	q.batches, q.samples = nil, 0
	q.metrics.pending.Set(0)
}

type headResult int

const (
	headEmpty headResult = iota
	headDone             // sent or dropped
	headRetry
)

func (q *Queue) sendHead(ctx context.Context) (headResult, time.Duration) {
	q.mu.Lock()
	if len(q.batches) == 0 {
		q.failing = false
		q.mu.Unlock()
		return headEmpty, 0
	}
	b := q.batches[0]
	q.inflight = true
	q.mu.Unlock()

	if b.attempts > 0 {
		q.metrics.retried.Add(float64(len(b.samples)))
	}
	b.attempts++
	stats, err := q.cfg.Writer.Write(ctx, b.samples)

	q.mu.Lock()
	defer q.mu.Unlock()
	q.inflight = false
	if err != nil && (IsRetryable(err) || ctx.Err() != nil) {
		var retryAfter time.Duration
		if we, ok := errors.AsType[*WriteError](err); ok {
			retryAfter = we.RetryAfter
			if we.Retry != nil {
				q.keepUnsentLocked(b, stats, we)
			}
		}
		if !q.failing {
			level.Warn(q.logger).Log("msg", "remote write failed, keeping samples for retry", "samples", len(b.samples), "queued_samples", q.samples, "err", err)
		}
		q.failing = true
		return headRetry, retryAfter
	}
	q.batches = q.batches[1:]
	q.samples -= len(b.samples)
	q.metrics.pending.Set(float64(q.samples))
	if err != nil {
		// What a split Write stored of the batch is not refused.
		refused := len(b.samples) - stats.Sent
		b.sent += stats.Sent
		q.metrics.sent.Add(float64(stats.Sent))
		q.metrics.dropped.WithLabelValues("rejected").Add(float64(refused))
		level.Error(q.logger).Log("msg", "remote write refused, dropping samples", "samples", refused, "err", err)
		b.err = err
	} else {
		b.sent += len(b.samples)
		q.metrics.sent.Add(float64(len(b.samples)))
		if q.failing || b.attempts > 1 {
			level.Info(q.logger).Log("msg", "remote write recovered", "attempts", b.attempts, "queued_samples", q.samples)
		}
		q.failing = false
	}
	close(b.done)
	return headDone, 0
}

// keepUnsentLocked leaves at the head of the queue only what the Writer
// could not store of b but may later (its requests that failed with a
// retryable error): the rest was stored or refused for good, and sending it
// again is not needed. Since the Writer keeps each series in one request,
// every series is either all stored or all kept, and no later batch is sent
// before the kept samples, so the store sees each series in time order.
func (q *Queue) keepUnsentLocked(b *batch, stats WriteStats, we *WriteError) {
	if refused := stats.Failed - len(we.Retry); refused > 0 {
		q.metrics.dropped.WithLabelValues("rejected").Add(float64(refused))
		level.Error(q.logger).Log("msg", "remote write refused part of a batch, dropping it", "samples", refused, "err", we)
		if b.err == nil {
			b.err = &WriteError{StatusCode: we.StatusCode, Attempts: we.Attempts, Err: fmt.Errorf("%d samples refused: %w", refused, we.Err)}
		}
	}
	b.sent += stats.Sent
	q.metrics.sent.Add(float64(stats.Sent))
	q.samples -= len(b.samples) - len(we.Retry)
	q.metrics.pending.Set(float64(q.samples))
	b.samples = we.Retry
}

// Stop makes Run flush and return, and waits for it if it was started. It is
// idempotent.
func (q *Queue) Stop() {
	q.stopOnce.Do(func() { close(q.stop) })
	q.mu.Lock()
	started := q.started
	q.mu.Unlock()
	if started {
		<-q.done
	}
}
