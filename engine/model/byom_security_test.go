package model_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kedastral/kedastral/engine/model"
)

// TestBYOMLimits checks what a hostile or broken model server can do: it can
// not make Kedastral post the history to another host, nor hold a cycle past
// the timeout, nor make it read more than the size limit.
func TestBYOMLimits(t *testing.T) {
	const step = 5 * time.Minute
	h := series(step, 2*day, dailySine)
	good := `{"forecast":[1,2,3,4,5,6]}`

	var otherHits atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		otherHits.Add(1)
		fmt.Fprint(w, good)
	}))
	defer other.Close()

	// The bomb is compressed once, before the clock of the 300ms timeout
	// runs: compressing 8 MiB inside the handler took longer than that on a
	// busy machine.
	var bombBuf bytes.Buffer
	zw := gzip.NewWriter(&bombBuf)
	zw.Write([]byte(`{"forecast":[1,2,3,4,5,6],"pad":"`))
	zw.Write(bytes.Repeat([]byte("x"), 8<<20))
	zw.Write([]byte(`"}`))
	zw.Close()
	bomb := bombBuf.Bytes()

	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
		wantErr string // empty: the remote forecast is used
	}{
		{"redirect to another host refused", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, other.URL+"/steal", http.StatusTemporaryRedirect)
		}, "redirect to http://" + strings.TrimPrefix(other.URL, "http://") + " refused"},
		{"redirect on the same host followed", func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/v2" {
				http.Redirect(w, r, "/v2", http.StatusPermanentRedirect)
				return
			}
			fmt.Fprint(w, good)
		}, ""},
		{"redirect loop stopped", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, r.URL.Path+"x", http.StatusTemporaryRedirect)
		}, "stopped after 3 redirects"},
		{"body dripping past the timeout", func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(`{"forecast":[`))
			w.(http.Flusher).Flush()
			for i := 0; ; i++ {
				select {
				case <-r.Context().Done():
					return
				case <-time.After(20 * time.Millisecond):
				}
				fmt.Fprint(w, "1,")
				w.(http.Flusher).Flush()
			}
		}, "deadline exceeded"},
		{"gzip bomb bounded after decompression", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Encoding", "gzip")
			w.Write(bomb)
		}, "larger than 65536 bytes"},
		{"huge number", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, `{"forecast":[1e999,2,3,4,5,6]}`)
		}, "decode response"},
		{"deep nesting", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, `{"forecast":`+strings.Repeat("[", 20000)+strings.Repeat("]", 20000)+`}`)
		}, "decode response"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.handler)
			defer srv.Close()
			m := newBYOM(t, srv.URL, 0.5, 300*time.Millisecond)
			begin := time.Now()
			got, err := m.Forecast(context.Background(), h, 6)
			if d := time.Since(begin); d > 2*time.Second {
				t.Errorf("Forecast took %s with a 300ms timeout", d)
			}
			if err != nil {
				t.Fatalf("no fallback: %v", err)
			}
			last := m.(interface{ LastError() error }).LastError()
			if tc.wantErr == "" {
				if last != nil || got[0] < 1 {
					t.Errorf("got %v, %v; want the remote forecast", got, last)
				}
				return
			}
			if last == nil || !strings.Contains(last.Error(), tc.wantErr) {
				t.Errorf("LastError %v, want one containing %q", last, tc.wantErr)
			}
		})
	}
	if n := otherHits.Load(); n != 0 {
		t.Errorf("the other host was called %d times", n)
	}

	t.Run("the caller's client is not changed", func(t *testing.T) {
		c := &http.Client{}
		if _, err := model.New(model.BYOM, model.Config{Step: step, Quantile: 0.5, BYOM: model.BYOMConfig{URL: other.URL, Client: c}}); err != nil {
			t.Fatal(err)
		}
		if c.CheckRedirect != nil {
			t.Error("CheckRedirect set on the caller's client")
		}
	})
}

// FuzzBYOMResponse feeds arbitrary bytes to the BYOM response decoder: it
// never panics, and what it accepts has the asked length and finite values.
func FuzzBYOMResponse(f *testing.F) {
	for _, s := range []string{
		`{"forecast":[1,2,3]}`,
		`{"forecast":[1,2,3],"quantiles":{"0.85":[4,5,6]}}`,
		`{"forecast":[1,null,3]}`,
		`{"forecast":[1e308,-1e308,0]}`,
		`{"forecast":[1,2,3],"quantiles":{"0.85":[1]}}`,
		`{"forecast":"x"}`,
		`[]`, `null`, ``,
	} {
		f.Add([]byte(s), uint8(3))
	}
	f.Fuzz(func(t *testing.T, data []byte, n uint8) {
		point, q, err := model.DecodeBYOMResponse(data, int(n), 0.85)
		if err != nil {
			return
		}
		if len(point) != int(n) || (q != nil && len(q) != int(n)) {
			t.Fatalf("accepted %d/%d values for %d steps", len(point), len(q), n)
		}
		for _, v := range append(point, q...) {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				t.Fatalf("accepted a value that is not finite: %v", v)
			}
		}
	})
}
