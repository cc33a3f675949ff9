// Package testutil holds the helpers Kedastral's tests share: a log buffer
// a child process and the test can use at once, polling until a condition
// holds, free loopback addresses, a constant app_load history for a real
// Prometheus, and the kedastral binary built once per test process and run
// as a child process that stops with the test.
package testutil

import (
	"bytes"
	"sync"
	"testing"
	"time"

	"github.com/kedastral/kedastral/promapi/promtest"
)

// Buffer is a bytes.Buffer safe for concurrent use, such as a child
// process writing its log while the test reads it.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// PollInterval is how long Eventually sleeps between two calls of f.
const PollInterval = 200 * time.Millisecond

// Eventually calls f every PollInterval until it reports true and returns
// its value then. When limit passes first it fails the test, naming what it
// waited for and f's last value.
func Eventually[T any](tb testing.TB, limit time.Duration, what string, f func() (T, bool)) T {
	tb.Helper()
	deadline := time.Now().Add(limit)
	for {
		v, ok := f()
		if ok {
			return v
		}
		if time.Now().After(deadline) {
			tb.Fatalf("no %s within %s; last: %+v", what, limit, v)
		}
		time.Sleep(PollInterval)
	}
}

// FreeAddr is a loopback address for a server the test starts, picked
// below the ephemeral range (promtest.FreeAddr) so that another process's
// bind does not take it.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	a, err := promtest.FreeAddr()
	if err != nil {
		tb.Fatal(err)
	}
	return a
}
