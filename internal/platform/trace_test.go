package platform_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go-micro.dev/v4"
	"go-micro.dev/v4/broker"
	"go-micro.dev/v4/client"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/server"
	"go-micro.dev/v4/store"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/portal-go/portal/internal/platform"
	userpb "github.com/portal-go/portal/proto/user"
)

// orderUser answers Health, panics in Logout, and is never reached for Info
// (the test's auth wrapper refuses it).
type orderUser struct{ userpb.UserHandler }

func (orderUser) Health(_ context.Context, _ *userpb.HealthRequest, rsp *userpb.HealthResponse) error {
	rsp.Status = "ok"
	return nil
}

func (orderUser) Logout(context.Context, *userpb.LogoutRequest, *userpb.LogoutResponse) error {
	panic("boom")
}

// serviceName is the service.name of the provider that made s.
func serviceName(s sdktrace.ReadOnlySpan) string {
	for _, kv := range s.Resource().Attributes() {
		if kv.Key == "service.name" {
			return kv.Value.AsString()
		}
	}
	return ""
}

func attr(s sdktrace.ReadOnlySpan, key string) string {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value.String()
		}
	}
	return ""
}

// findSpan returns the ended span of service with name and kind.
func findSpan(spans []sdktrace.ReadOnlySpan, service, name string, kind trace.SpanKind) sdktrace.ReadOnlySpan {
	for _, s := range spans {
		if serviceName(s) == service && s.Name() == name && s.SpanKind() == kind {
			return s
		}
	}
	return nil
}

// waitSpans polls rec until ok says its ended spans are complete.
func waitSpans(t *testing.T, rec *tracetest.SpanRecorder, ok func([]sdktrace.ReadOnlySpan) bool) []sdktrace.ReadOnlySpan {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		spans := rec.Ended()
		if ok(spans) || time.Now().After(deadline) {
			return spans
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Handler wrappers run recover, tracing, auth, metrics (outermost first):
// the auth wrapper sees the server span; a refusal is traced (with its code)
// but not counted; a panic is recorded on the span, counted as a 500 and
// answered as one, and the service goes on. The caller's client span and
// the server span are one trace, parent and child, over gRPC and mucp
// alike. Subscribers run inside recover, tracing and metrics, in the
// publisher's trace.
func TestWrapperOrderAndPropagation(t *testing.T) {
	for _, rpc := range []string{"grpc", "mucp"} {
		t.Run(rpc, func(t *testing.T) {
			rec := tracetest.NewSpanRecorder()
			tr, err := platform.NewTracing("", rec)
			if err != nil {
				t.Fatal(err)
			}
			m := platform.NewMetrics()
			p := platform.Plugins{Registry: registry.NewMemoryRegistry(), Broker: broker.NewMemoryBroker(), Address: "127.0.0.1:0", RPC: rpc, Metrics: m}
			srv := platform.NewService("order.user", p, quiet())
			if err := srv.UseTracing(tr); err != nil {
				t.Fatal(err)
			}
			var authSawSpan atomic.Bool
			srv.SetAuth(func(next server.HandlerFunc) server.HandlerFunc {
				return func(ctx context.Context, req server.Request, rsp interface{}) error {
					if trace.SpanFromContext(ctx).IsRecording() {
						authSawSpan.Store(true)
					}
					if req.Endpoint() == "User.Info" {
						return merrors.Forbidden("order.forbidden", "no")
					}
					return next(ctx, req, rsp)
				}
			})
			if err := userpb.RegisterUserHandler(srv.Server(), orderUser{}); err != nil {
				t.Fatal(err)
			}
			delivered := make(chan string, 2)
			if err := micro.RegisterSubscriber("order.topic", srv.Server(), func(ctx context.Context, ev *userpb.SessionRevoked) error {
				if ev.SessionId == "panic" {
					panic("boom")
				}
				delivered <- trace.SpanContextFromContext(ctx).TraceID().String()
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			start(t, srv)
			caller := platform.NewService("order.web", p, quiet())
			if err := caller.UseTracing(tr); err != nil {
				t.Fatal(err)
			}
			cli := userpb.NewUserService("order.user", caller.Client())
			ctx, root := caller.TracerProvider().Tracer("test").Start(context.Background(), "root")
			opts := []client.CallOption{platform.Timeout(5 * time.Second), client.WithRetries(0)}

			if _, err := cli.Health(ctx, &userpb.HealthRequest{}, opts...); err != nil {
				t.Fatalf("Health: %v", err)
			}
			if _, err := cli.Info(ctx, &userpb.InfoRequest{}, opts...); merrors.FromError(err).Code != http.StatusForbidden {
				t.Fatalf("Info: %v, want 403 from the auth wrapper", err)
			}
			_, err = cli.Logout(ctx, &userpb.LogoutRequest{}, opts...)
			if e := merrors.FromError(err); e.Code != http.StatusInternalServerError || e.Id != "order.user.panic" {
				t.Fatalf("Logout (panics): %v, want 500 order.user.panic", err)
			}
			if _, err := cli.Health(ctx, &userpb.HealthRequest{}, opts...); err != nil {
				t.Fatalf("Health after the panic: %v", err)
			}
			ev := micro.NewEvent("order.topic", caller.Client())
			_ = ev.Publish(ctx, &userpb.SessionRevoked{SessionId: "panic"}) // the subscriber's error comes back
			if err := ev.Publish(ctx, &userpb.SessionRevoked{SessionId: "ok"}); err != nil {
				t.Fatalf("publish: %v", err)
			}
			root.End()
			select {
			case id := <-delivered:
				if id != root.SpanContext().TraceID().String() {
					t.Errorf("subscriber's trace %s, want the publisher's %s", id, root.SpanContext().TraceID())
				}
			case <-time.After(5 * time.Second):
				t.Fatal("event not delivered")
			}

			spans := waitSpans(t, rec, func(s []sdktrace.ReadOnlySpan) bool {
				return findSpan(s, "order.user", "User.Logout", trace.SpanKindServer) != nil &&
					len(s) >= 13 // root, 4 client, 4 server, 2 producer, 2 consumer
			})
			health := findSpan(spans, "order.user", "User.Health", trace.SpanKindServer)
			healthCall := findSpan(spans, "order.web", "User.Health", trace.SpanKindClient)
			info := findSpan(spans, "order.user", "User.Info", trace.SpanKindServer)
			logout := findSpan(spans, "order.user", "User.Logout", trace.SpanKindServer)
			if health == nil || healthCall == nil || info == nil || logout == nil {
				t.Fatalf("missing spans among %d: health %v, health call %v, info %v, logout %v", len(spans), health != nil, healthCall != nil, info != nil, logout != nil)
			}
			if health.SpanContext().TraceID() != root.SpanContext().TraceID() || health.Parent().SpanID() != healthCall.SpanContext().SpanID() {
				t.Errorf("server span in trace %s under %s, want trace %s under the client span %s",
					health.SpanContext().TraceID(), health.Parent().SpanID(), root.SpanContext().TraceID(), healthCall.SpanContext().SpanID())
			}
			if !authSawSpan.Load() {
				t.Error("the auth wrapper ran outside the tracing wrapper: no span in its context")
			}
			if got := attr(info, "rpc.response.status_code"); got != "403" {
				t.Errorf("refused call's span: status code %q, want 403", got)
			}
			// The gRPC plugin recovers a handler's panic into an error
			// ("panic recovered: boom") inside every wrapper; under mucp
			// the panic itself goes through them.
			if logout.Status().Code != codes.Error || !strings.Contains(logout.Status().Description, "panic") {
				t.Errorf("panicking call's span: status %v, want an error naming the panic", logout.Status())
			}
			consumer := findSpan(spans, "order.user", "order.topic process", trace.SpanKindConsumer)
			if consumer == nil || consumer.SpanContext().TraceID() != root.SpanContext().TraceID() {
				t.Errorf("no consumer span in the publisher's trace")
			}

			for _, c := range []struct {
				endpoint, code string
				want           float64
			}{
				{"User.Health", "200", 2},
				{"User.Info", "403", 0}, // refused outside the metrics wrapper
				{"User.Logout", "500", 1},
			} {
				if n := testutil.ToFloat64(m.RPCRequests.WithLabelValues("order.user", c.endpoint, c.code)); n != c.want {
					t.Errorf("portal_rpc_requests_total{endpoint=%q,code=%q} = %v, want %v", c.endpoint, c.code, n, c.want)
				}
			}
			for result, want := range map[string]float64{"ok": 1, "error": 1} {
				if n := testutil.ToFloat64(m.Events.WithLabelValues("order.user", "order.topic", result)); n != want {
					t.Errorf("portal_events_handled_total{result=%q} = %v, want %v", result, n, want)
				}
			}
		})
	}
}

// otlpReceiver is an OTLP/HTTP traces endpoint that keeps what it gets.
type otlpReceiver struct {
	*httptest.Server
	mu    sync.Mutex
	spans []string // "service.name/span name"
}

func newOTLPReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	r := &otlpReceiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		var msg coltracepb.ExportTraceServiceRequest
		if req.URL.Path != "/v1/traces" || proto.Unmarshal(body, &msg) != nil {
			http.Error(w, "not an OTLP trace export", http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		for _, rs := range msg.ResourceSpans {
			var svc string
			for _, kv := range rs.Resource.GetAttributes() {
				if kv.Key == "service.name" {
					svc = kv.Value.GetStringValue()
				}
			}
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					r.spans = append(r.spans, svc+"/"+s.Name)
				}
			}
		}
		r.mu.Unlock()
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *otlpReceiver) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.spans...)
}

// With an endpoint (the flag's, or the standard environment's), a service's
// spans are exported over OTLP/HTTP under its name; the batch is held (the
// test makes the batch delay ten minutes) until Stop's AfterStop hook
// flushes it.
func TestTracingExportsOverOTLP(t *testing.T) {
	for _, how := range []string{"endpoint", "environment"} {
		t.Run(how, func(t *testing.T) {
			rcv := newOTLPReceiver(t)
			t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "600000")
			t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
			endpoint := rcv.URL
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
			if how == "environment" {
				t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rcv.URL)
				endpoint = ""
			}
			tr, err := platform.NewTracing(endpoint)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(tr.String(), "otlp") {
				t.Errorf("tracing %q, want otlp", tr)
			}
			svc := platform.NewService("export.user", testPlugins(), quiet())
			if err := svc.UseTracing(tr); err != nil {
				t.Fatal(err)
			}
			if err := svc.Start(); err != nil {
				t.Fatal(err)
			}
			st := platform.TraceStore(store.NewMemoryStore(), svc.TracerProvider())
			if _, err := st.Read("session/abc"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("read: %v", err)
			}
			if got := rcv.got(); len(got) != 0 {
				t.Fatalf("exported before Stop: %v", got)
			}
			if err := svc.Stop(); err != nil {
				t.Fatal(err)
			}
			if got := rcv.got(); len(got) != 1 || got[0] != "export.user/store Read" {
				t.Errorf("received %v, want [export.user/store Read]", got)
			}
		})
	}
}

// Without an endpoint nothing is recorded, but spans still have trace ids
// (for the logs); bad settings are refused.
func TestTracingOff(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	tr, err := platform.NewTracing("")
	if err != nil {
		t.Fatal(err)
	}
	if tr.String() != "off (trace ids only)" {
		t.Errorf("tracing %q", tr)
	}
	svc := platform.NewService("off.user", testPlugins(), quiet())
	if err := svc.UseTracing(tr); err != nil {
		t.Fatal(err)
	}
	_, span := svc.TracerProvider().Tracer("test").Start(context.Background(), "x")
	if span.IsRecording() || !span.SpanContext().HasTraceID() {
		t.Errorf("span recording %v, trace id %v: want not recording, with an id", span.IsRecording(), span.SpanContext().TraceID())
	}
	span.End()

	for _, bad := range []string{"127.0.0.1:4318", "grpc://127.0.0.1:4317", "http://"} {
		if _, err := platform.NewTracing(bad); err == nil {
			t.Errorf("NewTracing(%q) accepted", bad)
		}
	}
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
	if _, err := platform.NewTracing("http://127.0.0.1:4318"); err == nil {
		t.Error("OTEL_EXPORTER_OTLP_PROTOCOL=grpc accepted")
	}
}
