package platform

import (
	"sync"
	"testing"
	"time"

	"go-micro.dev/v4/registry"
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
	g := &registrationGate{Registry: reg, refused: func() error { return nil }, stopping: func() bool { return false }, stopped: make(chan struct{})}
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
