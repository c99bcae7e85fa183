package platform

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"

	"go-micro.dev/v4/client"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/metadata"
	"go-micro.dev/v4/server"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// TraceScope is the instrumentation scope of Portal's spans.
const TraceScope = "github.com/portal-go/portal"

// traceEndpointEnv are the standard variables that name an OTLP endpoint;
// either turns the exporter on.
var traceEndpointEnv = []string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"}

// Tracing says where a Portal process's spans go. Each service gets a tracer
// provider of its own from it (Service.UseTracing), so that its spans carry
// its name as service.name even when several services share the process.
//
// With an OTLP endpoint, spans are sampled as OTEL_TRACES_SAMPLER says
// (default: every trace a request starts) and exported over OTLP/HTTP in
// batches. Without one, nothing is recorded or exported, but every request
// still gets a trace id, propagated across RPC and logged, so that the lines
// one request leaves in several services' logs can be joined.
type Tracing struct {
	// endpoint is the OTLP/HTTP traces URL from NewTracing's argument;
	// empty with exporting set means the OTEL_* environment names it.
	endpoint   string
	exporting  bool
	processors []sdktrace.SpanProcessor
}

// NewTracing returns the tracing for endpoint, an OTLP/HTTP base URL such as
// http://127.0.0.1:4318 (spans go to its /v1/traces). An empty endpoint
// falls back to the standard OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or
// OTEL_EXPORTER_OTLP_ENDPOINT; with neither, spans are not exported.
// processors receive every span as well (tests record them in memory);
// given any, spans are recorded even without an exporter.
func NewTracing(endpoint string, processors ...sdktrace.SpanProcessor) (*Tracing, error) {
	t := &Tracing{processors: processors}
	if endpoint != "" {
		u, err := url.Parse(endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("trace endpoint %q: want the base URL of an OTLP/HTTP receiver, such as http://127.0.0.1:4318", endpoint)
		}
		t.endpoint, t.exporting = u.JoinPath("v1", "traces").String(), true
	}
	for _, k := range traceEndpointEnv {
		if os.Getenv(k) != "" {
			t.exporting = true
		}
	}
	if !t.exporting {
		return t, nil
	}
	for _, k := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		if v := os.Getenv(k); v != "" && v != "http/protobuf" {
			return nil, fmt.Errorf("%s=%s: Portal exports traces over OTLP/HTTP (http/protobuf) only", k, v)
		}
	}
	return t, nil
}

// String says where spans go, for the start log.
func (t *Tracing) String() string {
	switch {
	case t.endpoint != "":
		return "otlp " + t.endpoint
	case t.exporting:
		return "otlp (OTEL_EXPORTER_OTLP_* environment)"
	case len(t.processors) > 0:
		return "in process"
	}
	return "off (trace ids only)"
}

// provider builds the tracer provider of the service named service.
func (t *Tracing) provider(service string) (*sdktrace.TracerProvider, error) {
	res, err := resource.New(context.Background(),
		resource.WithFromEnv(), // OTEL_RESOURCE_ATTRIBUTES; ours below win
		resource.WithTelemetrySDK(),
		resource.WithSchemaURL(semconv.SchemaURL),
		resource.WithAttributes(
			semconv.ServiceName(service),
			semconv.ServiceNamespace("portal"),
			semconv.ServiceVersion(Version),
		),
	)
	if err != nil {
		return nil, fmt.Errorf("trace resource: %w", err)
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	if !t.exporting && len(t.processors) == 0 {
		// Ids, no recording: a non-recording span costs an id and nothing
		// else.
		opts = append(opts, sdktrace.WithSampler(sdktrace.NeverSample()))
	}
	if t.exporting {
		var eo []otlptracehttp.Option
		if t.endpoint != "" {
			eo = append(eo, otlptracehttp.WithEndpointURL(t.endpoint))
		}
		exp, err := otlptracehttp.New(context.Background(), eo...)
		if err != nil {
			return nil, fmt.Errorf("trace exporter: %w", err)
		}
		opts = append(opts, sdktrace.WithBatcher(exp))
	}
	for _, p := range t.processors {
		opts = append(opts, sdktrace.WithSpanProcessor(p))
	}
	return sdktrace.NewTracerProvider(opts...), nil
}

// propagator carries trace context across RPC and events: W3C traceparent
// and tracestate, in go-micro metadata.
var propagator = propagation.TraceContext{}

// mdCarrier is go-micro metadata as an OpenTelemetry carrier.
type mdCarrier metadata.Metadata

// Get returns the value of key, whatever its case in the metadata.
func (c mdCarrier) Get(key string) string {
	for k, v := range c {
		if strings.EqualFold(k, key) {
			return v
		}
	}
	return ""
}

// Set replaces key, whatever its case in the metadata.
func (c mdCarrier) Set(key, value string) {
	c.remove(key)
	c[key] = value
}

// remove deletes key, whatever its case in the metadata.
func (c mdCarrier) remove(key string) {
	for k := range c {
		if strings.EqualFold(k, key) {
			delete(c, k)
		}
	}
}

// Keys lists the metadata's keys.
func (c mdCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// injectTrace returns ctx with the trace context of its span in the outgoing
// metadata, replacing any it carried in (a handler's incoming metadata is
// also what its own calls send).
func injectTrace(ctx context.Context) context.Context {
	md, ok := metadata.FromContext(ctx) // a copy
	if !ok {
		md = metadata.Metadata{}
	}
	c := mdCarrier(md)
	for _, f := range propagator.Fields() {
		c.remove(f)
	}
	propagator.Inject(ctx, c)
	return metadata.NewContext(ctx, md)
}

// extractTrace returns ctx with the remote span context its incoming
// metadata carries, if any.
func extractTrace(ctx context.Context) context.Context {
	md, ok := metadata.FromContext(ctx)
	if !ok {
		return ctx
	}
	return propagator.Extract(ctx, mdCarrier(md))
}

// TraceID returns the trace id of ctx's span, or of the remote span its
// incoming RPC metadata names; "" when there is none.
func TraceID(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.HasTraceID() {
		sc = trace.SpanContextFromContext(extractTrace(ctx))
	}
	if !sc.HasTraceID() {
		return ""
	}
	return sc.TraceID().String()
}

// rpcAttributes describe a call to endpoint of service.
func rpcAttributes(service, endpoint string) trace.SpanStartOption {
	return trace.WithAttributes(
		semconv.RPCSystemNameKey.String("go-micro"),
		attribute.String("rpc.service", service),
		semconv.RPCMethod(endpoint),
	)
}

// endRPC records a call's outcome on span: its go-micro code, and an error
// status for a failure of the server's (5xx) or of the call itself.
func endRPC(span trace.Span, err error) {
	code := RPCCode(err)
	span.SetAttributes(semconv.RPCResponseStatusCode(fmt.Sprint(code)))
	if err == nil {
		return
	}
	if e := merrors.FromError(err); e.Id != "" {
		span.SetAttributes(attribute.String("rpc.go_micro.error_id", e.Id))
	}
	if code >= http.StatusInternalServerError {
		span.SetStatus(codes.Error, err.Error())
	}
}

// tracingClient starts a client span for each call and publication and
// carries its trace context in the metadata.
type tracingClient struct {
	client.Client
	s *Service
}

// Call traces one RPC (all its attempts) and propagates the trace.
func (c *tracingClient) Call(ctx context.Context, req client.Request, rsp interface{}, opts ...client.CallOption) error {
	ctx, span := c.s.tracer.Start(ctx, req.Endpoint(), trace.WithSpanKind(trace.SpanKindClient),
		rpcAttributes(req.Service(), req.Endpoint()))
	defer span.End()
	err := c.Client.Call(injectTrace(ctx), req, rsp, opts...)
	endRPC(span, err)
	return err
}

// Publish traces one event and propagates the trace to its subscribers.
func (c *tracingClient) Publish(ctx context.Context, msg client.Message, opts ...client.PublishOption) error {
	ctx, span := c.s.tracer.Start(ctx, msg.Topic()+" publish", trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(semconv.MessagingSystemKey.String("go-micro"), semconv.MessagingDestinationName(msg.Topic()),
			semconv.MessagingOperationName("publish")))
	defer span.End()
	err := c.Client.Publish(injectTrace(ctx), msg, opts...)
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	return err
}

// traceHandler is the server's tracing wrapper: a server span per call,
// child of the caller's span when the metadata names one. A panic is
// recorded and goes on to the recover wrapper outside.
func (s *Service) traceHandler(next server.HandlerFunc) server.HandlerFunc {
	return func(ctx context.Context, req server.Request, rsp interface{}) (err error) {
		ctx, span := s.tracer.Start(extractTrace(ctx), req.Endpoint(), trace.WithSpanKind(trace.SpanKindServer),
			rpcAttributes(req.Service(), req.Endpoint()))
		defer func() {
			if r := recover(); r != nil {
				span.SetStatus(codes.Error, "panic")
				span.End()
				panic(r)
			}
			endRPC(span, err)
			span.End()
		}()
		return next(ctx, req, rsp)
	}
}

// traceSubscriber is the subscriber's tracing wrapper: a consumer span per
// event, in the publisher's trace.
func (s *Service) traceSubscriber(next server.SubscriberFunc) server.SubscriberFunc {
	return func(ctx context.Context, msg server.Message) (err error) {
		ctx, span := s.tracer.Start(extractTrace(ctx), msg.Topic()+" process", trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithAttributes(semconv.MessagingSystemKey.String("go-micro"), semconv.MessagingDestinationName(msg.Topic()),
				semconv.MessagingOperationName("process")))
		defer func() {
			if r := recover(); r != nil {
				span.SetStatus(codes.Error, "panic")
				span.End()
				panic(r)
			}
			if err != nil {
				span.SetStatus(codes.Error, err.Error())
			}
			span.End()
		}()
		return next(ctx, msg)
	}
}
