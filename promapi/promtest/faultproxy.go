package promtest

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
)

// Fault is what a FaultProxy does to one request instead of forwarding it.
type Fault struct {
	// Status, when set, answers the request with this status and forwards
	// nothing.
	Status int
	// RetryAfter is sent as the Retry-After header with Status.
	RetryAfter string
	// Delay, with Status 0, forwards the request and holds the answer this
	// long, so that a client with a shorter timeout gives up although the
	// server stored the samples.
	Delay time.Duration
}

// WrittenSample is one sample of a remote-write (1.0) request the proxy saw.
type WrittenSample struct {
	Labels labels.Labels
	T      int64
	V      float64
	// Status is what the proxy answered the request with (for a forwarded
	// request, the server's answer; 0 if the server could not be reached).
	Status int
}

// FaultProxy is an HTTP proxy for remote write in front of a real server
// that injects faults: queued ones, one per request, or an outage that
// answers every request with one status until it is cleared. It records the
// samples of every request, decoded from Remote Write 1.0, with its answer.
type FaultProxy struct {
	target string
	url    string
	client *http.Client

	mu     sync.Mutex
	faults []Fault
	seen   []WrittenSample

	down     atomic.Int32
	requests atomic.Int32
}

// NewFaultProxy starts a proxy that forwards to target (a full remote-write
// URL) and stops it when the test ends.
func NewFaultProxy(t testing.TB, target string) *FaultProxy {
	p := &FaultProxy{target: target, client: &http.Client{Transport: &http.Transport{}}}
	srv := httptest.NewServer(p)
	t.Cleanup(func() {
		srv.Close()
		p.client.CloseIdleConnections()
	})
	p.url = srv.URL + "/api/v1/write"
	return p
}

// URL is the proxy's remote-write URL.
func (p *FaultProxy) URL() string { return p.url }

// Inject queues faults, each for one request.
func (p *FaultProxy) Inject(fs ...Fault) {
	p.mu.Lock()
	p.faults = append(p.faults, fs...)
	p.mu.Unlock()
}

// Down answers every request with status (cycling through status, status+1,
// status+2, e.g. 500, 501, 502) until Down(0).
func (p *FaultProxy) Down(status int) { p.down.Store(int32(status)) }

// PendingFaults returns how many queued faults have not been used yet.
func (p *FaultProxy) PendingFaults() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.faults)
}

// Requests returns the number of requests received.
func (p *FaultProxy) Requests() int { return int(p.requests.Load()) }

// Samples returns the samples of every request so far, in arrival order.
func (p *FaultProxy) Samples() []WrittenSample {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]WrittenSample(nil), p.seen...)
}

func (p *FaultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := p.requests.Add(1)
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	var f Fault
	if st := int(p.down.Load()); st != 0 {
		f.Status = st + int(n%3)
	} else {
		p.mu.Lock()
		if len(p.faults) > 0 {
			f, p.faults = p.faults[0], p.faults[1:]
		}
		p.mu.Unlock()
	}
	if f.Status != 0 {
		p.record(body, f.Status)
		if f.RetryAfter != "" {
			w.Header().Set("Retry-After", f.RetryAfter)
		}
		http.Error(w, "injected fault", f.Status)
		return
	}
	req, err := http.NewRequestWithContext(context.WithoutCancel(r.Context()), http.MethodPost, p.target, bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	req.Header = r.Header.Clone()
	resp, err := p.client.Do(req)
	if err != nil {
		p.record(body, 0)
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	p.record(body, resp.StatusCode)
	rb, _ := io.ReadAll(resp.Body)
	if f.Delay > 0 {
		select {
		case <-time.After(f.Delay):
		case <-r.Context().Done():
			return
		}
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(rb)
}

func (p *FaultProxy) record(body []byte, status int) {
	raw, err := snappy.Decode(nil, body)
	if err != nil {
		return
	}
	var req prompb.WriteRequest
	if err := req.Unmarshal(raw); err != nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, ts := range req.Timeseries {
		b := labels.NewScratchBuilder(len(ts.Labels))
		for _, l := range ts.Labels {
			b.Add(l.Name, l.Value)
		}
		b.Sort()
		ls := b.Labels()
		for _, s := range ts.Samples {
			p.seen = append(p.seen, WrittenSample{Labels: ls, T: s.Timestamp, V: s.Value, Status: status})
		}
	}
}
