package model

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// BYOM is the name of the bring-your-own-model model: it POSTs the history to
// a URL and uses the forecast that comes back. The contract (docs/backtest.md):
//
//	request:  {"timestamps": [unix seconds...], "values": [number or null...],
//	           "step": seconds, "horizon": steps, "quantiles": [q]}
//	response: {"forecast": [horizon numbers], "quantiles": {"0.85": [horizon numbers]}}
//
// The forecast is for the horizon steps after the last timestamp. When the
// response carries the policy's quantile it is used as is; otherwise the
// point forecast gets a conformal bound like the built-in models. A failed
// request, a timeout, a response over the size limit, or one that is not
// valid (wrong length, a value that is not a finite number) falls back to the
// seasonal model for that cycle; LastError tells why.
const BYOM = "byom"

// BYOMConfig configures the byom model.
type BYOMConfig struct {
	// URL receives the POST.
	URL string
	// Timeout bounds one request; default 5s.
	Timeout time.Duration
	// MaxResponseBytes bounds the response body; default 4 MiB.
	MaxResponseBytes int64
	// Client sends the requests; default a plain http.Client. Whichever
	// client, a redirect is followed only to the configured URL's scheme
	// and host (at most 3 of them), so the history is posted nowhere else.
	Client *http.Client
}

// maxBYOMRedirects bounds the redirects a BYOM request follows.
const maxBYOMRedirects = 3

// sameOriginRedirects refuses a redirect to another scheme or host than the
// configured URL's.
func sameOriginRedirects(req *http.Request, via []*http.Request) error {
	if len(via) >= maxBYOMRedirects {
		return fmt.Errorf("stopped after %d redirects", len(via))
	}
	orig := via[0].URL
	if req.URL.Scheme != orig.Scheme || req.URL.Host != orig.Host {
		return fmt.Errorf("redirect to %s://%s refused: only %s://%s is called", req.URL.Scheme, req.URL.Host, orig.Scheme, orig.Host)
	}
	return nil
}

// byomRequest and byomResponse are the wire format.
type byomRequest struct {
	Timestamps []int64    `json:"timestamps"`
	Values     []*float64 `json:"values"`
	Step       float64    `json:"step"`
	Horizon    int        `json:"horizon"`
	Quantiles  []float64  `json:"quantiles"`
}

type byomResponse struct {
	Forecast  []*float64            `json:"forecast"`
	Quantiles map[string][]*float64 `json:"quantiles,omitempty"`
}

func init() {
	Register(BYOM, func(cfg Config) (Model, error) {
		if err := cfg.check(BYOM); err != nil {
			return nil, err
		}
		if cfg.BYOM.URL == "" {
			return nil, errors.New("byom model: no URL")
		}
		b := &byom{cfg: cfg}
		if b.cfg.BYOM.Timeout <= 0 {
			b.cfg.BYOM.Timeout = 5 * time.Second
		}
		if b.cfg.BYOM.MaxResponseBytes <= 0 {
			b.cfg.BYOM.MaxResponseBytes = 4 << 20
		}
		client := &http.Client{}
		if b.cfg.BYOM.Client != nil {
			c := *b.cfg.BYOM.Client // a copy: the caller's client is left alone
			client = &c
		}
		client.CheckRedirect = sameOriginRedirects
		b.cfg.BYOM.Client = client
		p := defaultBaselineParams
		p.noLevel = true
		fb, err := newBaseline(cfg, p)
		if err != nil {
			return nil, err
		}
		b.fallback = fb
		b.point = NewConformal(cfg, &byomPoint{b: b})
		return b, nil
	})
}

type byom struct {
	cfg      Config
	fallback Model
	point    Model // the remote point forecast with a conformal bound
	mu       sync.Mutex
	lastErr  error
	quantile []float64 // the remote quantile forecast of the call in progress
}

// LastError is the error of the last request, nil when it succeeded.
func (b *byom) LastError() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lastErr
}

// Forecast implements Model.
func (b *byom) Forecast(ctx context.Context, h History, n int) ([]float64, error) {
	b.quantile = nil
	out, err := b.point.Forecast(ctx, h, n)
	b.mu.Lock()
	b.lastErr = err
	b.mu.Unlock()
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return b.fallback.Forecast(ctx, h, n)
	}
	if b.quantile != nil {
		return b.quantile, nil
	}
	return out, nil
}

// byomPoint asks the remote model; it remembers the quantile forecast when
// the response has one.
type byomPoint struct{ b *byom }

func (p *byomPoint) Forecast(ctx context.Context, h History, n int) ([]float64, error) {
	b := p.b
	req := byomRequest{Step: h.Step.Seconds(), Horizon: n, Quantiles: []float64{b.cfg.Quantile}}
	req.Timestamps = make([]int64, len(h.Values))
	req.Values = make([]*float64, len(h.Values))
	for i, v := range h.Values {
		req.Timestamps[i] = h.Start.Add(time.Duration(i) * h.Step).Unix()
		if finite(v) {
			req.Values[i] = &h.Values[i]
		}
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("byom model: encode request: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.BYOM.Timeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, b.cfg.BYOM.URL, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("byom model: %w", err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := b.cfg.BYOM.Client.Do(hreq)
	if err != nil {
		return nil, fmt.Errorf("byom model: post %s: %w", b.cfg.BYOM.URL, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, b.cfg.BYOM.MaxResponseBytes+1))
	if err != nil {
		return nil, fmt.Errorf("byom model: read response: %w", err)
	}
	if int64(len(data)) > b.cfg.BYOM.MaxResponseBytes {
		return nil, fmt.Errorf("byom model: response larger than %d bytes", b.cfg.BYOM.MaxResponseBytes)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("byom model: %s answered %s: %.200q", b.cfg.BYOM.URL, resp.Status, data)
	}
	point, quantile, err := decodeBYOMResponse(data, n, b.cfg.Quantile)
	if err != nil {
		return nil, err
	}
	b.quantile = quantile
	return point, nil
}

// decodeBYOMResponse decodes a BYOM response for n steps: the point forecast
// and, when the response has quantile q, that forecast (nil otherwise). Every
// value is a finite number.
func decodeBYOMResponse(data []byte, n int, q float64) (point, quantile []float64, err error) {
	var r byomResponse
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, nil, fmt.Errorf("byom model: decode response: %w", err)
	}
	if point, err = checkForecast("forecast", r.Forecast, n); err != nil {
		return nil, nil, err
	}
	qs := strconv.FormatFloat(q, 'f', -1, 64)
	if qf, ok := r.Quantiles[qs]; ok {
		if quantile, err = checkForecast("quantiles."+qs, qf, n); err != nil {
			return nil, nil, err
		}
	}
	return point, quantile, nil
}

func checkForecast(what string, f []*float64, n int) ([]float64, error) {
	if len(f) != n {
		return nil, fmt.Errorf("byom model: response %s has %d values, want %d", what, len(f), n)
	}
	out := make([]float64, n)
	for i, v := range f {
		if v == nil || math.IsNaN(*v) || math.IsInf(*v, 0) {
			return nil, fmt.Errorf("byom model: response %s[%d] is not a number", what, i)
		}
		out[i] = *v
	}
	return out, nil
}

// SetQuantile implements Leveled: the remote model is asked for q, and the
// conformal bound of its point forecast and the fallback move to it.
func (b *byom) SetQuantile(q float64) {
	b.cfg.Quantile = q
	SetQuantile(b.point, q)
	SetQuantile(b.fallback, q)
}
