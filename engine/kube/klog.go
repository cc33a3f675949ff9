package kube

import (
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/go-logr/logr"
	"k8s.io/klog/v2"
)

// SetKlogLogger sends what client-go logs through klog (leader election,
// watch errors) to logger, in the forecaster's format: errors at error
// level, the rest at debug level.
func SetKlogLogger(logger log.Logger) {
	klog.SetLogger(logr.New(&klogSink{logger: logger}))
}

// klogSink is a logr.LogSink over a go-kit logger.
type klogSink struct {
	logger log.Logger
	name   string
	kv     []any
}

func (s *klogSink) Init(logr.RuntimeInfo) {}

// Enabled keeps klog's verbose levels (V(2) and up: request traces) out.
func (s *klogSink) Enabled(lvl int) bool { return lvl <= 1 }

func (s *klogSink) log(l log.Logger, msg string, kv []any) {
	args := []any{"msg", msg}
	if s.name != "" {
		args = append(args, "logger", s.name)
	}
	args = append(args, s.kv...)
	args = append(args, kv...)
	_ = l.Log(args...)
}

func (s *klogSink) Info(_ int, msg string, kv ...any) {
	s.log(level.Debug(s.logger), msg, kv)
}

func (s *klogSink) Error(err error, msg string, kv ...any) {
	s.log(level.Error(s.logger), msg, append(kv, "err", err))
}

func (s *klogSink) WithValues(kv ...any) logr.LogSink {
	c := *s
	c.kv = append(append([]any(nil), s.kv...), kv...)
	return &c
}

func (s *klogSink) WithName(name string) logr.LogSink {
	c := *s
	if c.name != "" {
		name = c.name + "/" + name
	}
	c.name = name
	return &c
}
