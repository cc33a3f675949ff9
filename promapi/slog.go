package promapi

import (
	"context"
	"log/slog"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
)

// slogHandler forwards slog records to a go-kit logger, mapping the slog
// level to the go-kit level, so that libraries that want a *slog.Logger (the
// client_golang remote-write API) log through the process' one logger. Level
// filtering is left to the go-kit logger.
type slogHandler struct {
	logger log.Logger
	attrs  []any // key/value pairs from WithAttrs, already prefixed
	prefix string
}

func newSlogLogger(logger log.Logger) *slog.Logger {
	return slog.New(slogHandler{logger: logger})
}

func (h slogHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h slogHandler) Handle(_ context.Context, r slog.Record) error {
	kv := make([]any, 0, 2+len(h.attrs)+2*r.NumAttrs())
	kv = append(kv, "msg", r.Message)
	kv = append(kv, h.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		kv = appendAttr(kv, h.prefix, a)
		return true
	})
	var l log.Logger
	switch {
	case r.Level < slog.LevelInfo:
		l = level.Debug(h.logger)
	case r.Level < slog.LevelWarn:
		l = level.Info(h.logger)
	case r.Level < slog.LevelError:
		l = level.Warn(h.logger)
	default:
		l = level.Error(h.logger)
	}
	return l.Log(kv...)
}

func (h slogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	kv := append([]any(nil), h.attrs...)
	for _, a := range attrs {
		kv = appendAttr(kv, h.prefix, a)
	}
	return slogHandler{logger: h.logger, attrs: kv, prefix: h.prefix}
}

func (h slogHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return slogHandler{logger: h.logger, attrs: h.attrs, prefix: h.prefix + name + "."}
}

func appendAttr(kv []any, prefix string, a slog.Attr) []any {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return kv
	}
	if a.Value.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += a.Key + "."
		}
		for _, ga := range a.Value.Group() {
			kv = appendAttr(kv, p, ga)
		}
		return kv
	}
	return append(kv, prefix+a.Key, a.Value.Any())
}
