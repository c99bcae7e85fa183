package platform

import (
	"context"
	"errors"
	"strings"

	"go-micro.dev/v4/store"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// TracedStore is a store.Store that records each operation as a client span.
// go-micro's store API takes no context, so a TracedStore is bound to one
// (WithContext) for the spans to join a request's trace; unbound, each
// operation starts a trace of its own. Keys are not recorded (they hold user
// ids, names and addresses), only their kind: the part before the first "/".
type TracedStore struct {
	store.Store
	tracer trace.Tracer
	ctx    context.Context
}

// TraceStore wraps st, tracing with tp.
func TraceStore(st store.Store, tp trace.TracerProvider) *TracedStore {
	return &TracedStore{Store: st, tracer: tp.Tracer(TraceScope), ctx: context.Background()}
}

// WithContext returns the store bound to ctx: its operations are spans of
// ctx's trace.
func (s *TracedStore) WithContext(ctx context.Context) store.Store {
	c := *s
	c.ctx = ctx
	return &c
}

// start begins the span of operation op on keys of key's kind.
func (s *TracedStore) start(op, key string) trace.Span {
	kind, _, _ := strings.Cut(key, "/")
	_, span := s.tracer.Start(s.ctx, "store "+op, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
		semconv.DBSystemNameKey.String(s.Store.String()),
		semconv.DBOperationName(op),
		attribute.String("portal.store.key_kind", kind),
	))
	return span
}

// endStoreSpan records err on span (a missing record is an answer, not an error) and
// ends it.
func endStoreSpan(span trace.Span, err error) {
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// Read traces store.Store.Read.
func (s *TracedStore) Read(key string, opts ...store.ReadOption) ([]*store.Record, error) {
	span := s.start("Read", key)
	recs, err := s.Store.Read(key, opts...)
	endStoreSpan(span, err)
	return recs, err
}

// Write traces store.Store.Write.
func (s *TracedStore) Write(r *store.Record, opts ...store.WriteOption) error {
	span := s.start("Write", r.Key)
	err := s.Store.Write(r, opts...)
	endStoreSpan(span, err)
	return err
}

// Delete traces store.Store.Delete.
func (s *TracedStore) Delete(key string, opts ...store.DeleteOption) error {
	span := s.start("Delete", key)
	err := s.Store.Delete(key, opts...)
	endStoreSpan(span, err)
	return err
}

// List traces store.Store.List.
func (s *TracedStore) List(opts ...store.ListOption) ([]string, error) {
	var o store.ListOptions
	for _, opt := range opts {
		opt(&o)
	}
	span := s.start("List", o.Prefix)
	keys, err := s.Store.List(opts...)
	endStoreSpan(span, err)
	return keys, err
}
