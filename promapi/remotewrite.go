package promapi

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/exp/api/remote"
	"github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

// Remote-write protocol versions for WriterConfig.Protocol.
const (
	// ProtocolV1 is Remote Write 1.0 (prometheus.WriteRequest), understood by
	// every Prometheus-compatible receiver.
	ProtocolV1 = "1.0"
	// ProtocolV2 is Remote Write 2.0 (io.prometheus.write.v2.Request, labels
	// as references into a symbol table). Prometheus before 3.x (e.g. Debian's
	// 2.42) answers a 2.0 request with 2xx but stores nothing; Write detects
	// that from the missing response headers and returns a non-retryable
	// error.
	ProtocolV2 = "2.0"
)

// Defaults of WriterConfig.
const (
	DefaultWriteTimeout = 30 * time.Second
	DefaultMinBackoff   = 100 * time.Millisecond
	DefaultMaxBackoff   = 5 * time.Second
	DefaultMaxRetries   = 5
	// DefaultMaxSeriesPerRequest is Prometheus' max_samples_per_send for
	// one sample per series: a forecaster cycle writes about one sample per
	// series.
	DefaultMaxSeriesPerRequest = 2000
	DefaultShards              = 4
)

// WriterConfig configures a remote-write Writer.
type WriterConfig struct {
	// URL is the full remote-write URL, e.g. http://prometheus:9090/api/v1/write.
	URL string
	// HTTPClientConfig configures auth, TLS and proxy as in prometheus.yml.
	// The zero value means config.DefaultHTTPClientConfig.
	HTTPClientConfig config.HTTPClientConfig
	// Protocol is ProtocolV1 (default) or ProtocolV2.
	Protocol string
	// Timeout bounds a whole Write, retries and backoff included.
	// Default DefaultWriteTimeout.
	Timeout time.Duration
	// MinBackoff and MaxBackoff bound the exponential backoff (with jitter)
	// between retries; a Retry-After header of a 429 or 5xx answer is added.
	// Defaults DefaultMinBackoff, DefaultMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// MaxRetries is how often a retryable failure (connection error, 5xx,
	// 429) is retried. 0 means DefaultMaxRetries; a negative value disables
	// retries. Other 4xx answers are never retried.
	MaxRetries int
	// UserAgent is sent with every request. Default "kedastral".
	UserAgent string
	// NameValidation is how metric and label names are checked before
	// sending. Default model.LegacyValidation (what Prometheus 2.x accepts);
	// model.UTF8Validation for receivers that accept UTF-8 names.
	NameValidation model.ValidationScheme
	// Logger receives the retry log of the remote-write library. Default: none.
	Logger log.Logger
	// MaxSeriesPerRequest splits a Write of more series into several
	// requests, each series (all its samples) in one of them. 0 means
	// DefaultMaxSeriesPerRequest; a negative value sends every Write in one
	// request.
	MaxSeriesPerRequest int
	// Shards is how many requests of a split Write are in flight at once.
	// A series always goes to the same shard (a hash of its labels), and a
	// shard sends its requests one after the other, as Prometheus' queue
	// manager does. 0 means DefaultShards.
	Shards int
	// Now is the clock a Retry-After given as an HTTP date is measured
	// against. Default time.Now.
	Now func() time.Time
}

// Sample is one sample of one series. For Write the labels must include a
// non-empty __name__; labels with an empty value are dropped, as Prometheus
// treats them as absent. Query returns samples without __name__.
type Sample struct {
	Labels labels.Labels
	T      int64 // milliseconds since the epoch
	V      float64
}

// WriteStats tells what a Write did.
type WriteStats struct {
	// Series is the number of distinct series in the request.
	Series int
	// Sent is the number of samples the receiver accepted.
	Sent int
	// Failed is the number of samples that were not accepted (all of them
	// when the request failed: Prometheus stores all of a request or none).
	Failed int
	// Attempts is the number of HTTP requests made, retries included.
	Attempts int
}

func (s *WriteStats) add(o WriteStats) {
	s.Series += o.Series
	s.Sent += o.Sent
	s.Failed += o.Failed
	s.Attempts += o.Attempts
}

// Writer sends samples with Prometheus remote write. It is safe for
// concurrent use.
type Writer struct {
	api        *remote.API
	http       *http.Client
	url        string
	msgType    remote.WriteMessageType
	timeout    time.Duration
	validation model.ValidationScheme
	maxSeries  int // per request; 0: no limit
	shards     int
	now        func() time.Time
}

// NewWriter returns a Writer for cfg with defaults filled in.
func NewWriter(cfg WriterConfig) (*Writer, error) {
	u, err := parseURL("remote write", cfg.URL)
	if err != nil {
		return nil, err
	}
	var msgType remote.WriteMessageType
	switch cfg.Protocol {
	case "", ProtocolV1:
		msgType = remote.WriteV1MessageType
	case ProtocolV2:
		msgType = remote.WriteV2MessageType
	default:
		return nil, fmt.Errorf("remote write protocol %q: want %q or %q", cfg.Protocol, ProtocolV1, ProtocolV2)
	}
	if cfg.Timeout < 0 || cfg.MinBackoff < 0 || cfg.MaxBackoff < 0 {
		return nil, errors.New("remote write timeout and backoffs must not be negative")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultWriteTimeout
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		return nil, fmt.Errorf("remote write max backoff %s below min backoff %s", cfg.MaxBackoff, cfg.MinBackoff)
	}
	switch {
	case cfg.MaxRetries == 0:
		cfg.MaxRetries = DefaultMaxRetries
	case cfg.MaxRetries < 0:
		// The remote API retries forever on 0 and stops before the first
		// retry on any negative number.
		cfg.MaxRetries = -1
	}
	switch cfg.NameValidation {
	case model.UnsetValidation:
		cfg.NameValidation = model.LegacyValidation
	case model.LegacyValidation, model.UTF8Validation:
	default:
		return nil, fmt.Errorf("remote write name validation scheme %d unknown", cfg.NameValidation)
	}
	if cfg.Logger == nil {
		cfg.Logger = log.NewNopLogger()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	switch {
	case cfg.MaxSeriesPerRequest == 0:
		cfg.MaxSeriesPerRequest = DefaultMaxSeriesPerRequest
	case cfg.MaxSeriesPerRequest < 0:
		cfg.MaxSeriesPerRequest = 0
	}
	switch {
	case cfg.Shards == 0:
		cfg.Shards = DefaultShards
	case cfg.Shards < 0:
		return nil, fmt.Errorf("remote write shards %d must not be negative", cfg.Shards)
	}

	hc, err := newHTTPClient(u, cfg.HTTPClientConfig, cfg.UserAgent)
	if err != nil {
		return nil, err
	}
	api, err := remote.NewAPI(cfg.URL,
		remote.WithAPIHTTPClient(hc),
		remote.WithAPIPath(""), // cfg.URL is the full URL.
		remote.WithAPIBackoff(remote.BackoffConfig{Min: cfg.MinBackoff, Max: cfg.MaxBackoff, MaxRetries: cfg.MaxRetries}),
		remote.WithAPILogger(newSlogLogger(log.With(cfg.Logger, "component", "remote_write"))),
	)
	if err != nil {
		return nil, fmt.Errorf("remote write URL %q: %w", u.Redacted(), err)
	}
	return &Writer{
		api:        api,
		http:       hc,
		url:        u.Redacted(),
		msgType:    msgType,
		timeout:    cfg.Timeout,
		validation: cfg.NameValidation,
		maxSeries:  cfg.MaxSeriesPerRequest,
		shards:     cfg.Shards,
		now:        cfg.Now,
	}, nil
}

// Close releases idle connections. The Writer stays usable.
func (w *Writer) Close() {
	w.http.CloseIdleConnections()
}

// Write sends samples: one time series per label set, its samples in time
// order (identical duplicates are sent once). It validates every sample
// first and sends nothing if one is invalid. Up to MaxSeriesPerRequest
// series go in one request; more are split into requests of at most that
// many series, sent by up to Shards concurrent shards. It retries each
// request as configured and never takes longer than the configured timeout.
// Every error is a *WriteError that tells whether a later retry may succeed;
// an invalid sample also wraps ErrInvalidSample and names the series. After
// a split Write, WriteError.Retry holds the samples of the requests that
// were not stored but may be later; sending only those completes the Write.
func (w *Writer) Write(ctx context.Context, samples []Sample) (WriteStats, error) {
	if len(samples) == 0 {
		return WriteStats{}, nil
	}
	series, n, err := groupSamples(samples, w.validation)
	if err != nil {
		return WriteStats{Failed: len(samples)}, &WriteError{Err: err}
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	if w.maxSeries == 0 || len(series) <= w.maxSeries {
		stats, werr := w.send(ctx, parent, series, n)
		if werr != nil {
			return stats, werr
		}
		return stats, nil
	}
	return w.writeSharded(ctx, parent, series)
}

// send posts series (holding n samples) in one request.
func (w *Writer) send(ctx, parent context.Context, series []*seriesSamples, n int) (WriteStats, *WriteError) {
	var msg any
	if w.msgType == remote.WriteV2MessageType {
		msg = buildV2(series)
	} else {
		msg = buildV1(series)
	}
	ctx, ex := withExchange(ctx)
	rs, err := w.api.Write(ctx, w.msgType, msg)
	attempts, status, _ := ex.last()

	stats := WriteStats{Series: len(series), Attempts: attempts}
	if w.msgType == remote.WriteV2MessageType {
		// Only 2.0 receivers report what they stored.
		stats.Sent = min(rs.Samples, n)
	} else if err == nil {
		stats.Sent = n
	}
	stats.Failed = n - stats.Sent
	if err == nil && stats.Sent == 0 {
		err = fmt.Errorf("receiver accepted none of %d samples", n)
	}
	if err != nil {
		var retryable bool
		switch {
		case errors.Is(parent.Err(), context.Canceled):
			retryable = false
		case ctx.Err() != nil:
			retryable = true // timed out
		case status != 0:
			retryable = retryableStatus(status)
		default:
			retryable = true // no response: connection error
		}
		err = trimmedError{err}
		if receiverDisabled(status, err) {
			// Prometheus' own hint names a flag that newer versions lack.
			err = fmt.Errorf("HTTP status %d: %w", status, ErrReceiverDisabled)
		}
		return stats, &WriteError{
			StatusCode: status,
			Retryable:  retryable,
			Attempts:   attempts,
			RetryAfter: ex.lastRetryAfter(w.now()),
			Err:        fmt.Errorf("post %s: %w", w.url, err),
		}
	}
	return stats, nil
}

// request is one request of a split Write.
type request struct {
	series []*seriesSamples
	n      int // samples
	stats  WriteStats
	err    *WriteError
	sent   bool // attempted (false: its shard stopped before it)
}

// writeSharded splits series over w.shards shards by a hash of their labels,
// each shard's series into requests of at most w.maxSeries, and sends the
// shards concurrently, each one's requests in order. A shard stops at a
// request that failed and may succeed later: the requests it did not send
// then go to WriteError.Retry with the failed one. A request refused for good
// (4xx) is dropped and the shard goes on.
func (w *Writer) writeSharded(ctx, parent context.Context, series []*seriesSamples) (WriteStats, error) {
	shards := make([][]*request, w.shards)
	for _, s := range series {
		i := s.labels.Hash() % uint64(w.shards)
		reqs := shards[i]
		if len(reqs) == 0 || len(reqs[len(reqs)-1].series) == w.maxSeries {
			reqs = append(reqs, &request{})
			shards[i] = reqs
		}
		r := reqs[len(reqs)-1]
		r.series = append(r.series, s)
		r.n += len(s.points)
	}
	var wg sync.WaitGroup
	for _, reqs := range shards {
		wg.Go(func() {
			for _, r := range reqs {
				r.stats, r.err = w.send(ctx, parent, r.series, r.n)
				r.sent = true
				if r.err != nil && (r.err.Retryable || ctx.Err() != nil) {
					return
				}
			}
		})
	}
	wg.Wait()

	var stats WriteStats
	var first, firstRetryable *WriteError
	var retry []Sample
	failed, skipped, total := 0, 0, 0
	for _, reqs := range shards {
		for _, r := range reqs {
			total++
			if !r.sent {
				skipped++
				stats.add(WriteStats{Series: len(r.series), Failed: r.n})
				retry = appendSamples(retry, r.series)
				continue
			}
			stats.add(r.stats)
			if r.err == nil {
				continue
			}
			failed++
			if first == nil {
				first = r.err
			}
			if r.err.Retryable || (ctx.Err() != nil && r.err.StatusCode == 0) {
				// Timed out or canceled requests were not refused: they
				// may be stored by a later attempt.
				retry = appendSamples(retry, r.series)
				if firstRetryable == nil && r.err.Retryable {
					firstRetryable = r.err
				}
			}
		}
	}
	if first == nil {
		return stats, nil
	}
	rep := first
	if firstRetryable != nil {
		rep = firstRetryable
	}
	we := &WriteError{
		StatusCode: rep.StatusCode,
		Retryable:  firstRetryable != nil,
		Attempts:   stats.Attempts,
		Err:        fmt.Errorf("%d of %d requests failed, %d not sent: %w", failed, total, skipped, rep.Err),
		Retry:      retry,
	}
	for _, reqs := range shards {
		for _, r := range reqs {
			if r.err != nil {
				we.RetryAfter = max(we.RetryAfter, r.err.RetryAfter)
			}
		}
	}
	return stats, we
}

// appendSamples appends the samples of series to dst.
func appendSamples(dst []Sample, series []*seriesSamples) []Sample {
	for _, s := range series {
		for _, p := range s.points {
			dst = append(dst, Sample{Labels: s.labels, T: p.T, V: p.V})
		}
	}
	return dst
}

type seriesSamples struct {
	labels labels.Labels
	points []Point
}

// groupSamples validates samples and groups them by series, in the order
// each series first appears, each series' points sorted by time without
// duplicates. It returns the number of points left.
func groupSamples(samples []Sample, scheme model.ValidationScheme) ([]*seriesSamples, int, error) {
	byKey := map[string]*seriesSamples{}
	var out []*seriesSamples
	var key []byte
	for _, s := range samples {
		ls := s.Labels.WithoutEmpty()
		key = ls.Bytes(key[:0])
		g, ok := byKey[string(key)]
		if !ok {
			if err := validateLabels(ls, scheme); err != nil {
				return nil, 0, err
			}
			g = &seriesSamples{labels: ls}
			byKey[string(key)] = g
			out = append(out, g)
		}
		g.points = append(g.points, Point{T: s.T, V: s.V})
	}
	n := 0
	for _, g := range out {
		slices.SortStableFunc(g.points, func(a, b Point) int { return cmp.Compare(a.T, b.T) })
		for i := 1; i < len(g.points); i++ {
			a, b := g.points[i-1], g.points[i]
			if a.T == b.T && math.Float64bits(a.V) != math.Float64bits(b.V) {
				return nil, 0, fmt.Errorf("%w: series %s has values %g and %g at timestamp %d", ErrInvalidSample, g.labels, a.V, b.V, a.T)
			}
		}
		g.points = slices.CompactFunc(g.points, func(a, b Point) bool { return a.T == b.T })
		n += len(g.points)
	}
	return out, n, nil
}

func validateLabels(ls labels.Labels, scheme model.ValidationScheme) error {
	name := ls.Get(labels.MetricName)
	if name == "" {
		return fmt.Errorf("%w: series %s has no metric name", ErrInvalidSample, ls)
	}
	if !scheme.IsValidMetricName(name) {
		return fmt.Errorf("%w: series %s: invalid metric name %q", ErrInvalidSample, ls, name)
	}
	if dup, ok := ls.HasDuplicateLabelNames(); ok {
		return fmt.Errorf("%w: series %s: duplicate label name %q", ErrInvalidSample, ls, dup)
	}
	var err error
	ls.Range(func(l labels.Label) {
		switch {
		case err != nil, l.Name == labels.MetricName:
		case !scheme.IsValidLabelName(l.Name):
			err = fmt.Errorf("%w: series %s: invalid label name %q", ErrInvalidSample, ls, l.Name)
		case !utf8.ValidString(l.Value):
			err = fmt.Errorf("%w: series %s: label %q has a value that is not valid UTF-8", ErrInvalidSample, ls, l.Name)
		}
	})
	return err
}

func buildV1(series []*seriesSamples) *prompb.WriteRequest {
	req := &prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, 0, len(series))}
	for _, s := range series {
		ts := prompb.TimeSeries{
			Labels:  make([]prompb.Label, 0, s.labels.Len()),
			Samples: make([]prompb.Sample, 0, len(s.points)),
		}
		s.labels.Range(func(l labels.Label) {
			ts.Labels = append(ts.Labels, prompb.Label{Name: l.Name, Value: l.Value})
		})
		for _, p := range s.points {
			ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: p.T, Value: p.V})
		}
		req.Timeseries = append(req.Timeseries, ts)
	}
	return req
}

func buildV2(series []*seriesSamples) *writev2.Request {
	st := writev2.NewSymbolTable()
	req := &writev2.Request{Timeseries: make([]writev2.TimeSeries, 0, len(series))}
	for _, s := range series {
		ts := writev2.TimeSeries{
			LabelsRefs: st.SymbolizeLabels(s.labels, nil),
			Samples:    make([]writev2.Sample, 0, len(s.points)),
		}
		for _, p := range s.points {
			ts.Samples = append(ts.Samples, writev2.Sample{Timestamp: p.T, Value: p.V})
		}
		req.Timeseries = append(req.Timeseries, ts)
	}
	req.Symbols = st.Symbols()
	return req
}

// trimmedError drops the trailing newline that the remote-write library
// copies from the response body into its error text.
type trimmedError struct{ err error }

func (e trimmedError) Error() string { return strings.TrimSpace(e.err.Error()) }

func (e trimmedError) Unwrap() error { return e.err }
