package platform

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/server"
)

// healthCheckTimeout is the deadline of the context a registration health
// check gets (the check must honour it, or bound itself).
const healthCheckTimeout = 2 * time.Second

// SetHealth makes fn the check the server runs before every registration
// (at start, then every register interval): while it fails the node is
// left out of the registry (deregistered if it was in), so that callers stop
// picking it; the first registration after it passes again puts the node
// back. nil: always healthy. Call it before Start.
func (s *Service) SetHealth(fn func(context.Context) error) { s.health = fn }

// registerCheck is the server's RegisterCheck: fails while stopping, else
// asks the health check and keeps its result for the registrationGate.
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
		s.unhealthy.Store(&err)
		s.log.Warn("health check failed: not registered", "err", err)
		return err
	}
	s.unhealthy.Store(nil)
	return nil
}

// registrationRefused says why the node must not be registered now: it is
// stopping, or its last health check failed. nil: register.
func (s *Service) registrationRefused() error {
	if s.draining.Load() {
		return errors.New("stopping")
	}
	if err := s.unhealthy.Load(); err != nil {
		return fmt.Errorf("health check failed: %w", *err)
	}
	return nil
}

// registrationGate is the registry a Service's server registers through: the
// server's registry, refusing Register while the service must stay out.
//
// go-micro's register loop does not keep a node out on its own. Every
// register interval it runs RegisterCheck and, when the check fails on a
// registered node, deregisters it and then falls through to Register in the
// same tick (go-micro v4.11.0 server/rpc_server.go:758-774, registrar; the
// gRPC server plugin v1.2.0 grpc.go:944-961 has the same loop): the node
// never leaves the registry. Refused, that Register fails, the server counts
// itself unregistered, and from the next tick on it skips registering while
// the check fails ("register check error") and registers again on the first
// tick it passes. The refusal costs the server's loop its registration
// retries once per outage (three attempts with backoff, about 2.7 s, less
// than Portal's 5 s interval), and logs one "register error".
//
// The gate also closes a race at stop: a tick that checked just before
// BeforeStop deregistered the node could otherwise register it again.
type registrationGate struct {
	registry.Registry
	refused func() error
}

// Register registers svc unless the gate refuses it.
func (g *registrationGate) Register(svc *registry.Service, opts ...registry.RegisterOption) error {
	if err := g.refused(); err != nil {
		return fmt.Errorf("%s not registered: %w", svc.Name, err)
	}
	return g.Registry.Register(svc, opts...)
}

// gateRegistry makes the server register through a registrationGate on its
// current registry, once.
func (s *Service) gateRegistry() error {
	reg := s.Server().Options().Registry
	if _, ok := reg.(*registrationGate); ok || reg == nil {
		return nil
	}
	return s.Server().Init(server.Registry(&registrationGate{Registry: reg, refused: s.registrationRefused}))
}
