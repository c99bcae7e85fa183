package platform

import (
	"context"
	"errors"
	"sync"
	"time"

	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/selector"
	util "go-micro.dev/v4/util/registry"
)

// DefaultSelectorTTL is how long a client's selector keeps a service's nodes
// before it asks the registry again (go-micro's default is a minute); the
// registry's watch updates them meanwhile.
const DefaultSelectorTTL = 10 * time.Second

// lastGoodRegistry answers GetService at once from the last answer the
// registry gave for the service, and asks the registry again in the
// background (one question per service at a time), so that a caller never
// waits on a registry that is away (etcd: a 5 s timeout on every question)
// and catches up once it is back. A service it has not seen yet is asked
// for as usual.
//
// go-micro's selector cache returns its stale entry when the registry fails
// but does not renew it, so that once its TTL had passed every call waited
// out the registry's timeout (issue 18, finding 6).
type lastGoodRegistry struct {
	registry.Registry
	mu         sync.Mutex
	views      map[string][]*registry.Service
	refreshing map[string]bool
}

func newLastGood(r registry.Registry) *lastGoodRegistry {
	return &lastGoodRegistry{Registry: r, views: map[string][]*registry.Service{}, refreshing: map[string]bool{}}
}

// GetService returns the last good view of name, refreshed in the
// background; without one, the registry's answer.
func (r *lastGoodRegistry) GetService(name string, opts ...registry.GetOption) ([]*registry.Service, error) {
	r.mu.Lock()
	view, ok := r.views[name]
	if ok && !r.refreshing[name] {
		r.refreshing[name] = true
		go r.refresh(name, opts)
	}
	r.mu.Unlock()
	if ok {
		return util.Copy(view), nil
	}
	return r.fetch(name, opts)
}

// fetch asks the registry and keeps a good answer: nodes, or none.
func (r *lastGoodRegistry) fetch(name string, opts []registry.GetOption) ([]*registry.Service, error) {
	list, err := r.Registry.GetService(name, opts...)
	switch {
	case err == nil:
		r.mu.Lock()
		r.views[name] = util.Copy(list)
		r.mu.Unlock()
	case errors.Is(err, registry.ErrNotFound):
		r.mu.Lock()
		delete(r.views, name)
		r.mu.Unlock()
	}
	return list, err
}

// refresh fetches name once in the background.
func (r *lastGoodRegistry) refresh(name string, opts []registry.GetOption) {
	defer func() {
		r.mu.Lock()
		r.refreshing[name] = false
		r.mu.Unlock()
	}()
	_, _ = r.fetch(name, opts)
}

// String names the registry underneath.
func (r *lastGoodRegistry) String() string { return r.Registry.String() }

// keepLastGood makes the client's selector look services up through a
// lastGoodRegistry on the client's registry (the one go-micro's cmd chose),
// keeping nodes for ttl; an in-process memory registry is left as it is.
func (s *Service) keepLastGood(ttl time.Duration) error {
	o := s.Client().Options()
	if o.Registry == nil || o.Selector == nil || o.Registry.String() == "memory" {
		return nil
	}
	if ttl <= 0 {
		ttl = DefaultSelectorTTL
	}
	return o.Selector.Init(selector.Registry(newLastGood(o.Registry)), func(so *selector.Options) {
		if so.Context == nil {
			so.Context = context.Background()
		}
		// The key go-micro's selector reads (selector/default.go).
		so.Context = context.WithValue(so.Context, "selector_ttl", ttl) //nolint:staticcheck // go-micro's key
	})
}
