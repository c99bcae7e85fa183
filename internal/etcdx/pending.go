package etcdx

import (
	"errors"

	"go-micro.dev/v4/registry"
)

// errPending is what a Pending registry answers: it is never connected.
var errPending = errors.New("etcdx: the etcd registry is not connected yet (Settings.Registry makes it)")

// Pending stands in for the etcd registry while go-micro's cmd parses the
// flags: it records the options cmd gives it and connects to nothing, so
// that the parse neither blocks on etcd nor exits the process on a wrong
// password (cmd's logger.Fatalf), and Portal can check the settings and say
// which is wrong before it makes the real registry.
type Pending struct{ opts registry.Options }

// NewPending is go-micro cmd's factory for MICRO_REGISTRY=etcd.
func NewPending(opts ...registry.Option) registry.Registry {
	p := &Pending{}
	_ = p.Init(opts...)
	return p
}

// Init records opts.
func (p *Pending) Init(opts ...registry.Option) error {
	for _, o := range opts {
		o(&p.opts)
	}
	return nil
}

// Options are the recorded options.
func (p *Pending) Options() registry.Options { return p.opts }

// Register fails: Pending is not connected.
func (p *Pending) Register(*registry.Service, ...registry.RegisterOption) error { return errPending }

// Deregister fails: Pending is not connected.
func (p *Pending) Deregister(*registry.Service, ...registry.DeregisterOption) error {
	return errPending
}

// GetService fails: Pending is not connected.
func (p *Pending) GetService(string, ...registry.GetOption) ([]*registry.Service, error) {
	return nil, errPending
}

// ListServices fails: Pending is not connected.
func (p *Pending) ListServices(...registry.ListOption) ([]*registry.Service, error) {
	return nil, errPending
}

// Watch fails: Pending is not connected.
func (p *Pending) Watch(...registry.WatchOption) (registry.Watcher, error) { return nil, errPending }

// String is "etcd", the name cmd chose it by.
func (p *Pending) String() string { return "etcd" }
