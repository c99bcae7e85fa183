package platform

import (
	"context"
	"log/slog"
	"runtime/debug"
	"strings"

	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/server"
)

// Recover ends a panic where one request or event is handled (an RPC
// handler, a subscriber, the gateway's HTTP request), so that one bad input
// cannot take the process down: it logs the panic once, with its stack, the
// trace id and attrs, and calls fail, which answers with that boundary's own
// 500. Defer it directly (recover works only there):
//
//	defer platform.Recover(ctx, log, fail, "endpoint", req.Endpoint())
//
// The go-micro wrappers below and the gateway's middleware are its adapters.
func Recover(ctx context.Context, log *slog.Logger, fail func(), attrs ...any) {
	r := recover()
	if r == nil {
		return
	}
	logPanic(ctx, log, r, string(debug.Stack()), attrs...)
	fail()
}

// logPanic logs a recovered panic with its stack and trace id.
func logPanic(ctx context.Context, log *slog.Logger, r any, stack string, attrs ...any) {
	log.Error("panic", append(attrs, "trace_id", TraceID(ctx), "panic", r, "stack", stack)...)
}

// recoverWrapper is Recover for go-micro handlers: a panic becomes a 500
// "<name>.panic". The gRPC server plugin recovers a handler's panic itself,
// innermost, into an error that shows the panic to the caller ("panic
// recovered: ..."); that error is logged and replaced by the same 500.
func recoverWrapper(name string, log *slog.Logger) server.HandlerWrapper {
	return func(next server.HandlerFunc) server.HandlerFunc {
		return func(ctx context.Context, req server.Request, rsp interface{}) (err error) {
			defer Recover(ctx, log, func() { err = panicError(name) }, "service", name, "endpoint", req.Endpoint())
			err = next(ctx, req, rsp)
			if e, ok := err.(*merrors.Error); ok && e.Id == "go.micro.server" && strings.HasPrefix(e.Detail, "panic recovered") {
				logPanic(ctx, log, e.Detail, "", "service", name, "endpoint", req.Endpoint())
				err = panicError(name)
			}
			return err
		}
	}
}

// recoverSubscriber is Recover for go-micro subscribers: a panic becomes an
// error.
func recoverSubscriber(name string, log *slog.Logger) server.SubscriberWrapper {
	return func(next server.SubscriberFunc) server.SubscriberFunc {
		return func(ctx context.Context, msg server.Message) (err error) {
			defer Recover(ctx, log, func() { err = panicError(name) }, "service", name, "topic", msg.Topic())
			return next(ctx, msg)
		}
	}
}

// panicError is what a caller sees of a panic in service name.
func panicError(name string) error {
	return merrors.InternalServerError(name+".panic", "internal error")
}
