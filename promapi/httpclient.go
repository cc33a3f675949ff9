package promapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/config"
)

const defaultUserAgent = "kedastral"

// parseURL accepts an absolute http(s) URL. Errors name the URL with any
// password redacted.
func parseURL(what, raw string) (*url.URL, error) {
	if raw == "" {
		return nil, fmt.Errorf("%s URL is empty", what)
	}
	u, err := url.Parse(raw)
	if err != nil {
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err // its message repeats the URL, password included
		}
		return nil, fmt.Errorf("%s URL %q: %w", what, redactRaw(raw), err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%s URL %q: scheme must be http or https", what, u.Redacted())
	}
	if u.Host == "" {
		return nil, fmt.Errorf("%s URL %q: no host", what, u.Redacted())
	}
	return u, nil
}

// redactRaw hides the password of a URL that url.Parse rejected.
func redactRaw(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return raw
	}
	authority, path, _ := strings.Cut(rest, "/")
	at := strings.LastIndex(authority, "@")
	if at < 0 {
		return raw
	}
	user, _, hasPassword := strings.Cut(authority[:at], ":")
	if !hasPassword {
		return raw
	}
	out := scheme + "://" + user + ":xxxxx" + authority[at:]
	if len(rest) > len(authority) {
		out += "/" + path
	}
	return out
}

// newHTTPClient builds the HTTP client the way Prometheus builds its own
// clients from an HTTPClientConfig (auth, TLS, proxy). A zero config means
// config.DefaultHTTPClientConfig (follow redirects, HTTP/2).
func newHTTPClient(u *url.URL, hc config.HTTPClientConfig, userAgent string) (*http.Client, error) {
	if reflect.ValueOf(hc).IsZero() {
		hc = config.DefaultHTTPClientConfig
	}
	if err := hc.Validate(); err != nil {
		return nil, fmt.Errorf("http client config for %q: %w", u.Redacted(), err)
	}
	if userAgent == "" {
		userAgent = defaultUserAgent
	}
	client, err := config.NewClientFromConfig(hc, "kedastral", config.WithUserAgent(userAgent))
	if err != nil {
		return nil, fmt.Errorf("http client for %q: %w", u.Redacted(), err)
	}
	if client.Transport == nil {
		return nil, errors.New("http client without transport")
	}
	client.Transport = recordingTransport{next: client.Transport}
	return client, nil
}

// exchange records what happened to the HTTP requests of one operation (one
// query chunk, one Write with its retries). It travels in the request context
// so that one Client or Writer can serve concurrent callers.
type exchange struct {
	mu         sync.Mutex
	attempts   int
	statusCode int
	retryAfter string // Retry-After header of the last response
	err        error
}

type exchangeKey struct{}

func withExchange(ctx context.Context) (context.Context, *exchange) {
	ex := &exchange{}
	return context.WithValue(ctx, exchangeKey{}, ex), ex
}

// lastRetryAfter returns the Retry-After of the last response (seconds or an
// HTTP date), 0 when it had none or an invalid one.
func (ex *exchange) lastRetryAfter(now time.Time) time.Duration {
	ex.mu.Lock()
	v := ex.retryAfter
	ex.mu.Unlock()
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil {
		return max(time.Duration(secs)*time.Second, 0)
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}

func (ex *exchange) last() (attempts, statusCode int, err error) {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	return ex.attempts, ex.statusCode, ex.err
}

// recordingTransport notes the status code (or transport error) of every
// request whose context carries an *exchange.
type recordingTransport struct {
	next http.RoundTripper
}

func (t recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if ex, ok := req.Context().Value(exchangeKey{}).(*exchange); ok {
		ex.mu.Lock()
		ex.attempts++
		ex.statusCode, ex.err, ex.retryAfter = 0, err, ""
		if resp != nil {
			ex.statusCode = resp.StatusCode
			ex.retryAfter = resp.Header.Get("Retry-After")
		}
		ex.mu.Unlock()
	}
	return resp, err
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach the
// wrapped transport.
func (t recordingTransport) CloseIdleConnections() {
	if ci, ok := t.next.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}
