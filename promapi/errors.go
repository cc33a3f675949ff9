package promapi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
)

// ErrInvalidSample is wrapped by the error Writer.Write returns for a sample
// that Prometheus would reject (missing or invalid metric name, invalid label
// name or value, conflicting values for one timestamp). Nothing is sent then.
var ErrInvalidSample = errors.New("invalid sample")

// ErrReceiverDisabled is wrapped by the WriteError of a write that the
// server refused because its remote-write receiver is off: Prometheus
// answers 404 then, with a hint that names a flag of old versions.
var ErrReceiverDisabled = errors.New("the server does not accept remote write: " +
	"start Prometheus with --web.enable-remote-write-receiver " +
	"(kube-prometheus-stack: prometheus.prometheusSpec.enableRemoteWriteReceiver: true), " +
	"or point the remote-write URL at a receiver (Mimir, Thanos Receive, VictoriaMetrics)")

// receiverDisabled reports whether a remote-write answer is Prometheus'
// "receiver not enabled" (2.x names --enable-feature=remote-write-receiver,
// 3.x --web.enable-remote-write-receiver).
func receiverDisabled(status int, err error) bool {
	return status == http.StatusNotFound && err != nil &&
		strings.Contains(err.Error(), "remote write receiver needs to be enabled")
}

// StatusError records the HTTP status code of the response a query failed
// with. It wraps the error client_golang returned (a *v1.Error), so
// errors.As(err, new(*v1.Error)) keeps working.
type StatusError struct {
	StatusCode int
	Err        error
}

func (e *StatusError) Error() string { return e.Err.Error() }

func (e *StatusError) Unwrap() error { return e.Err }

// WriteError is every error Writer.Write returns: the request failed after
// all attempts, or was not sent because a sample is invalid (Attempts is 0
// then and Err wraps ErrInvalidSample).
type WriteError struct {
	// StatusCode is the HTTP status of the last response, 0 if no response
	// was received (connection error, timeout).
	StatusCode int
	// Retryable tells whether sending the same request later may succeed:
	// connection errors, timeouts, 5xx and 429 are retryable; other 4xx are
	// not (Prometheus answers 400 for out-of-order or out-of-bounds samples).
	Retryable bool
	// Attempts is the number of HTTP requests made, retries included.
	Attempts int
	// RetryAfter is the wait the last response asked for with a
	// Retry-After header (429, 503), 0 if none.
	RetryAfter time.Duration
	Err        error
	// Retry, after a Write split into several requests, holds the samples
	// of the requests that were not stored but may be by a later attempt
	// (those that failed with a retryable error or were not sent); the
	// other samples were stored or refused for good. It is nil when the
	// Write was one request: retry all of it then, if Retryable.
	Retry []Sample
}

func (e *WriteError) Error() string {
	return fmt.Sprintf("remote write (attempts=%d, retryable=%t): %v", e.Attempts, e.Retryable, e.Err)
}

func (e *WriteError) Unwrap() error { return e.Err }

// IsRetryable reports whether err is a transient failure worth retrying later:
// a connection error, a timeout (v1.ErrTimeout, an expired deadline), a query
// the server canceled (v1.ErrCanceled), an HTTP 5xx or 429, or a *WriteError
// marked retryable. A bad query (v1.ErrBadData), a failed evaluation (v1.ErrExec),
// other 4xx, invalid samples, TLS verification failures and a canceled context
// are not.
func IsRetryable(err error) bool {
	if err == nil {
		return false
	}
	if we, ok := errors.AsType[*WriteError](err); ok {
		return we.Retryable
	}
	if errors.Is(err, ErrInvalidSample) || errors.Is(err, context.Canceled) {
		return false
	}
	if ae, ok := errors.AsType[*v1.Error](err); ok {
		switch ae.Type {
		case v1.ErrServer, v1.ErrTimeout, v1.ErrCanceled:
			return true
		case v1.ErrClient:
			se, ok := errors.AsType[*StatusError](err)
			return ok && se.StatusCode == http.StatusTooManyRequests
		default:
			return false
		}
	}
	if se, ok := errors.AsType[*StatusError](err); ok {
		return retryableStatus(se.StatusCode)
	}
	if _, ok := errors.AsType[*tls.CertificateVerificationError](err); ok {
		return false
	}
	if _, ok := errors.AsType[x509.UnknownAuthorityError](err); ok {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) {
		return true
	}
	if _, ok := errors.AsType[*url.Error](err); ok {
		// client.Do failed: no (complete) HTTP response, i.e. a connection problem.
		return true
	}
	if _, ok := errors.AsType[net.Error](err); ok {
		return true
	}
	return false
}

func retryableStatus(code int) bool {
	return code/100 == 5 || code == http.StatusTooManyRequests
}
