package platform

import (
	"context"
	"fmt"
	"log/slog"
	"sort"

	"go-micro.dev/v4/logger"
)

// microLogger points go-micro's logger at slog, so that the framework's lines
// (listening, registering, errors) join Portal's structured log.
type microLogger struct {
	log  *slog.Logger
	opts logger.Options
}

// NewMicroLogger returns a go-micro logger.Logger that writes to log.
// go-micro's chatty info lines (every listen and register) are logged at
// debug level; its warnings and errors keep theirs.
func NewMicroLogger(log *slog.Logger) logger.Logger {
	return &microLogger{log: log, opts: logger.Options{Level: logger.InfoLevel}}
}

func (l *microLogger) Init(opts ...logger.Option) error {
	for _, o := range opts {
		o(&l.opts)
	}
	return nil
}

func (l *microLogger) Options() logger.Options { return l.opts }

func (l *microLogger) Fields(fields map[string]interface{}) logger.Logger {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	args := make([]any, 0, 2*len(keys))
	for _, k := range keys {
		args = append(args, k, fields[k])
	}
	return &microLogger{log: l.log.With(args...), opts: l.opts}
}

func (l *microLogger) Log(level logger.Level, v ...interface{}) {
	l.log.Log(context.Background(), slogLevel(level), fmt.Sprint(v...), "component", "go-micro")
}

func (l *microLogger) Logf(level logger.Level, format string, v ...interface{}) {
	l.log.Log(context.Background(), slogLevel(level), fmt.Sprintf(format, v...), "component", "go-micro")
}

func (l *microLogger) String() string { return "slog" }

func slogLevel(level logger.Level) slog.Level {
	switch {
	case level >= logger.ErrorLevel:
		return slog.LevelError
	case level == logger.WarnLevel:
		return slog.LevelWarn
	default:
		return slog.LevelDebug
	}
}
