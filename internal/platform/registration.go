package platform

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
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

// registerCheck is the server's RegisterCheck: asks the health check and
// keeps its result for the registrationGate. While stopping it passes
// without asking: the gate keeps the node out then, silently, where a
// failed check would make the server's loop deregister the node again and
// log an error for it.
func (s *Service) registerCheck(context.Context) error {
	if s.draining.Load() {
		return nil
	}
	if s.health == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), healthCheckTimeout)
	defer cancel()
	if err := s.health(ctx); err != nil {
		// Logged when the node turns unhealthy, not at every check: the
		// gate's retrier asks every registerRetry while it fails.
		if s.unhealthy.Swap(&err) == nil {
			s.log.Warn("health check failed: not registered", "err", err)
		}
		return err
	}
	s.unhealthy.Store(nil)
	return nil
}

// registrationRefused says why the node must not be registered now: its
// last health check failed. nil: register.
func (s *Service) registrationRefused() error {
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
// While the service stops the gate keeps the node out without an error, so
// that a tick after BeforeStop deregistered the node does not register it
// again, and the loop logs nothing; it bounds the deregistration, so that a
// registry that is away (etcd down) does not hold the stop up.
type registrationGate struct {
	registry.Registry
	refused func() error
	// check runs the health check now and says why the node must stay
	// out (nil: it may register): how the retrier sees a recovery between
	// the server's ticks.
	check    func() error
	stopping func() bool
	stopped  <-chan struct{} // closed when the service begins to stop
	// deregistered is set by the first Deregister while stopping.
	deregistered atomic.Bool
	// last is the registry call queued last (serial).
	last atomic.Pointer[registryCall]
	// retrying is set while a registration the registry failed is being
	// tried again (retry).
	retrying atomic.Bool
}

// registerRetry is how often a registration the registry failed (etcd
// away) is tried again, between the server's register ticks.
const registerRetry = 500 * time.Millisecond

// Register registers svc unless the gate refuses it, or does nothing while
// the service stops. A registration still waiting for the registry when the
// service begins to stop (etcd away: up to its timeout) is let go at once,
// as if done, so that the server's register loop does not hold the stop up
// nor log an error for it; the node is deregistered next.
func (g *registrationGate) Register(svc *registry.Service, opts ...registry.RegisterOption) error {
	if g.stopping() {
		return nil // stopping: out of the registry for good
	}
	if err := g.refused(); err != nil {
		g.retry(svc, opts)
		return fmt.Errorf("%s not registered: %w", svc.Name, err)
	}
	err := g.register(svc, opts)
	if err != nil {
		g.retry(svc, opts)
	}
	return err
}

// register registers svc at the registry (serial); a registration still
// waiting when the service begins to stop counts as done (nil), and is not
// made.
func (g *registrationGate) register(svc *registry.Service, opts []registry.RegisterOption) error {
	c := g.serial(false, func() error {
		if g.stopping() {
			return nil
		}
		return g.Registry.Register(svc, opts...)
	})
	select {
	case <-c.done:
		return c.err
	case <-g.stopped:
		return nil
	}
}

// registryCall is a call to the registry in the gate's queue (serial).
type registryCall struct {
	done    chan struct{} // closed when the call has returned
	err     error         // what it returned, set before done is closed
	dereg   bool          // a deregistration
	started atomic.Bool   // its turn came
}

// serial queues call (a deregistration or not) and runs it in a goroutine
// once every registry call queued before it is done: the registry sees this
// node's registrations and deregistrations one at a time, in the order they
// were made, even those the gate gave up waiting for.
//
// The etcd plugin needs both. Two registrations at once (the server's tick
// and the retrier, both let go when etcd answers again) each grant a lease
// and put the node's key; the key keeps the lease of the last put, while the
// plugin may keep the other lease as the node's and renew only that one. The
// key's lease then runs out, the key goes, and the plugin, its lease alive
// and the node unchanged, never puts it back: a healthy node gone from the
// registry for good, with nothing logged (TestDistributed/f_redis_outage
// lost the system node so, a few seconds after etcd's restart in step e).
// And a deregistration given up on while etcd was away deletes the key when
// etcd is back: landing after a registration, it would leave the same
// renewed lease with no key.
func (g *registrationGate) serial(dereg bool, call func() error) *registryCall {
	c := &registryCall{done: make(chan struct{}), dereg: dereg}
	prev := g.last.Swap(c)
	go func() {
		defer close(c.done)
		if prev != nil {
			<-prev.done
		}
		c.started.Store(true)
		c.err = call()
	}()
	return c
}

// retry tries a registration that the registry failed, or that the gate
// refused because the health check failed, again every registerRetry (the
// check asked anew first) until it takes or the service stops (one retrier
// at a time). The server's loop tries only at its next tick, up to a
// register interval later; after an etcd restart a node's restored lease can
// run out before that tick, and the node would be missing from the registry
// until it (TestDistributed/e_etcd_restart saw a live system node gone 4 s
// after etcd's restart, with the 5 s interval, after a failed
// registration). Retried, the node is back within registerRetry of etcd's
// (or its store's) return.
func (g *registrationGate) retry(svc *registry.Service, opts []registry.RegisterOption) {
	if !g.retrying.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer g.retrying.Store(false)
		t := time.NewTicker(registerRetry)
		defer t.Stop()
		for {
			select {
			case <-g.stopped:
				return
			case <-t.C:
			}
			if g.stopping() {
				return
			}
			if g.check() != nil {
				continue // still unhealthy: out of the registry
			}
			if g.register(svc, opts) == nil {
				return
			}
		}
	}()
}

// deregisterTimeout bounds a deregistration: a registry that is away (etcd
// down) would hold a stopping service for its own timeout, twice (BeforeStop,
// then the server's Stop); the node then leaves with its TTL.
const deregisterTimeout = time.Second

// errRegistryAway is a deregistration given up after deregisterTimeout.
var errRegistryAway = errors.New("registry did not answer: the node stays listed until its registration TTL runs out")

// Deregister deregisters svc, once per stop: while the service is stopping,
// a deregistration already tried (by BeforeStop) is not tried again (by the
// server's Stop). It gives up waiting after deregisterTimeout; the
// deregistration still reaches the registry, in its turn (serial).
//
// A deregistration that would queue right behind another still waiting for
// its turn is that one: while etcd is away each register tick whose check
// fails deregisters again, and each waits up to the plugin's timeout, so a
// tick shorter than that timeout would queue them faster than they run.
func (g *registrationGate) Deregister(svc *registry.Service, opts ...registry.DeregisterOption) error {
	if g.stopping != nil && g.stopping() && !g.deregistered.CompareAndSwap(false, true) {
		return nil
	}
	c := g.last.Load()
	if c == nil || !c.dereg || c.started.Load() {
		c = g.serial(true, func() error { return g.Registry.Deregister(svc, opts...) })
	}
	select {
	case <-c.done:
		return c.err
	case <-time.After(deregisterTimeout):
		return errRegistryAway
	}
}

// gateRegistry makes the server register through a registrationGate on its
// current registry, once.
func (s *Service) gateRegistry() error {
	reg := s.Server().Options().Registry
	if _, ok := reg.(*registrationGate); ok || reg == nil {
		return nil
	}
	return s.Server().Init(server.Registry(&registrationGate{Registry: reg, refused: s.registrationRefused,
		check:    func() error { return s.registerCheck(context.Background()) },
		stopping: s.draining.Load, stopped: s.stopped}))
}
