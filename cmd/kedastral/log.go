package main

import (
	"fmt"
	"io"

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
