package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
)

// LogConfig holds the --log.* flags.
type LogConfig struct {
	Level  string `name:"level" default:"info" enum:"debug,info,warn,error" help:"Only log messages with the given severity or above (${enum})."`
	Format string `name:"format" default:"logfmt" enum:"logfmt,json" help:"Output format of log messages (${enum})."`
}

// New builds the logger: level-filtered, with ts and caller.
func (c *LogConfig) New(w io.Writer) (log.Logger, error) {
	w = log.NewSyncWriter(w)
	var l log.Logger
	switch c.Format {
	case "json":
		l = log.NewJSONLogger(w)
	case "logfmt", "":
		l = log.NewLogfmtLogger(w)
	default:
		return nil, fmt.Errorf("unknown log format %q", c.Format)
	}
	var opt level.Option
	switch c.Level {
	case "debug":
		opt = level.AllowDebug()
	case "info", "":
		opt = level.AllowInfo()
	case "warn":
		opt = level.AllowWarn()
	case "error":
		opt = level.AllowError()
	default:
		return nil, fmt.Errorf("unknown log level %q", c.Level)
	}
	l = level.NewFilter(l, opt)
	return log.With(l, "ts", log.DefaultTimestampUTC, "caller", log.DefaultCaller), nil
}

// slogHandler hands slog records (of libraries that log with slog, such as
// exporter-toolkit's web server) to the go-kit logger, so they share its
// level filter and format.
type slogHandler struct {
	logger log.Logger
	attrs  []any
	group  string
}

// newSlog returns an slog.Logger that logs through logger.
func newSlog(logger log.Logger) *slog.Logger { return slog.New(&slogHandler{logger: logger}) }

func (h *slogHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *slogHandler) Handle(_ context.Context, r slog.Record) error {
	kv := append([]any{"msg", r.Message}, h.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		kv = append(kv, h.key(a.Key), a.Value.Resolve().Any())
		return true
	})
	var l log.Logger
	switch {
	case r.Level >= slog.LevelError:
		l = level.Error(h.logger)
	case r.Level >= slog.LevelWarn:
		l = level.Warn(h.logger)
	case r.Level >= slog.LevelInfo:
		l = level.Info(h.logger)
	default:
		l = level.Debug(h.logger)
	}
	return l.Log(kv...)
}

func (h *slogHandler) key(k string) string {
	if h.group == "" {
		return k
	}
	return h.group + "." + k
}

func (h *slogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.attrs = slices.Clone(h.attrs)
	for _, a := range attrs {
		c.attrs = append(c.attrs, h.key(a.Key), a.Value.Resolve().Any())
	}
	return &c
}

func (h *slogHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.group = h.key(name)
	return &c
}
