package platform

import (
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	etcdreg "github.com/go-micro/plugins/v4/registry/etcd"
	"go-micro.dev/v4/registry"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/portal-go/portal/internal/testenv"
	"github.com/portal-go/portal/internal/testenv/poll"
)

// serialRegistry records the calls that reach it and whether two were
// ever in it at once; every call waits for release, as the etcd plugin's
// calls wait for an etcd that is away.
type serialRegistry struct {
	registry.Registry
	release chan struct{}
	in      atomic.Int32
	overlap atomic.Bool
	mu      sync.Mutex
	ops     []string
}

func (r *serialRegistry) call(op string) error {
	if r.in.Add(1) > 1 {
		r.overlap.Store(true)
	}
	defer r.in.Add(-1)
	r.mu.Lock()
	r.ops = append(r.ops, op)
	r.mu.Unlock()
	<-r.release
	return nil
}

// seen is the calls that have reached r, in order.
func (r *serialRegistry) seen() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ops)
}

// healthyGate is a gate on reg for a service whose check passes and that
// stops when stopped closes.
func healthyGate(reg registry.Registry, stopped chan struct{}) *registrationGate {
	ok := func() error { return nil }
	return &registrationGate{Registry: reg, refused: ok, check: ok, stopping: func() bool { return false }, stopped: stopped}
}

func (r *serialRegistry) Register(*registry.Service, ...registry.RegisterOption) error {
	return r.call("register")
}

func (r *serialRegistry) Deregister(*registry.Service, ...registry.DeregisterOption) error {
	return r.call("deregister")
}

// TestRegistryCallsOneAtATimeInOrder: the registry sees a node's
// registrations and deregistrations one at a time, in the order they were
// made, also a deregistration the gate gave up waiting for (etcd away): a
// registration made after it reaches the registry after it, not before
// (landing later, it would delete the registered node's key), and a
// registration never runs beside another (the etcd plugin would then renew
// a lease that holds no key; TestConcurrentRegistrationsKeepTheNodeListed
// shows it with etcd).
func TestRegistryCallsOneAtATimeInOrder(t *testing.T) {
	reg := &serialRegistry{release: make(chan struct{})}
	g := healthyGate(reg, make(chan struct{}))
	svc := &registry.Service{Name: "system", Nodes: []*registry.Node{{Id: "system-1"}}}
	first := make(chan error, 1)
	go func() { first <- g.Register(svc) }() // the server's tick, waiting for etcd
	poll.Wait(t, 5*time.Second, "the first registration to reach the registry", func() bool { return len(reg.seen()) == 1 })
	if err := g.Deregister(svc); err != errRegistryAway {
		t.Fatalf("Deregister with the registry away: %v, want errRegistryAway", err)
	}
	second := make(chan error, 1)
	go func() { second <- g.Register(svc) }() // the retrier
	poll.Holds(t, 200*time.Millisecond, "the later calls to wait for the first", func() bool { return len(reg.seen()) == 1 })
	close(reg.release) // etcd is back
	for _, c := range []chan error{first, second} {
		if err := <-c; err != nil {
			t.Fatalf("Register: %v", err)
		}
	}
	// The last call has returned, so every call before it has too.
	if reg.overlap.Load() {
		t.Error("two calls were in the registry at once")
	}
	if got, want := reg.seen(), []string{"register", "deregister", "register"}; !slices.Equal(got, want) {
		t.Fatalf("registry saw %v, want %v", got, want)
	}
}

// TestWaitingDeregistrationsCoalesce: while the registry is away, a
// deregistration that would queue right behind another still waiting for
// its turn is that one, so that register ticks shorter than the registry's
// timeout do not queue them faster than they run; one behind a
// registration is queued.
func TestWaitingDeregistrationsCoalesce(t *testing.T) {
	reg := &serialRegistry{release: make(chan struct{})}
	g := healthyGate(reg, make(chan struct{}))
	svc := &registry.Service{Name: "system", Nodes: []*registry.Node{{Id: "system-1"}}}
	first := make(chan error, 1)
	go func() { first <- g.Register(svc) }() // waiting for etcd
	poll.Wait(t, 5*time.Second, "the registration to reach the registry", func() bool { return len(reg.seen()) == 1 })
	for range 2 { // two ticks whose check failed
		if err := g.Deregister(svc); err != errRegistryAway {
			t.Fatalf("Deregister with the registry away: %v, want errRegistryAway", err)
		}
	}
	second := make(chan error, 1)
	go func() { second <- g.Register(svc) }() // the check passes again
	poll.Wait(t, 5*time.Second, "the second registration to be queued", func() bool {
		c := g.last.Load()
		return c != nil && !c.dereg
	})
	third := make(chan error, 1)
	go func() { third <- g.Deregister(svc) }() // and fails once more
	poll.Wait(t, 5*time.Second, "the last deregistration to be queued", func() bool { return g.last.Load().dereg })
	close(reg.release) // etcd is back
	for _, c := range []chan error{first, second, third} {
		if err := <-c; err != nil {
			t.Fatalf("a call after etcd is back: %v", err)
		}
	}
	// The last call has returned, so every call before it has too.
	if got, want := reg.seen(), []string{"register", "deregister", "register", "deregister"}; !slices.Equal(got, want) {
		t.Fatalf("registry saw %v, want %v", got, want)
	}
}

// TestConcurrentRegistrationsKeepTheNodeListed: with etcd and the go-micro
// etcd plugin, a node registered twice at once (the server's tick and the
// gate's retrier, both let go when etcd answers again) is put back by the
// next registration once its key's lease has run out. The plugin, given
// both at once, grants two leases and may keep renewing the one the key
// does not hold: the key then goes with the other lease and is never put
// back.
func TestConcurrentRegistrationsKeepTheNodeListed(t *testing.T) {
	etcd := testenv.StartEtcd(t)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{etcd.Addr}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	stopped := make(chan struct{})
	defer close(stopped)
	g := healthyGate(etcdreg.NewRegistry(registry.Addrs(etcd.Addr)), stopped)
	svc := &registry.Service{Name: "system", Version: "latest", Nodes: []*registry.Node{{Id: "system-1", Address: "127.0.0.1:1"}}}
	ttl := registry.RegisterTTL(time.Minute)
	const key = "/micro/registry/system/system-1"
	ctx := t.Context()
	for round := range 20 {
		// Out of the registry, the plugin's memory of the node cleared.
		if err := g.Deregister(svc); err != nil {
			t.Fatalf("round %d: Deregister: %v", round, err)
		}
		errs := make(chan error, 2)
		for range 2 {
			go func() { errs <- g.Register(svc, ttl) }()
		}
		for range 2 {
			if err := <-errs; err != nil {
				t.Fatalf("round %d: Register: %v", round, err)
			}
		}
		// The key's lease runs out (revoked rather than waited for).
		rsp, err := cli.Get(ctx, key)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if len(rsp.Kvs) == 0 {
			t.Fatalf("round %d: the node's key is missing after registering", round)
		}
		if _, err := cli.Revoke(ctx, clientv3.LeaseID(rsp.Kvs[0].Lease)); err != nil {
			t.Fatalf("round %d: revoke the key's lease: %v", round, err)
		}
		if err := g.Register(svc, ttl); err != nil { // the server's next tick
			t.Fatalf("round %d: Register: %v", round, err)
		}
		if rsp, err = cli.Get(ctx, key); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if len(rsp.Kvs) == 0 {
			t.Fatalf("round %d: the node's key is gone after its lease ran out and the next registration: the plugin renews a lease the key does not hold", round)
		}
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
	g := healthyGate(reg, stopped)
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
