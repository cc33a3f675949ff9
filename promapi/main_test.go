package promapi_test

import (
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kedastral/kedastral/promapi"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func newClient(t *testing.T, cfg promapi.ClientConfig) *promapi.Client {
	t.Helper()
	c, err := promapi.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func newWriter(t *testing.T, cfg promapi.WriterConfig) *promapi.Writer {
	t.Helper()
	w, err := promapi.NewWriter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	return w
}

// closedURL returns the URL of a loopback port nobody listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

// minute returns the current time truncated to the minute, minus ago.
func minute(ago time.Duration) time.Time {
	return time.Now().Add(-ago).Truncate(time.Minute)
}
