// Package platform builds Portal's go-micro services: each with its own server
// and client (never go-micro's package singletons, so that several services
// can share one process), the plugins given, and the wrappers every service
// needs.
package platform

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	grpcclient "github.com/go-micro/plugins/v4/client/grpc"
	grpcserver "github.com/go-micro/plugins/v4/server/grpc"
	"go-micro.dev/v4"
	"go-micro.dev/v4/broker"
	"go-micro.dev/v4/client"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/selector"
	"go-micro.dev/v4/server"
	"go-micro.dev/v4/transport"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc"

	pauth "github.com/portal-go/portal/internal/auth"
)

// Version is Portal's version, put in every service's registry entry.
var Version = "0.1.0"

// Plugins are the go-micro components services share.
type Plugins struct {
	Registry registry.Registry
	Broker   broker.Broker
	// Address is where servers listen; "127.0.0.1:0" keeps the embedded
	// mode's RPC on loopback.
	Address string
	// RPC is the protocol between services: "grpc" (default: go-micro's
	// gRPC server and client plugins) or "mucp" (go-micro's own, over its
	// http transport, which can lose a request: see NewService).
	RPC string
	// TLS, when set, makes RPC between services mutual TLS (LoadMutualTLS).
	TLS *TLS
	// Metrics, when set, count and time every handler call and event
	// (NewService adds their wrappers innermost).
	Metrics *Metrics
	// DrainDelay is how long a stopping service keeps serving after it has
	// left the registry, so that callers' registry caches drop its node
	// before its listener closes (Service.Stop). 0: stop at once, for a
	// registry in the same process.
	DrainDelay time.Duration
	// SelectorTTL is how long a client keeps a service's nodes before it
	// asks the registry again (0: DefaultSelectorTTL); with a registry
	// other than memory, it asks in the background and meanwhile keeps
	// serving the last good answer (lastGoodRegistry).
	SelectorTTL time.Duration
}

// Descriptions are the services' descriptions, put in their registry
// entries' metadata.
var Descriptions = map[string]string{
	"web":     "Portal's HTTP gateway",
	"user":    "Portal's accounts and sessions",
	"system":  "Portal's admin plane",
	"runtime": "Portal's supervisor (portal up)",
}

// StopTimeout bounds how long Service.Stop waits for the requests in flight
// (after DrainDelay); those still running then are cut off.
const StopTimeout = 8 * time.Second

// RequestTimeout bounds an RPC a Portal client makes; SlowRequestTimeout
// bounds those that hash a password and may queue for it.
const (
	RequestTimeout     = 5 * time.Second
	SlowRequestTimeout = 15 * time.Second
)

// Timeout is a call option bounding one RPC by d. go-micro bounds a call by
// RequestTimeout and, separately, each attempt by ConnectionTimeout (5 s, no
// option of its own): both are set.
func Timeout(d time.Duration) client.CallOption {
	return func(o *client.CallOptions) {
		o.RequestTimeout = d
		o.ConnectionTimeout = d
	}
}

// Service is a go-micro service with explicit start and stop, so that a
// process running several can order them. Its work at each step of the
// lifecycle is done in go-micro's hooks (BeforeStart, AfterStart, BeforeStop,
// AfterStop), which go-micro's Start and Stop run around the server's.
type Service struct {
	micro.Service
	name        string
	log         *slog.Logger
	drainDelay  time.Duration
	selectorTTL time.Duration
	// health is the registration check (SetHealth); draining makes it fail,
	// so that a stopping service is not registered again. unhealthy is the
	// last check's failure, nil when it passed: while it is set, or while
	// draining, the server's registry refuses to register the node
	// (registrationGate).
	health   func(context.Context) error
	draining atomic.Bool
	// streamWorkers: the server is the gRPC plugin's, its stream workers
	// not asked for yet (askStreamWorkers).
	streamWorkers bool
	// stopped is closed when the service begins to stop (BeforeStop).
	stopped   chan struct{}
	closeStop sync.Once
	unhealthy atomic.Pointer[error]
	// ready is on from AfterStart to BeforeStop.
	ready atomic.Bool
	// required must pass before the server starts; checks are reported by
	// Readiness (required ones included).
	required, checks []Check
	starting         []func(context.Context) error
	probe            *brokerProbe
	// auth is the authorization wrapper (SetAuth).
	auth server.HandlerWrapper
	// proof signs the end client into calls and checks it on requests
	// (UseClientProof); nil: neither.
	proof *pauth.ClientProof
	// tracer makes the service's spans; tp is its provider, flushed by
	// AfterStop when it is the SDK's (UseTracing).
	tp     trace.TracerProvider
	tracer trace.Tracer
	// callTLS is set under mutual TLS (Plugins.TLS, UseTLS): calls then
	// verify the callee's name (byService).
	callTLS atomic.Pointer[callTLS]
	// metrics are Plugins.Metrics (nil: none).
	metrics *Metrics
	// jobs run from Start to Stop (Background).
	jobs      []func(context.Context)
	stopJobs  context.CancelFunc
	jobsGroup sync.WaitGroup
}

// NewService builds the service name on p. Every handler runs inside these
// wrappers, outermost first: recover (a panic becomes a 500), tracing,
// authorization (SetAuth), metrics (when p.Metrics is set). Subscribers run
// inside recover, tracing and metrics. Calls the service's client makes are
// traced, carry the trace context and whatever metadata the context holds
// (the caller's token), and go round robin over the callee's nodes.
func NewService(name string, p Plugins, log *slog.Logger) *Service {
	s := &Service{name: name, log: log.With("service", name), drainDelay: p.DrainDelay, selectorTTL: p.SelectorTTL, probe: newBrokerProbe(name), stopped: make(chan struct{}), metrics: p.Metrics}
	s.setTracerProvider(noop.NewTracerProvider())
	ml := NewMicroLogger(log)
	// Stop waits for the handlers in flight. go-micro's server.Wait keys its
	// WaitGroup by a type of its own, which the gRPC server plugin (v1.2.0)
	// does not look up: it reads the context value "wait", once, when the
	// server is made. Without it the plugin gives in-flight calls 1 s
	// (GracefulStop) and then cuts them off.
	wg := new(sync.WaitGroup)
	srvOpts := []server.Option{
		server.WithLogger(ml),
		server.Name(name),
		server.Version(Version),
		// pid tells which process a node is: portal up's supervisor counts a
		// child as running once its node is registered.
		server.Metadata(map[string]string{"version": Version, "description": Descriptions[name], "pid": strconv.Itoa(os.Getpid())}),
		server.Wait(wg),
		func(o *server.Options) {
			//lint:ignore SA1029 the grpc plugin reads its wait group under this string key
			o.Context = context.WithValue(o.Context, "wait", wg)
		},
		server.RegisterCheck(s.registerCheck),
		server.Address(p.Address),
		server.Registry(p.Registry),
		server.Broker(p.Broker),
		// go-micro runs the first wrapper given outermost.
		server.WrapHandler(countWork),
		server.WrapHandler(recoverWrapper(name, log)),
		server.WrapHandler(s.traceHandler),
		server.WrapHandler(s.verifyClient),
		server.WrapHandler(s.authorize),
		server.WrapSubscriber(recoverSubscriber(name, log)),
		server.WrapSubscriber(s.traceSubscriber),
	}
	if p.Metrics != nil {
		srvOpts = append(srvOpts,
			server.WrapHandler(p.Metrics.HandlerWrapper(name)),
			server.WrapSubscriber(p.Metrics.SubscriberWrapper(name)))
	}
	cliOpts := []client.Option{
		client.WithLogger(ml),
		// A selector of its own: the client's default is go-micro's package
		// selector, whose registry each client.Registry call would overwrite
		// for every client in the process.
		client.Selector(selector.NewSelector(selector.Registry(p.Registry))),
		client.Registry(p.Registry),
		client.Broker(p.Broker),
		client.RequestTimeout(RequestTimeout),
		client.DialTimeout(2 * time.Second),
		// go-micro retries a timed-out call (408) by default, which would run
		// Register or ChangePassword twice, and never retries a dead node's
		// "connection refused": Retry decides instead.
		client.Retries(Retries),
		client.Retry(Retry),
		// A retry goes to the next node at once: go-micro's default backoff
		// waits 100 ms and more before each, for a node that refused.
		client.Backoff(NoBackoff),
	}
	// RPC goes over go-micro's gRPC server and client plugins unless mucp is
	// asked for: they carry more calls a second than go-micro's default mucp
	// protocol on its http transport (the README's table), which also needs
	// mucpTransport not to lose calls.
	//
	// Server and Client first: micro.Registry and Broker re-initialise them,
	// and later options override earlier ones.
	srv, cli := grpcserver.NewServer, grpcclient.NewClient
	s.streamWorkers = p.RPC != "mucp"
	var trOpts []micro.Option
	if p.RPC == "mucp" {
		tr := mucpTransport{transport.NewHTTPTransport(transport.Logger(ml))}
		srvOpts = append(srvOpts, server.Transport(tr))
		cliOpts = append(cliOpts, client.Transport(tr))
		srv, cli = server.NewServer, client.NewClient
		// The service's transport (the one go-micro's cmd configures); not
		// micro.Transport, which would also give it to server and client,
		// replacing the TLS transports below.
		trOpts = append(trOpts, func(o *micro.Options) { o.Transport = tr })
	}
	if p.TLS != nil {
		so, co := tlsOptions(*p.TLS, p.RPC, ml)
		srvOpts, cliOpts = append(srvOpts, so...), append(cliOpts, co...)
		s.callTLS.Store(&callTLS{cfg: p.TLS.Client, rpc: p.RPC, log: ml})
	}
	svc := micro.NewService(append(append([]micro.Option{
		micro.Server(srv(srvOpts...)),
		micro.Client(cli(cliOpts...)),
	}, trOpts...),
		micro.Broker(p.Broker),
		micro.Registry(p.Registry),
		// Outermost first: one span covers every attempt of a call.
		micro.WrapClient(s.traceClient, s.signClient, RoundRobin(), s.byService),
		// go-micro handles signals only in Service.Run, which Portal does
		// not call: a process may run three services that must stop in
		// order, and Run would also start go-micro's profile on every
		// interface. The process's own handler (cmd/portal: SIGINT,
		// SIGTERM) ends the context that makes it call Stop, which runs
		// the stop hooks.
		micro.HandleSignal(false),
		micro.BeforeStart(s.beforeStart),
		micro.AfterStart(s.afterStart),
		micro.BeforeStop(s.beforeStop),
		micro.AfterStop(s.afterStop),
		micro.Logger(ml),
	)...)
	s.Service = svc
	return s
}

// Background adds a job that runs, in a goroutine of its own, from the
// AfterStart hook (the server serves) until the BeforeStop hook, which ends
// the job's context first and waits for it to return (up to StopTimeout).
// Call it before Start.
func (s *Service) Background(job func(ctx context.Context)) { s.jobs = append(s.jobs, job) }

// startJobs runs the Background jobs.
func (s *Service) startJobs() {
	ctx, cancel := context.WithCancel(context.Background())
	s.stopJobs = cancel
	for _, job := range s.jobs {
		s.jobsGroup.Go(func() { job(ctx) })
	}
}

// waitJobs ends the Background jobs and waits for them.
func (s *Service) waitJobs() error {
	if s.stopJobs == nil {
		return nil
	}
	s.stopJobs()
	done := make(chan struct{})
	go func() { s.jobsGroup.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-time.After(StopTimeout):
		return fmt.Errorf("%s: stop: background jobs still running after %v", s.Name(), StopTimeout)
	}
}

// NoBackoff is a client.BackoffFunc that never waits.
func NoBackoff(context.Context, client.Request, int) (time.Duration, error) { return 0, nil }

// starter is what go-micro's service implementation offers beyond the
// micro.Service interface.
type starter interface {
	Start() error
	Stop() error
}

// Start runs the BeforeStart hooks, starts the server (listen, register) and
// runs the AfterStart hooks. The server registers through a registrationGate
// on the registry it has by then (go-micro's cmd may have replaced the one
// NewService gave it), and the client looks nodes up through a
// lastGoodRegistry on it.
func (s *Service) Start() error {
	if err := s.keepLastGood(s.selectorTTL); err != nil {
		return fmt.Errorf("%s: start: %w", s.Name(), err)
	}
	if err := s.gateRegistry(); err != nil {
		return fmt.Errorf("%s: start: %w", s.Name(), err)
	}
	if err := s.askStreamWorkers(); err != nil {
		return fmt.Errorf("%s: start: %w", s.Name(), err)
	}
	if err := s.Service.(starter).Start(); err != nil {
		return fmt.Errorf("%s: start: %w", s.Name(), err)
	}
	return nil
}

// askStreamWorkers gives the gRPC server its stream workers: calls run on
// worker goroutines that stay, their stacks grown, rather than each on a new
// goroutine whose stack grows through the wrappers and the store client
// again (a tenth of the user service's CPU in the uncached benchmark); when
// all are busy, gRPC starts a goroutine as before.
//
// It is the server's last Init, just before Start. The gRPC server plugin
// (v1.2.0 grpc.go configure) makes a new grpc.Server at every Init and drops
// the one before without stopping it: asked for earlier, the workers of
// every dropped server would wait for work for the life of the process (in
// the embedded mode 12 servers' worth, 384 goroutines where 96 serve).
//
// Once: a Start that a BeforeStart hook refused may be tried again, and a
// second Init would drop the server that has the workers.
func (s *Service) askStreamWorkers() error {
	if !s.streamWorkers {
		return nil
	}
	s.streamWorkers = false
	return s.Server().Init(grpcserver.Options(grpc.NumStreamWorkers(uint32(16 * runtime.GOMAXPROCS(0)))))
}

// deregisterer is what go-micro's servers (gRPC and mucp) offer beyond the
// server.Server interface.
type deregisterer interface{ Deregister() error }

// Stop runs the BeforeStop hooks (readiness off, out of the registry, then
// the drain delay, in which it still serves whatever callers with a stale
// registry cache send), stops the server (it waits for the requests in
// flight, up to StopTimeout, then closes its listener and connections) and
// runs the AfterStop hooks (flush telemetry).
func (s *Service) Stop() error {
	began := time.Now()
	done := make(chan error, 1)
	go func() { done <- s.Service.(starter).Stop() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("%s: stop: %w", s.Name(), err)
		}
	case <-time.After(s.drainDelay + StopTimeout):
		return fmt.Errorf("%s: stop: requests still running %v after the drain: cut off", s.Name(), StopTimeout)
	}
	s.log.Info("service stopped", "took", time.Since(began).Round(time.Millisecond))
	return nil
}

// SetAuth makes w the service's authorization wrapper: it runs inside the
// tracing wrapper (a refusal is in the trace) and outside the metrics one.
// Call it before Start.
func (s *Service) SetAuth(w server.HandlerWrapper) { s.auth = w }

// authorize runs the authorization wrapper, when there is one.
func (s *Service) authorize(next server.HandlerFunc) server.HandlerFunc {
	return func(ctx context.Context, req server.Request, rsp interface{}) error {
		if s.auth == nil {
			return next(ctx, req, rsp)
		}
		return s.auth(next)(ctx, req, rsp)
	}
}

// UseClientProof makes the service check, on every request, the end
// client a gateway signed (a request without a valid proof gets its
// caller's own address: auth.ClientProof.Verify, outside the authorization
// wrapper), and sign the end client it knows into every call it makes.
// Call it before Start.
func (s *Service) UseClientProof(p *pauth.ClientProof) { s.proof = p }

func (s *Service) verifyClient(next server.HandlerFunc) server.HandlerFunc {
	return func(ctx context.Context, req server.Request, rsp interface{}) error {
		if s.proof == nil {
			return next(ctx, req, rsp)
		}
		return s.proof.Verify(next)(ctx, req, rsp)
	}
}

// signClient is the client wrapper that signs the end client into calls.
func (s *Service) signClient(c client.Client) client.Client { return &signingClient{Client: c, s: s} }

type signingClient struct {
	client.Client
	s *Service
}

func (c *signingClient) Call(ctx context.Context, req client.Request, rsp interface{}, opts ...client.CallOption) error {
	if c.s.proof != nil {
		ctx = c.s.proof.Outgoing(ctx, req)
	}
	return c.Client.Call(ctx, req, rsp, opts...)
}

// traceClient is the client wrapper that traces calls and publications.
func (s *Service) traceClient(c client.Client) client.Client { return &tracingClient{Client: c, s: s} }

// UseTracing gives the service a tracer provider of its own from t: its
// server, subscriber and client spans, and those of TracerProvider's users,
// go where t says, and AfterStop flushes them. Call it before Start (and,
// in the one-service mode, after Init has parsed the flags).
func (s *Service) UseTracing(t *Tracing) error {
	tp, err := t.provider(s.name)
	if err != nil {
		return fmt.Errorf("%s: tracing: %w", s.name, err)
	}
	s.setTracerProvider(tp)
	return nil
}

func (s *Service) setTracerProvider(tp trace.TracerProvider) {
	s.tp, s.tracer = tp, tp.Tracer(TraceScope)
}

// TracerProvider is the service's tracer provider, for spans the service's
// users start themselves (the gateway's HTTP spans, TraceStore's).
func (s *Service) TracerProvider() trace.TracerProvider { return s.tp }

// Metrics are the service's Prometheus metrics (Plugins.Metrics), nil when
// it has none.
func (s *Service) Metrics() *Metrics { return s.metrics }
