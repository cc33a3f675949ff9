package promapi

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/go-kit/log"
)

func TestSlogBridge(t *testing.T) {
	var buf bytes.Buffer
	l := newSlogLogger(log.NewLogfmtLogger(&buf)).With("component", "rw").WithGroup("req")
	tests := []struct {
		log  func()
		want string
	}{
		{func() { l.Debug("d", "a", 1) }, `level=debug msg=d component=rw req.a=1`},
		{func() { l.Info("i") }, `level=info msg=i component=rw`},
		{func() { l.Warn("w", slog.Group("g", "b", true)) }, `level=warn msg=w component=rw req.g.b=true`},
		{func() { l.Error("failed to send", "err", errors.New("boom")) }, `level=error msg="failed to send" component=rw req.err=boom`},
	}
	for _, tc := range tests {
		buf.Reset()
		tc.log()
		if got := strings.TrimSpace(buf.String()); got != tc.want {
			t.Errorf("got  %s\nwant %s", got, tc.want)
		}
	}
}
