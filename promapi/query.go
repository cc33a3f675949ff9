package promapi

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
)

const (
	// DefaultQueryTimeout bounds one HTTP request of a query.
	DefaultQueryTimeout = time.Minute
	// DefaultMaxPointsPerRequest is Prometheus' limit of points per series in
	// one query_range request.
	DefaultMaxPointsPerRequest = 11000
)

// ClientConfig configures a query Client.
type ClientConfig struct {
	// URL is the Prometheus base URL, e.g. http://prometheus:9090 (with any
	// path prefix, without /api/v1).
	URL string
	// HTTPClientConfig configures auth, TLS and proxy as in prometheus.yml.
	// The zero value means config.DefaultHTTPClientConfig.
	HTTPClientConfig config.HTTPClientConfig
	// Timeout bounds each HTTP request (each chunk of a range query).
	// Default DefaultQueryTimeout.
	Timeout time.Duration
	// MaxPointsPerRequest is the most points per series one query_range
	// request may ask for; longer ranges are split. Default
	// DefaultMaxPointsPerRequest.
	MaxPointsPerRequest int
	// UserAgent is sent with every request. Default "kedastral".
	UserAgent string
	// Logger receives the warnings Prometheus returns with a result (at warn
	// level, with the query) and its infos (at debug level). Default: none.
	Logger log.Logger
	// ObserveRequest, when not nil, is called after every HTTP request with
	// the endpoint ("query" or "query_range"), how long the request took and
	// its error (nil on success). A chunked QueryRange calls it once per chunk.
	ObserveRequest func(endpoint string, d time.Duration, err error)
	// Limiter, when not nil, bounds the requests in flight of every client
	// sharing it; a request waits for a slot before its Timeout starts.
	Limiter *Limiter
}

// Client queries the Prometheus HTTP API. It is safe for concurrent use.
type Client struct {
	api       v1.API
	http      *http.Client
	timeout   time.Duration
	maxPoints int
	logger    log.Logger
	observe   func(string, time.Duration, error)
	limiter   *Limiter
}

// Point is one sample of a Series: T in milliseconds since the epoch.
type Point struct {
	T int64
	V float64
}

// Series is one series of a range query result.
type Series struct {
	// Labels of the series, without __name__.
	Labels labels.Labels
	// Points in increasing time order, one per evaluation step that had a value.
	Points []Point
}

// NewClient returns a Client for cfg with defaults filled in.
func NewClient(cfg ClientConfig) (*Client, error) {
	u, err := parseURL("prometheus", cfg.URL)
	if err != nil {
		return nil, err
	}
	if cfg.Timeout < 0 || cfg.MaxPointsPerRequest < 0 {
		return nil, errors.New("timeout and max points per request must not be negative")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultQueryTimeout
	}
	if cfg.MaxPointsPerRequest == 0 {
		cfg.MaxPointsPerRequest = DefaultMaxPointsPerRequest
	}
	if cfg.Logger == nil {
		cfg.Logger = log.NewNopLogger()
	}
	hc, err := newHTTPClient(u, cfg.HTTPClientConfig, cfg.UserAgent)
	if err != nil {
		return nil, err
	}
	ac, err := api.NewClient(api.Config{Address: cfg.URL, Client: hc})
	if err != nil {
		return nil, fmt.Errorf("prometheus URL %q: %w", u.Redacted(), err)
	}
	return &Client{
		api:       v1.NewAPI(ac),
		http:      hc,
		timeout:   cfg.Timeout,
		maxPoints: cfg.MaxPointsPerRequest,
		logger:    cfg.Logger,
		observe:   cfg.ObserveRequest,
		limiter:   cfg.Limiter,
	}, nil
}

// Close releases idle connections. The Client stays usable.
func (c *Client) Close() {
	c.http.CloseIdleConnections()
}

// QueryRange evaluates query at start, start+step, … up to end and returns
// the result series sorted by labels, each with its points in time order.
//
// The range is split into requests of at most MaxPointsPerRequest steps each,
// run one after the other; every chunk starts on the grid start+k*step, so the
// result is the one a single request would return, with no step repeated or
// missing at chunk boundaries. Time stamps are truncated to milliseconds and
// step must be a whole number of milliseconds. A scalar result becomes one
// series with empty labels; native histogram samples are ignored. The first
// failing chunk fails the call: no partial result is returned.
func (c *Client) QueryRange(ctx context.Context, query string, start, end time.Time, step time.Duration) ([]Series, error) {
	series, err := c.queryRange(ctx, query, start, end, step)
	if err != nil {
		return nil, fmt.Errorf("query range %q: %w", query, err)
	}
	return series, nil
}

func (c *Client) queryRange(ctx context.Context, query string, start, end time.Time, step time.Duration) ([]Series, error) {
	if step <= 0 || step%time.Millisecond != 0 {
		return nil, fmt.Errorf("step %s must be a positive whole number of milliseconds", step)
	}
	startMs, endMs, stepMs := start.UnixMilli(), end.UnixMilli(), step.Milliseconds()
	if endMs < startMs {
		return nil, fmt.Errorf("end %s before start %s", end.Format(time.RFC3339Nano), start.Format(time.RFC3339Nano))
	}

	merged := map[string]*Series{}
	add := func(ls labels.Labels, pairs []model.SamplePair) {
		if len(pairs) == 0 {
			return
		}
		key := ls.String()
		s, ok := merged[key]
		if !ok {
			s = &Series{Labels: ls}
			merged[key] = s
		}
		for _, p := range pairs {
			s.Points = append(s.Points, Point{T: int64(p.Timestamp), V: float64(p.Value)})
		}
	}

	chunkSpan := int64(c.maxPoints-1) * stepMs // from first to last point of a chunk
	for from := startMs; from <= endMs; {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		to := min(from+chunkSpan, endMs)
		r := v1.Range{Start: time.UnixMilli(from), End: time.UnixMilli(to), Step: step}
		val, err := c.do(ctx, "query_range", query, func(ctx context.Context) (model.Value, v1.Warnings, v1.Infos, error) {
			return c.api.QueryRange(ctx, query, r)
		})
		if err != nil {
			return nil, err
		}
		switch v := val.(type) {
		case nil:
		case model.Matrix:
			for _, ss := range v {
				add(labelsFromMetric(ss.Metric), ss.Values)
			}
		case *model.Scalar:
			add(labels.EmptyLabels(), []model.SamplePair{{Timestamp: v.Timestamp, Value: v.Value}})
		default:
			return nil, fmt.Errorf("result type %s, want matrix", val.Type())
		}
		from = to + stepMs
	}

	out := make([]Series, 0, len(merged))
	for _, s := range merged {
		slices.SortStableFunc(s.Points, func(a, b Point) int { return cmp.Compare(a.T, b.T) })
		s.Points = slices.CompactFunc(s.Points, func(a, b Point) bool { return a.T == b.T })
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b Series) int { return labels.Compare(a.Labels, b.Labels) })
	return out, nil
}

// Query evaluates query at ts (the server's current time when ts is zero) and
// returns the samples of the resulting vector sorted by labels, without
// __name__ as in QueryRange. A scalar result is one sample with empty labels;
// native histogram samples are ignored.
func (c *Client) Query(ctx context.Context, query string, ts time.Time) ([]Sample, error) {
	val, err := c.do(ctx, "query", query, func(ctx context.Context) (model.Value, v1.Warnings, v1.Infos, error) {
		return c.api.Query(ctx, query, ts)
	})
	if err != nil {
		return nil, fmt.Errorf("query %q: %w", query, err)
	}
	var out []Sample
	switch v := val.(type) {
	case nil:
	case model.Vector:
		out = make([]Sample, 0, len(v))
		for _, s := range v {
			if s.Histogram != nil {
				continue
			}
			out = append(out, Sample{Labels: labelsFromMetric(s.Metric), T: int64(s.Timestamp), V: float64(s.Value)})
		}
	case *model.Scalar:
		out = []Sample{{Labels: labels.EmptyLabels(), T: int64(v.Timestamp), V: float64(v.Value)}}
	default:
		return nil, fmt.Errorf("query %q: result type %s, want vector or scalar", query, val.Type())
	}
	slices.SortFunc(out, func(a, b Sample) int { return labels.Compare(a.Labels, b.Labels) })
	return out, nil
}

// do runs one API request (in a slot of the limiter, if any) bounded by the
// client's timeout, reports it to the observer, logs warnings and attaches
// the HTTP status to API errors.
func (c *Client) do(ctx context.Context, endpoint, query string, call func(context.Context) (model.Value, v1.Warnings, v1.Infos, error)) (model.Value, error) {
	if err := c.limiter.acquire(ctx); err != nil {
		return nil, err
	}
	defer c.limiter.release()
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	ctx, ex := withExchange(ctx)

	begin := time.Now()
	val, warnings, infos, err := call(ctx)
	if c.observe != nil {
		c.observe(endpoint, time.Since(begin), err)
	}
	for _, w := range warnings {
		level.Warn(c.logger).Log("msg", "query returned a warning", "query", query, "warning", w)
	}
	for _, i := range infos {
		level.Debug(c.logger).Log("msg", "query returned an info", "query", query, "info", i)
	}
	if err != nil {
		if _, isAPI := errors.AsType[*v1.Error](err); isAPI {
			if _, code, _ := ex.last(); code != 0 {
				err = &StatusError{StatusCode: code, Err: err}
			}
		}
		return nil, err
	}
	return val, nil
}

func labelsFromMetric(m model.Metric) labels.Labels {
	b := labels.NewScratchBuilder(len(m))
	for name, value := range m {
		if name == model.MetricNameLabel {
			continue
		}
		b.Add(string(name), string(value))
	}
	b.Sort()
	return b.Labels()
}
