// Package platform builds Portal's go-micro services: each with its own server
// and client (never go-micro's package singletons, so that several services
// can share one process), the plugins given, and the wrappers every service
// needs.
package platform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	grpcclient "github.com/go-micro/plugins/v4/client/grpc"
	grpcserver "github.com/go-micro/plugins/v4/server/grpc"
	"go-micro.dev/v4"
	"go-micro.dev/v4/broker"
	"go-micro.dev/v4/client"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/selector"
	"go-micro.dev/v4/server"
	"go-micro.dev/v4/transport"
	"google.golang.org/grpc"
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
	// Metrics, when set, count and time every handler call (NewService adds
	// their wrapper just inside the recover wrapper).
	Metrics *Metrics
	// DrainDelay is how long a stopping service keeps serving after it has
	// left the registry, so that callers' registry caches drop its node
	// before its listener closes (Service.Stop). 0: stop at once, for a
	// registry in the same process.
	DrainDelay time.Duration
}

// Descriptions are the services' descriptions, put in their registry
// entries' metadata.
var Descriptions = map[string]string{
	"web":    "Portal's HTTP gateway",
	"user":   "Portal's accounts and sessions",
	"system": "Portal's admin plane",
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
// process running several can order them.
type Service struct {
	micro.Service
	log        *slog.Logger
	drainDelay time.Duration
	// health is the registration check (SetHealth); draining makes it fail,
	// so that a stopping service is not registered again.
	health   func(context.Context) error
	draining atomic.Bool
}

// NewService builds the service name on p. wrappers run inside the recover
// wrapper (and the metrics wrapper, when p.Metrics is set), in order, around
// every handler.
func NewService(name string, p Plugins, log *slog.Logger, wrappers ...server.HandlerWrapper) *Service {
	s := &Service{log: log.With("service", name), drainDelay: p.DrainDelay}
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
		server.Metadata(map[string]string{"version": Version, "description": Descriptions[name]}),
		server.Wait(wg),
		func(o *server.Options) {
			o.Context = context.WithValue(o.Context, "wait", wg) //nolint:staticcheck // the plugin's key
		},
		server.RegisterCheck(s.registerCheck),
		server.Address(p.Address),
		server.Registry(p.Registry),
		server.Broker(p.Broker),
		server.WrapHandler(recoverWrapper(name, log)),
	}
	if p.Metrics != nil {
		srvOpts = append(srvOpts, server.WrapHandler(p.Metrics.HandlerWrapper(name)))
	}
	for _, w := range wrappers {
		srvOpts = append(srvOpts, server.WrapHandler(w))
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
	// asked for: go-micro's default mucp protocol on the http transport can
	// lose the first request on a new connection (its socket takes the
	// request from the HTTP handler or, when that has not arrived yet, blocks
	// reading the next one), a stall of a whole request timeout.
	//
	// Server and Client first: micro.Registry and Broker re-initialise them,
	// and later options override earlier ones.
	srv, cli := grpcserver.NewServer, grpcclient.NewClient
	if p.RPC != "mucp" {
		// Calls run on worker goroutines that stay, their stacks grown,
		// rather than each on a new goroutine whose stack grows through the
		// wrappers and the store client again (a tenth of the user
		// service's CPU in the uncached benchmark). When all are busy, gRPC
		// starts a goroutine as before.
		srvOpts = append(srvOpts, grpcserver.Options(grpc.NumStreamWorkers(uint32(16*runtime.GOMAXPROCS(0)))))
	}
	var trOpts []micro.Option
	if p.RPC == "mucp" {
		tr := transport.NewHTTPTransport(transport.Logger(ml))
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
	}
	svc := micro.NewService(append(append([]micro.Option{
		micro.Server(srv(srvOpts...)),
		micro.Client(cli(cliOpts...)),
	}, trOpts...),
		micro.Broker(p.Broker),
		micro.Registry(p.Registry),
		micro.WrapClient(RoundRobin()),
		micro.HandleSignal(false),
		micro.Logger(ml),
	)...)
	s.Service = svc
	return s
}

// healthCheckTimeout is the deadline of the context a registration health
// check gets (the check must honour it, or bound itself).
const healthCheckTimeout = 2 * time.Second

// SetHealth makes fn the check the server runs before every registration
// (at start, then every register interval): while it fails the node is
// left out of the registry (deregistered if it was in), so that callers stop
// picking it. nil: always healthy. Call it before Start.
func (s *Service) SetHealth(fn func(context.Context) error) { s.health = fn }

// registerCheck is the server's RegisterCheck: fails while stopping, else
// asks the health check.
func (s *Service) registerCheck(context.Context) error {
	if s.draining.Load() {
		return errors.New("stopping")
	}
	if s.health == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), healthCheckTimeout)
	defer cancel()
	if err := s.health(ctx); err != nil {
		s.log.Warn("health check failed: not registered", "err", err)
		return err
	}
	return nil
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
// runs the AfterStart hooks.
func (s *Service) Start() error {
	if err := s.Service.(starter).Start(); err != nil {
		return fmt.Errorf("%s: start: %w", s.Name(), err)
	}
	s.log.Info("service started", "address", s.Server().Options().Address)
	return nil
}

// deregisterer is what go-micro's servers (gRPC and mucp) offer beyond the
// server.Server interface.
type deregisterer interface{ Deregister() error }

// Stop takes the service out of the registry and, after the drain delay (in
// which it still serves whatever callers with a stale registry cache send),
// stops the server: it waits for the requests in flight (up to StopTimeout),
// then closes its listener and connections.
func (s *Service) Stop() error {
	began := time.Now()
	s.draining.Store(true)
	if d, ok := s.Server().(deregisterer); ok && s.drainDelay > 0 {
		if err := d.Deregister(); err != nil {
			s.log.Warn("deregister", "err", err)
		} else {
			s.log.Info("deregistered; serving on while callers notice", "drain_delay", s.drainDelay)
			time.Sleep(s.drainDelay)
		}
	}
	done := make(chan error, 1)
	go func() { done <- s.Service.(starter).Stop() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("%s: stop: %w", s.Name(), err)
		}
	case <-time.After(StopTimeout):
		return fmt.Errorf("%s: stop: requests still running %v after the drain: cut off", s.Name(), StopTimeout)
	}
	s.log.Info("service stopped", "took", time.Since(began).Round(time.Millisecond))
	return nil
}

// recoverWrapper turns a panic in a handler into a 500, so that one bad
// request cannot take the process down.
func recoverWrapper(name string, log *slog.Logger) server.HandlerWrapper {
	return func(next server.HandlerFunc) server.HandlerFunc {
		return func(ctx context.Context, req server.Request, rsp interface{}) (err error) {
			defer func() {
				if r := recover(); r != nil {
					log.Error("handler panic", "service", name, "endpoint", req.Endpoint(), "panic", r, "stack", string(debug.Stack()))
					err = merrors.InternalServerError(name+".panic", "internal error")
				}
			}()
			return next(ctx, req, rsp)
		}
	}
}
