package platform

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"go-micro.dev/v4/broker"
	"go-micro.dev/v4/registry"
)

// Check is a named test of something a service depends on: nil when it
// answers. Fn must honour its context's deadline, or return soon after.
type Check struct {
	Name string
	Fn   func(context.Context) error
}

// checkTimeout bounds each check, at start and in Readiness; a check that
// ignores it is given up checkGrace later.
const (
	checkTimeout = 2 * time.Second
	checkGrace   = 500 * time.Millisecond
)

// flushTimeout bounds the flush of the service's spans at stop.
const flushTimeout = 5 * time.Second

// Require adds checks that must pass for the service to start (BeforeStart:
// the service refuses to start rather than register and fail every call)
// and that Readiness reports. Call it before Start.
func (s *Service) Require(cs ...Check) { s.required = append(s.required, cs...) }

// AddCheck adds checks that Readiness reports but start does not wait for
// (a dependency that may come later, as a config center that starts on
// defaults). Call it before Start.
func (s *Service) AddCheck(cs ...Check) { s.checks = append(s.checks, cs...) }

// OnStart adds a step that BeforeStart runs once the required checks pass
// (say, creating what the service needs in its store); an error stops the
// start. Call it before Start.
func (s *Service) OnStart(fn func(context.Context) error) { s.starting = append(s.starting, fn) }

// Ready reports whether the service is between AfterStart and BeforeStop:
// started, registered (unless its health check failed) and not stopping.
func (s *Service) Ready() bool { return s.ready.Load() }

// beforeStart is go-micro's BeforeStart hook: every required check passes,
// or the service does not start; then the OnStart steps run.
func (s *Service) beforeStart() error {
	for _, c := range s.required {
		if err := runCheck(context.Background(), c); err != nil {
			return fmt.Errorf("before start: %s: %w", c.Name, err)
		}
	}
	for _, fn := range s.starting {
		if err := fn(context.Background()); err != nil {
			return fmt.Errorf("before start: %w", err)
		}
	}
	return nil
}

// afterStart is go-micro's AfterStart hook: the server listens and has
// registered; the service is ready.
func (s *Service) afterStart() error {
	s.startJobs()
	s.ready.Store(true)
	s.log.Info("service started", "address", s.Server().Options().Address)
	return nil
}

// beforeStop is go-micro's BeforeStop hook: readiness off, out of the
// registry (and not back in: the registration check fails from now on), then
// the drain delay, so that callers' registry caches drop the node while it
// still serves. The server's own Stop deregisters again, harmlessly.
func (s *Service) beforeStop() error {
	s.ready.Store(false)
	s.draining.Store(true)
	s.closeStop.Do(func() { close(s.stopped) })
	if err := s.waitJobs(); err != nil {
		s.log.Warn("stop", "err", err)
	}
	d, ok := s.Server().(deregisterer)
	if !ok {
		return nil
	}
	if err := d.Deregister(); err != nil {
		s.log.Warn("deregister", "err", err)
		return nil // no drain: no caller learns of the stop meanwhile
	}
	if s.drainDelay > 0 {
		s.log.Info("deregistered; serving on while callers notice", "drain_delay", s.drainDelay)
		time.Sleep(s.drainDelay)
	}
	return nil
}

// shutdowner is the SDK tracer provider's flush-and-stop.
type shutdowner interface {
	Shutdown(context.Context) error
}

// afterStop is go-micro's AfterStop hook: the server has stopped, so no span
// is still to come; the service's spans still buffered are exported and its
// tracer provider shut down. The broker probe's subscription ends.
func (s *Service) afterStop() error {
	s.probe.close()
	sd, ok := s.tp.(shutdowner)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
	defer cancel()
	if err := sd.Shutdown(ctx); err != nil {
		return fmt.Errorf("flush traces: %w", err)
	}
	return nil
}

// runCheck runs c with a context ending after checkTimeout, and gives up on
// it a little later when c.Fn does not return (go-micro's registry and
// broker calls take no context).
func runCheck(ctx context.Context, c Check) error {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Fn(ctx) }()
	giveUp := time.NewTimer(checkTimeout + checkGrace)
	defer giveUp.Stop()
	select {
	case err := <-done:
		return err
	case <-giveUp.C:
		return fmt.Errorf("no answer within %v", checkTimeout)
	}
}

// Readiness runs every check at once: the service's lifecycle (ready between
// AfterStart and BeforeStop), its registry and broker (those go-micro's cmd
// chose), then those added with Require and AddCheck. It returns each
// check's result, "ok" or what failed, and whether all passed.
func (s *Service) Readiness(ctx context.Context) (map[string]string, bool) {
	return s.readiness(ctx, "")
}

// readiness runs the check named only, or every check (""); nil: no check
// has that name.
func (s *Service) readiness(ctx context.Context, only string) (map[string]string, bool) {
	checks := []Check{
		{"lifecycle", s.lifecycleCheck},
		{"registry", s.registryCheck},
		{"broker", s.brokerCheck},
	}
	checks = append(append(checks, s.required...), s.checks...)
	if only != "" {
		checks = slices.DeleteFunc(checks, func(c Check) bool { return c.Name != only })
		if len(checks) == 0 {
			return nil, false
		}
	}
	results := make([]error, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Go(func() { results[i] = runCheck(ctx, c) })
	}
	wg.Wait()
	out := map[string]string{}
	ok := true
	for i, c := range checks {
		if results[i] != nil {
			out[c.Name], ok = results[i].Error(), false
		} else {
			out[c.Name] = "ok"
		}
	}
	return out, ok
}

// errNotServing is the lifecycle check's failure.
var errNotServing = errors.New("not serving (starting or stopping)")

// lifecycleCheck passes between AfterStart and BeforeStop.
func (s *Service) lifecycleCheck(context.Context) error {
	if !s.ready.Load() {
		return errNotServing
	}
	return nil
}

// ReadyHandler serves GET /readyz: 200 {"status":"ready","checks":{...}}
// when every check of Readiness passes, else 503 {"status":"unavailable"}
// with each failing check named and its error. Mounted at a pattern with
// a {check} wildcard (GET /readyz/{check}) it runs that check alone, and
// answers 404 for a name no check has: GET /readyz/lifecycle is what an
// orchestrator's readiness probe asks (README, Health).
func (s *Service) ReadyHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		checks, ok := s.readiness(r.Context(), r.PathValue("check"))
		if checks == nil {
			http.Error(w, "no such check", http.StatusNotFound)
			return
		}
		status, code := "ready", http.StatusOK
		if !ok {
			status, code = "unavailable", http.StatusServiceUnavailable
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(map[string]any{"status": status, "checks": checks})
	})
}

// registryCheck asks the service's registry for the service's own entry (a
// missing entry is an answer: the node may be draining or unhealthy).
func (s *Service) registryCheck(context.Context) error {
	if _, err := s.Options().Registry.GetService(s.name); err != nil && !errors.Is(err, registry.ErrNotFound) {
		return err
	}
	return nil
}

// brokerCheck has a message go through the service's broker and back.
func (s *Service) brokerCheck(ctx context.Context) error {
	return s.probe.check(ctx, s.Options().Broker)
}

// brokerProbe checks that a broker delivers: it subscribes to a topic of its
// own and each check publishes there and waits for the message to come back.
// A broker can accept a publication it cannot deliver (the NATS client
// buffers while it reconnects), so that publishing alone proves little.
type brokerProbe struct {
	topic   string
	mu      sync.Mutex
	sub     broker.Subscriber
	waiting map[string]chan struct{}
}

func newBrokerProbe(service string) *brokerProbe {
	return &brokerProbe{topic: "portal.probe." + service + "." + uuid.NewString(), waiting: map[string]chan struct{}{}}
}

// check publishes one message on b and waits for it until ctx ends.
func (p *brokerProbe) check(ctx context.Context, b broker.Broker) error {
	if err := p.subscribe(b); err != nil {
		return err
	}
	id := uuid.NewString()
	got := make(chan struct{})
	p.mu.Lock()
	p.waiting[id] = got
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.waiting, id)
		p.mu.Unlock()
	}()
	if err := b.Publish(p.topic, &broker.Message{Header: map[string]string{"Probe-Id": id}, Body: []byte("{}")}); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	select {
	case <-got:
		return nil
	case <-ctx.Done():
		return errors.New("a message published was not delivered")
	}
}

// subscribe subscribes to the probe's topic on b, once it succeeds.
func (p *brokerProbe) subscribe(b broker.Broker) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sub != nil {
		return nil
	}
	if err := b.Connect(); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	sub, err := b.Subscribe(p.topic, p.deliver)
	if err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	p.sub = sub
	return nil
}

// deliver wakes the check waiting for the message.
func (p *brokerProbe) deliver(e broker.Event) error {
	id := e.Message().Header["Probe-Id"]
	p.mu.Lock()
	got, ok := p.waiting[id]
	delete(p.waiting, id)
	p.mu.Unlock()
	if ok {
		close(got)
	}
	return nil
}

// close ends the subscription.
func (p *brokerProbe) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sub != nil {
		_ = p.sub.Unsubscribe()
		p.sub = nil
	}
}
