package platform

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go-micro.dev/v4/registry"

	"github.com/portal-go/portal/internal/testenv/poll"
)

// orderRegistry records the order in which registrations and
// deregistrations reach the registry; a deregistration waits for release,
// as the etcd plugin's Delete waits for an etcd that is away.
type orderRegistry struct {
	registry.Registry
	release chan struct{}
	mu      sync.Mutex
	ops     []string
}

func (r *orderRegistry) Register(*registry.Service, ...registry.RegisterOption) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ops = append(r.ops, "register")
	return nil
}

func (r *orderRegistry) Deregister(*registry.Service, ...registry.DeregisterOption) error {
	<-r.release
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ops = append(r.ops, "deregister")
	return nil
}

// TestRegisterWaitsForALateDeregistration: a deregistration given up on
// while etcd was away lands when etcd is back; a registration made before it
// would be deleted by it and the node would stay out of the registry for
// good (TestDistributed/e_etcd_restart lost the system node so). The gate
// registers only once the late deregistration has landed.
func TestRegisterWaitsForALateDeregistration(t *testing.T) {
	reg := &orderRegistry{release: make(chan struct{})}
	g := &registrationGate{Registry: reg, refused: func() error { return nil }, check: func() error { return nil }, stopping: func() bool { return false }, stopped: make(chan struct{})}
	svc := &registry.Service{Name: "system", Nodes: []*registry.Node{{Id: "system-1"}}}
	if err := g.Deregister(svc); err != errRegistryAway {
		t.Fatalf("Deregister with the registry away: %v, want errRegistryAway", err)
	}
	registered := make(chan error, 1)
	go func() { registered <- g.Register(svc) }()
	select {
	case err := <-registered:
		t.Fatalf("Register returned (%v) before the late deregistration landed", err)
	case <-time.After(200 * time.Millisecond): // it must still be waiting
	}
	close(reg.release) // etcd is back: the deregistration lands
	if err := <-registered; err != nil {
		t.Fatalf("Register: %v", err)
	}
	reg.mu.Lock()
	defer reg.mu.Unlock()
	if len(reg.ops) != 2 || reg.ops[0] != "deregister" || reg.ops[1] != "register" {
		t.Fatalf("registry saw %v, want [deregister register]", reg.ops)
	}
}

// awayRegistry fails every registration while away is set, as the etcd
// plugin does while etcd is down, and counts those that take.
type awayRegistry struct {
	registry.Registry
	away  atomic.Bool
	taken atomic.Int32
}

func (r *awayRegistry) Register(*registry.Service, ...registry.RegisterOption) error {
	if r.away.Load() {
		return errors.New("etcd away")
	}
	r.taken.Add(1)
	return nil
}

// TestRegisterRetriedWhenTheRegistryIsBack: a registration the registry
// failed is tried again, without waiting for the server's next tick, until
// it takes; the retrier ends with it, and when the service stops.
func TestRegisterRetriedWhenTheRegistryIsBack(t *testing.T) {
	reg := &awayRegistry{}
	reg.away.Store(true)
	stopped := make(chan struct{})
	g := &registrationGate{Registry: reg, refused: func() error { return nil }, check: func() error { return nil }, stopping: func() bool { return false }, stopped: stopped}
	svc := &registry.Service{Name: "system", Nodes: []*registry.Node{{Id: "system-1"}}}
	if err := g.Register(svc); err == nil {
		t.Fatal("Register with the registry away succeeded")
	}
	reg.away.Store(false) // etcd is back; the server's next tick is far off
	poll.Wait(t, 5*time.Second, "the failed registration to be retried", func() bool { return reg.taken.Load() == 1 })
	poll.Wait(t, 5*time.Second, "the retrier to end", func() bool { return !g.retrying.Load() })

	reg.away.Store(true)
	if err := g.Register(svc); err == nil {
		t.Fatal("Register with the registry away succeeded")
	}
	close(stopped) // the service stops while the registry is away
	poll.Wait(t, 5*time.Second, "the retrier to end at stop", func() bool { return !g.retrying.Load() })
	if reg.taken.Load() != 1 {
		t.Fatalf("%d registrations took, want 1", reg.taken.Load())
	}
}

// TestRefusedRegistrationRetriedWhenHealthy: a registration the gate refused
// (the health check failed: the system service's asks the registry, so an
// etcd outage fails it) stays out while the check fails, and is tried
// again, the check asked anew every registerRetry, as soon as it passes,
// without waiting for the server's next tick.
func TestRefusedRegistrationRetriedWhenHealthy(t *testing.T) {
	reg := &awayRegistry{}
	var healthy atomic.Bool
	why := func() error {
		if healthy.Load() {
			return nil
		}
		return errors.New("registry away")
	}
	stopped := make(chan struct{})
	defer close(stopped)
	g := &registrationGate{Registry: reg, refused: why, check: why, stopping: func() bool { return false }, stopped: stopped}
	svc := &registry.Service{Name: "system", Nodes: []*registry.Node{{Id: "system-1"}}}
	if err := g.Register(svc); err == nil {
		t.Fatal("Register while the check fails succeeded")
	}
	poll.Holds(t, 3*registerRetry, "the node kept out while the check fails", func() bool { return reg.taken.Load() == 0 })
	healthy.Store(true) // the server's next tick is far off
	poll.Wait(t, 5*time.Second, "the refused registration to be retried", func() bool { return reg.taken.Load() == 1 })
	poll.Wait(t, 5*time.Second, "the retrier to end", func() bool { return !g.retrying.Load() })
}
