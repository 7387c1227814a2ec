package binlog

import (
	"context"
	"log/slog"

	"go.uber.org/zap"
)

// slogOf gives go-mysql, which logs to slog, the warnings and errors of
// log; its info lines (every rotate, every connect) stay out.
func slogOf(log *zap.Logger) *slog.Logger {
	return slog.New(zapHandler{log: log.Named("go-mysql")})
}

type zapHandler struct {
	log   *zap.Logger
	attrs []zap.Field
}

func (h zapHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (h zapHandler) Handle(_ context.Context, r slog.Record) error {
	fields := append([]zap.Field(nil), h.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		fields = append(fields, zap.Any(a.Key, a.Value.Any()))
		return true
	})
	if r.Level >= slog.LevelError {
		h.log.Error(r.Message, fields...)
	} else {
		h.log.Warn(r.Message, fields...)
	}
	return nil
}

func (h zapHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	for _, a := range attrs {
		h.attrs = append(append([]zap.Field(nil), h.attrs...), zap.Any(a.Key, a.Value.Any()))
	}
	return h
}

func (h zapHandler) WithGroup(name string) slog.Handler {
	h.log = h.log.Named(name)
	return h
}
