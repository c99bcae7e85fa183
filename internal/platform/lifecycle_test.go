package platform_test

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go-micro.dev/v4/broker"
	"go-micro.dev/v4/client"
	"go-micro.dev/v4/registry"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/portal-go/portal/internal/platform"
	userpb "github.com/portal-go/portal/proto/user"
)

// shutdownProbe is a span processor that, when its provider shuts down,
// reports whether the service's address still accepts connections.
type shutdownProbe struct {
	*tracetest.SpanRecorder
	addr      atomic.Value // string
	listening chan bool
}

func (p *shutdownProbe) Shutdown(context.Context) error {
	conn, err := net.DialTimeout("tcp", p.addr.Load().(string), time.Second)
	if err == nil {
		conn.Close()
	}
	p.listening <- err == nil
	return nil
}

// registeredNodes is how many nodes of service reg lists.
func registeredNodes(t *testing.T, reg registry.Registry, service string) int {
	t.Helper()
	list, err := reg.GetService(service)
	if errors.Is(err, registry.ErrNotFound) {
		return 0
	} else if err != nil {
		t.Fatalf("registry: %v", err)
	}
	n := 0
	for _, s := range list {
		n += len(s.Nodes)
	}
	return n
}

// Each hook does its part: BeforeStart refuses to start while a required
// check fails and runs the start steps before the server registers;
// AfterStart makes the service ready; BeforeStop turns readiness off and
// deregisters while the service still serves (the drain); AfterStop shuts
// the tracer provider down once the server no longer listens.
func TestLifecycleHooks(t *testing.T) {
	p := testPlugins()
	p.DrainDelay = 400 * time.Millisecond
	svc := platform.NewService("life.user", p, quiet())
	probe := &shutdownProbe{SpanRecorder: tracetest.NewSpanRecorder(), listening: make(chan bool, 1)}
	tr, err := platform.NewTracing("", probe)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.UseTracing(tr); err != nil {
		t.Fatal(err)
	}
	if err := userpb.RegisterUserHandler(svc.Server(), orderUser{}); err != nil {
		t.Fatal(err)
	}
	var storeUp atomic.Bool
	svc.Require(platform.Check{Name: "store", Fn: func(context.Context) error {
		if !storeUp.Load() {
			return errors.New("connection refused")
		}
		return nil
	}})
	var stepRan, stepSawNode atomic.Bool
	svc.OnStart(func(context.Context) error {
		stepRan.Store(true)
		stepSawNode.Store(registeredNodes(t, p.Registry, "life.user") > 0)
		return nil
	})

	// BeforeStart: the store is down, so the service does not start.
	err = svc.Start()
	if err == nil || !strings.Contains(err.Error(), "store: connection refused") {
		t.Fatalf("Start with the store down: %v, want the store check's error", err)
	}
	if stepRan.Load() || svc.Ready() || registeredNodes(t, p.Registry, "life.user") != 0 {
		t.Fatalf("after a refused start: step ran %v, ready %v, nodes %d; want none", stepRan.Load(), svc.Ready(), registeredNodes(t, p.Registry, "life.user"))
	}

	// AfterStart: ready, registered; the step ran before registration.
	storeUp.Store(true)
	if err := svc.Start(); err != nil {
		t.Fatal(err)
	}
	if !stepRan.Load() || stepSawNode.Load() {
		t.Errorf("start step ran %v, saw a registered node %v; want it run before the server registered", stepRan.Load(), stepSawNode.Load())
	}
	if !svc.Ready() || registeredNodes(t, p.Registry, "life.user") != 1 {
		t.Fatalf("started: ready %v, %d nodes", svc.Ready(), registeredNodes(t, p.Registry, "life.user"))
	}
	if checks, ok := svc.Readiness(context.Background()); !ok {
		t.Errorf("readiness after start: %v", checks)
	}
	addr := svc.Server().Options().Address
	probe.addr.Store(addr)

	// BeforeStop: out of the registry and not ready, still answering.
	stopped := make(chan error, 1)
	go func() { stopped <- svc.Stop() }()
	deadline := time.Now().Add(5 * time.Second)
	for registeredNodes(t, p.Registry, "life.user") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("still registered 5s after Stop began")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if svc.Ready() {
		t.Error("ready after deregistration")
	}
	if checks, ok := svc.Readiness(context.Background()); ok || checks["lifecycle"] == "ok" {
		t.Errorf("readiness while draining: %v, want lifecycle failing", checks)
	}
	caller := platform.NewService("life.web", p, quiet())
	if _, err := userpb.NewUserService("life.user", caller.Client()).Health(context.Background(), &userpb.HealthRequest{},
		client.WithAddress(addr), platform.Timeout(2*time.Second)); err != nil {
		t.Errorf("a call while draining: %v", err)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}

	// AfterStop: the provider is shut down after the listener closed.
	select {
	case listening := <-probe.listening:
		if listening {
			t.Error("tracer provider shut down while the server still listened")
		}
	default:
		t.Error("Stop returned without shutting the tracer provider down")
	}
}

// droppingBroker accepts publications and delivers none, as a NATS client
// does while it reconnects.
type droppingBroker struct{ broker.Broker }

func (droppingBroker) Publish(string, *broker.Message, ...broker.PublishOption) error { return nil }

// GET /readyz answers 503 naming each failing check with its error, and
// "ok" for the others; a broker that takes messages but delivers none fails.
func TestReadyHandlerNamesFailingChecks(t *testing.T) {
	p := testPlugins()
	p.Broker = droppingBroker{broker.NewMemoryBroker()}
	svc := platform.NewService("ready.system", p, quiet())
	svc.AddCheck(platform.Check{Name: "config", Fn: func(context.Context) error { return errors.New("etcd: no answer") }})
	if err := svc.Start(); err != nil {
		t.Fatal(err)
	}
	defer svc.Stop()

	rsp := httptest.NewRecorder()
	svc.ReadyHandler().ServeHTTP(rsp, httptest.NewRequest("GET", "/readyz", nil))
	var body struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
	}
	if err := json.Unmarshal(rsp.Body.Bytes(), &body); err != nil {
		t.Fatalf("body: %v: %s", err, rsp.Body)
	}
	if rsp.Code != http.StatusServiceUnavailable || body.Status != "unavailable" {
		t.Errorf("status %d %q, want 503 unavailable", rsp.Code, body.Status)
	}
	for name, want := range map[string]string{
		"config":    "etcd: no answer",
		"broker":    "not delivered",
		"registry":  "ok",
		"lifecycle": "ok",
	} {
		if got := body.Checks[name]; !strings.Contains(got, want) {
			t.Errorf("check %s: %q, want %q", name, got, want)
		}
	}
}

// GET /readyz/{check} runs one check: an orchestrator's readiness probe asks
// GET /readyz/lifecycle, which a dependency every instance shares (here the
// config source) does not fail, so that its outage does not take every
// instance out of the load balancer at once; a stopping service fails it.
func TestReadyHandlerOneCheck(t *testing.T) {
	svc := platform.NewService("ready.one", testPlugins(), quiet())
	svc.AddCheck(platform.Check{Name: "config", Fn: func(context.Context) error { return errors.New("etcd: no answer") }})
	mux := http.NewServeMux()
	mux.Handle("GET /readyz/{check}", svc.ReadyHandler())
	get := func(path string) (int, map[string]string) {
		t.Helper()
		rsp := httptest.NewRecorder()
		mux.ServeHTTP(rsp, httptest.NewRequest("GET", path, nil))
		var body struct {
			Checks map[string]string `json:"checks"`
		}
		_ = json.Unmarshal(rsp.Body.Bytes(), &body)
		return rsp.Code, body.Checks
	}
	if code, _ := get("/readyz/lifecycle"); code != http.StatusServiceUnavailable {
		t.Errorf("lifecycle before Start: %d, want 503", code)
	}
	if err := svc.Start(); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]struct {
		code   int
		checks map[string]string
	}{
		"/readyz/lifecycle": {http.StatusOK, map[string]string{"lifecycle": "ok"}},
		"/readyz/registry":  {http.StatusOK, map[string]string{"registry": "ok"}},
		"/readyz/config":    {http.StatusServiceUnavailable, map[string]string{"config": "etcd: no answer"}},
		"/readyz/nonesuch":  {http.StatusNotFound, nil},
	} {
		if code, checks := get(path); code != want.code || !maps.Equal(checks, want.checks) {
			t.Errorf("GET %s: %d %v, want %d %v", path, code, checks, want.code, want.checks)
		}
	}
	if err := svc.Stop(); err != nil {
		t.Fatal(err)
	}
	if code, _ := get("/readyz/lifecycle"); code != http.StatusServiceUnavailable {
		t.Errorf("lifecycle after Stop: %d, want 503", code)
	}
}
